/* wb_sampling.h - next-token filters over large vocabularies, fp32, row by row.
 *
 * x is rows x n logits (C-contiguous); out gets the same shape, with every
 * logit outside the kept set replaced by -INFINITY and kept ones unchanged.
 *   top-k:  the k largest of each row (ties: lower index first).
 *   top-p:  the smallest set of most probable tokens (by softmax(x / T)) whose
 *           probabilities sum to at least p, always at least the top token
 *           (ties: lower index first); 0 < p <= 1, T > 0.
 * kept (optional, one per row) receives how many tokens each row kept.
 */
#ifndef WB_SAMPLING_H
#define WB_SAMPLING_H

#include <stdint.h>

int wb_sampling_top_k_f32(float *out, const float *x, int64_t rows, int64_t n,
                          int64_t k, int64_t *kept, int n_threads);
int wb_sampling_top_p_f32(float *out, const float *x, int64_t rows, int64_t n,
                          double p, double temperature, int64_t *kept,
                          int n_threads);

#endif
