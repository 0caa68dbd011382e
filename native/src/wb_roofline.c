/* wb_roofline.c - peak fp32 multiply-add rate and memory bandwidth (see wb_roofline.h).
 *
 * The FMA loop keeps WB_ROOFLINE_CHAINS accumulators in registers: an FMA's
 * result is ready 4 cycles after it starts on current x86 cores, and two
 * start every cycle, so at least 8 independent chains must be in flight to
 * keep both units busy; 12 leaves room and fits the 16 registers of AVX2
 * beside the two constants. The constants come from the caller's side of an
 * opaque store, so the compiler cannot fold the chains. Without FMA
 * instructions (the portable build) each step is a multiply and an add, still
 * two FLOPs.
 *
 * The streams use `omp simd` loops over static thread ranges: one sequential
 * stream per array and thread, which the hardware prefetchers follow.
 */
#ifdef _OPENMP
#include <omp.h>
#endif

#include "wb_roofline.h"
#include "wb_simd.h"
#include "wb_status.h"

int wb_roofline_lanes(void)
{
    return WB_VW;
}

int wb_roofline_fma_f32(float *sums, int64_t steps, int n_threads)
{
    if (!sums)
        return WB_ERR_NULL_POINTER;
    if (steps < 0)
        return WB_ERR_BAD_SIZE;
    if (n_threads < 1 || n_threads > WB_MAX_THREADS)
        return WB_ERR_BAD_THREADS;
    int64_t per_thread = steps / n_threads;
    /* volatile: the compiler must not know m and a, or it could fold the chains */
    volatile float m_in = 0.999999f, a_in = 1e-7f;
#pragma omp parallel num_threads(n_threads) if (n_threads > 1)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        const wb_vf zero = {0};
        wb_vf m = zero + m_in, a = zero + a_in, acc[WB_ROOFLINE_CHAINS];
        for (int c = 0; c < WB_ROOFLINE_CHAINS; c++)
            acc[c] = zero + (float)c;
        for (int64_t i = 0; i < per_thread; i++)
            for (int c = 0; c < WB_ROOFLINE_CHAINS; c++)
                acc[c] = acc[c] * m + a;
        wb_vf total = zero;
        for (int c = 0; c < WB_ROOFLINE_CHAINS; c++)
            total += acc[c];
        float sum = 0.0f;
        for (int x = 0; x < WB_VW; x++)
            sum += total[x];
        sums[tid] = sum;
    }
    return WB_OK;
}

int wb_roofline_triad_f32(float *a, const float *b, const float *c, float s, int64_t n, int n_threads)
{
    if (!a || !b || !c)
        return WB_ERR_NULL_POINTER;
    if (n < 0)
        return WB_ERR_BAD_SIZE;
    if (n_threads < 1 || n_threads > WB_MAX_THREADS)
        return WB_ERR_BAD_THREADS;
#pragma omp parallel for simd schedule(static) num_threads(n_threads) if (n_threads > 1)
    for (int64_t i = 0; i < n; i++)
        a[i] = b[i] + s * c[i];
    return WB_OK;
}

/* Four vector accumulators per thread: one would wait on the add latency at
 * every step (and under `omp simd` at one thread GCC kept a scalar sum). */
static float read_range(const float *x, int64_t n)
{
    const wb_vf zero = {0};
    wb_vf acc[4] = {zero, zero, zero, zero};
    int64_t i = 0;
    for (; i + 4 * WB_VW <= n; i += 4 * WB_VW)
        for (int u = 0; u < 4; u++)
            acc[u] += wb_loadv(x + i + u * WB_VW);
    wb_vf total = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    float sum = 0.0f;
    for (int lane = 0; lane < WB_VW; lane++)
        sum += total[lane];
    for (; i < n; i++)
        sum += x[i];
    return sum;
}

int wb_roofline_read_f32(float *sum, const float *x, int64_t n, int n_threads)
{
    if (!sum || !x)
        return WB_ERR_NULL_POINTER;
    if (n < 0)
        return WB_ERR_BAD_SIZE;
    if (n_threads < 1 || n_threads > WB_MAX_THREADS)
        return WB_ERR_BAD_THREADS;
    float partial[WB_MAX_THREADS];
    int64_t chunk = (n + n_threads - 1) / n_threads;
#pragma omp parallel for schedule(static, 1) num_threads(n_threads) if (n_threads > 1)
    for (int t = 0; t < n_threads; t++) {
        int64_t first = t * chunk < n ? t * chunk : n, last = first + chunk < n ? first + chunk : n;
        partial[t] = read_range(x + first, last - first);
    }
    float total = 0.0f;
    for (int t = 0; t < n_threads; t++)
        total += partial[t];
    *sum = total;
    return WB_OK;
}
