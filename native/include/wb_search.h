/* wb_search.h - vector search kernels: exact top-k merging and IVF list scans (float32); HNSW is wb_hnsw.h.
 *
 * Similarity is a score where larger is better: the inner product (cosine on
 * unit vectors). Squared L2 search runs on the same kernels with a per-vector
 * bias b_j = -|x_j|^2 / 2, since argmin_j |q - x_j|^2 = argmax_j (q.x_j + b_j);
 * the Python side turns scores back into distances. All arrays are
 * C-contiguous and row-major.
 *
 * Top-k rows: best_scores / best_ids are nq x k. Between merge calls each row
 * is a binary min-heap (worst entry first) of (score, id) pairs, seeded by
 * wb_search_topk_init_f32 with (-INFINITY, -1); wb_search_topk_finish_f32
 * sorts each row best first. Order of entries: higher score first, on equal
 * scores the lower id first (the tie rule of every kernel here).
 *
 * n_threads (1..WB_MAX_THREADS) splits the queries; each query's result is
 * one thread's work in a fixed order, so results do not depend on it.
 * Every function returns a wb_status.h code.
 */
#ifndef WB_SEARCH_H
#define WB_SEARCH_H

#include <stdint.h>

enum {
    WB_SEARCH_MAX_K = 4096
};

int wb_search_topk_init_f32(float *best_scores, int64_t *best_ids, int64_t nq, int64_t k);

/* Merges the block scores (nq x nb, leading dimension ld >= nb) of database
 * ids id_offset .. id_offset + nb - 1 into the heaps; bias (nb, optional)
 * is added to every column first. */
int wb_search_topk_merge_f32(float *best_scores, int64_t *best_ids, const float *scores, const float *bias,
                             int64_t nq, int64_t nb, int64_t ld, int64_t id_offset, int64_t k, int n_threads);

int wb_search_topk_finish_f32(float *best_scores, int64_t *best_ids, int64_t nq, int64_t k, int n_threads);

/* IVF: list l holds rows offsets[l] .. offsets[l+1]-1 of vectors (n x dim),
 * whose database ids are ids[row]; bias (n, optional) as above. probes is
 * nq x nprobe list numbers (each in 0..nlist-1, or -1 to skip). Writes the k
 * best (score, id) of each query, best first; rows with fewer than k
 * candidates end in (-INFINITY, -1). */
int wb_search_ivf_scan_f32(float *best_scores, int64_t *best_ids, const float *queries, int64_t nq,
                           const float *vectors, const float *bias, const int64_t *ids, const int64_t *offsets,
                           int64_t nlist, int64_t dim, const int64_t *probes, int64_t nprobe, int64_t k,
                           int n_threads);

#endif
