/* wb_scan.c - Mamba's selective scan on the CPU: one channel's recurrence per thread, the state in registers.
 *
 * Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State
 * Spaces" (2023), Algorithm 2 / equations 2a-2b with the zero-order-hold
 * discretisation of the reference selective_scan_ref:
 *   h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t,   y_t = C_t . h_t + D u_t
 * (semantics and layouts in native/include/wb_scan.h; the readable NumPy
 * version, and the torch loop and log-space parallel scans it is raced
 * against, in engines/longctx/scan.py).
 *
 * Built by native/build.py (cffi API mode, -O3, -march=native, OpenMP).
 *
 * Why sequential: a channel's step t needs h_{t-1}, so the one long chain is
 * time; the parallel formulations (a log-space prefix sum, Blelloch's scan)
 * do several times the arithmetic to shorten it, which pays on a GPU's
 * thousands of lanes and not on a few CPU cores. Here the parallelism is the
 * batch x d independent channels (OpenMP threads) and the n state entries of
 * one step (a vector register of WB_VW floats, wb_simd.h).
 *
 * The version here: B and C (batch x n x L, so one step's n values lie L
 * floats apart) are transposed once per call into time-major rows of n
 * padded to the vector width with zeros; every channel of a batch row reads
 * the same rows, so the copy is shared d times over and each step loads its
 * B_t and C_t as whole registers. Per step: exp(dt A) for a register of
 * states at once with the Cephes polynomial of wb_expf.h, one FMA for the
 * state, one for C . h, and a lane sum for y. For n <= 2 * WB_VW (Mamba's
 * n = 16 on AVX2) the register count is a constant the compiler unrolls, so
 * it can keep the state in registers; larger n lives in a stack array. The
 * step sizes (softplus of delta: two exponentials, a log and a division) are
 * made a block of 64 steps ahead, a register at a time, off the recurrence's
 * dependency chain; a sequence shorter than a block (a decoding step, L = 1)
 * makes them for a group of channels at once, whose deltas are contiguous,
 * which took one step of a Mamba-130m layer from 108 to 45 ns per channel
 * (AMD EPYC, AVX2). Verdict: kept; bench longctx races it against torch
 * and NumPy.
 * Padded lanes hold A = 0, B = 0, C = 0 and h = 0, so they stay 0 and add
 * nothing to y (unless an input holds inf or NaN, which gives NaN anyway).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wb_checked.h"
#include "wb_expf.h"
#include "wb_scan.h"
#include "wb_simd.h"
#include "wb_status.h"

#define MAX_VECS (WB_SCAN_MAX_STATE / WB_VW)
#define STEP_BLOCK 64 /* steps whose dt is computed ahead, a multiple of every WB_VW */

/* ---------------------------------------------------------------- helpers */

/* e^x for any x, a register at a time: wb_expf's upper clamp, then its vector polynomial. As wb_expf, it saturates
 * near 2.4e38 above x = 88.38 instead of reaching inf, and gives 0 below -87.34; NaN stays NaN. */
static inline wb_vf scan_exp_v(wb_vf x)
{
    const wb_vf zero = {0};
    return wb_expf_nonpositive_v(wb_vselect(x > WB_EXPF_HI, zero + WB_EXPF_HI, x));
}

/* log(x) for x >= 1 (finite), a register at a time: the Cephes logf reduction and polynomial (S. L. Moshier,
 * Cephes Math Library, logf.c), x = 2^e m with m in [sqrt(1/2), sqrt(2)), log x = e ln 2 + log m. */
static inline wb_vf scan_log_v(wb_vf x)
{
    const wb_vf zero = {0};
    wb_vu bits = (wb_vu)x;
    wb_vi e = (wb_vi)(bits >> 23) - 126;
    wb_vf m = (wb_vf)((bits & 0x007fffffu) | 0x3f000000u); /* in [0.5, 1) */
    wb_vi small = m < 0.707106781186547524f;
    e = e + small; /* a compare's "true" is -1 */
    m = m + wb_vselect(small, m, zero) - 1.0f;
    wb_vf z = m * m;
    wb_vf p = ((((((((7.0376836292e-2f * m - 1.1514610310e-1f) * m + 1.1676998740e-1f) * m - 1.2420140846e-1f) * m +
                   1.4249322787e-1f) * m - 1.6668057665e-1f) * m + 2.0000714765e-1f) * m - 2.4999993993e-1f) * m +
              3.3333331174e-1f) * m * z;
    wb_vf ef = __builtin_convertvector(e, wb_vf);
    return m + (p + ef * WB_EXPF_C2 - 0.5f * z) + ef * WB_EXPF_C1;
}

/* softplus(x) = log(1 + e^x) as torch.nn.functional.softplus computes it (x itself above 20), as Mamba applies
 * it to delta; log1p(w) as log(1 + w) w / ((1 + w) - 1), exact where 1 + w rounds (Goldberg, 1991), so that a
 * very negative x gives e^x and not 0. NaN stays NaN. */
static inline wb_vf softplus_v(wb_vf x)
{
    const wb_vf zero = {0};
    wb_vf w = wb_expf_nonpositive_v(wb_vselect(x > 0.0f, zero, x));
    /* x > 0: log(1 + e^x) = x + log(1 + e^-x), so the exponential never exceeds 1. */
    wb_vf w_pos = wb_expf_nonpositive_v(wb_vselect(x > 0.0f, -x, zero));
    wb_vf t = wb_vselect(x > 0.0f, w_pos, w);
    wb_vf one_t = t + 1.0f;
    wb_vf denom = one_t - 1.0f;
    wb_vf log1p_t = wb_vselect(denom == 0.0f, t, scan_log_v(one_t) * t / wb_vselect(denom == 0.0f, zero + 1.0f, denom));
    wb_vf y = wb_vselect(x > 0.0f, x + log1p_t, log1p_t);
    y = wb_vselect(x > 20.0f, x, y);
    return wb_vselect(x != x, x, y);
}

typedef float scan_v4 __attribute__((vector_size(16)));

/* The sum of a register's lanes: its 4-lane quarters added, then two shuffles (a tree, not WB_VW - 1 serial adds). */
static inline float lane_sum(wb_vf v)
{
    scan_v4 s = {0};
    for (int i = 0; i < WB_VW; i += 4) {
        scan_v4 part;
        memcpy(&part, (const float *)&v + i, sizeof part);
        s += part;
    }
    s += __builtin_shufflevector(s, s, 2, 3, 0, 1);
    s += __builtin_shufflevector(s, s, 1, 0, 3, 2);
    return s[0];
}

/* dt[0, len) = delta's, through softplus when asked, and zeros up to the next multiple of WB_VW (len <= STEP_BLOCK):
 * step sizes computed ahead of the recurrence, a register at a time, off its dependency chain. */
static inline void step_sizes(float *dt, const float *delta, int64_t len, int softplus_delta)
{
    int64_t len_padded = (len + WB_VW - 1) / WB_VW * WB_VW;
    for (int64_t i = 0; i < len_padded; i++)
        dt[i] = i < len ? delta[i] : 0.0f;
    if (softplus_delta)
        for (int64_t i = 0; i < len_padded; i += WB_VW)
            wb_storev(dt + i, softplus_v(wb_loadv(dt + i)));
}

/* Step t of an n x L block (B or C of one batch row) into row t of a time-major L x n_pad copy, zeros past n. */
static void transpose_padded(float *out, const float *x, int64_t n, int64_t L, int64_t n_pad, int64_t t)
{
    float *row = out + t * n_pad;
    for (int64_t j = 0; j < n; j++)
        row[j] = x[j * L + t];
    for (int64_t j = n; j < n_pad; j++)
        row[j] = 0.0f;
}

/* ---------------------------------------------------------------- kernel */

/* One channel's whole sequence. nv (registers of state) is a constant where the caller can make it one, so that
 * the state arrays become registers. dt_ready, when not NULL, holds the channel's L <= STEP_BLOCK step sizes
 * already made by step_sizes (short sequences get theirs a group of channels at a time). */
static inline __attribute__((always_inline)) void scan_channel(
    float *y, float *last, const float *u, const float *delta, const float *dt_ready, const float *a_row,
    const float *d_skip, const float *bt, const float *ct, const float *h_in, int64_t n, int64_t L, int64_t n_pad,
    int softplus_delta, const int nv)
{
    float a_pad[WB_SCAN_MAX_STATE] __attribute__((aligned(64)));
    float h_pad[WB_SCAN_MAX_STATE] __attribute__((aligned(64)));
    /* Plain loops, not memset/memcpy: with n = 16 they are a few instructions, a library call many more. */
    for (int64_t j = 0; j < n_pad; j++) {
        a_pad[j] = j < n ? a_row[j] : 0.0f;
        h_pad[j] = j < n && h_in ? h_in[j] : 0.0f;
    }
    wb_vf a[MAX_VECS], h[MAX_VECS];
    for (int v = 0; v < nv; v++) {
        a[v] = wb_loadv(a_pad + v * WB_VW);
        h[v] = wb_loadv(h_pad + v * WB_VW);
    }
    float dt_block[STEP_BLOCK] __attribute__((aligned(64)));
    for (int64_t t0 = 0; t0 < L; t0 += STEP_BLOCK) {
        int64_t len = L - t0 < STEP_BLOCK ? L - t0 : STEP_BLOCK;
        const float *dt = dt_ready ? dt_ready + t0 : dt_block;
        if (!dt_ready)
            step_sizes(dt_block, delta + t0, len, softplus_delta);
        for (int64_t i = 0; i < len; i++) {
            int64_t t = t0 + i;
            float du = dt[i] * u[t];
            const float *b_t = bt + t * n_pad, *c_t = ct + t * n_pad;
            wb_vf acc = {0};
            for (int v = 0; v < nv; v++) {
                h[v] = scan_exp_v(a[v] * dt[i]) * h[v] + du * wb_loadv(b_t + v * WB_VW);
                acc += h[v] * wb_loadv(c_t + v * WB_VW);
            }
            float yt = lane_sum(acc);
            y[t] = d_skip ? yt + *d_skip * u[t] : yt;
        }
    }
    if (last) {
        for (int v = 0; v < nv; v++)
            wb_storev(h_pad + v * WB_VW, h[v]);
        for (int64_t j = 0; j < n; j++)
            last[j] = h_pad[j];
    }
}

static void scan_channel_any(float *y, float *last, const float *u, const float *delta, const float *dt_ready,
                             const float *a_row, const float *d_skip, const float *bt, const float *ct,
                             const float *h_in, int64_t n, int64_t L, int64_t n_pad, int softplus_delta)
{
    switch (n_pad / WB_VW) {
    case 1:
        scan_channel(y, last, u, delta, dt_ready, a_row, d_skip, bt, ct, h_in, n, L, n_pad, softplus_delta, 1);
        break;
    case 2:
        scan_channel(y, last, u, delta, dt_ready, a_row, d_skip, bt, ct, h_in, n, L, n_pad, softplus_delta, 2);
        break;
    default:
        scan_channel(y, last, u, delta, dt_ready, a_row, d_skip, bt, ct, h_in, n, L, n_pad, softplus_delta,
                     (int)(n_pad / WB_VW));
        break;
    }
}

/* ---------------------------------------------------------------- entry point */

int wb_scan_selective_f32(float *y, float *last_state, const float *u, const float *delta, const float *A,
                          const float *B, const float *C, const float *D, const float *h0, int64_t batch,
                          int64_t d, int64_t L, int64_t n, int delta_softplus, int n_threads)
{
    if (!y || !u || !delta || !A || !B || !C)
        return WB_ERR_NULL_POINTER;
    if (batch < 0 || d < 0 || L < 0 || n < 1 || n > WB_SCAN_MAX_STATE)
        return WB_ERR_BAD_SIZE;
    if (n_threads < 1 || n_threads > WB_MAX_THREADS)
        return WB_ERR_BAD_THREADS;
    int64_t n_pad = (n + WB_VW - 1) / WB_VW * WB_VW;
    int64_t channels, elements, states, work_floats;
    if (wb_mul_overflows(batch, d, &channels) || wb_mul_overflows(channels, L, &elements) ||
        wb_mul_overflows(channels, n, &states) || wb_mul_overflows(d, n, &states) ||
        wb_mul4_overflows(batch, L, n_pad, 2, &work_floats) ||
        wb_mul_overflows(work_floats, (int64_t)sizeof(float), &work_floats) || (uint64_t)work_floats > SIZE_MAX)
        return WB_ERR_TOO_LARGE;
    work_floats /= (int64_t)sizeof(float);
    if (channels == 0)
        return WB_OK;

    float *work = NULL;
    if (work_floats > 0) {
        work = malloc((size_t)work_floats * sizeof *work);
        if (!work)
            return WB_ERR_NO_MEMORY;
    }
    float *bt = work, *ct = work ? work + batch * L * n_pad : NULL;
    int64_t steps = batch * L;
#pragma omp parallel num_threads(n_threads) if (n_threads > 1 && channels > 1)
    {
#pragma omp for schedule(static)
        for (int64_t s = 0; s < steps; s++) {
            int64_t b = s / L, t = s % L;
            transpose_padded(bt + b * L * n_pad, B + b * n * L, n, L, n_pad, t);
            transpose_padded(ct + b * L * n_pad, C + b * n * L, n, L, n_pad, t);
        }
        /* Sequences shorter than a block (decoding: L = 1) take their step sizes a group of channels at a time,
         * the group's deltas being contiguous: one softplus register then serves WB_VW channels, not one. */
        int64_t group = L > 0 && L < STEP_BLOCK ? STEP_BLOCK / L : 1;
#pragma omp for schedule(static)
        for (int64_t ch0 = 0; ch0 < channels; ch0 += group) {
            int64_t ch1 = channels - ch0 < group ? channels : ch0 + group;
            float dt_group[STEP_BLOCK] __attribute__((aligned(64)));
            if (group > 1)
                step_sizes(dt_group, delta + ch0 * L, (ch1 - ch0) * L, delta_softplus);
            for (int64_t ch = ch0; ch < ch1; ch++) {
                int64_t b = ch / d, c = ch % d;
                scan_channel_any(y + ch * L, last_state ? last_state + ch * n : NULL, u + ch * L, delta + ch * L,
                                 group > 1 ? dt_group + (ch - ch0) * L : NULL, A + c * n, D ? D + c : NULL,
                                 bt ? bt + b * L * n_pad : NULL, ct ? ct + b * L * n_pad : NULL,
                                 h0 ? h0 + ch * n : NULL, n, L, n_pad, delta_softplus);
            }
        }
    }
    free(work);
    return WB_OK;
}
