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
 * The flash kernel's products are register-blocked micro-kernels on GCC's
 * generic vectors, sized to the target's registers (see "flash" below);
 * wb_attention_simd_path() names the blocking this build compiled.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "wb_attention.h"
#include "wb_checked.h"
#include "wb_dot.h"
#include "wb_expf.h"
#include "wb_simd.h"
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

/* ---- naive -------------------------------------------------------------- */

static void naive_head(float *o, const float *q, const float *k, const float *v, const mask_t *m,
                       int64_t d, int64_t dv, float scale, float *scores)
{
    for (int64_t i = 0; i < m->lq; i++) {
        float *s = scores + i * m->lk;
        float mx = -INFINITY;
        for (int64_t j = 0; j < m->lk; j++) {
            s[j] = allowed(m, i, j) ? scale * wb_dot_f32(q + i * d, k + j * d, d) : -INFINITY;
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

/* One native SIMD register of floats (wb_simd.h: exactly one zmm, ymm or
 * xmm), and how many of them the micro-kernels keep side by side: 4 with
 * AVX-512's 32 registers, 2 with the 16 of AVX2 or SSE. An earlier 16-float
 * type took two ymm registers on AVX2, GCC kept the accumulators in memory,
 * and the kernel ran at 7 GFLOP/s (a tenth of torch) on a Zen 3. */
#define VW WB_VW
#define NS (WB_VREGS == 32 ? 4 : 2)
/* Key (score) or query (output) rows per micro-kernel call: 6 x NS
 * accumulators + NS loads + 1 broadcast fit the register file. */
#define ROWS 6
#define PW (VW * NS) /* queries (or value columns) per micro-kernel call */
#define DC 64        /* head-dimension chunk of the score product */

/* Queries along the vector lanes: PW queries (one micro-kernel's width) form
 * a panel. The query block is transposed once, pre-scaled, into panels
 * qt[p][t][x] = scale q[PW p + x][t] (d x PW each, contiguous); the scores of
 * a key block are st[c][r] = sum_t k[c][t] qt[.][t][r] (BC x BR), a product
 * whose broadcasts come straight from k's rows, so keys are never
 * transposed. The online softmax runs down the columns of st, a query per
 * lane, and the output o[r][.] += sum_c st[c][r] v[c][.] broadcasts st and
 * streams a panel of v (BC x PW, copied contiguous once per key block).
 * Panels are contiguous because rows 512 bytes apart (d = 128) fall into 8 of
 * L1's 64 sets and evict each other; with them, and the head dimension taken
 * in chunks of DC, d = 128 went from 69 to 75 GFLOP/s on a Zen 3.
 * Both micro-kernels are the register blocking of a GEMM (Goto & van de
 * Geijn, "Anatomy of high-performance matrix multiplication", 2008): ROWS
 * broadcast rows times ns vectors of accumulators, live across the inner loop. */
static inline __attribute__((always_inline)) void score_tile(float *st, const float *kc, int64_t ld, int64_t dn,
                                                             const float *qt, int add, int rows, int ns)
{
    wb_vf acc[ROWS][NS];
    for (int c = 0; c < rows; c++)
        for (int n = 0; n < ns; n++)
            acc[c][n] = add ? wb_loadv(st + c * BR + VW * n) : (wb_vf){0};
    for (int64_t t = 0; t < dn; t++) {
        wb_vf qv[NS];
        for (int n = 0; n < ns; n++)
            qv[n] = wb_loadv(qt + t * PW + VW * n);
        for (int c = 0; c < rows; c++) {
            float a = kc[c * ld + t];
            for (int n = 0; n < ns; n++)
                acc[c][n] += a * qv[n];
        }
    }
    for (int c = 0; c < rows; c++)
        for (int n = 0; n < ns; n++)
            wb_storev(st + c * BR + VW * n, acc[c][n]);
}

/* o[r][0 .. VW ns) = alpha[r] o[r][..] + sum_c p[c][r] vp[c][..] for ROWS or fewer rows;
 * o's rows lie stride floats apart, vp's rows vs apart (a panel of v, or v itself), p is st (BR per key). */
static inline __attribute__((always_inline)) void accumulate_tile(float *o, const float *alpha, const float *p,
                                                                  const float *vp, int64_t vs, int64_t stride,
                                                                  int64_t cols, int rows, int ns)
{
    wb_vf acc[ROWS][NS];
    for (int r = 0; r < rows; r++)
        for (int n = 0; n < ns; n++)
            acc[r][n] = alpha[r] * wb_loadv(o + r * stride + VW * n);
    for (int64_t c = 0; c < cols; c++) {
        wb_vf vv[NS];
        for (int n = 0; n < ns; n++)
            vv[n] = wb_loadv(vp + c * vs + VW * n);
        for (int r = 0; r < rows; r++) {
            float w = p[c * BR + r];
            for (int n = 0; n < ns; n++)
                acc[r][n] += w * vv[n];
        }
    }
    for (int r = 0; r < rows; r++)
        for (int n = 0; n < ns; n++)
            wb_storev(o + r * stride + VW * n, acc[r][n]);
}

/* Constant arguments for the common shapes, so that GCC unrolls the loops
 * above and keeps every accumulator in a register (the kernels are forced
 * inline: a shared out-of-line copy lost the constants and ran 1.5x slower). */
static void scores(float *st, const float *kc, int64_t ld, int64_t dn, const float *qt, int add, int rows, int ns)
{
    if (rows == ROWS && ns == NS)
        score_tile(st, kc, ld, dn, qt, add, ROWS, NS);
    else if (rows == ROWS)
        score_tile(st, kc, ld, dn, qt, add, ROWS, 1);
    else if (rows == 4 && ns == NS) /* 64 keys = 10 x 6 + 4 */
        score_tile(st, kc, ld, dn, qt, add, 4, NS);
    else
        score_tile(st, kc, ld, dn, qt, add, rows, ns);
}

static void accumulate(float *o, const float *alpha, const float *p, const float *v, int64_t vs, int64_t stride,
                       int64_t cols, int rows, int ns)
{
    if (rows == ROWS && ns == NS)
        accumulate_tile(o, alpha, p, v, vs, stride, cols, ROWS, NS);
    else if (rows == 4 && ns == NS)
        accumulate_tile(o, alpha, p, v, vs, stride, cols, 4, NS);
    else if (rows == 1 && ns == NS) /* decoding: one query */
        accumulate_tile(o, alpha, p, v, vs, stride, cols, 1, NS);
    else
        accumulate_tile(o, alpha, p, v, vs, stride, cols, rows, ns);
}

/* st[c][r] for the block's keys j0 + c: through the micro-kernel when the
 * block has at least a vector of queries (lanes past the last query hold
 * zeros, whose weights no output uses), by one dot product per pair
 * otherwise (decoding, a query at a time). */
static void block_scores(float *st, const float *q, const float *k, const float *qt, int64_t rows, int64_t lanes,
                         int64_t j0, int64_t cols, int64_t d, float scale)
{
    if (rows < VW) {
        for (int64_t c = 0; c < cols; c++)
            for (int64_t r = 0; r < lanes; r++)
                st[c * BR + r] = r < rows ? scale * wb_dot_f32(q + r * d, k + (j0 + c) * d, d) : 0.0f;
        return;
    }
    /* The head dimension in chunks of DC, as a GEMM blocks its inner
     * dimension: a panel of qt and the block's keys then fit in L1 together
     * (at d = 128 they did not, and the broadcasts waited on L2). */
    for (int64_t t0 = 0; t0 < d; t0 += DC) {
        int64_t dn = d - t0 < DC ? d - t0 : DC;
        for (int64_t r0 = 0; r0 < lanes; r0 += PW) {
            int ns = lanes - r0 < PW ? (int)((lanes - r0) / VW) : NS;
            for (int64_t c0 = 0; c0 < cols; c0 += ROWS) {
                int n = cols - c0 < ROWS ? (int)(cols - c0) : ROWS;
                scores(st + c0 * BR + r0, k + (j0 + c0) * d + t0, d, dn, qt + r0 * d + t0 * PW, t0 > 0, n, ns);
            }
        }
    }
}

/* The online softmax over one key block, a query per lane: the running
 * maximum m and sum l move on, st becomes e^(s - m'), and alpha = e^(m - m')
 * is what the output must be rescaled by. A query that sees no key yet keeps
 * m = -inf; its shift is taken as 0 so that its weights come out 0, not NaN.
 * A NaN score is passed over by the maximum and makes its row NaN. */
static void block_softmax(float *st, float *mrow, float *lrow, float *alpha, int64_t lanes, int64_t cols)
{
    for (int64_t r = 0; r < lanes; r += VW) {
        wb_vf old = wb_loadv(mrow + r), mx = old;
        for (int64_t c = 0; c < cols; c++) {
            wb_vf sc = wb_loadv(st + c * BR + r);
            mx = wb_vselect(sc > mx, sc, mx);
        }
        const wb_vf zero = {0};
        wb_vf shift = wb_vselect(mx == -INFINITY, zero, mx), sum = zero;
        wb_vf a = wb_expf_nonpositive_v(old - shift);
        for (int64_t c = 0; c < cols; c++) {
            wb_vf p = wb_expf_nonpositive_v(wb_loadv(st + c * BR + r) - shift);
            wb_storev(st + c * BR + r, p);
            sum += p;
        }
        wb_storev(alpha + r, a);
        wb_storev(mrow + r, mx);
        wb_storev(lrow + r, wb_loadv(lrow + r) * a + sum);
    }
}

/* -inf where query i0 + r may not see key j0 + c. Plain causal masking, the
 * common case, is a prefix of each column: the queries before the key. */
static void mask_block(float *st, const mask_t *m, int64_t i0, int64_t rows, int64_t j0, int64_t cols)
{
    for (int64_t c = 0; c < cols; c++) {
        float *sc = st + c * BR;
        if (m->causal && m->window == 0 && m->key_mask == NULL) {
            int64_t hidden = j0 + c - m->shift - i0; /* queries r < hidden come before key j0 + c */
            hidden = hidden < 0 ? 0 : hidden > rows ? rows : hidden;
            for (int64_t r = 0; r < hidden; r++)
                sc[r] = -INFINITY;
        } else {
            for (int64_t r = 0; r < rows; r++)
                if (!allowed(m, i0 + r, j0 + c))
                    sc[r] = -INFINITY;
        }
    }
}

static void flash_block(float *out, const float *q, const float *k, const float *v, const mask_t *m,
                        int64_t i0, int64_t i1, int64_t d, int64_t dv, float scale, float *tile)
{
    float *qt = tile, *st = qt + d * BR, *o = st + BC * BR, *mrow = o + BR * dv, *lrow = mrow + BR,
          *alpha = lrow + BR, *vp = alpha + BR;
    int64_t rows = i1 - i0, lanes = (rows + VW - 1) / VW * VW;
    const float *qb = q + i0 * d;
    for (int64_t r = 0; r < lanes; r++) {
        mrow[r] = -INFINITY;
        lrow[r] = 0.0f;
    }
    memset(o, 0, (size_t)(rows * dv) * sizeof *o);
    if (rows >= VW)
        for (int64_t t = 0; t < d; t++)
            for (int64_t r = 0; r < lanes; r++)
                qt[r / PW * d * PW + t * PW + r % PW] = r < rows ? scale * qb[r * d + t] : 0.0f;
    int64_t lo, hi;
    key_range(m, i0, i1, &lo, &hi);
    for (int64_t j0 = lo; j0 < hi; j0 += BC) {
        int64_t j1 = j0 + BC < hi ? j0 + BC : hi, cols = j1 - j0;
        block_scores(st, qb, k, qt, rows, lanes, j0, cols, d, scale);
        if (!block_all_allowed(m, i0, i1, j0, j1))
            mask_block(st, m, i0, rows, j0, cols);
        block_softmax(st, mrow, lrow, alpha, lanes, cols);
        const float *vb = v + j0 * dv;
        if (dv % VW == 0) {
            /* v's block as panels vp[c0 / PW][c][x] = v[j0 + c][c0 + x], read in
             * one sequential pass; a panel stays in L1 while every row group
             * reads it. A single row group (decoding) reads v where it is. */
            int pack = rows > ROWS;
            if (pack)
                for (int64_t c = 0; c < cols; c++)
                    for (int64_t t = 0; t < dv; t += VW)
                        wb_storev(vp + t / PW * BC * PW + c * PW + t % PW, wb_loadv(vb + c * dv + t));
            for (int64_t c0 = 0; c0 < dv; c0 += PW) {
                int ns = dv - c0 < PW ? (int)((dv - c0) / VW) : NS;
                const float *panel = pack ? vp + c0 * BC : vb + c0;
                for (int64_t r = 0; r < rows; r += ROWS) {
                    int n = rows - r < ROWS ? (int)(rows - r) : ROWS;
                    accumulate(o + r * dv + c0, alpha + r, st + r, panel, pack ? PW : dv, dv, cols, n, ns);
                }
            }
        } else {
            for (int64_t r = 0; r < rows; r++) {
                float *orow = o + r * dv;
#pragma omp simd
                for (int64_t t = 0; t < dv; t++)
                    orow[t] *= alpha[r];
                for (int64_t c = 0; c < cols; c++) {
                    float p = st[c * BR + r];
                    const float *vj = vb + c * dv;
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

const char *wb_attention_simd_path(void)
{
    return WB_SIMD_PATH;
}

int64_t wb_attention_workspace_f32(int kernel, int64_t lq, int64_t lk, int64_t d, int64_t dv, int n_threads)
{
    if (n_threads < 1 || n_threads > WB_MAX_THREADS)
        return WB_ERR_BAD_THREADS;
    if (lq < 0 || lk < 0 || d < 1 || dv < 1)
        return WB_ERR_BAD_SIZE;
    if (kernel != WB_ATTN_NAIVE && kernel != WB_ATTN_FLASH)
        return WB_ERR_BAD_ARGUMENT;
    int64_t per_thread, total;
    /* naive: the lq x lk scores; flash, per thread: qt (d x BR), st (BC x BR),
     * o (BR x dv), m, l, alpha (BR each) and v's block as panels (BC x dv
     * rounded up to whole panels). */
    if (kernel == WB_ATTN_NAIVE) {
        if (wb_mul_overflows(lq, lk, &per_thread))
            return WB_ERR_TOO_LARGE;
        per_thread = per_thread > 0 ? per_thread : 1;
    } else {
        int64_t qt, o, dv_panels, vp, sum;
        if (wb_mul_overflows(d, BR, &qt) || wb_mul_overflows(dv, BR, &o) ||
            wb_add_overflows(dv, PW - 1, &dv_panels) || wb_mul_overflows(dv_panels / PW * PW, BC, &vp) ||
            wb_add_overflows(qt, o, &sum) || wb_add_overflows(sum, vp, &sum) ||
            wb_add_overflows(sum, BC * BR + 3 * BR, &per_thread))
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
