/* wb_moe.c - grouping tokens by expert and scattering the results back.
 *
 * A mixture-of-experts layer (Shazeer et al., 2017; Switch Transformer,
 * Fedus et al., 2022) sends each token to k of E experts. Experts run on
 * dense per-expert batches, so tokens are first grouped into fixed-size
 * buffers (capacity C each, tokens beyond it dropped, as in Switch), and
 * the expert outputs are gathered back and mixed by the gate weights.
 *
 * Dispatch assigns buffer positions in one sequential pass (a running count
 * per expert; token order decides who is dropped, so the result is
 * deterministic), then copies the rows in parallel. Combine is parallel over
 * tokens, each reading its k expert rows. Both are memory-bound copies;
 * the reference is engines/moe/reference.py.
 */
#include <string.h>

#include "wb_moe.h"
#include "wb_status.h"

int wb_moe_dispatch_f32(float *buffers, int64_t *positions, int64_t *counts,
                        const float *x, const int64_t *experts, int64_t tokens,
                        int64_t d, int64_t k, int64_t n_experts,
                        int64_t capacity, int n_threads)
{
    if (!buffers || !positions || !counts || !x || !experts)
        return WB_ERR_NULL_POINTER;
    if (tokens < 0 || d < 0 || k < 0 || n_experts < 1 || capacity < 0)
        return WB_ERR_BAD_SIZE;
    if (n_threads < 1 || n_threads > WB_MAX_THREADS)
        return WB_ERR_BAD_THREADS;
    memset(counts, 0, (size_t)n_experts * sizeof *counts);
    for (int64_t s = 0; s < tokens * k; s++) {
        int64_t e = experts[s];
        if (e < 0 || e >= n_experts)
            return WB_ERR_BAD_ARGUMENT;
        positions[s] = counts[e] < capacity ? counts[e]++ : -1;
    }
#pragma omp parallel for schedule(static) num_threads(n_threads) if (n_threads > 1 && tokens > 64)
    for (int64_t s = 0; s < tokens * k; s++) {
        if (positions[s] < 0)
            continue;
        memcpy(buffers + (experts[s] * capacity + positions[s]) * d, x + (s / k) * d, (size_t)d * sizeof *x);
    }
    return WB_OK;
}

int wb_moe_combine_f32(float *y, const float *expert_out,
                       const int64_t *positions, const int64_t *experts,
                       const float *weights, int64_t tokens, int64_t d,
                       int64_t k, int64_t n_experts, int64_t capacity,
                       int n_threads)
{
    if (!y || !expert_out || !positions || !experts || !weights)
        return WB_ERR_NULL_POINTER;
    if (tokens < 0 || d < 0 || k < 0 || n_experts < 1 || capacity < 0)
        return WB_ERR_BAD_SIZE;
    if (n_threads < 1 || n_threads > WB_MAX_THREADS)
        return WB_ERR_BAD_THREADS;
    for (int64_t s = 0; s < tokens * k; s++)
        if (positions[s] >= capacity || (positions[s] >= 0 && (experts[s] < 0 || experts[s] >= n_experts)))
            return WB_ERR_BAD_ARGUMENT;
#pragma omp parallel for schedule(static) num_threads(n_threads) if (n_threads > 1 && tokens > 64)
    for (int64_t t = 0; t < tokens; t++) {
        float *row = y + t * d;
        memset(row, 0, (size_t)d * sizeof *row);
        for (int64_t j = 0; j < k; j++) {
            int64_t s = t * k + j;
            if (positions[s] < 0)
                continue;
            const float *src = expert_out + (experts[s] * capacity + positions[s]) * d;
            float w = weights[s];
#pragma omp simd
            for (int64_t c = 0; c < d; c++)
                row[c] += w * src[c];
        }
    }
    return WB_OK;
}
