/* wb_linear.h - a float32 linear layer for decoding: out = x W^T for a few rows of x.
 *
 * W is rows x cols float32, row-major and C-contiguous (torch's nn.Linear
 * weight: one row per output); x is T x cols and out T x rows, both
 * C-contiguous. Meant for T from 1 (a decode step) to a handful: each row of
 * W is read once from memory and used for all T rows of x, so the product is
 * as fast as memory delivers W (see wb_linear.c). For a long prefill a BLAS
 * GEMM, which blocks for the caches, is the right tool.
 *
 * n_threads (1..WB_MAX_THREADS, wb_status.h) splits the output rows; every output
 * is one thread's sum in a fixed order, so the result does not depend on it.
 * Returns a wb_status.h code.
 */
#ifndef WB_LINEAR_H
#define WB_LINEAR_H

#include <stdint.h>

enum {
    WB_LINEAR_MAX_T = 64
};

int wb_linear_forward_f32(float *out, const float *x, const float *w, int64_t T, int64_t rows,
                          int64_t cols, int n_threads);

#endif
