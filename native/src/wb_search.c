/* wb_search.c - exact top-k selection over blocks of scores, and the IVF list scan (float32).
 *
 * Built by native/build.py into workbench_engines._native; the references
 * are NumPy's argsort over the full score matrix (engines/search/exact.py,
 * tests/test_search.py) and faiss's IndexFlatIP / IndexIVFFlat.
 *
 * Exact search is a matrix product S = Q X^T (NumPy's BLAS sgemm, blocked
 * over the database so a block of scores stays in L2) followed by top-k
 * selection here: each query keeps a binary min-heap of its k best, and a
 * block of scores is read 64 at a time, its maximum compared with the heap's
 * worst entry. For n >> k nearly every group is rejected by that one
 * vectorised comparison, so selection costs O(n + m log k) for the m scores
 * that do enter the heap (m is O(k log(n/k)) in expectation for random
 * order), and a final heapsort O(k log k).
 *
 * Versions (399,000 x 50 GloVe unit vectors, 1,000 queries, k = 10, one
 * thread for BLAS and selection, 2-vCPU AMD EPYC shared with other work;
 * 256 x 1024 blocks of scores; faiss IndexFlatIP 250-340 q/s in the same runs):
 *   groups of 16 copied to a buffer with the bias, their maximum compared
 *       with the heap's worst: 1,040 q/s, selection as long as the product
 *       (k-means assignment, k = 1: 4.3 s of selection against 4.6 s of
 *       product). Dropped;
 *   groups of 64, the maximum taken straight from the scores (a vertical
 *       maximum across lanes and one horizontal step per group): 1,580 q/s,
 *       selection 1.3 s against the same 4.6 s. Kept (block shapes: see
 *       engines/search/exact.py).
 *
 * IVF (Jegou, Douze & Schmid, "Product quantization for nearest neighbor
 * search", TPAMI 2011, section IV's inverted file without the residual
 * codes): the lists a query probes are scanned four vectors at a time (the
 * query loaded once for the four dot products) into the same heap. At
 * nprobe = 16 and 64 of 1,024 lists on the GloVe set above: one vector at a
 * time 0.80-0.87x faiss IndexIVFFlat's queries/s, four at a time 0.97-0.99x
 * (in runs where faiss itself varied by 15%).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "wb_checked.h"
#include "wb_dot.h"
#include "wb_search.h"
#include "wb_status.h"

#define GROUP 64
/* Below this many scores (or heap entries) a call runs on one thread: waking a team costs more. */
#define PARALLEL_MIN (1 << 16)

/* ---------------------------------------------------------------- heaps */

/* The total order of entries: (s1, i1) is worse than (s2, i2) when its score
 * is lower, or equal with a higher id. */
static inline int worse(float s1, int64_t i1, float s2, int64_t i2)
{
    return s1 < s2 || (s1 == s2 && i1 > i2);
}

static void sift_down(float *s, int64_t *id, int64_t n, int64_t pos)
{
    float vs = s[pos];
    int64_t vi = id[pos];
    for (;;) {
        int64_t c = 2 * pos + 1;
        if (c >= n)
            break;
        if (c + 1 < n && worse(s[c + 1], id[c + 1], s[c], id[c]))
            c++;
        if (!worse(s[c], id[c], vs, vi))
            break;
        s[pos] = s[c];
        id[pos] = id[c];
        pos = c;
    }
    s[pos] = vs;
    id[pos] = vi;
}

/* Offers (v, i) to the heap whose root is its worst entry. */
static inline void offer(float *s, int64_t *id, int64_t k, float v, int64_t i)
{
    if (worse(s[0], id[0], v, i)) {
        s[0] = v;
        id[0] = i;
        sift_down(s, id, k, 0);
    }
}

static void init_row(float *s, int64_t *id, int64_t k)
{
    for (int64_t j = 0; j < k; j++) {
        s[j] = -INFINITY;
        id[j] = -1;
    }
}

/* Heapsort: the worst entry goes to the end, repeatedly, leaving the row best first. */
static void finish_row(float *s, int64_t *id, int64_t k)
{
    for (int64_t end = k - 1; end > 0; end--) {
        float ts = s[0];
        int64_t ti = id[0];
        s[0] = s[end];
        id[0] = id[end];
        s[end] = ts;
        id[end] = ti;
        sift_down(s, id, end, 0);
    }
}

static int check_threads(int n_threads)
{
    return n_threads < 1 || n_threads > WB_MAX_THREADS ? WB_ERR_BAD_THREADS : WB_OK;
}

/* ---------------------------------------------------------------- exact top-k */

int wb_search_topk_init_f32(float *best_scores, int64_t *best_ids, int64_t nq, int64_t k)
{
    int64_t total;
    if (nq < 0 || k < 1 || k > WB_SEARCH_MAX_K)
        return WB_ERR_BAD_SIZE;
    if (wb_mul_overflows(nq, k, &total))
        return WB_ERR_TOO_LARGE;
    if (nq == 0)
        return WB_OK;
    if (!best_scores || !best_ids)
        return WB_ERR_NULL_POINTER;
    init_row(best_scores, best_ids, total);
    return WB_OK;
}

/* The largest of row[0..GROUP) (+ bias): a vertical maximum across vector lanes, one horizontal step at the end. */
static inline float group_max(const float *restrict row, const float *restrict bias)
{
    float m = -INFINITY;
    if (bias) {
#pragma omp simd reduction(max : m)
        for (int t = 0; t < GROUP; t++) {
            float v = row[t] + bias[t];
            m = v > m ? v : m;
        }
    } else {
#pragma omp simd reduction(max : m)
        for (int t = 0; t < GROUP; t++)
            m = row[t] > m ? row[t] : m;
    }
    return m;
}

static void merge_row(float *bs, int64_t *bi, const float *row, const float *bias, int64_t nb, int64_t id0,
                      int64_t k)
{
    for (int64_t j = 0; j < nb; j += GROUP) {
        int64_t g = nb - j < GROUP ? nb - j : GROUP;
        /* Equal to the worst may still enter on a lower id, so only a strictly lower maximum skips. */
        if (g == GROUP && group_max(row + j, bias ? bias + j : NULL) < bs[0])
            continue;
        for (int64_t t = 0; t < g; t++)
            offer(bs, bi, k, row[j + t] + (bias ? bias[j + t] : 0.0f), id0 + j + t);
    }
}

int wb_search_topk_merge_f32(float *best_scores, int64_t *best_ids, const float *scores, const float *bias,
                             int64_t nq, int64_t nb, int64_t ld, int64_t id_offset, int64_t k, int n_threads)
{
    int64_t total;
    if (nq < 0 || nb < 0 || id_offset < 0 || k < 1 || k > WB_SEARCH_MAX_K)
        return WB_ERR_BAD_SIZE;
    if (ld < nb)
        return WB_ERR_BAD_STRIDE;
    if (check_threads(n_threads))
        return WB_ERR_BAD_THREADS;
    if (wb_mul_overflows(nq, ld, &total) || wb_mul_overflows(nq, k, &total) ||
        wb_add_overflows(id_offset, nb, &total))
        return WB_ERR_TOO_LARGE;
    if (nq == 0 || nb == 0)
        return WB_OK;
    if (!best_scores || !best_ids || !scores)
        return WB_ERR_NULL_POINTER;
#pragma omp parallel for schedule(static) num_threads(n_threads) if (n_threads > 1 && nq > 1 && nq * nb >= PARALLEL_MIN)
    for (int64_t q = 0; q < nq; q++)
        merge_row(best_scores + q * k, best_ids + q * k, scores + q * ld, bias, nb, id_offset, k);
    return WB_OK;
}

int wb_search_topk_finish_f32(float *best_scores, int64_t *best_ids, int64_t nq, int64_t k, int n_threads)
{
    int64_t total;
    if (nq < 0 || k < 1 || k > WB_SEARCH_MAX_K)
        return WB_ERR_BAD_SIZE;
    if (check_threads(n_threads))
        return WB_ERR_BAD_THREADS;
    if (wb_mul_overflows(nq, k, &total))
        return WB_ERR_TOO_LARGE;
    if (nq == 0)
        return WB_OK;
    if (!best_scores || !best_ids)
        return WB_ERR_NULL_POINTER;
#pragma omp parallel for schedule(static) num_threads(n_threads) if (n_threads > 1 && nq > 1 && nq * k >= PARALLEL_MIN)
    for (int64_t q = 0; q < nq; q++)
        finish_row(best_scores + q * k, best_ids + q * k, k);
    return WB_OK;
}

/* ---------------------------------------------------------------- IVF scan */


/* Four dot products of q with consecutive rows of x: q is loaded once for the four, whose sums run side by side. */
static inline void dot4(float out[4], const float *restrict q, const float *restrict x, int64_t n)
{
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    const float *x1 = x + n, *x2 = x + 2 * n, *x3 = x + 3 * n;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int64_t i = 0; i < n; i++) {
        s0 += q[i] * x[i];
        s1 += q[i] * x1[i];
        s2 += q[i] * x2[i];
        s3 += q[i] * x3[i];
    }
    out[0] = s0;
    out[1] = s1;
    out[2] = s2;
    out[3] = s3;
}

int wb_search_ivf_scan_f32(float *best_scores, int64_t *best_ids, const float *queries, int64_t nq,
                           const float *vectors, const float *bias, const int64_t *ids, const int64_t *offsets,
                           int64_t nlist, int64_t dim, const int64_t *probes, int64_t nprobe, int64_t k,
                           int n_threads)
{
    int64_t total;
    if (nq < 0 || nlist < 1 || dim < 1 || nprobe < 1 || k < 1 || k > WB_SEARCH_MAX_K)
        return WB_ERR_BAD_SIZE;
    if (check_threads(n_threads))
        return WB_ERR_BAD_THREADS;
    if (wb_mul_overflows(nq, dim, &total) || wb_mul_overflows(nq, nprobe, &total) ||
        wb_mul_overflows(nq, k, &total))
        return WB_ERR_TOO_LARGE;
    if (nq == 0)
        return WB_OK;
    if (!best_scores || !best_ids || !queries || !ids || !offsets || !probes)
        return WB_ERR_NULL_POINTER;
    int64_t n = offsets[nlist];
    if (offsets[0] != 0 || n < 0 || wb_mul_overflows(n, dim, &total))
        return WB_ERR_BAD_ARGUMENT;
    for (int64_t l = 0; l < nlist; l++)
        if (offsets[l + 1] < offsets[l])
            return WB_ERR_BAD_ARGUMENT;
    for (int64_t p = 0; p < nq * nprobe; p++)
        if (probes[p] < -1 || probes[p] >= nlist)
            return WB_ERR_BAD_ARGUMENT;
    if (n > 0 && !vectors)
        return WB_ERR_NULL_POINTER;
#pragma omp parallel for schedule(dynamic, 4) num_threads(n_threads) if (n_threads > 1 && nq > 1 && nq * dim * nprobe >= PARALLEL_MIN)
    for (int64_t q = 0; q < nq; q++) {
        float *bs = best_scores + q * k;
        int64_t *bi = best_ids + q * k;
        const float *x = queries + q * dim;
        init_row(bs, bi, k);
        for (int64_t p = 0; p < nprobe; p++) {
            int64_t l = probes[q * nprobe + p];
            if (l < 0)
                continue;
            int64_t r = offsets[l], end = offsets[l + 1];
            for (; r + 4 <= end; r += 4) {
                float v[4];
                dot4(v, x, vectors + r * dim, dim);
                for (int t = 0; t < 4; t++) {
                    v[t] += bias ? bias[r + t] : 0.0f;
                    if (!worse(v[t], ids[r + t], bs[0], bi[0]))
                        offer(bs, bi, k, v[t], ids[r + t]);
                }
            }
            for (; r < end; r++) {
                float v = wb_dot_f32(x, vectors + r * dim, dim) + (bias ? bias[r] : 0.0f);
                if (!worse(v, ids[r], bs[0], bi[0]))
                    offer(bs, bi, k, v, ids[r]);
            }
        }
        finish_row(bs, bi, k);
    }
    return WB_OK;
}
