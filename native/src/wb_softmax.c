/* wb_softmax.c - numerically stable softmax, log-softmax and logsumexp, fp32.
 *
 * Built by native/build.py into workbench_engines._native; the NumPy
 * reference the lesson explains is engines/softmax/reference.py, with the
 * same contract.
 *
 * The stable form subtracts the row maximum m before exponentiating:
 *   softmax(x)_i = exp(x_i - m) / sum_j exp(x_j - m)
 *   logsumexp(x) = m + log(sum_j exp(x_j - m))
 *   log_softmax(x)_i = (x_i - m) - log(sum_j exp(x_j - m))
 * so no exponent exceeds 0 and nothing overflows (Goodfellow et al.,
 * "Deep Learning", 2016, sec. 4.1).
 *
 * Versions:
 *   softmax:     three passes (max, exp+sum stored in out, scale). Kept:
 *                the exp is computed once and the passes are memory-bound.
 *   log_softmax: two reads of x (max, sum of exp) and one write. Kept.
 *   logsumexp:   two reads of x. Kept.
 *   online one-pass max+sum (Milakov & Gimelshein, 2018) was not needed
 *   here: rows fit in cache and the extra rescales cost more than they save.
 *   sums:        blocked (float lanes within WB_SUM_BLOCK, double across
 *                blocks) since a 32,000-wide row summed whole on 8 lanes came
 *                out 5e-5 short; see row_sum_exp. Kept: it costs nothing.
 *
 * exp is the Cephes expf polynomial in wb_expf.h, written without branches
 * so that GCC vectorises it (given -fno-trapping-math, native/build.py). The reductions use OpenMP SIMD
 * reduction clauses, which let the compiler reorder the float sums without
 * -ffast-math (which would break -INFINITY handling).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "wb_expf.h"
#include "wb_softmax.h"
#include "wb_status.h"

/* Rows whose total size is below this stay on one thread: forking costs
 * more than it saves. */
#define WB_PARALLEL_MIN_ELEMENTS 32768

/* ------------------------------------------------------------------------ */
/* one row                                                                  */
/* ------------------------------------------------------------------------ */

static inline float row_max(const float *x, int64_t n)
{
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t i = 0; i < n; i++) {
        m = x[i] > m ? x[i] : m;
    }
    return m;
}

/* Sums of exponentials go block by block: WB_SUM_BLOCK terms in float SIMD
 * lanes, then the block sums in double. One float accumulator per lane over a
 * whole row drops every term below half an ulp of its running total, and a
 * 32,000-wide row of mostly tiny exponentials summed on 8 AVX2 lanes came out
 * 5e-5 short (each probability 5e-5 too large). With 32 terms per lane per
 * block, a lane drops at most 31 terms of half an ulp: a relative error of
 * 2e-6 in the worst block, at no measurable cost. */
#define WB_SUM_BLOCK 256

static inline int64_t block_end(int64_t start, int64_t n)
{
    return start + WB_SUM_BLOCK < n ? start + WB_SUM_BLOCK : n;
}

/* sum_i exp(x_i - m), without storing the exponentials. */
static inline float row_sum_exp(const float *x, int64_t n, float m)
{
    double total = 0.0;
    for (int64_t b = 0; b < n; b += WB_SUM_BLOCK) {
        int64_t end = block_end(b, n);
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t i = b; i < end; i++) {
            s += wb_expf(x[i] - m);
        }
        total += s;
    }
    return (float)total;
}

static inline float row_logsumexp(const float *x, int64_t n)
{
    float m = row_max(x, n);
    /* An all -inf (or empty) row has logsumexp -inf, as in torch. */
    if (m == -INFINITY) {
        return -INFINITY;
    }
    return m + logf(row_sum_exp(x, n, m));
}

static void softmax_row(float *out, const float *x, int64_t n)
{
    float m = row_max(x, n);
    double total = 0.0;
    for (int64_t b = 0; b < n; b += WB_SUM_BLOCK) {
        int64_t end = block_end(b, n);
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t i = b; i < end; i++) {
            float e = wb_expf(x[i] - m);
            out[i] = e;
            s += e;
        }
        total += s;
    }
    float inv = (float)(1.0 / total);
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        out[i] *= inv;
    }
}

static void log_softmax_row(float *out, const float *x, int64_t n)
{
    float m = row_max(x, n);
    /* (x - m) - log(s) keeps digits that x - (m + log(s)) rounds away. */
    float log_s = logf(row_sum_exp(x, n, m));
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        out[i] = (x[i] - m) - log_s;
    }
}

/* ------------------------------------------------------------------------ */
/* launchers                                                                */
/* ------------------------------------------------------------------------ */

static int check_args(const void *out, const void *x, int64_t rows,
                      int64_t cols, int64_t ld_out, int64_t ld_x,
                      int n_threads)
{
    if (rows < 0 || cols < 0) return WB_ERR_BAD_SIZE;
    if (n_threads < 1 || n_threads > WB_MAX_THREADS) return WB_ERR_BAD_THREADS;
    if (rows > 0 && (out == NULL || x == NULL)) return WB_ERR_NULL_POINTER;
    if (ld_out < cols || ld_x < cols) return WB_ERR_BAD_STRIDE;
    return WB_OK;
}

int wb_softmax_forward_f32(float *out, const float *x, int64_t rows,
                           int64_t cols, int64_t ld_out, int64_t ld_x,
                           int n_threads)
{
    int status = check_args(out, x, rows, cols, ld_out, ld_x, n_threads);
    if (status != WB_OK || cols == 0) return status;
#pragma omp parallel for num_threads(n_threads) schedule(static) \
    if (rows * cols >= WB_PARALLEL_MIN_ELEMENTS && n_threads > 1)
    for (int64_t r = 0; r < rows; r++) {
        softmax_row(out + r * ld_out, x + r * ld_x, cols);
    }
    return WB_OK;
}

int wb_softmax_log_f32(float *out, const float *x, int64_t rows,
                       int64_t cols, int64_t ld_out, int64_t ld_x,
                       int n_threads)
{
    int status = check_args(out, x, rows, cols, ld_out, ld_x, n_threads);
    if (status != WB_OK || cols == 0) return status;
#pragma omp parallel for num_threads(n_threads) schedule(static) \
    if (rows * cols >= WB_PARALLEL_MIN_ELEMENTS && n_threads > 1)
    for (int64_t r = 0; r < rows; r++) {
        log_softmax_row(out + r * ld_out, x + r * ld_x, cols);
    }
    return WB_OK;
}

int wb_softmax_logsumexp_f32(float *lse, const float *x, int64_t rows,
                             int64_t cols, int64_t ld_x, int n_threads)
{
    int status = check_args(lse, x, rows, cols, cols, ld_x, n_threads);
    if (status != WB_OK) return status;
#pragma omp parallel for num_threads(n_threads) schedule(static) \
    if (rows * cols >= WB_PARALLEL_MIN_ELEMENTS && n_threads > 1)
    for (int64_t r = 0; r < rows; r++) {
        lse[r] = row_logsumexp(x + r * ld_x, cols);
    }
    return WB_OK;
}
