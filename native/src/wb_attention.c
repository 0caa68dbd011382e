/* wb_attention.c - attention forward in fp32: a naive kernel and a tiled
 * online-softmax ("flash") kernel.
 *
 * Both compute softmax(scale * q k^T, masked) v (Vaswani et al., "Attention
 * Is All You Need", 2017, eq. 1). The readable NumPy versions are
 * engines/attention/reference.py (naive) and engines/attention/tiled.py
 * (flash, the same loop over the same tiles).
 *
 * naive:  per (batch, head), the whole lq x lk score matrix is written to the
 *         workspace, softmaxed row by row, then multiplied by v: memory grows
 *         with lq * lk.
 * flash:  FlashAttention's forward (Dao et al., 2022) on a CPU, in the loop
 *         order of FlashAttention-2 (Dao, 2023, Algorithm 1): query blocks
 *         outside, key blocks inside, one division at the end.
 *         A block of BR queries meets the keys BC at a time; each block of
 *         scores lives only in a small tile, and every query keeps a running
 *         maximum m, a running sum l and an unnormalised output o:
 *             m' = max(m, max_j s_j)
 *             l' = l e^(m - m') + sum_j e^(s_j - m')
 *             o' = o e^(m - m') + sum_j e^(s_j - m') v_j
 *         and divides o by l at the end (the online softmax of Milakov and
 *         Gimelshein, 2018). Key blocks that the causal or window mask
 *         excludes entirely are skipped, so causal attention does about
 *         half the work. The workspace is a few tiles per thread, whatever
 *         the sequence length.
 *
 * Inner loops run over contiguous rows (a transposed key tile for the
 * scores, value rows for the output) so that GCC vectorises them.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "wb_attention.h"
#include "wb_checked.h"
#include "wb_expf.h"
#include "wb_status.h"

#define BR WB_ATTN_FLASH_BLOCK_Q
#define BC WB_ATTN_FLASH_BLOCK_K

typedef struct {
    int64_t lq, lk, shift, window;
    int causal;
    const uint8_t *key_mask; /* this batch's row, or NULL */
} mask_t;

static inline int allowed(const mask_t *m, int64_t i, int64_t j)
{
    int64_t pos = i + m->shift;
    if (m->causal && j > pos)
        return 0;
    if (m->window > 0) {
        if (m->causal ? j <= pos - m->window : (pos - j >= m->window || j - pos >= m->window))
            return 0;
    }
    return m->key_mask == NULL || m->key_mask[j] != 0;
}

/* Keys [lo, hi) that any of queries [i0, i1) may see, before the padding mask. */
static void key_range(const mask_t *m, int64_t i0, int64_t i1, int64_t *lo, int64_t *hi)
{
    int64_t first = i0 + m->shift, last = i1 - 1 + m->shift;
    *lo = 0;
    *hi = m->lk;
    if (m->causal && last + 1 < *hi)
        *hi = last + 1 > 0 ? last + 1 : 0;
    if (m->window > 0) {
        int64_t from = first - m->window + 1;
        if (from > *lo)
            *lo = from;
        if (!m->causal && last + m->window < *hi)
            *hi = last + m->window;
    }
    if (*hi < *lo)
        *hi = *lo;
}

/* Whether every (i, j) in the block is allowed, so the per-element mask can be skipped. */
static int block_all_allowed(const mask_t *m, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    if (m->key_mask)
        return 0;
    int64_t first = i0 + m->shift, last = i1 - 1 + m->shift;
    if (m->causal && j1 - 1 > first)
        return 0;
    if (m->window > 0) {
        if (m->causal ? j0 <= last - m->window : (last - j0 >= m->window || j1 - 1 - first >= m->window))
            return 0;
    }
    return 1;
}

static inline float dot(const float *a, const float *b, int64_t n)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t t = 0; t < n; t++)
        s += a[t] * b[t];
    return s;
}

/* ---- naive -------------------------------------------------------------- */

static void naive_head(float *o, const float *q, const float *k, const float *v, const mask_t *m,
                       int64_t d, int64_t dv, float scale, float *scores)
{
    for (int64_t i = 0; i < m->lq; i++) {
        float *s = scores + i * m->lk;
        float mx = -INFINITY;
        for (int64_t j = 0; j < m->lk; j++) {
            s[j] = allowed(m, i, j) ? scale * dot(q + i * d, k + j * d, d) : -INFINITY;
            mx = s[j] > mx ? s[j] : mx;
        }
        float sum = 0.0f;
        if (mx != -INFINITY) {
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j < m->lk; j++) {
                s[j] = wb_expf(s[j] - mx);
                sum += s[j];
            }
        }
        float *oi = o + i * dv;
        memset(oi, 0, (size_t)dv * sizeof *oi);
        if (sum == 0.0f)
            continue;
        float inv = 1.0f / sum;
        for (int64_t j = 0; j < m->lk; j++) {
            float p = s[j] * inv;
            if (p == 0.0f)
                continue;
            const float *vj = v + j * dv;
#pragma omp simd
            for (int64_t t = 0; t < dv; t++)
                oi[t] += p * vj[t];
        }
    }
}

/* ---- flash -------------------------------------------------------------- */

/* Sixteen floats as one value: a zmm register with AVX-512, two ymm with AVX2
 * (GCC's generic vector extension, lowered for whatever -march allows). */
typedef float v16 __attribute__((vector_size(64)));
#define NV (BC / 16)

static inline v16 load16(const float *p)
{
    v16 x;
    memcpy(&x, p, sizeof x);
    return x;
}

static inline void store16(float *p, v16 x)
{
    memcpy(p, &x, sizeof x);
}

/* s[r][0..BC) = q_r . kt[.][c] for rows r0..r0+R, R <= SCORE_ROWS, and
 * o_r[0..16 nv) += sum_c p[r][c] v_c[0..16 nv) (nv <= 4; o and v rows stride
 * floats apart): register-blocked micro-kernels. The scale is applied in the
 * softmax pass, so each q element broadcasts straight from memory into an FMA.
 *
 * Two blockings, chosen by the registers the target has:
 *   AVX-512 (32 zmm): all BC columns (or 64 output columns) of SCORE_ROWS
 *     rows stay in registers, 24 accumulators, while t (or c) runs.
 *   otherwise (AVX2's 16 ymm, a v16 being two of them): one 16-column slice
 *     at a time, SCORE_ROWS x 2 accumulators + 2 for the slice + 1 broadcast.
 *     The AVX-512 blocking spilled every accumulator there: flash ran at
 *     0.05x torch SDPA on an AVX2 Zen 3, and at 0.11x with this blocking,
 *     which is a step, not yet the answer. */
#define SCORE_ROWS 6
#ifdef __AVX512F__
static inline void score_rows(float *s, const float *q, int64_t d, const float *kt, int rows)
{
    v16 acc[SCORE_ROWS][NV] = {{{0}}};
    for (int64_t t = 0; t < d; t++) {
        v16 kv[NV];
        for (int n = 0; n < NV; n++)
            kv[n] = load16(kt + t * BC + 16 * n);
        for (int r = 0; r < rows; r++) {
            float a = q[r * d + t];
            for (int n = 0; n < NV; n++)
                acc[r][n] += a * kv[n];
        }
    }
    for (int r = 0; r < rows; r++)
        for (int n = 0; n < NV; n++)
            store16(s + r * BC + 16 * n, acc[r][n]);
}

static inline void accumulate_rows(float *o, const float *p, const float *v, int64_t stride, int64_t cols,
                                   int rows, int nv)
{
    v16 acc[SCORE_ROWS][4];
    for (int r = 0; r < rows; r++)
        for (int n = 0; n < nv; n++)
            acc[r][n] = load16(o + r * stride + 16 * n);
    for (int64_t c = 0; c < cols; c++) {
        v16 vv[4];
        for (int n = 0; n < nv; n++)
            vv[n] = load16(v + c * stride + 16 * n);
        for (int r = 0; r < rows; r++) {
            float w = p[r * BC + c];
            for (int n = 0; n < nv; n++)
                acc[r][n] += w * vv[n];
        }
    }
    for (int r = 0; r < rows; r++)
        for (int n = 0; n < nv; n++)
            store16(o + r * stride + 16 * n, acc[r][n]);
}
#else
static inline void score_rows(float *s, const float *q, int64_t d, const float *kt, int rows)
{
    for (int n = 0; n < NV; n++) {
        v16 acc[SCORE_ROWS] = {{0}};
        for (int64_t t = 0; t < d; t++) {
            v16 kv = load16(kt + t * BC + 16 * n);
            for (int r = 0; r < rows; r++)
                acc[r] += q[r * d + t] * kv;
        }
        for (int r = 0; r < rows; r++)
            store16(s + r * BC + 16 * n, acc[r]);
    }
}

static inline void accumulate_rows(float *o, const float *p, const float *v, int64_t stride, int64_t cols,
                                   int rows, int nv)
{
    for (int n = 0; n < nv; n++) {
        v16 acc[SCORE_ROWS];
        for (int r = 0; r < rows; r++)
            acc[r] = load16(o + r * stride + 16 * n);
        for (int64_t c = 0; c < cols; c++) {
            v16 vv = load16(v + c * stride + 16 * n);
            for (int r = 0; r < rows; r++)
                acc[r] += p[r * BC + c] * vv;
        }
        for (int r = 0; r < rows; r++)
            store16(o + r * stride + 16 * n, acc[r]);
    }
}
#endif

/* Per-thread tiles: kt (d x BC), s (BR x BC), o (BR x dv), mrow, lrow (BR). */
static int64_t flash_tile_floats(int64_t d, int64_t dv)
{
    return d * BC + BR * BC + BR * dv + 2 * BR;
}

static void flash_block(float *out, const float *q, const float *k, const float *v, const mask_t *m,
                        int64_t i0, int64_t i1, int64_t d, int64_t dv, float scale, float *tile)
{
    float *kt = tile, *s = kt + d * BC, *o = s + BR * BC, *mrow = o + BR * dv, *lrow = mrow + BR;
    int64_t rows = i1 - i0;
    for (int64_t r = 0; r < rows; r++) {
        mrow[r] = -INFINITY;
        lrow[r] = 0.0f;
    }
    memset(o, 0, (size_t)(rows * dv) * sizeof *o);
    int64_t lo, hi;
    key_range(m, i0, i1, &lo, &hi);
    for (int64_t j0 = lo; j0 < hi; j0 += BC) {
        int64_t j1 = j0 + BC < hi ? j0 + BC : hi, cols = j1 - j0;
        /* kt[t][c] = k[j0 + c][t]: the scores of one query become a row update. */
        for (int64_t c = 0; c < cols; c++)
            for (int64_t t = 0; t < d; t++)
                kt[t * BC + c] = k[(j0 + c) * d + t];
        int dense = block_all_allowed(m, i0, i1, j0, j1);
        for (int64_t r = 0; r < rows; r += SCORE_ROWS) {
            int n = rows - r < SCORE_ROWS ? (int)(rows - r) : SCORE_ROWS;
            if (n == SCORE_ROWS) /* a constant count lets the compiler unroll it */
                score_rows(s + r * BC, q + (i0 + r) * d, d, kt, SCORE_ROWS);
            else
                score_rows(s + r * BC, q + (i0 + r) * d, d, kt, n);
        }
        for (int64_t r = 0; r < rows; r++) {
            float *sr = s + r * BC;
#pragma omp simd
            for (int64_t c = 0; c < cols; c++)
                sr[c] *= scale;
            if (!dense)
                for (int64_t c = 0; c < cols; c++)
                    if (!allowed(m, i0 + r, j0 + c))
                        sr[c] = -INFINITY;
            float mx = mrow[r];
#pragma omp simd reduction(max : mx)
            for (int64_t c = 0; c < cols; c++)
                mx = sr[c] > mx ? sr[c] : mx;
            if (mx == -INFINITY) {
                /* Nothing visible yet for this query: its weights are all 0. */
                memset(sr, 0, (size_t)cols * sizeof *sr);
                continue;
            }
            float alpha = wb_expf(mrow[r] - mx), sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (int64_t c = 0; c < cols; c++) {
                sr[c] = wb_expf(sr[c] - mx);
                sum += sr[c];
            }
            lrow[r] = lrow[r] * alpha + sum;
            mrow[r] = mx;
            float *orow = o + r * dv;
#pragma omp simd
            for (int64_t t = 0; t < dv; t++)
                orow[t] *= alpha;
        }
        if (dv % 16 == 0) {
            for (int64_t r = 0; r < rows; r += SCORE_ROWS) {
                int n = rows - r < SCORE_ROWS ? (int)(rows - r) : SCORE_ROWS;
                for (int64_t c0 = 0; c0 < dv; c0 += 64) {
                    int nv = dv - c0 < 64 ? (int)(dv - c0) / 16 : 4;
                    float *oc = o + r * dv + c0;
                    const float *vc = v + j0 * dv + c0;
                    /* Constant counts let the compiler unroll the common case. */
                    if (n == SCORE_ROWS && nv == 4)
                        accumulate_rows(oc, s + r * BC, vc, dv, cols, SCORE_ROWS, 4);
                    else
                        accumulate_rows(oc, s + r * BC, vc, dv, cols, n, nv);
                }
            }
        } else {
            for (int64_t r = 0; r < rows; r++) {
                float *orow = o + r * dv;
                for (int64_t c = 0; c < cols; c++) {
                    float p = s[r * BC + c];
                    const float *vj = v + (j0 + c) * dv;
#pragma omp simd
                    for (int64_t t = 0; t < dv; t++)
                        orow[t] += p * vj[t];
                }
            }
        }
    }
    for (int64_t r = 0; r < rows; r++) {
        float inv = lrow[r] > 0.0f ? 1.0f / lrow[r] : 0.0f;
        float *dst = out + (i0 + r) * dv;
        const float *orow = o + r * dv;
#pragma omp simd
        for (int64_t t = 0; t < dv; t++)
            dst[t] = orow[t] * inv;
    }
}

/* ---- entry points ------------------------------------------------------- */

int64_t wb_attention_workspace_f32(int kernel, int64_t lq, int64_t lk, int64_t d, int64_t dv, int n_threads)
{
    if (n_threads < 1 || n_threads > WB_MAX_THREADS)
        return WB_ERR_BAD_THREADS;
    if (lq < 0 || lk < 0 || d < 1 || dv < 1)
        return WB_ERR_BAD_SIZE;
    if (kernel != WB_ATTN_NAIVE && kernel != WB_ATTN_FLASH)
        return WB_ERR_BAD_ARGUMENT;
    int64_t per_thread, total;
    if (kernel == WB_ATTN_NAIVE) {
        if (wb_mul_overflows(lq, lk, &per_thread))
            return WB_ERR_TOO_LARGE;
        per_thread = per_thread > 0 ? per_thread : 1;
    } else {
        int64_t kt, o;
        if (wb_mul_overflows(d, BC, &kt) || wb_mul_overflows(dv, BR, &o) ||
            wb_add_overflows(kt, o + BR * BC + 2 * BR, &per_thread))
            return WB_ERR_TOO_LARGE;
    }
    if (wb_mul_overflows(per_thread, n_threads, &total))
        return WB_ERR_TOO_LARGE;
    return total;
}

int wb_attention_forward_f32(float *out, const float *q, const float *k, const float *v,
                             int64_t batch, int64_t heads, int64_t kv_heads, int64_t lq,
                             int64_t lk, int64_t d, int64_t dv, float scale, int causal,
                             int64_t window, const uint8_t *key_mask, int kernel,
                             float *workspace, int64_t workspace_len, int n_threads)
{
    if (!out || !q || !k || !v || !workspace)
        return WB_ERR_NULL_POINTER;
    if (batch < 0 || heads < 1 || kv_heads < 1 || lq < 0 || lk < 0 || d < 1 || dv < 1 || window < 0)
        return WB_ERR_BAD_SIZE;
    if (heads % kv_heads != 0 || (kernel != WB_ATTN_NAIVE && kernel != WB_ATTN_FLASH))
        return WB_ERR_BAD_ARGUMENT;
    if (n_threads < 1 || n_threads > WB_MAX_THREADS)
        return WB_ERR_BAD_THREADS;
    /* Every element offset the loops form stays below one of these sizes. */
    int64_t size;
    if (wb_mul4_overflows(batch, heads, lq, d > dv ? d : dv, &size) ||
        wb_mul4_overflows(batch, kv_heads, lk, d > dv ? d : dv, &size) ||
        wb_mul_overflows(batch, lk, &size))
        return WB_ERR_TOO_LARGE;
    int64_t needed = wb_attention_workspace_f32(kernel, lq, lk, d, dv, n_threads);
    if (needed < 0)
        return (int)needed;
    if (workspace_len < needed)
        return WB_ERR_OUTPUT_FULL;
    int64_t group = heads / kv_heads;
    int64_t per_thread = wb_attention_workspace_f32(kernel, lq, lk, d, dv, 1);
    int64_t blocks = kernel == WB_ATTN_FLASH ? (lq + BR - 1) / BR : 1;
    int64_t units = batch * heads * blocks;
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads) if (n_threads > 1 && units > 1)
    for (int64_t u = 0; u < units; u++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        int64_t bh = u / blocks, blk = u % blocks;
        int64_t b = bh / heads, h = bh % heads, kvh = h / group;
        mask_t m = {lq, lk, lk - lq, window, causal, key_mask ? key_mask + b * lk : NULL};
        const float *qh = q + (b * heads + h) * lq * d;
        const float *kh = k + (b * kv_heads + kvh) * lk * d;
        const float *vh = v + (b * kv_heads + kvh) * lk * dv;
        float *oh = out + (b * heads + h) * lq * dv;
        float *ws = workspace + tid * per_thread;
        if (kernel == WB_ATTN_NAIVE) {
            naive_head(oh, qh, kh, vh, &m, d, dv, scale, ws);
        } else {
            int64_t i0 = blk * BR, i1 = i0 + BR < lq ? i0 + BR : lq;
            flash_block(oh, qh, kh, vh, &m, i0, i1, d, dv, scale, ws);
        }
    }
    return WB_OK;
}
