/* wb_moe.h - mixture-of-experts dispatch and combine, fp32.
 *
 * x is tokens x d; experts and weights are tokens x k (expert ids and gate
 * weights per routing slot). Dispatch copies each (token, slot) row into its
 * expert's buffer, buffers being experts x capacity x d, in token order then
 * slot order; a slot that finds its expert full is dropped (position -1).
 * positions (tokens x k) and counts (experts) say where everything went.
 * Combine writes y[t] = sum over kept slots j of weights[t, j] *
 * expert_out[experts[t, j], positions[t, j]].
 */
#ifndef WB_MOE_H
#define WB_MOE_H

#include <stdint.h>

int wb_moe_dispatch_f32(float *buffers, int64_t *positions, int64_t *counts,
                        const float *x, const int64_t *experts, int64_t tokens,
                        int64_t d, int64_t k, int64_t n_experts,
                        int64_t capacity, int n_threads);
int wb_moe_combine_f32(float *y, const float *expert_out,
                       const int64_t *positions, const int64_t *experts,
                       const float *weights, int64_t tokens, int64_t d,
                       int64_t k, int64_t n_experts, int64_t capacity,
                       int n_threads);

#endif
