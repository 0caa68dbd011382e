/* wb_bpe_train.c - byte-level BPE training with incremental pair counts.
 *
 * BPE training (Sennrich et al., ACL 2016, Algorithm 1) repeatedly merges the
 * most frequent adjacent pair of symbols. Recounting every pair after every
 * merge costs O(corpus) per merge; here, as in SentencePiece's and HF
 * tokenizers' trainers, counts are kept up to date instead:
 *
 *  - the corpus is its distinct pieces with their counts (a counter fed
 *    chunk by chunk, so a large file streams);
 *  - each pair keeps its count and the list of pieces it occurs in, so a
 *    merge only revisits the pieces that contain the merged pair;
 *  - a binary max-heap holds (count, left, right) entries with lazy
 *    deletion: counts of old pairs only ever fall, so a popped entry whose
 *    count is stale is pushed back with the current count, and one whose
 *    count is current is the true maximum.
 *
 * Ties go to the smallest (left, right) pair of ids, the same rule as the
 * Python reference in engines/tokenizers/bpe_train.py, so both produce the
 * same merges.
 */
#include <stdlib.h>
#include <string.h>

#include "wb_bpe.h"
#include "wb_hash.h"
#include "wb_pretok_internal.h"
#include "wb_status.h"

/* ---- counter ------------------------------------------------------------ */

typedef struct {
    uint64_t hash;
    uint64_t offset;
    uint64_t count;
    uint32_t len;
    uint32_t used;
} wb_count_entry;

struct wb_bpe_counter {
    wb_count_entry *table;
    size_t mask;
    size_t size;
    uint8_t *arena;
    size_t arena_len;
    size_t arena_cap;
    int pattern;
};

int wb_bpe_counter_new(wb_bpe_counter **out, int pattern)
{
    if (!out)
        return WB_ERR_NULL_POINTER;
    *out = NULL;
    if (!wb_pretok_valid(pattern))
        return WB_ERR_BAD_PATTERN;
    wb_bpe_counter *c = calloc(1, sizeof *c);
    if (!c)
        return WB_ERR_NO_MEMORY;
    c->mask = 1023;
    c->table = calloc(c->mask + 1, sizeof *c->table);
    c->arena_cap = 1 << 16;
    c->arena = malloc(c->arena_cap);
    c->pattern = pattern;
    if (!c->table || !c->arena) {
        wb_bpe_counter_free(c);
        return WB_ERR_NO_MEMORY;
    }
    *out = c;
    return WB_OK;
}

void wb_bpe_counter_free(wb_bpe_counter *c)
{
    if (!c)
        return;
    free(c->table);
    free(c->arena);
    free(c);
}

size_t wb_bpe_counter_size(const wb_bpe_counter *c)
{
    return c ? c->size : 0;
}

static int counter_grow(wb_bpe_counter *c)
{
    size_t mask = c->mask * 2 + 1;
    wb_count_entry *table = calloc(mask + 1, sizeof *table);
    if (!table)
        return WB_ERR_NO_MEMORY;
    for (size_t i = 0; i <= c->mask; i++) {
        if (!c->table[i].used)
            continue;
        size_t j = c->table[i].hash & mask;
        while (table[j].used)
            j = (j + 1) & mask;
        table[j] = c->table[i];
    }
    free(c->table);
    c->table = table;
    c->mask = mask;
    return WB_OK;
}

int wb_bpe_counter_add_piece(wb_bpe_counter *c, const uint8_t *p, size_t n, uint64_t count)
{
    if (!c || (n && !p))
        return WB_ERR_NULL_POINTER;
    if (n == 0 || count == 0)
        return WB_OK;
    if (n > UINT32_MAX)
        return WB_ERR_BAD_SIZE;
    uint64_t h = wb_hash_bytes(p, n);
    size_t i = h & c->mask;
    for (; c->table[i].used; i = (i + 1) & c->mask) {
        wb_count_entry *e = &c->table[i];
        if (e->hash == h && e->len == n && memcmp(c->arena + e->offset, p, n) == 0) {
            e->count += count;
            return WB_OK;
        }
    }
    if (c->arena_len + n > c->arena_cap) {
        size_t cap = c->arena_cap;
        while (c->arena_len + n > cap)
            cap *= 2;
        uint8_t *arena = realloc(c->arena, cap);
        if (!arena)
            return WB_ERR_NO_MEMORY;
        c->arena = arena;
        c->arena_cap = cap;
    }
    memcpy(c->arena + c->arena_len, p, n);
    c->table[i] = (wb_count_entry){h, c->arena_len, count, (uint32_t)n, 1};
    c->arena_len += n;
    c->size++;
    if (2 * c->size > c->mask)
        return counter_grow(c);
    return WB_OK;
}

int wb_bpe_counter_add(wb_bpe_counter *c, const uint8_t *text, size_t len)
{
    if (!c || (len && !text))
        return WB_ERR_NULL_POINTER;
    for (size_t i = 0; i < len;) {
        size_t end = c->pattern == 0 ? len : wb_pretok_next(c->pattern, text, len, i);
        int status = wb_bpe_counter_add_piece(c, text + i, end - i, 1);
        if (status != WB_OK)
            return status;
        i = end;
    }
    return WB_OK;
}

/* ---- trainer ------------------------------------------------------------ */

typedef struct {
    uint32_t *ids;
    uint32_t n, cap;
} wb_occ;

typedef struct {
    int64_t count;
    uint32_t a, b;
} wb_pair_entry;

struct wb_bpe_trainer {
    /* pieces ("words") as symbol sequences, rewritten in place */
    uint32_t *syms;
    uint64_t *wstart;
    uint32_t *wlen;
    uint64_t *wcount;
    uint32_t *wstamp;
    size_t n_words;
    /* pairs: parallel arrays indexed by pair index */
    uint32_t *pa, *pb, *pstamp;
    int64_t *pcount;
    wb_occ *occ;
    size_t n_pairs, pairs_cap;
    uint32_t *pmap; /* open addressing: pair index + 1, 0 = empty */
    size_t pmask;
    /* lazy max-heap */
    wb_pair_entry *heap;
    size_t heap_size, heap_cap;
    uint32_t *touched;
    size_t n_touched, touched_cap;
    uint32_t next_id;
    uint32_t stamp;
};

static inline uint64_t pair_hash(uint32_t a, uint32_t b)
{
    return wb_mix64(((uint64_t)a << 32) | b);
}

static int pmap_grow(wb_bpe_trainer *t)
{
    size_t mask = t->pmask * 2 + 1;
    uint32_t *map = calloc(mask + 1, sizeof *map);
    if (!map)
        return WB_ERR_NO_MEMORY;
    for (size_t k = 0; k < t->n_pairs; k++) {
        size_t j = pair_hash(t->pa[k], t->pb[k]) & mask;
        while (map[j])
            j = (j + 1) & mask;
        map[j] = (uint32_t)(k + 1);
    }
    free(t->pmap);
    t->pmap = map;
    t->pmask = mask;
    return WB_OK;
}

static int pairs_reserve(wb_bpe_trainer *t)
{
    if (t->n_pairs < t->pairs_cap)
        return WB_OK;
    size_t cap = t->pairs_cap ? t->pairs_cap * 2 : 4096;
    uint32_t *pa = realloc(t->pa, cap * sizeof *pa);
    if (pa) t->pa = pa;
    uint32_t *pb = realloc(t->pb, cap * sizeof *pb);
    if (pb) t->pb = pb;
    uint32_t *ps = realloc(t->pstamp, cap * sizeof *ps);
    if (ps) t->pstamp = ps;
    int64_t *pc = realloc(t->pcount, cap * sizeof *pc);
    if (pc) t->pcount = pc;
    wb_occ *occ = realloc(t->occ, cap * sizeof *occ);
    if (occ) t->occ = occ;
    if (!pa || !pb || !ps || !pc || !occ)
        return WB_ERR_NO_MEMORY;
    t->pairs_cap = cap;
    return WB_OK;
}

/* Index of pair (a, b), created with count 0 when create is set; -1 when
 * absent (or out of memory while creating). */
static int64_t pair_index(wb_bpe_trainer *t, uint32_t a, uint32_t b, int create)
{
    size_t j = pair_hash(a, b) & t->pmask;
    for (; t->pmap[j]; j = (j + 1) & t->pmask) {
        uint32_t k = t->pmap[j] - 1;
        if (t->pa[k] == a && t->pb[k] == b)
            return k;
    }
    if (!create || pairs_reserve(t) != WB_OK)
        return -1;
    size_t k = t->n_pairs++;
    t->pa[k] = a;
    t->pb[k] = b;
    t->pcount[k] = 0;
    t->pstamp[k] = 0;
    t->occ[k] = (wb_occ){NULL, 0, 0};
    t->pmap[j] = (uint32_t)(k + 1);
    if (2 * t->n_pairs > t->pmask && pmap_grow(t) != WB_OK)
        return -1;
    return (int64_t)k;
}

static int occ_add(wb_occ *o, uint32_t word)
{
    if (o->n && o->ids[o->n - 1] == word)
        return WB_OK;
    if (o->n == o->cap) {
        uint32_t cap = o->cap ? o->cap * 2 : 4;
        uint32_t *ids = realloc(o->ids, cap * sizeof *ids);
        if (!ids)
            return WB_ERR_NO_MEMORY;
        o->ids = ids;
        o->cap = cap;
    }
    o->ids[o->n++] = word;
    return WB_OK;
}

/* Max-heap order: larger count first, then smaller left, then smaller right. */
static inline int entry_before(wb_pair_entry x, wb_pair_entry y)
{
    if (x.count != y.count)
        return x.count > y.count;
    if (x.a != y.a)
        return x.a < y.a;
    return x.b < y.b;
}

static int heap_push_entry(wb_bpe_trainer *t, wb_pair_entry e)
{
    if (t->heap_size == t->heap_cap) {
        size_t cap = t->heap_cap ? t->heap_cap * 2 : 4096;
        wb_pair_entry *heap = realloc(t->heap, cap * sizeof *heap);
        if (!heap)
            return WB_ERR_NO_MEMORY;
        t->heap = heap;
        t->heap_cap = cap;
    }
    size_t i = t->heap_size++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!entry_before(e, t->heap[parent]))
            break;
        t->heap[i] = t->heap[parent];
        i = parent;
    }
    t->heap[i] = e;
    return WB_OK;
}

static wb_pair_entry heap_pop_entry(wb_bpe_trainer *t)
{
    wb_pair_entry top = t->heap[0];
    wb_pair_entry last = t->heap[--t->heap_size];
    size_t i = 0, n = t->heap_size;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && entry_before(t->heap[child + 1], t->heap[child]))
            child++;
        if (!entry_before(t->heap[child], last))
            break;
        t->heap[i] = t->heap[child];
        i = child;
    }
    if (n)
        t->heap[i] = last;
    return top;
}

void wb_bpe_trainer_free(wb_bpe_trainer *t)
{
    if (!t)
        return;
    for (size_t k = 0; k < t->n_pairs; k++)
        free(t->occ[k].ids);
    free(t->syms);
    free(t->wstart);
    free(t->wlen);
    free(t->wcount);
    free(t->wstamp);
    free(t->pa);
    free(t->pb);
    free(t->pstamp);
    free(t->pcount);
    free(t->occ);
    free(t->pmap);
    free(t->heap);
    free(t->touched);
    free(t);
}

int wb_bpe_trainer_new(wb_bpe_trainer **out, const wb_bpe_counter *c)
{
    if (!out || !c)
        return WB_ERR_NULL_POINTER;
    *out = NULL;
    if (c->size > UINT32_MAX - 1)
        return WB_ERR_BAD_SIZE;
    wb_bpe_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return WB_ERR_NO_MEMORY;
    t->n_words = c->size;
    size_t n = c->size ? c->size : 1;
    t->syms = malloc((c->arena_len ? c->arena_len : 1) * sizeof *t->syms);
    t->wstart = malloc(n * sizeof *t->wstart);
    t->wlen = malloc(n * sizeof *t->wlen);
    t->wcount = malloc(n * sizeof *t->wcount);
    t->wstamp = calloc(n, sizeof *t->wstamp);
    t->pmask = 4095;
    t->pmap = calloc(t->pmask + 1, sizeof *t->pmap);
    t->next_id = 256;
    int status = (t->syms && t->wstart && t->wlen && t->wcount && t->wstamp && t->pmap)
                     ? WB_OK : WB_ERR_NO_MEMORY;
    /* Word order does not matter: the merge chosen depends only on counts
     * and ids. */
    size_t w = 0;
    for (size_t i = 0; i <= c->mask && status == WB_OK; i++) {
        const wb_count_entry *e = &c->table[i];
        if (!e->used)
            continue;
        t->wstart[w] = e->offset;
        t->wlen[w] = e->len;
        t->wcount[w] = e->count;
        for (uint32_t k = 0; k < e->len; k++)
            t->syms[e->offset + k] = c->arena[e->offset + k];
        w++;
    }
    for (w = 0; w < t->n_words && status == WB_OK; w++) {
        const uint32_t *s = t->syms + t->wstart[w];
        for (uint32_t k = 0; k + 1 < t->wlen[w]; k++) {
            int64_t p = pair_index(t, s[k], s[k + 1], 1);
            if (p < 0 || occ_add(&t->occ[p], (uint32_t)w) != WB_OK) {
                status = WB_ERR_NO_MEMORY;
                break;
            }
            t->pcount[p] += (int64_t)t->wcount[w];
        }
    }
    for (size_t k = 0; k < t->n_pairs && status == WB_OK; k++)
        status = heap_push_entry(t, (wb_pair_entry){t->pcount[k], t->pa[k], t->pb[k]});
    if (status != WB_OK) {
        wb_bpe_trainer_free(t);
        return status;
    }
    *out = t;
    return WB_OK;
}

static int touch(wb_bpe_trainer *t, uint32_t pair)
{
    if (t->pstamp[pair] == t->stamp)
        return WB_OK;
    t->pstamp[pair] = t->stamp;
    if (t->n_touched == t->touched_cap) {
        size_t cap = t->touched_cap ? t->touched_cap * 2 : 1024;
        uint32_t *touched = realloc(t->touched, cap * sizeof *touched);
        if (!touched)
            return WB_ERR_NO_MEMORY;
        t->touched = touched;
        t->touched_cap = cap;
    }
    t->touched[t->n_touched++] = pair;
    return WB_OK;
}

/* Replaces every (a, b) in word w by id, left to right, updating the counts
 * of the pairs the word had and has. */
static int merge_word(wb_bpe_trainer *t, uint32_t w, uint32_t a, uint32_t b, uint32_t id)
{
    uint32_t *s = t->syms + t->wstart[w];
    uint32_t len = t->wlen[w];
    int64_t count = (int64_t)t->wcount[w];
    int found = 0;
    for (uint32_t k = 0; k + 1 < len && !found; k++)
        found = s[k] == a && s[k + 1] == b;
    if (!found)
        return WB_OK;
    for (uint32_t k = 0; k + 1 < len; k++) {
        /* Every adjacent pair of a word was counted when it appeared. */
        int64_t p = pair_index(t, s[k], s[k + 1], 0);
        if (p < 0)
            return WB_ERR_BAD_ARGUMENT;
        t->pcount[p] -= count;
    }
    uint32_t out = 0;
    for (uint32_t k = 0; k < len; k++) {
        if (k + 1 < len && s[k] == a && s[k + 1] == b) {
            s[out++] = id;
            k++;
        } else {
            s[out++] = s[k];
        }
    }
    t->wlen[w] = len = out;
    for (uint32_t k = 0; k + 1 < len; k++) {
        int64_t p = pair_index(t, s[k], s[k + 1], 1);
        if (p < 0)
            return WB_ERR_NO_MEMORY;
        t->pcount[p] += count;
        if (s[k] == id || s[k + 1] == id) {
            if (occ_add(&t->occ[p], w) != WB_OK || touch(t, (uint32_t)p) != WB_OK)
                return WB_ERR_NO_MEMORY;
        }
    }
    return WB_OK;
}

int wb_bpe_trainer_step(wb_bpe_trainer *t, size_t max_merges, uint32_t *left,
                        uint32_t *right, uint64_t *counts, size_t *n_done)
{
    if (!t || !n_done || (max_merges && (!left || !right || !counts)))
        return WB_ERR_NULL_POINTER;
    size_t done = 0;
    int status = WB_OK;
    while (done < max_merges && status == WB_OK) {
        int64_t best = -1;
        while (t->heap_size) {
            wb_pair_entry e = heap_pop_entry(t);
            int64_t p = pair_index(t, e.a, e.b, 0);
            if (p < 0) {
                status = WB_ERR_BAD_ARGUMENT;
                break;
            }
            int64_t actual = t->pcount[p];
            if (actual == e.count && actual > 0) {
                best = p;
                break;
            }
            if (actual > 0)
                status = heap_push_entry(t, (wb_pair_entry){actual, e.a, e.b});
        }
        if (best < 0 || status != WB_OK)
            break;
        if (t->next_id == UINT32_MAX) {
            status = WB_ERR_BAD_SIZE;
            break;
        }
        uint32_t a = t->pa[best], b = t->pb[best], id = t->next_id++;
        left[done] = a;
        right[done] = b;
        counts[done] = (uint64_t)t->pcount[best];
        t->stamp++;
        t->n_touched = 0;
        /* occ[best] is not appended to while merging (new pairs contain id),
         * but the occ array itself may move when pairs are created. */
        uint32_t *ids = t->occ[best].ids;
        uint32_t n_ids = t->occ[best].n;
        for (uint32_t k = 0; k < n_ids && status == WB_OK; k++) {
            uint32_t w = ids[k];
            if (t->wstamp[w] == t->stamp)
                continue;
            t->wstamp[w] = t->stamp;
            status = merge_word(t, w, a, b, id);
        }
        free(t->occ[best].ids);
        t->occ[best] = (wb_occ){NULL, 0, 0};
        for (size_t k = 0; k < t->n_touched && status == WB_OK; k++) {
            uint32_t p = t->touched[k];
            if (t->pcount[p] > 0)
                status = heap_push_entry(t, (wb_pair_entry){t->pcount[p], t->pa[p], t->pb[p]});
        }
        done++;
    }
    *n_done = done;
    return status;
}
