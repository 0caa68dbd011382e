/* wb_hnsw.c - Hierarchical Navigable Small World graphs over inner-product similarity (float32).
 *
 * Built by native/build.py into workbench_engines._native; the reference is
 * exact search (wb_search.c), against which engines/search measures recall,
 * and the peer is faiss's IndexHNSWFlat.
 *
 * Malkov & Yashunin, "Efficient and robust approximate nearest neighbor
 * search using Hierarchical Navigable Small World graphs" (arXiv 1603.09320,
 * 2016; TPAMI 2018). Each vector gets a level l = floor(-ln(U) mL) with
 * mL = 1/ln M (their eq. for the level distribution); it lives on layers
 * 0..l with at most M links per upper layer and M0 = 2M on layer 0.
 *   insert (their Algorithm 1): greedy descent from the top layer to l + 1,
 *       then on each layer l..0 a beam search of width efConstruction
 *       (Algorithm 2), the heuristic of Algorithm 4 picks M neighbours (2M on
 *       layer 0, as faiss does; see Versions), links go both ways, and a neighbour whose list overflows is pruned back
 *       with the same heuristic;
 *   the heuristic (Algorithm 4, extendCandidates = keepPrunedConnections =
 *       false, as hnswlib and faiss use it): candidates in order of
 *       similarity to the new vector q; c is kept only if no kept r is more
 *       similar to c than q is (sim(c, r) > sim(c, q) rejects c), which keeps
 *       links that point in different directions;
 *   search (Algorithm 5): greedy descent to layer 1, then the layer-0 beam
 *       search with ef = max(efSearch, k), the k best returned.
 * Similarity is the inner product, the cosine on unit vectors (the caller
 * normalises): larger is nearer. Ties go to the lower id, as in wb_search.c.
 *
 * Layout: vectors copied into one array; layer-0 links a flat int32 array of
 * (1 + M0) per node (count, then ids) so a visit reads one cache line or two;
 * upper layers, held by a node with probability 1/M, one small array each.
 * A query's visited set is an epoch-tagged byte per node (cleared once every
 * 255 searches); a node's unvisited neighbours are gathered first and all
 * their vectors prefetched, so the cache misses overlap.
 *
 * Versions (100,000 GloVe unit vectors, 1,000 held-out queries, M = 16,
 * efConstruction = 100, one thread, 2-vCPU AMD EPYC shared with other work;
 * recall@10 and queries/s at efSearch = 80, faiss IndexHNSWFlat with the
 * same knobs in the same run 0.958 and 7,700-8,400 q/s):
 *   M links for the new node on every layer (the paper's Algorithm 1 read
 *       literally, as hnswlib does): 0.930, 9,200 q/s. Dropped: faiss's
 *       2M on layer 0 buys recall for the same beam;
 *   2M on layer 0, insertion in database order, a uint32 visited tag per
 *       node, one prefetch ahead: 0.947, 6,000 q/s;
 *   highest levels inserted first and a seeded shuffle within a level (as
 *       faiss's hnsw_add_vertices), the unvisited neighbours gathered and all
 *       their vectors prefetched before scoring, a byte visited tag: 0.958,
 *       10,300 q/s. Kept;
 *   and the gathered neighbours scored four at a time (faiss's
 *       distances_batch_4): 0.958, 9,900 q/s against faiss's 8,200 in
 *       the same run, no gain over the line above. Dropped.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "wb_checked.h"
#include "wb_dot.h"
#include "wb_hnsw.h"
#include "wb_search.h"
#include "wb_status.h"

typedef struct {
    float s;
    int32_t id;
} ent;

struct wb_hnsw {
    int64_t dim, capacity, size, M, M0, ef_construction;
    double mult; /* mL = 1 / ln M */
    uint64_t rng;
    float *vectors;   /* capacity x dim */
    int32_t *links0;  /* capacity x (1 + M0): count, ids */
    int32_t **upper;  /* per node: level x (1 + M) or NULL */
    uint8_t *levels;  /* per node */
    int64_t upper_bytes;
    int32_t entry;
    int max_level;
    /* build scratch: the search context of the single building thread */
    uint8_t *visited;
    uint8_t epoch;
    ent *cand, *res, *pool;
};

/* ---------------------------------------------------------------- helpers */


static inline const float *vec(const wb_hnsw *h, int32_t i)
{
    return h->vectors + (int64_t)i * h->dim;
}

static inline void prefetch_vec(const wb_hnsw *h, int32_t i)
{
    const char *p = (const char *)vec(h, i);
    for (int64_t b = 0; b < h->dim * (int64_t)sizeof(float); b += 64)
        __builtin_prefetch(p + b);
}

/* links of node i on layer: a count followed by ids */
static inline int32_t *links(const wb_hnsw *h, int32_t i, int layer)
{
    if (layer == 0)
        return h->links0 + (int64_t)i * (1 + h->M0);
    return h->upper[i] + (int64_t)(layer - 1) * (1 + h->M);
}

/* a is better than b: higher similarity, or equal and a lower id */
static inline int better(ent a, ent b)
{
    return a.s > b.s || (a.s == b.s && a.id < b.id);
}

/* max-heap (best at the root) when best_root, else min-heap (worst at the root) */
static void heap_push(ent *h, int64_t *n, ent e, int best_root)
{
    int64_t i = (*n)++;
    while (i > 0) {
        int64_t p = (i - 1) / 2;
        if (best_root ? !better(e, h[p]) : !better(h[p], e))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static ent heap_pop(ent *h, int64_t *n, int best_root)
{
    ent top = h[0], last = h[--(*n)];
    int64_t i = 0, m = *n;
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= m)
            break;
        if (c + 1 < m && (best_root ? better(h[c + 1], h[c]) : better(h[c], h[c + 1])))
            c++;
        if (best_root ? !better(h[c], last) : !better(last, h[c]))
            break;
        h[i] = h[c];
        i = c;
    }
    if (m > 0)
        h[i] = last;
    return top;
}

static int by_similarity(const void *a, const void *b)
{
    ent x = *(const ent *)a, y = *(const ent *)b;
    return better(x, y) ? -1 : better(y, x) ? 1 : 0;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---------------------------------------------------------------- search on one layer */

typedef struct {
    uint8_t *visited; /* n_visited tags, one per node id: a node is visited when its tag is the epoch */
    int64_t n_visited;
    uint8_t epoch;
    ent *cand, *res;
} ctx;

static void next_epoch(ctx *c)
{
    if (++c->epoch == 0) {
        memset(c->visited, 0, (size_t)c->n_visited * sizeof *c->visited);
        c->epoch = 1;
    }
}

/* Greedy walk on one layer (Algorithm 2 with ef = 1): move to a more similar neighbour while one exists. */
static ent greedy(const wb_hnsw *h, const float *q, ent cur, int layer)
{
    for (int changed = 1; changed;) {
        changed = 0;
        const int32_t *l = links(h, cur.id, layer);
        for (int32_t j = 1; j <= l[0]; j++) {
            ent e = {wb_dot_f32(q, vec(h, l[j]), h->dim), l[j]};
            if (better(e, cur)) {
                cur = e;
                changed = 1;
            }
        }
    }
    return cur;
}

/* Beam search on one layer (Algorithm 2) from ep with width ef; leaves the
 * best ef in c->res (a min-heap) and returns their count. */
static int64_t search_layer(const wb_hnsw *h, ctx *c, const float *q, ent ep, int64_t ef, int layer)
{
    int64_t nc = 0, nr = 0;
    next_epoch(c);
    c->visited[ep.id] = c->epoch;
    heap_push(c->cand, &nc, ep, 1);
    heap_push(c->res, &nr, ep, 0);
    while (nc > 0) {
        ent cur = heap_pop(c->cand, &nc, 1);
        if (nr >= ef && cur.s < c->res[0].s)
            break;
        const int32_t *l = links(h, cur.id, layer);
        /* The unvisited neighbours first, each vector's fetch started at once, so the misses overlap. */
        int32_t fresh[WB_HNSW_MAX_M + 1], n = 0;
        for (int32_t j = 1; j <= l[0]; j++) {
            int32_t id = l[j];
            if (c->visited[id] == c->epoch)
                continue;
            c->visited[id] = c->epoch;
            prefetch_vec(h, id);
            fresh[n++] = id;
        }
        for (int32_t j = 0; j < n; j++) {
            int32_t id = fresh[j];
            ent e = {wb_dot_f32(q, vec(h, id), h->dim), id};
            if (nr < ef || better(e, c->res[0])) {
                heap_push(c->cand, &nc, e, 1);
                heap_push(c->res, &nr, e, 0);
                if (nr > ef)
                    heap_pop(c->res, &nr, 0);
            }
        }
    }
    return nr;
}

/* Empties the min-heap res (n entries) into out, best first. */
static void drain_sorted(ent *res, int64_t n, ent *out)
{
    for (int64_t i = n - 1; i >= 0; i--)
        out[i] = heap_pop(res, &n, 0);
}

/* ---------------------------------------------------------------- insertion */

/* Algorithm 4: keeps at most m of the candidates (sorted best first, similarity to the base). */
static int64_t select_heuristic(const wb_hnsw *h, ent *cands, int64_t n, int64_t m)
{
    int64_t kept = 0;
    for (int64_t i = 0; i < n && kept < m; i++) {
        int good = 1;
        const float *x = vec(h, cands[i].id);
        for (int64_t r = 0; r < kept; r++) {
            if (wb_dot_f32(x, vec(h, cands[r].id), h->dim) > cands[i].s) {
                good = 0;
                break;
            }
        }
        if (good)
            cands[kept++] = cands[i];
    }
    return kept;
}

/* Adds the link e -> i on layer, pruning e's list with the heuristic when it is full. */
static void add_link(wb_hnsw *h, int32_t e, int32_t i, int layer)
{
    int32_t *l = links(h, e, layer);
    int64_t mmax = layer == 0 ? h->M0 : h->M;
    if (l[0] < mmax) {
        l[++l[0]] = i;
        return;
    }
    ent *pool = h->pool;
    const float *x = vec(h, e);
    int64_t n = 0;
    for (int32_t j = 1; j <= l[0]; j++)
        pool[n++] = (ent){wb_dot_f32(x, vec(h, l[j]), h->dim), l[j]};
    pool[n++] = (ent){wb_dot_f32(x, vec(h, i), h->dim), i};
    qsort(pool, (size_t)n, sizeof *pool, by_similarity);
    n = select_heuristic(h, pool, n, mmax);
    l[0] = (int32_t)n;
    for (int64_t j = 0; j < n; j++)
        l[1 + j] = pool[j].id;
}

/* Draws node i's level (their eq.: floor(-ln U mL)) and gives it empty link lists. */
static int assign_level(wb_hnsw *h, int32_t i)
{
    double u = (double)(splitmix64(&h->rng) >> 11) * 0x1.0p-53; /* [0, 1) */
    int level = (int)floor(-log(1.0 - u) * h->mult);
    if (level > WB_HNSW_MAX_LEVEL - 1)
        level = WB_HNSW_MAX_LEVEL - 1;
    h->levels[i] = (uint8_t)level;
    h->links0[(int64_t)i * (1 + h->M0)] = 0;
    if (level > 0) {
        size_t bytes = (size_t)level * (size_t)(1 + h->M) * sizeof(int32_t);
        h->upper[i] = malloc(bytes);
        if (!h->upper[i])
            return WB_ERR_NO_MEMORY;
        for (int lc = 1; lc <= level; lc++)
            links(h, i, lc)[0] = 0;
        h->upper_bytes += (int64_t)bytes;
    }
    return WB_OK;
}

/* Algorithm 1 for node i, whose level is drawn. */
static void insert(wb_hnsw *h, int32_t i)
{
    int level = h->levels[i];
    if (h->entry < 0) {
        h->entry = i;
        h->max_level = level;
        return;
    }
    const float *q = vec(h, i);
    ctx c = {h->visited, h->capacity, h->epoch, h->cand, h->res};
    ent ep = {wb_dot_f32(q, vec(h, h->entry), h->dim), h->entry};
    for (int lc = h->max_level; lc > level; lc--)
        ep = greedy(h, q, ep, lc);
    for (int lc = level < h->max_level ? level : h->max_level; lc >= 0; lc--) {
        int64_t n = search_layer(h, &c, q, ep, h->ef_construction, lc);
        drain_sorted(c.res, n, h->pool);
        ep = h->pool[0];
        n = select_heuristic(h, h->pool, n, lc == 0 ? h->M0 : h->M);
        int32_t *mine = links(h, i, lc);
        mine[0] = (int32_t)n;
        for (int64_t j = 0; j < n; j++)
            mine[1 + j] = h->pool[j].id;
        /* add_link reuses the pool: copy the chosen ids out first */
        int32_t chosen[WB_HNSW_MAX_M + 1];
        for (int64_t j = 0; j < n; j++)
            chosen[j] = mine[1 + j];
        for (int64_t j = 0; j < n; j++)
            add_link(h, chosen[j], i, lc);
    }
    h->epoch = c.epoch;
    if (level > h->max_level) {
        h->max_level = level;
        h->entry = i;
    }
}

/* ---------------------------------------------------------------- public */

int wb_hnsw_new(wb_hnsw **out, int64_t dim, int64_t capacity, int64_t M, int64_t ef_construction,
                uint64_t seed)
{
    int64_t total;
    if (!out)
        return WB_ERR_NULL_POINTER;
    *out = NULL;
    if (dim < 1 || capacity < 1 || capacity > INT32_MAX - 1 || M < 2 || M > WB_HNSW_MAX_M / 2 ||
        ef_construction < 1)
        return WB_ERR_BAD_SIZE;
    if (wb_mul_overflows(capacity, dim, &total) || wb_mul_overflows(capacity, 1 + 2 * M, &total) ||
        wb_mul_overflows(total, (int64_t)sizeof(float), &total))
        return WB_ERR_TOO_LARGE;
    wb_hnsw *h = calloc(1, sizeof *h);
    if (!h)
        return WB_ERR_NO_MEMORY;
    h->dim = dim;
    h->capacity = capacity;
    h->M = M;
    h->M0 = 2 * M;
    h->ef_construction = ef_construction;
    h->mult = 1.0 / log((double)M);
    h->rng = seed;
    h->entry = -1;
    int64_t pool = (ef_construction > h->M0 ? ef_construction : h->M0) + 1;
    h->vectors = malloc((size_t)(capacity * dim) * sizeof(float));
    h->links0 = malloc((size_t)(capacity * (1 + h->M0)) * sizeof(int32_t));
    h->upper = calloc((size_t)capacity, sizeof *h->upper);
    h->levels = calloc((size_t)capacity, 1);
    h->visited = calloc((size_t)capacity, sizeof *h->visited);
    h->cand = malloc((size_t)(capacity + 1) * sizeof(ent));
    h->res = malloc((size_t)(pool + 1) * sizeof(ent));
    h->pool = malloc((size_t)(pool + 1) * sizeof(ent));
    if (!h->vectors || !h->links0 || !h->upper || !h->levels || !h->visited || !h->cand || !h->res || !h->pool) {
        wb_hnsw_free(h);
        return WB_ERR_NO_MEMORY;
    }
    *out = h;
    return WB_OK;
}

void wb_hnsw_free(wb_hnsw *h)
{
    if (!h)
        return;
    if (h->upper)
        for (int64_t i = 0; i < h->capacity; i++)
            free(h->upper[i]);
    free(h->vectors);
    free(h->links0);
    free(h->upper);
    free(h->levels);
    free(h->visited);
    free(h->cand);
    free(h->res);
    free(h->pool);
    free(h);
}

int wb_hnsw_add_f32(wb_hnsw *h, const float *x, int64_t n)
{
    if (!h)
        return WB_ERR_NULL_POINTER;
    if (n < 0 || n > h->capacity - h->size)
        return WB_ERR_BAD_SIZE;
    if (n == 0)
        return WB_OK;
    if (!x)
        return WB_ERR_NULL_POINTER;
    int64_t first = h->size;
    int32_t *order = malloc((size_t)n * sizeof *order);
    if (!order)
        return WB_ERR_NO_MEMORY;
    memcpy(h->vectors + first * h->dim, x, (size_t)(n * h->dim) * sizeof(float));
    int64_t per_level[WB_HNSW_MAX_LEVEL + 1] = {0};
    for (int64_t i = first; i < first + n; i++) {
        if (assign_level(h, (int32_t)i) != WB_OK) {
            for (int64_t j = first; j <= i; j++) {
                if (h->upper[j])
                    h->upper_bytes -= (int64_t)h->levels[j] * (1 + h->M) * (int64_t)sizeof(int32_t);
                free(h->upper[j]);
                h->upper[j] = NULL;
            }
            free(order);
            return WB_ERR_NO_MEMORY;
        }
        per_level[WB_HNSW_MAX_LEVEL - 1 - h->levels[i] + 1]++;
    }
    /* Insertion order, as faiss's hnsw_add_vertices: the highest levels first, so the upper layers exist
     * before the crowd of layer-0 nodes arrives; within a level, a seeded shuffle, so a database sorted by
     * some property (GloVe's word frequency) does not build the graph in that order. */
    for (int l = 1; l <= WB_HNSW_MAX_LEVEL; l++)
        per_level[l] += per_level[l - 1];
    for (int64_t i = first; i < first + n; i++)
        order[per_level[WB_HNSW_MAX_LEVEL - 1 - h->levels[i]]++] = (int32_t)i;
    int64_t start = 0;
    while (start < n) {
        int64_t end = start;
        while (end < n && h->levels[order[end]] == h->levels[order[start]])
            end++;
        for (int64_t j = end - 1; j > start; j--) {
            int64_t r = start + (int64_t)(splitmix64(&h->rng) % (uint64_t)(j - start + 1));
            int32_t t = order[j];
            order[j] = order[r];
            order[r] = t;
        }
        start = end;
    }
    for (int64_t j = 0; j < n; j++)
        insert(h, order[j]);
    h->size = first + n;
    free(order);
    return WB_OK;
}

int wb_hnsw_search_f32(const wb_hnsw *h, float *scores, int64_t *ids, const float *queries, int64_t nq,
                       int64_t k, int64_t ef_search, int n_threads)
{
    int64_t total;
    if (!h)
        return WB_ERR_NULL_POINTER;
    if (nq < 0 || k < 1 || k > WB_SEARCH_MAX_K || ef_search < 1)
        return WB_ERR_BAD_SIZE;
    if (n_threads < 1 || n_threads > WB_MAX_THREADS)
        return WB_ERR_BAD_THREADS;
    if (wb_mul_overflows(nq, k, &total) || wb_mul_overflows(nq, h->dim, &total))
        return WB_ERR_TOO_LARGE;
    if (nq == 0)
        return WB_OK;
    if (!scores || !ids || !queries)
        return WB_ERR_NULL_POINTER;
    int64_t ef = ef_search > k ? ef_search : k;
    if (h->size == 0) {
        for (int64_t j = 0; j < total; j++) {
            scores[j] = -INFINITY;
            ids[j] = -1;
        }
        return WB_OK;
    }
    int threads = nq < n_threads ? (int)nq : n_threads;
    ctx *ctxs = calloc((size_t)threads, sizeof *ctxs);
    int status = ctxs ? WB_OK : WB_ERR_NO_MEMORY;
    for (int t = 0; t < threads && status == WB_OK; t++) {
        ctxs[t].visited = calloc((size_t)h->size, 1);
        ctxs[t].n_visited = h->size;
        ctxs[t].cand = malloc((size_t)(h->size + 1) * sizeof(ent));
        ctxs[t].res = malloc((size_t)(ef + 2) * sizeof(ent));
        if (!ctxs[t].visited || !ctxs[t].cand || !ctxs[t].res)
            status = WB_ERR_NO_MEMORY;
    }
    if (status == WB_OK) {
#pragma omp parallel num_threads(threads) if (threads > 1)
        {
#ifdef _OPENMP
            ctx *c = &ctxs[omp_get_thread_num()];
#else
            ctx *c = &ctxs[0];
#endif
#pragma omp for schedule(dynamic, 8)
            for (int64_t qi = 0; qi < nq; qi++) {
                const float *q = queries + qi * h->dim;
                ent ep = {wb_dot_f32(q, vec(h, h->entry), h->dim), h->entry};
                for (int lc = h->max_level; lc > 0; lc--)
                    ep = greedy(h, q, ep, lc);
                int64_t n = search_layer(h, c, q, ep, ef, 0);
                /* the candidate heap is free now: sort the results into it */
                drain_sorted(c->res, n, c->cand);
                for (int64_t j = 0; j < k; j++) {
                    scores[qi * k + j] = j < n ? c->cand[j].s : -INFINITY;
                    ids[qi * k + j] = j < n ? c->cand[j].id : -1;
                }
            }
        }
    }
    if (ctxs)
        for (int t = 0; t < threads; t++) {
            free(ctxs[t].visited);
            free(ctxs[t].cand);
            free(ctxs[t].res);
        }
    free(ctxs);
    return status;
}

int64_t wb_hnsw_size(const wb_hnsw *h)
{
    return h ? h->size : 0;
}

int64_t wb_hnsw_bytes(const wb_hnsw *h)
{
    if (!h)
        return 0;
    return (int64_t)sizeof *h + h->capacity * (h->dim * (int64_t)sizeof(float) + (1 + h->M0) * (int64_t)sizeof(int32_t) +
                                               (int64_t)sizeof(int32_t *) + 1) + h->upper_bytes;
}

int64_t wb_hnsw_max_level(const wb_hnsw *h)
{
    return h && h->size > 0 ? h->max_level : -1;
}

int wb_hnsw_links(const wb_hnsw *h, int32_t *out, int64_t capacity, int64_t node, int64_t layer, int64_t *count)
{
    if (!h || !count)
        return WB_ERR_NULL_POINTER;
    *count = -1;
    if (node < 0 || node >= h->size || layer < 0)
        return WB_ERR_BAD_ARGUMENT;
    if (layer > h->levels[node])
        return WB_OK;
    const int32_t *l = links(h, (int32_t)node, (int)layer);
    if (capacity < l[0])
        return WB_ERR_OUTPUT_FULL;
    if (l[0] > 0) {
        if (!out)
            return WB_ERR_NULL_POINTER;
        memcpy(out, l + 1, (size_t)l[0] * sizeof(int32_t));
    }
    *count = l[0];
    return WB_OK;
}
