/* wb_linear.c - out = x W^T in float32 for a few rows of x: the decode step of a float32 model.
 *
 * Built by native/build.py into workbench_engines._native; the reference is
 * torch's F.linear (engines/linear.py races against it and checks the
 * results agree to float32 round-off).
 *
 * Decoding multiplies every weight matrix by one vector: two FLOPs per
 * weight read, so the speed is the memory bandwidth at which W streams in
 * (a roofline with arithmetic intensity 0.5 FLOP/byte). The kernel only has
 * to keep the loads flowing:
 *   - W is read row after row, one sequential stream that the hardware
 *     prefetcher follows; each row (a few KB) stays in L1 while it meets all
 *     T rows of x (T <= 64), so a short prefill costs about one token's read;
 *   - the dot products are OpenMP SIMD reductions, which let the compiler
 *     reorder the float sums into vector lanes without -ffast-math;
 *   - output rows are split across threads in contiguous ranges, so each
 *     thread streams its own part of W.
 *
 * Versions (W of 230,000 x 576, one thread, 2-vCPU AMD EPYC Zen 4):
 *   four rows at a time, four reductions in one loop: 11.4 GB/s. Dropped:
 *       GCC vectorises the four interleaved reductions poorly, and four
 *       streams gain nothing over one here.
 *   one row at a time, hand-written AVX-512 with four accumulators: 15.5 GB/s.
 *       Dropped.
 *   one row at a time, one OpenMP SIMD reduction: 22.5 GB/s (a plain NumPy
 *       sum of the same array reads 24 GB/s). Kept.
 */
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "wb_dot.h"
#include "wb_linear.h"
#include "wb_status.h"


static void rows_range(float *out, const float *x, const float *w, int64_t T, int64_t rows, int64_t cols,
                       int64_t first, int64_t last)
{
    for (int64_t r = first; r < last; r++) {
        const float *wr = w + r * cols;
        for (int64_t t = 0; t < T; t++) {
            out[t * rows + r] = wb_dot_f32(wr, x + t * cols, cols);
        }
    }
}

int wb_linear_forward_f32(float *out, const float *x, const float *w, int64_t T, int64_t rows,
                          int64_t cols, int n_threads)
{
    if (T < 0 || rows < 0 || cols < 0 || T > WB_LINEAR_MAX_T) {
        return WB_ERR_BAD_SIZE;
    }
    if (n_threads < 1 || n_threads > WB_MAX_THREADS) {
        return WB_ERR_BAD_THREADS;
    }
    if (T == 0 || rows == 0) {
        return WB_OK;
    }
    if (!out || !x || !w) {
        return WB_ERR_NULL_POINTER;
    }
    if (n_threads == 1) {
        rows_range(out, x, w, T, rows, cols, 0, rows);
        return WB_OK;
    }
#pragma omp parallel num_threads(n_threads)
    {
#ifdef _OPENMP
        int64_t n = omp_get_num_threads(), id = omp_get_thread_num();
#else
        int64_t n = 1, id = 0;
#endif
        rows_range(out, x, w, T, rows, cols, rows * id / n, rows * (id + 1) / n);
    }
    return WB_OK;
}
