/* wb_hnsw.h - HNSW graphs (Malkov & Yashunin 2016/2018) over inner-product similarity, float32.
 *
 * Scores and the tie rule are wb_search.h's: larger is better, equal scores
 * go to the lower id; k is at most WB_SEARCH_MAX_K. Every function returning
 * int returns a wb_status.h code.
 */
#ifndef WB_HNSW_H
#define WB_HNSW_H

#include <stdint.h>

enum {
    WB_HNSW_MAX_M = 256,
    WB_HNSW_MAX_LEVEL = 32
};

typedef struct wb_hnsw wb_hnsw;

/* A graph for up to capacity vectors of dim floats; M links per node on the
 * upper layers, 2M on layer 0, level multiplier 1/ln M; levels drawn from
 * seed, so a build is deterministic. */
int wb_hnsw_new(wb_hnsw **out, int64_t dim, int64_t capacity, int64_t M, int64_t ef_construction,
                uint64_t seed);
void wb_hnsw_free(wb_hnsw *index);

/* Copies n vectors (n x dim) in and inserts them one by one (ids continue from size). */
int wb_hnsw_add_f32(wb_hnsw *index, const float *x, int64_t n);

/* The k best (inner product, id) of each of nq queries, best first, with a
 * layer-0 beam of max(ef_search, k). */
int wb_hnsw_search_f32(const wb_hnsw *index, float *scores, int64_t *ids, const float *queries, int64_t nq,
                       int64_t k, int64_t ef_search, int n_threads);

/* size: vectors held; bytes: every byte the index holds (vectors, links, levels);
 * max_level: the top layer; links: the out-links of a node on a layer (count written, -1 if none). */
int64_t wb_hnsw_size(const wb_hnsw *index);
int64_t wb_hnsw_bytes(const wb_hnsw *index);
int64_t wb_hnsw_max_level(const wb_hnsw *index);
int wb_hnsw_links(const wb_hnsw *index, int32_t *out, int64_t capacity, int64_t node, int64_t layer,
                  int64_t *count);

#endif
