/* harness.c - drives every C kernel over its edge cases under ASan and UBSan.
 *
 * Built and run by `make sanitize`: native/src/*.c and this file compiled
 * with -fsanitize=address,undefined -fno-sanitize-recover=undefined, so any
 * out-of-bounds access, leak or undefined operation aborts the run. On top of
 * that each call's status is compared with the one the contract promises, and
 * a mismatch fails the run too. The cases are the ones issue 18 found or
 * feared: NaN and inf rows (wb_expf used to shift a NaN's bits out of range),
 * zero sizes, leading dimensions wider than the rows, absurd thread counts
 * (libgomp crashes or calls exit() on 10^5), and sizes whose products
 * overflow int64_t (the workspace queries used to wrap).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_attention.h"
#include "wb_roofline.h"
#include "wb_bpe.h"
#include "wb_expf.h"
#include "wb_hnsw.h"
#include "wb_linear.h"
#include "wb_moe.h"
#include "wb_paged.h"
#include "wb_pretok.h"
#include "wb_quant.h"
#include "wb_sampling.h"
#include "wb_scan.h"
#include "wb_search.h"
#include "wb_softmax.h"
#include "wb_status.h"
#include "wb_word2vec.h"

static int failures = 0;

static void expect(const char *what, int64_t got, int64_t want)
{
    if (got != want) {
        fprintf(stderr, "FAIL %s: status %lld, expected %lld\n", what, (long long)got, (long long)want);
        failures++;
    }
}

static void expect_true(const char *what, int ok)
{
    if (!ok) {
        fprintf(stderr, "FAIL %s\n", what);
        failures++;
    }
}

/* Thread counts every kernel must refuse before OpenMP sees them. */
static const int BAD_THREADS[] = {0, -1, WB_MAX_THREADS + 1, 100000, 1000000};
#define N_BAD_THREADS (int)(sizeof BAD_THREADS / sizeof BAD_THREADS[0])

static void test_expf(void)
{
    volatile float nan_in = NAN; /* volatile: keep the call from being folded at compile time */
    expect_true("wb_expf(NaN) is NaN", isnan(wb_expf(nan_in)));
    expect_true("wb_expf(-inf) is 0", wb_expf(-INFINITY) == 0.0f);
    expect_true("wb_expf(0) is 1", wb_expf(0.0f) == 1.0f);
    expect_true("wb_expf(+inf) is finite or inf, not NaN", !isnan(wb_expf(INFINITY)));
}

static void test_softmax(void)
{
    /* 3 rows of 5 in rows 7 floats apart: NaN row, +inf row, -inf row. */
    float x[21], out[24], lse[3];
    for (int i = 0; i < 21; i++)
        x[i] = (float)(i % 7) - 2.0f;
    x[1] = NAN;
    x[7 + 2] = INFINITY;
    for (int i = 14; i < 19; i++)
        x[i] = -INFINITY;
    expect("softmax odd strides", wb_softmax_forward_f32(out, x, 3, 5, 8, 7, 2), WB_OK);
    expect("log_softmax odd strides", wb_softmax_log_f32(out, x, 3, 5, 8, 7, 2), WB_OK);
    expect("logsumexp odd strides", wb_softmax_logsumexp_f32(lse, x, 3, 5, 7, 2), WB_OK);
    expect("softmax zero rows", wb_softmax_forward_f32(out, x, 0, 5, 5, 5, 1), WB_OK);
    expect("softmax ld below cols", wb_softmax_forward_f32(out, x, 3, 5, 4, 7, 1), WB_ERR_BAD_STRIDE);
    for (int t = 0; t < N_BAD_THREADS; t++) {
        expect("softmax bad threads", wb_softmax_forward_f32(out, x, 3, 5, 8, 7, BAD_THREADS[t]), WB_ERR_BAD_THREADS);
        expect("logsumexp bad threads", wb_softmax_logsumexp_f32(lse, x, 3, 5, 7, BAD_THREADS[t]), WB_ERR_BAD_THREADS);
    }
}

static void test_attention(void)
{
    enum { B = 1, H = 2, LQ = 3, LK = 5, D = 4 };
    float q[B * H * LQ * D], k[B * H * LK * D], v[B * H * LK * D], out[B * H * LQ * D];
    for (int i = 0; i < B * H * LQ * D; i++)
        q[i] = (float)(i % 5) - 2.0f;
    for (int i = 0; i < B * H * LK * D; i++)
        k[i] = v[i] = (float)(i % 3) - 1.0f;
    q[0] = INFINITY; /* a score of +inf: inf - inf = NaN in the softmax */
    k[5] = NAN;
    uint8_t mask[LK] = {1, 0, 1, 1, 0};
    for (int kernel = WB_ATTN_NAIVE; kernel <= WB_ATTN_FLASH; kernel++) {
        int64_t floats = wb_attention_workspace_f32(kernel, LQ, LK, D, D, 2);
        expect_true("attention workspace size", floats > 0);
        float *ws = malloc((size_t)floats * sizeof *ws);
        expect("attention inf/nan", wb_attention_forward_f32(out, q, k, v, B, H, H, LQ, LK, D, D, 0.5f, 1, 2, mask,
                                                             kernel, ws, floats, 2), WB_OK);
        expect("attention lk 0", wb_attention_forward_f32(out, q, k, v, B, H, 1, LQ, 0, D, D, 0.5f, 0, 0, NULL,
                                                          kernel, ws, floats, 1), WB_OK);
        expect("attention lq 0", wb_attention_forward_f32(out, q, k, v, B, H, 1, 0, LK, D, D, 0.5f, 1, 0, NULL,
                                                          kernel, ws, floats, 1), WB_OK);
        expect("attention small workspace", wb_attention_forward_f32(out, q, k, v, B, H, H, LQ, LK, D, D, 0.5f, 0, 0,
                                                                     NULL, kernel, ws, floats - 1, 2), WB_ERR_OUTPUT_FULL);
        for (int t = 0; t < N_BAD_THREADS; t++) {
            expect("attention workspace bad threads", wb_attention_workspace_f32(kernel, LQ, LK, D, D, BAD_THREADS[t]),
                   WB_ERR_BAD_THREADS);
            expect("attention bad threads", wb_attention_forward_f32(out, q, k, v, B, H, H, LQ, LK, D, D, 0.5f, 0, 0,
                                                                     NULL, kernel, ws, floats, BAD_THREADS[t]),
                   WB_ERR_BAD_THREADS);
        }
        free(ws);
    }
    /* Sizes whose products overflow int64_t: an honest status, not a wrapped size. */
    expect("naive workspace overflow", wb_attention_workspace_f32(WB_ATTN_NAIVE, INT64_C(1) << 40, INT64_C(1) << 40, 4, 4, 1),
           WB_ERR_TOO_LARGE);
    expect("naive workspace threads overflow",
           wb_attention_workspace_f32(WB_ATTN_NAIVE, INT64_C(1) << 31, INT64_C(1) << 31, 4, 4, 256), WB_ERR_TOO_LARGE);
    expect("flash workspace overflow", wb_attention_workspace_f32(WB_ATTN_FLASH, 1, 1, INT64_MAX / 2, 4, 1),
           WB_ERR_TOO_LARGE);
    expect("workspace bad kernel", wb_attention_workspace_f32(7, 1, 1, 4, 4, 1), WB_ERR_BAD_ARGUMENT);
    expect("workspace bad size", wb_attention_workspace_f32(WB_ATTN_NAIVE, -1, 1, 4, 4, 1), WB_ERR_BAD_SIZE);
    float ws1[1];
    expect("attention size overflow", wb_attention_forward_f32(out, q, k, v, INT64_C(1) << 40, 1 << 20, 1, 1 << 20, 1,
                                                               4, 4, 1.0f, 0, 0, NULL, WB_ATTN_FLASH, ws1, 1, 1),
           WB_ERR_TOO_LARGE);
}

/* The flash kernel's register-blocked path needs at least a vector of queries:
 * 70 of them (a block of 64 and a tail of 6), 133 keys, a head dimension of 72
 * (a chunk of 64 and 8 more; 9 AVX2 vectors, a partial panel), causal, windowed
 * and padded, with the workspace sized exactly. */
static void test_attention_tiles(void)
{
    enum { H = 2, KVH = 1, LQ = 70, LK = 133, D = 72 };
    float *q = malloc(sizeof(float) * H * LQ * D), *k = malloc(sizeof(float) * KVH * LK * D);
    float *v = malloc(sizeof(float) * KVH * LK * D), *out = malloc(sizeof(float) * H * LQ * D);
    for (int i = 0; i < H * LQ * D; i++)
        q[i] = (float)(i % 7) * 0.25f - 0.75f;
    for (int i = 0; i < KVH * LK * D; i++) {
        k[i] = (float)(i % 5) * 0.5f - 1.0f;
        v[i] = (float)(i % 11) - 5.0f;
    }
    uint8_t mask[LK];
    for (int j = 0; j < LK; j++)
        mask[j] = (uint8_t)(j % 4 != 1);
    int64_t floats = wb_attention_workspace_f32(WB_ATTN_FLASH, LQ, LK, D, D, 2);
    float *ws = malloc((size_t)floats * sizeof *ws);
    for (int causal = 0; causal <= 1; causal++)
        for (int window = 0; window <= 9; window += 9) {
            expect("attention tiles", wb_attention_forward_f32(out, q, k, v, 1, H, KVH, LQ, LK, D, D, 0.125f, causal,
                                                               window, causal ? NULL : mask, WB_ATTN_FLASH, ws,
                                                               floats, 2), WB_OK);
            int finite = 1;
            for (int i = 0; i < H * LQ * D; i++)
                finite &= isfinite(out[i]);
            expect_true("attention tiles finite", finite);
        }
    free(ws);
    free(q);
    free(k);
    free(v);
    free(out);
}

static void test_roofline(void)
{
    float sums[2], a[37], b[37], c[37], total = 0.0f;
    for (int i = 0; i < 37; i++)
        b[i] = c[i] = 1.0f;
    expect("fma chains", wb_roofline_fma_f32(sums, 1000, 2), WB_OK);
    expect_true("fma chains agree", sums[0] == sums[1] && isfinite(sums[0]));
    expect("fma zero steps", wb_roofline_fma_f32(sums, 0, 1), WB_OK);
    expect("fma negative steps", wb_roofline_fma_f32(sums, -1, 1), WB_ERR_BAD_SIZE);
    expect("fma null", wb_roofline_fma_f32(NULL, 10, 1), WB_ERR_NULL_POINTER);
    expect("triad", wb_roofline_triad_f32(a, b, c, 2.0f, 37, 2), WB_OK);
    expect_true("triad value", a[0] == 3.0f && a[36] == 3.0f);
    expect("triad empty", wb_roofline_triad_f32(a, b, c, 2.0f, 0, 1), WB_OK);
    expect("triad negative", wb_roofline_triad_f32(a, b, c, 2.0f, -1, 1), WB_ERR_BAD_SIZE);
    expect("read", wb_roofline_read_f32(&total, b, 37, 2), WB_OK);
    expect_true("read value", total == 37.0f);
    expect("read null", wb_roofline_read_f32(&total, NULL, 37, 1), WB_ERR_NULL_POINTER);
    for (int t = 0; t < N_BAD_THREADS; t++) {
        expect("fma bad threads", wb_roofline_fma_f32(sums, 10, BAD_THREADS[t]), WB_ERR_BAD_THREADS);
        expect("triad bad threads", wb_roofline_triad_f32(a, b, c, 1.0f, 37, BAD_THREADS[t]), WB_ERR_BAD_THREADS);
        expect("read bad threads", wb_roofline_read_f32(&total, b, 37, BAD_THREADS[t]), WB_ERR_BAD_THREADS);
    }
}

static void test_sampling(void)
{
    enum { N = 6 };
    float rows[4][N] = {
        {1.0f, NAN, 3.0f, 2.0f, 3.0f, -1.0f},
        {NAN, NAN, NAN, NAN, NAN, NAN},
        {1.0f, INFINITY, 2.0f, INFINITY, -INFINITY, 0.0f},
        {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY},
    };
    float out[4][N];
    int64_t kept[4];
    expect("top_p nan/inf rows", wb_sampling_top_p_f32(&out[0][0], &rows[0][0], 4, N, 0.5, 1.0, kept, 2), WB_OK);
    for (int r = 0; r < 4; r++)
        expect("top_p keeps one token of a NaN/inf row", kept[r], 1);
    float ties[N] = {3.0f, 3.0f, 1.0f, 0.0f, -5.0f, 2.0f};
    expect("top_p tiny temperature", wb_sampling_top_p_f32(&out[0][0], ties, 1, N, 0.9, 1e-40, kept, 1), WB_OK);
    expect("top_p tiny temperature keeps the two tied", kept[0], 2);
    expect("top_p temperature whose reciprocal overflows", wb_sampling_top_p_f32(&out[0][0], ties, 1, N, 0.9, 4e-324,
                                                                                  kept, 1), WB_ERR_BAD_ARGUMENT);
    expect("top_p infinite temperature", wb_sampling_top_p_f32(&out[0][0], ties, 1, N, 0.9, INFINITY, kept, 1),
           WB_ERR_BAD_ARGUMENT);
    expect("top_p nan p", wb_sampling_top_p_f32(&out[0][0], ties, 1, N, NAN, 1.0, kept, 1), WB_ERR_BAD_ARGUMENT);
    expect("top_k nan/inf rows", wb_sampling_top_k_f32(&out[0][0], &rows[0][0], 4, N, 2, kept, 2), WB_OK);
    expect("top_k zero rows", wb_sampling_top_k_f32(&out[0][0], &rows[0][0], 0, N, 2, kept, 1), WB_OK);
    for (int t = 0; t < N_BAD_THREADS; t++) {
        expect("top_k bad threads", wb_sampling_top_k_f32(&out[0][0], &rows[0][0], 4, N, 2, kept, BAD_THREADS[t]),
               WB_ERR_BAD_THREADS);
        expect("top_p bad threads", wb_sampling_top_p_f32(&out[0][0], &rows[0][0], 4, N, 0.5, 1.0, kept, BAD_THREADS[t]),
               WB_ERR_BAD_THREADS);
    }
}

static void test_moe(void)
{
    enum { T = 5, D = 3, K = 2, E = 3, C = 2 };
    float x[T * D], buffers[E * C * D], y[T * D], weights[T * K];
    int64_t experts[T * K] = {0, 1, 0, 2, 0, 1, 2, 2, 1, 0}, positions[T * K], counts[E];
    for (int i = 0; i < T * D; i++)
        x[i] = (float)i;
    for (int i = 0; i < T * K; i++)
        weights[i] = 0.5f;
    weights[3] = NAN;
    expect("moe dispatch", wb_moe_dispatch_f32(buffers, positions, counts, x, experts, T, D, K, E, C, 2), WB_OK);
    expect("moe combine", wb_moe_combine_f32(y, buffers, positions, experts, weights, T, D, K, E, C, 2), WB_OK);
    expect("moe dispatch zero tokens", wb_moe_dispatch_f32(buffers, positions, counts, x, experts, 0, D, K, E, C, 1),
           WB_OK);
    expect("moe dispatch zero width", wb_moe_dispatch_f32(buffers, positions, counts, x, experts, T, 0, K, E, C, 1),
           WB_OK);
    expect("moe dispatch zero slots", wb_moe_dispatch_f32(buffers, positions, counts, x, experts, T, D, 0, E, C, 1),
           WB_OK);
    expect("moe combine zero slots", wb_moe_combine_f32(y, buffers, positions, experts, weights, T, D, 0, E, C, 1),
           WB_OK);
    expect("moe dispatch again", wb_moe_dispatch_f32(buffers, positions, counts, x, experts, T, D, K, E, C, 1), WB_OK);
    int64_t bad[T * K];
    memcpy(bad, experts, sizeof bad);
    bad[7] = E;
    expect("moe dispatch expert out of range", wb_moe_dispatch_f32(buffers, positions, counts, x, bad, T, D, K, E, C, 1),
           WB_ERR_BAD_ARGUMENT);
    positions[0] = C;
    expect("moe combine position out of range", wb_moe_combine_f32(y, buffers, positions, experts, weights, T, D, K, E,
                                                                    C, 1), WB_ERR_BAD_ARGUMENT);
    for (int t = 0; t < N_BAD_THREADS; t++) {
        expect("moe dispatch bad threads", wb_moe_dispatch_f32(buffers, positions, counts, x, experts, T, D, K, E, C,
                                                               BAD_THREADS[t]), WB_ERR_BAD_THREADS);
        expect("moe combine bad threads", wb_moe_combine_f32(y, buffers, positions, experts, weights, T, D, K, E, C,
                                                             BAD_THREADS[t]), WB_ERR_BAD_THREADS);
    }
}

static void test_paged(void)
{
    enum { HEADS = 4, KV = 2, BLOCKS = 3, BS = 4, D = 8 };
    float pool[2 * KV * BLOCKS * BS * D], q[HEADS * D], out[HEADS * D], kn[KV * D], vn[KV * D];
    for (int i = 0; i < 2 * KV * BLOCKS * BS * D; i++)
        pool[i] = (float)(i % 11) * 0.1f;
    for (int i = 0; i < HEADS * D; i++)
        q[i] = 0.3f;
    for (int i = 0; i < KV * D; i++)
        kn[i] = vn[i] = 1.0f;
    q[3] = NAN;
    int64_t table[2] = {2, 0};
    expect("paged decode", wb_paged_decode_f32(out, q, pool, HEADS, KV, BLOCKS, BS, D, table, 2, 7, 0.35f, kn, vn, 0,
                                               2, 2), WB_OK);
    int64_t bad_table[2] = {2, BLOCKS};
    expect("paged block out of range", wb_paged_decode_f32(out, q, pool, HEADS, KV, BLOCKS, BS, D, bad_table, 2, 7,
                                                           0.35f, NULL, NULL, 0, 0, 1), WB_ERR_BAD_ARGUMENT);
    for (int t = 0; t < N_BAD_THREADS; t++)
        expect("paged bad threads", wb_paged_decode_f32(out, q, pool, HEADS, KV, BLOCKS, BS, D, table, 2, 7, 0.35f,
                                                        NULL, NULL, 0, 0, BAD_THREADS[t]), WB_ERR_BAD_THREADS);
}

/* Pieces over 128 bytes, one vocabulary a path: "aa", "aaaa", merged in rank order (backtracking, pairs tested
 * on the merge tree); "acbb" merged from the newer "ac" (backtracking, pairs tested by encoding); "abc", which
 * its own bytes do not make (the heap). */
static void test_bpe_long_pieces(void)
{
    static const char *extra[3][3] = {{"aa", "aaaa", NULL}, {"bb", "acbb", "ac"}, {"abc", NULL, NULL}};
    static const int want[3] = {2, 1, 0};
    static const int count[3] = {76, 76, 301};
    uint8_t text[301];
    for (int v = 0; v < 3; v++) {
        uint8_t blob[256 + 8];
        uint64_t offsets[260];
        size_t n_ranks = 256, at = 256;
        for (int i = 0; i < 256; i++) {
            blob[i] = (uint8_t)i;
            offsets[i] = (uint64_t)i;
        }
        for (int e = 0; e < 3 && extra[v][e]; e++) {
            size_t len = strlen(extra[v][e]);
            memcpy(blob + at, extra[v][e], len);
            offsets[n_ranks++] = at;
            at += len;
        }
        offsets[n_ranks] = at;
        wb_bpe *bpe = NULL;
        expect("bpe long new", wb_bpe_new(&bpe, blob, offsets, n_ranks, WB_PATTERN_CL100K), WB_OK);
        for (size_t i = 0; i < 301; i++)
            text[i] = v == 0 ? 'a' : (uint8_t)(v == 1 ? "acbb"[i % 4] : "abc"[i % 3]);
        uint32_t ids[301];
        size_t n_out = 0;
        expect("bpe long encode", wb_bpe_encode(bpe, text, 301, ids, 301, &n_out), WB_OK);
        expect("bpe long path", wb_bpe_backtracks(bpe), want[v]);
        expect("bpe long count", (int)n_out, count[v]);
        wb_bpe_free(bpe);
    }
    expect("bpe long path null", wb_bpe_backtracks(NULL), -1);
}

static void test_bpe(void)
{
    uint8_t blob[256];
    uint64_t offsets[257];
    for (int i = 0; i < 256; i++) {
        blob[i] = (uint8_t)i;
        offsets[i] = (uint64_t)i;
    }
    offsets[256] = 256;
    wb_bpe *bpe = NULL;
    expect("bpe new", wb_bpe_new(&bpe, blob, offsets, 256, WB_PATTERN_CL100K), WB_OK);
    const uint8_t text[] = "hello \xff\xfe world";
    uint64_t starts[3] = {0, 6, sizeof text - 1};
    uint32_t ids[sizeof text];
    uint64_t counts[2];
    expect("bpe encode_batch", wb_bpe_encode_batch(bpe, text, starts, 2, ids, counts, 2), WB_OK);
    expect("bpe encode_batch no texts", wb_bpe_encode_batch(bpe, text, starts, 0, ids, counts, 1), WB_OK);
    for (int t = 0; t < N_BAD_THREADS; t++)
        expect("bpe bad threads", wb_bpe_encode_batch(bpe, text, starts, 2, ids, counts, BAD_THREADS[t]),
               WB_ERR_BAD_THREADS);
    wb_bpe_free(bpe);
    test_bpe_long_pieces();
}

static void test_pretok(void)
{
    /* Invalid UTF-8: a lone continuation byte, an overlong form, a surrogate, a sequence cut at the end. */
    static const uint8_t nasty[] = "a\x80" "b \xc0\xaf  \xed\xa0\x80 'll\r\n\n123456 \xf0\x9f\x98";
    uint32_t ends[sizeof nasty];
    size_t n = 0;
    for (int pattern = WB_PATTERN_WHOLE; pattern <= WB_PATTERN_SMOLLM; pattern++) {
        expect("pretok nasty text", wb_pretok_split(pattern, nasty, sizeof nasty - 1, ends, sizeof nasty, &n), WB_OK);
        expect_true("pretok pieces end at the text's end", n > 0 && ends[n - 1] == sizeof nasty - 1);
        expect("pretok empty text", wb_pretok_split(pattern, nasty, 0, ends, sizeof nasty, &n), WB_OK);
        expect("pretok one-piece buffer", wb_pretok_split(pattern, nasty, sizeof nasty - 1, ends, 1, &n),
               pattern == WB_PATTERN_WHOLE ? WB_OK : WB_ERR_OUTPUT_FULL);
    }
    expect("pretok unknown pattern", wb_pretok_split(99, nasty, 3, ends, 3, &n), WB_ERR_BAD_PATTERN);
}

static void test_linear_and_quant(void)
{
    float x[2 * 32], w[3 * 32], out[2 * 3];
    for (int i = 0; i < 64; i++)
        x[i] = (float)(i % 7);
    for (int i = 0; i < 96; i++)
        w[i] = 0.25f;
    expect("linear", wb_linear_forward_f32(out, x, w, 2, 3, 32, 2), WB_OK);
    for (int t = 0; t < N_BAD_THREADS; t++)
        expect("linear bad threads", wb_linear_forward_f32(out, x, w, 2, 3, 32, BAD_THREADS[t]), WB_ERR_BAD_THREADS);
    expect("quant workspace overflow", wb_quant_workspace_bytes(INT64_C(1) << 40, INT64_C(1) << 40), WB_ERR_TOO_LARGE);
    expect("quant workspace bad size", wb_quant_workspace_bytes(1, 33), WB_ERR_BAD_SIZE);
    uint8_t blocks[3 * WB_QUANT_Q8_0_BYTES] = {0};
    int64_t bytes = wb_quant_workspace_bytes(2, 32);
    uint8_t *ws = malloc((size_t)bytes);
    expect("quant matmul", wb_quant_matmul_f32(out, x, blocks, WB_QUANT_Q8_0, 2, 3, 32, ws, bytes, 1), WB_OK);
    expect("quant matmul overflowing workspace", wb_quant_matmul_f32(out, x, blocks, WB_QUANT_Q8_0, INT64_C(1) << 40, 3,
                                                                     INT64_C(1) << 40, ws, bytes, 1), WB_ERR_TOO_LARGE);
    for (int t = 0; t < N_BAD_THREADS; t++)
        expect("quant bad threads", wb_quant_dequantize_f32(out, blocks, WB_QUANT_Q8_0, 3, 32, BAD_THREADS[t]),
               WB_ERR_BAD_THREADS);
    float bad_x[32] = {0};
    bad_x[5] = NAN;
    int8_t xq[32];
    float xd[1];
    int32_t xsum[1];
    expect("quantize_x NaN", wb_quant_quantize_x_f32(xq, xd, xsum, bad_x, 1, 32), WB_ERR_BAD_ARGUMENT);
    bad_x[5] = INFINITY;
    expect("quantize_x inf", wb_quant_quantize_x_f32(xq, xd, xsum, bad_x, 1, 32), WB_ERR_BAD_ARGUMENT);
    /* A block whose fp16 scale is NaN (0x7e00) or inf (0x7c00) dequantises without any undefined operation. */
    blocks[0] = 0x00, blocks[1] = 0x7e, blocks[WB_QUANT_Q8_0_BYTES] = 0x00, blocks[WB_QUANT_Q8_0_BYTES + 1] = 0x7c;
    float deq[3 * 32];
    expect("dequantize NaN/inf scales", wb_quant_dequantize_f32(deq, blocks, WB_QUANT_Q8_0, 3, 32, 2), WB_OK);
    free(ws);
}

/* Quantising every format, and Q6_K's dequantisation and float32 product (issue 14): buffers of exactly
 * the promised sizes on the heap, so ASan sees any byte past them; values that overflow an fp16 scale or
 * make 1 / d overflow (where a float-to-int conversion would be undefined without the kernels' clamps). */
static void test_quant_formats(void)
{
    const int formats[] = {WB_QUANT_Q8_0, WB_QUANT_Q4_0, WB_QUANT_Q4_1, WB_QUANT_Q6_K};
    const int64_t block_bytes[] = {WB_QUANT_Q8_0_BYTES, WB_QUANT_Q4_0_BYTES, WB_QUANT_Q4_1_BYTES, WB_QUANT_Q6_K_BYTES};
    const int64_t block_weights[] = {32, 32, 32, WB_QUANT_QK_K};
    const int64_t rows = 130, cols = 512; /* 66,560 weights: the parallel path */
    float *w = malloc((size_t)(rows * cols) * sizeof *w);
    float *back = malloc((size_t)(rows * cols) * sizeof *back);
    for (int64_t i = 0; i < rows * cols; i++)
        w[i] = (float)((i * 7919) % 201 - 100) * 0.01f;
    for (int64_t i = 0; i < cols; i++) {
        w[i] = 0.0f;                                   /* row 0: zeros */
        w[cols + i] = 1e-40f;                          /* row 1: subnormal, 1 / d overflows */
        w[2 * cols + i] = (i % 2 ? 3e38f : -3e38f);    /* row 2: max - min overflows */
        w[3 * cols + i] = (float)(i % 64) * 1e30f;     /* row 3: fp16 scales overflow */
    }
    for (int f = 0; f < 4; f++) {
        int64_t row_bytes = cols / block_weights[f] * block_bytes[f];
        uint8_t *q = malloc((size_t)(rows * row_bytes));
        for (int threads = 1; threads <= 2; threads++)
            expect("quantize", wb_quant_quantize_f32(q, w, formats[f], rows, cols, threads), WB_OK);
        expect("quantize odd rows", wb_quant_quantize_f32(q, w, formats[f], 3, cols, 1), WB_OK);
        expect("dequantize the quantised", wb_quant_dequantize_f32(back, q, formats[f], rows, cols, 2), WB_OK);
        expect("quantize zero rows", wb_quant_quantize_f32(NULL, NULL, formats[f], 0, cols, 1), WB_OK);
        expect("quantize zero cols", wb_quant_quantize_f32(NULL, NULL, formats[f], 3, 0, 1), WB_OK);
        expect("quantize odd cols", wb_quant_quantize_f32(q, w, formats[f], 1, 33, 1), WB_ERR_BAD_SIZE);
        expect("quantize part of a block", wb_quant_quantize_f32(q, w, formats[f], 1, block_weights[f] + 32, 1),
               f == 3 ? WB_ERR_BAD_SIZE : WB_OK);
        expect("quantize NULL", wb_quant_quantize_f32(NULL, w, formats[f], 1, cols, 1), WB_ERR_NULL_POINTER);
        for (int t = 0; t < N_BAD_THREADS; t++)
            expect("quantize bad threads", wb_quant_quantize_f32(q, w, formats[f], rows, cols, BAD_THREADS[t]),
                   WB_ERR_BAD_THREADS);
        float keep = w[5 * cols + 77];
        w[5 * cols + 77] = NAN;
        expect("quantize NaN", wb_quant_quantize_f32(q, w, formats[f], rows, cols, 2), WB_ERR_BAD_ARGUMENT);
        w[5 * cols + 77] = -INFINITY;
        expect("quantize -inf", wb_quant_quantize_f32(q, w, formats[f], rows, cols, 1), WB_ERR_BAD_ARGUMENT);
        w[5 * cols + 77] = keep;
        free(q);
    }
    expect("quantize unknown format", wb_quant_quantize_f32((uint8_t *)back, w, 12, 1, 256, 1), WB_ERR_BAD_ARGUMENT);

    /* Q6_K from random bytes (every scale and quant), NaN and inf d in two blocks; its products. */
    const int64_t qrows = 3, T = 5;
    uint8_t *q6 = malloc((size_t)(qrows * 2 * WB_QUANT_Q6_K_BYTES));
    uint32_t state = 12345u;
    for (int64_t i = 0; i < qrows * 2 * WB_QUANT_Q6_K_BYTES; i++) {
        state = state * 1664525u + 1013904223u;
        q6[i] = (uint8_t)(state >> 24);
    }
    q6[208] = 0x00, q6[209] = 0x7e;                                              /* d = NaN */
    q6[WB_QUANT_Q6_K_BYTES + 208] = 0x00, q6[WB_QUANT_Q6_K_BYTES + 209] = 0x7c; /* d = inf */
    expect("Q6_K dequantize specials", wb_quant_dequantize_f32(back, q6, WB_QUANT_Q6_K, qrows, cols, 1), WB_OK);
    expect("Q6_K dequantize 32 cols", wb_quant_dequantize_f32(back, q6, WB_QUANT_Q6_K, qrows, 32, 1), WB_ERR_BAD_SIZE);
    for (int t = 0; t < N_BAD_THREADS; t++)
        expect("Q6_K dequantize bad threads", wb_quant_dequantize_f32(back, q6, WB_QUANT_Q6_K, qrows, cols,
                                                                      BAD_THREADS[t]), WB_ERR_BAD_THREADS);
    float *x = malloc((size_t)(T * cols) * sizeof *x), *y = malloc((size_t)(T * qrows) * sizeof *y);
    for (int64_t i = 0; i < T * cols; i++)
        x[i] = (float)(i % 13) - 6.0f;
    int64_t bytes = wb_quant_workspace_bytes(T, cols);
    uint8_t *ws = malloc((size_t)bytes);
    for (int64_t t = 1; t <= T; t++) /* passes of 1 to 4 rows of x, and 4 + 1 */
        expect("Q6_K exact product", wb_quant_matmul_exact_f32(y, x, q6, WB_QUANT_Q6_K, t, qrows, cols, ws, bytes, 1),
               WB_OK);
    expect("Q6_K exact product, 256 cols", wb_quant_matmul_exact_f32(y, x, q6, WB_QUANT_Q6_K, 1, qrows, 256, ws,
                                                                     bytes, 2), WB_OK);
    expect("Q6_K int8 product", wb_quant_matmul_f32(y, x, q6, WB_QUANT_Q6_K, T, qrows, cols, ws, bytes, 1),
           WB_ERR_BAD_ARGUMENT);
    for (int t = 0; t < N_BAD_THREADS; t++)
        expect("Q6_K product bad threads", wb_quant_matmul_exact_f32(y, x, q6, WB_QUANT_Q6_K, T, qrows, cols, ws,
                                                                     bytes, BAD_THREADS[t]), WB_ERR_BAD_THREADS);
    x[300] = INFINITY;
    expect("Q6_K product inf x", wb_quant_matmul_exact_f32(y, x, q6, WB_QUANT_Q6_K, T, qrows, cols, ws, bytes, 1),
           WB_ERR_BAD_ARGUMENT);
    free(ws);
    free(x);
    free(y);
    free(q6);
    free(w);
    free(back);
}

/* word2vec (issue 15): wb_word2vec.c over a tiny corpus, with the inputs the Python wrapper never sends. */
static int w2v_call(const int32_t *ids, int64_t n_ids, const int64_t *starts, int64_t n_sentences, const int32_t *table,
                    int64_t table_size, int64_t window, int64_t negative, int sg, int n_threads)
{
    static float syn0[5 * 3], syn1[5 * 3];
    static uint64_t rng[4] = {1, 2, 3, 4};
    const float keep[5] = {0.5f, 1.0f, 2.0f, 2.0f, 2.0f};
    int64_t trained = -1;
    for (int i = 0; i < 15; i++) {
        syn0[i] = 0.01f * (float)(i % 7) - 0.03f;
    }
    return wb_word2vec_train_f32(syn0, syn1, rng, &trained, ids, n_ids, starts, n_sentences, keep, table, table_size, 5, 3,
                                 window, negative, sg, 0.025, 0, 100, n_threads);
}

static void test_word2vec(void)
{
    const int32_t ids[9] = {0, 1, 2, 3, 4, 0, 1, 0, 2};
    const int64_t starts[4] = {0, 5, 5, 9}; /* an empty sentence in the middle */
    const int32_t table[7] = {0, 0, 1, 1, 2, 3, 4};
    const int32_t bad_table[2] = {0, 5};
    const int32_t bad_ids[2] = {0, -1};
    const int64_t bad_starts[3] = {0, 4, 2};
    const int64_t two[2] = {0, 2};
    static int32_t long_sentence[WB_W2V_MAX_SENTENCE + 1];
    const int64_t long_starts[2] = {0, WB_W2V_MAX_SENTENCE + 1};
    float syn[15];
    uint64_t rng = 1;
    for (int sg = 0; sg <= 1; sg++) {
        expect("w2v train 1 thread", w2v_call(ids, 9, starts, 3, table, 7, 2, 3, sg, 1), WB_OK);
        expect("w2v train 4 threads", w2v_call(ids, 9, starts, 3, table, 7, 9, 1, sg, 4), WB_OK);
        expect("w2v window wider than the sentence", w2v_call(ids, 9, starts, 3, table, 7, 50, 2, sg, 2), WB_OK);
    }
    expect("w2v no sentences", w2v_call(ids, 9, starts, 0, table, 7, 2, 3, 1, 1), WB_OK);
    expect("w2v noise id out of range", w2v_call(ids, 9, starts, 3, bad_table, 2, 2, 3, 1, 1), WB_ERR_BAD_VOCAB);
    expect("w2v noise id out of range, threads", w2v_call(ids, 9, starts, 3, bad_table, 2, 2, 3, 0, 3), WB_ERR_BAD_VOCAB);
    expect("w2v corpus id out of range", w2v_call(bad_ids, 2, two, 1, table, 7, 2, 3, 1, 1), WB_ERR_BAD_VOCAB);
    expect("w2v starts decreasing", w2v_call(ids, 9, bad_starts, 2, table, 7, 2, 3, 1, 1), WB_ERR_BAD_SIZE);
    expect("w2v sentence too long", w2v_call(long_sentence, WB_W2V_MAX_SENTENCE + 1, long_starts, 1, table, 7, 2, 3, 1, 1), WB_ERR_BAD_SIZE);
    expect("w2v starts past the ids", w2v_call(ids, 8, starts, 3, table, 7, 2, 3, 1, 1), WB_ERR_BAD_SIZE);
    expect("w2v window past a sentence", w2v_call(ids, 9, starts, 3, table, 7, WB_W2V_MAX_SENTENCE + 1, 3, 1, 1),
           WB_ERR_BAD_SIZE);
    expect("w2v negative past the cap", w2v_call(ids, 9, starts, 3, table, 7, 2, WB_W2V_MAX_NEGATIVE + 1, 1, 1),
           WB_ERR_BAD_SIZE);
    expect("w2v window 0", w2v_call(ids, 9, starts, 3, table, 7, 0, 3, 1, 1), WB_ERR_BAD_SIZE);
    expect("w2v huge window", w2v_call(ids, 9, starts, 3, table, 7, INT64_MAX, 3, 1, 1), WB_ERR_BAD_SIZE);
    expect("w2v negative 0", w2v_call(ids, 9, starts, 3, table, 7, 2, 0, 1, 1), WB_ERR_BAD_SIZE);
    expect("w2v huge negative", w2v_call(ids, 9, starts, 3, table, 7, 2, INT64_MAX, 1, 1), WB_ERR_BAD_SIZE);
    expect("w2v empty table", w2v_call(ids, 9, starts, 3, table, 0, 2, 3, 1, 1), WB_ERR_BAD_SIZE);
    expect("w2v bad mode", w2v_call(ids, 9, starts, 3, table, 7, 2, 3, 2, 1), WB_ERR_BAD_ARGUMENT);
    expect("w2v 0 threads", w2v_call(ids, 9, starts, 3, table, 7, 2, 3, 1, 0), WB_ERR_BAD_THREADS);
    expect("w2v 100000 threads", w2v_call(ids, 9, starts, 3, table, 7, 2, 3, 1, 100000), WB_ERR_BAD_THREADS);
    expect("w2v dim past int32",
           wb_word2vec_train_f32(syn, syn, &rng, NULL, ids, 9, starts, 3, NULL, table, 7, 5, (int64_t)INT32_MAX + 1, 2, 3,
                                 1, 0.025, 0, 100, 1), WB_ERR_BAD_SIZE);
    expect("w2v nan alpha",
           wb_word2vec_train_f32(syn, syn, &rng, NULL, ids, 9, starts, 3, NULL, table, 7, 5, 3, 2, 3, 1, NAN, 0, 100, 1),
           WB_ERR_BAD_ARGUMENT);
    expect("w2v null syn0",
           wb_word2vec_train_f32(NULL, syn, &rng, NULL, ids, 9, starts, 3, NULL, table, 7, 5, 3, 2, 3, 1, 0.025, 0, 100, 1),
           WB_ERR_NULL_POINTER);
}

/* Vector search (issue 15): heaps fed NaN and ties, IVF offsets and probes out of range, HNSW graphs that are
 * empty, full, or made of one repeated vector (every similarity tied). */
static void test_search(void)
{
    enum { NQ = 3, NB = 37, K = 5, D = 4 };
    float scores[NQ * NB], best[NQ * K], bias[NB];
    int64_t ids[NQ * K];
    for (int i = 0; i < NQ * NB; i++)
        scores[i] = (float)(i % 5);
    scores[7] = NAN;
    for (int i = 0; i < NB; i++)
        bias[i] = -0.5f * (float)(i % 3);
    expect("topk init", wb_search_topk_init_f32(best, ids, NQ, K), WB_OK);
    expect("topk merge", wb_search_topk_merge_f32(best, ids, scores, bias, NQ, NB, NB, 0, K, 2), WB_OK);
    expect("topk merge narrow ld", wb_search_topk_merge_f32(best, ids, scores, NULL, NQ, 20, NB, NB, K, 1), WB_OK);
    expect("topk finish", wb_search_topk_finish_f32(best, ids, NQ, K, 2), WB_OK);
    for (int i = 0; i < NQ * K; i++)
        expect_true("topk ids in range", ids[i] >= 0 && ids[i] < NB + 20);
    expect("topk ld < nb", wb_search_topk_merge_f32(best, ids, scores, NULL, NQ, NB, NB - 1, 0, K, 1),
           WB_ERR_BAD_STRIDE);
    expect("topk k 0", wb_search_topk_init_f32(best, ids, NQ, 0), WB_ERR_BAD_SIZE);
    expect("topk k too large", wb_search_topk_finish_f32(best, ids, NQ, WB_SEARCH_MAX_K + 1, 1), WB_ERR_BAD_SIZE);
    expect("topk overflow", wb_search_topk_merge_f32(best, ids, scores, NULL, INT64_C(1) << 40, 1, INT64_C(1) << 40,
                                                     0, K, 1), WB_ERR_TOO_LARGE);
    expect("topk id overflow", wb_search_topk_merge_f32(best, ids, scores, NULL, 1, 2, 2, INT64_MAX, K, 1),
           WB_ERR_TOO_LARGE);
    expect("topk zero queries", wb_search_topk_merge_f32(NULL, NULL, NULL, NULL, 0, NB, NB, 0, K, 1), WB_OK);
    expect("topk null", wb_search_topk_merge_f32(best, NULL, scores, NULL, NQ, NB, NB, 0, K, 1),
           WB_ERR_NULL_POINTER);
    for (int t = 0; t < N_BAD_THREADS; t++) {
        expect("topk merge bad threads", wb_search_topk_merge_f32(best, ids, scores, NULL, NQ, NB, NB, 0, K,
                                                                  BAD_THREADS[t]), WB_ERR_BAD_THREADS);
        expect("topk finish bad threads", wb_search_topk_finish_f32(best, ids, NQ, K, BAD_THREADS[t]),
               WB_ERR_BAD_THREADS);
    }

    /* IVF: 3 lists of sizes 4, 0, 2 over 6 vectors; fewer candidates than k pad with -1. */
    float vectors[6 * D], queries[NQ * D];
    for (int i = 0; i < 6 * D; i++)
        vectors[i] = (float)((i * 7) % 5) - 2.0f;
    for (int i = 0; i < NQ * D; i++)
        queries[i] = (float)(i % 3);
    int64_t list_ids[6] = {5, 0, 2, 3, 1, 4}, offsets[4] = {0, 4, 4, 6}, probes[NQ * 2] = {0, 1, 2, -1, 1, -1};
    expect("ivf scan", wb_search_ivf_scan_f32(best, ids, queries, NQ, vectors, NULL, list_ids, offsets, 3, D, probes,
                                              2, K, 2), WB_OK);
    expect_true("ivf padding", ids[2 * K] == -1 && best[2 * K] == -INFINITY && ids[K + 2] == -1);
    int64_t bad_probes[NQ * 2] = {0, 3, 0, 0, 0, 0};
    expect("ivf probe out of range", wb_search_ivf_scan_f32(best, ids, queries, NQ, vectors, NULL, list_ids, offsets,
                                                            3, D, bad_probes, 2, K, 1), WB_ERR_BAD_ARGUMENT);
    int64_t bad_offsets[4] = {0, 5, 4, 6};
    expect("ivf offsets decrease", wb_search_ivf_scan_f32(best, ids, queries, NQ, vectors, NULL, list_ids,
                                                          bad_offsets, 3, D, probes, 2, K, 1), WB_ERR_BAD_ARGUMENT);
    for (int t = 0; t < N_BAD_THREADS; t++)
        expect("ivf bad threads", wb_search_ivf_scan_f32(best, ids, queries, NQ, vectors, NULL, list_ids, offsets, 3,
                                                         D, probes, 2, K, BAD_THREADS[t]), WB_ERR_BAD_THREADS);

    /* HNSW */
    wb_hnsw *h = NULL;
    expect("hnsw M 1", wb_hnsw_new(&h, D, 10, 1, 10, 0), WB_ERR_BAD_SIZE);
    expect("hnsw M too large", wb_hnsw_new(&h, D, 10, WB_HNSW_MAX_M, 10, 0), WB_ERR_BAD_SIZE);
    expect("hnsw capacity overflow", wb_hnsw_new(&h, INT64_C(1) << 40, INT64_C(1) << 30, 4, 10, 0),
           WB_ERR_TOO_LARGE);
    expect("hnsw null out", wb_hnsw_new(NULL, D, 10, 4, 10, 0), WB_ERR_NULL_POINTER);
    wb_hnsw_free(NULL);
    enum { N = 300 };
    float *x = malloc(sizeof(float) * N * D);
    for (int i = 0; i < N * D; i++)
        x[i] = (float)sin(0.37 * i);
    expect("hnsw new", wb_hnsw_new(&h, D, N, 4, 16, 42), WB_OK);
    expect("hnsw search empty", wb_hnsw_search_f32(h, best, ids, queries, NQ, K, 8, 1), WB_OK);
    expect_true("hnsw empty pads", ids[0] == -1 && ids[NQ * K - 1] == -1);
    expect("hnsw add", wb_hnsw_add_f32(h, x, N / 2), WB_OK);
    expect("hnsw add rest", wb_hnsw_add_f32(h, x + (N / 2) * D, N - N / 2), WB_OK);
    expect("hnsw add past capacity", wb_hnsw_add_f32(h, x, 1), WB_ERR_BAD_SIZE);
    expect("hnsw size", wb_hnsw_size(h), N);
    expect("hnsw search", wb_hnsw_search_f32(h, best, ids, queries, NQ, K, 1, 2), WB_OK);
    for (int i = 0; i < NQ * K; i++)
        expect_true("hnsw ids in range", ids[i] >= 0 && ids[i] < N);
    for (int t = 0; t < N_BAD_THREADS; t++)
        expect("hnsw bad threads", wb_hnsw_search_f32(h, best, ids, queries, NQ, K, 8, BAD_THREADS[t]),
               WB_ERR_BAD_THREADS);
    int32_t links[8];
    int64_t count;
    expect("hnsw links", wb_hnsw_links(h, links, 8, 0, 0, &count), WB_OK);
    expect_true("hnsw links count", count >= 1 && count <= 8);
    expect("hnsw links small buffer", wb_hnsw_links(h, links, 0, 0, 0, &count), WB_ERR_OUTPUT_FULL);
    expect("hnsw links bad node", wb_hnsw_links(h, links, 8, N, 0, &count), WB_ERR_BAD_ARGUMENT);
    expect("hnsw links above the top", wb_hnsw_links(h, links, 8, 0, WB_HNSW_MAX_LEVEL + 5, &count), WB_OK);
    expect_true("hnsw bytes", wb_hnsw_bytes(h) > (int64_t)(N * D * sizeof(float)));
    wb_hnsw_free(h);
    /* one vector repeated: every similarity ties, the heuristic keeps one link, searches still end */
    for (int i = 0; i < N * D; i++)
        x[i] = (float)(i % D);
    expect("hnsw tied new", wb_hnsw_new(&h, D, N, 3, 8, 1), WB_OK);
    expect("hnsw tied add", wb_hnsw_add_f32(h, x, N), WB_OK);
    expect("hnsw tied search", wb_hnsw_search_f32(h, best, ids, queries, NQ, K, K, 1), WB_OK);
    wb_hnsw_free(h);
    free(x);
}

/* The selective scan (issue 23): zero and one steps, n = 1, tails past the vector width, the largest n, NaN, a
 * carried state that aliases the output state, and every refusal. */
static int scan_call(float *y, float *last, const float *u, const float *delta, const float *A, const float *B,
                     const float *C, const float *D, const float *h0, int64_t batch, int64_t d, int64_t L, int64_t n,
                     int softplus, int threads)
{
    return wb_scan_selective_f32(y, last, u, delta, A, B, C, D, h0, batch, d, L, n, softplus, threads);
}

static void test_scan(void)
{
    enum { BATCH = 2, D = 3, L = 7, N = WB_SCAN_MAX_STATE };
    float *u = malloc(BATCH * D * L * sizeof(float)), *delta = malloc(BATCH * D * L * sizeof(float));
    float *A = malloc(D * N * sizeof(float)), *B = malloc(BATCH * N * L * sizeof(float));
    float *C = malloc(BATCH * N * L * sizeof(float)), *Dk = malloc(D * sizeof(float));
    float *y = malloc(BATCH * D * L * sizeof(float)), *state = malloc(BATCH * D * N * sizeof(float));
    for (int i = 0; i < BATCH * D * L; i++) {
        u[i] = (float)(i % 5) - 2.0f;
        delta[i] = 0.01f * (float)(i % 7) - 0.02f;
    }
    for (int i = 0; i < D * N; i++)
        A[i] = -1.0f - (float)(i % 16);
    for (int i = 0; i < BATCH * N * L; i++) {
        B[i] = 0.25f * (float)(i % 9) - 1.0f;
        C[i] = 0.5f - 0.125f * (float)(i % 11);
    }
    for (int i = 0; i < D; i++)
        Dk[i] = 1.0f + (float)i;
    for (int i = 0; i < BATCH * D * N; i++)
        state[i] = 0.5f;

    /* one step, one state entry: h = 0.5 * 2 * 1 = 1, y = 3 * 1 */
    float one_u = 1.0f, one_dt = 0.5f, one_a = -1.0f, one_b = 2.0f, one_c = 3.0f, one_y = 0.0f, one_h = 0.0f;
    expect("scan L 1 n 1", scan_call(&one_y, &one_h, &one_u, &one_dt, &one_a, &one_b, &one_c, NULL, NULL, 1, 1, 1, 1,
                                     0, 1), WB_OK);
    expect_true("scan L 1 n 1 value", fabsf(one_y - 3.0f) < 1e-6f && fabsf(one_h - 1.0f) < 1e-6f);
    static const int64_t SIZES[] = {1, 5, 8, 16, 17, 40, 200, N};
    for (int s = 0; s < (int)(sizeof SIZES / sizeof SIZES[0]); s++) {
        int64_t n = SIZES[s];
        expect("scan softplus, D, carried state aliasing the output",
               scan_call(y, state, u, delta, A, B, C, Dk, state, BATCH, D, L, n, 1, 2), WB_OK);
        expect("scan no softplus, no D, no states", scan_call(y, NULL, u, delta, A, B, C, NULL, NULL, BATCH, D, L, n, 0,
                                                              1), WB_OK);
        int finite = 1;
        for (int i = 0; i < BATCH * D * L; i++)
            finite &= isfinite(y[i]);
        expect_true("scan finite inputs give finite outputs", finite);
    }
    /* A sequence longer than the kernel's blocks of 64 steps (two full ones and a partial one): the long path. */
    enum { LONG_L = 130, LONG_D = 2, LONG_N = 17 };
    float *lu = calloc(LONG_D * LONG_L, sizeof(float)), *ly = malloc(LONG_D * LONG_L * sizeof(float));
    float *lb = calloc(LONG_N * LONG_L, sizeof(float)), *lc = calloc(LONG_N * LONG_L, sizeof(float));
    for (int i = 0; i < LONG_D * LONG_L; i++)
        lu[i] = (float)(i % 3) - 1.0f;
    for (int i = 0; i < LONG_N * LONG_L; i++)
        lb[i] = lc[i] = 0.5f;
    expect("scan long sequence", scan_call(ly, state, lu, lu, A, lb, lc, Dk, NULL, 1, LONG_D, LONG_L, LONG_N, 1, 2),
           WB_OK);
    expect_true("scan long sequence is finite", isfinite(ly[LONG_L - 1]) && isfinite(ly[LONG_D * LONG_L - 1]));
    free(lu);
    free(ly);
    free(lb);
    free(lc);

    float carried = state[BATCH * D * 16 - 1];
    expect("scan L 0", scan_call(y, state, u, delta, A, B, C, Dk, state, BATCH, D, 0, 16, 1, 2), WB_OK);
    expect_true("scan L 0 keeps the carried state", state[BATCH * D * 16 - 1] == carried);
    expect("scan L 0 from zeros", scan_call(y, state, u, delta, A, B, C, Dk, NULL, BATCH, D, 0, 16, 1, 2), WB_OK);
    expect_true("scan L 0 from zeros leaves zeros", state[0] == 0.0f && state[BATCH * D * 16 - 1] == 0.0f);
    expect("scan zero batch", scan_call(y, state, u, delta, A, B, C, Dk, NULL, 0, D, L, 16, 1, 2), WB_OK);
    expect("scan zero channels", scan_call(y, state, u, delta, A, B, C, Dk, NULL, BATCH, 0, L, 16, 1, 2), WB_OK);

    /* NaN in delta (through softplus) and in u: only the outputs they reach turn NaN. */
    delta[0] = NAN;
    u[D * L + 3] = NAN;
    expect("scan NaN inputs", scan_call(y, state, u, delta, A, B, C, Dk, NULL, BATCH, D, L, 16, 1, 2), WB_OK);
    expect_true("scan NaN delta spreads along its channel", isnan(y[0]) && isnan(y[L - 1]));
    expect_true("scan NaN stays in its channel", isfinite(y[L]) && isfinite(y[2 * L - 1]));
    expect_true("scan NaN u spreads from its step", isfinite(y[D * L + 2]) && isnan(y[D * L + 3]));
    delta[0] = 0.0f;
    u[D * L + 3] = 0.0f;

    expect("scan n 0", scan_call(y, state, u, delta, A, B, C, Dk, NULL, BATCH, D, L, 0, 1, 1), WB_ERR_BAD_SIZE);
    expect("scan n too large", scan_call(y, state, u, delta, A, B, C, Dk, NULL, BATCH, D, L, N + 1, 1, 1),
           WB_ERR_BAD_SIZE);
    expect("scan negative batch", scan_call(y, state, u, delta, A, B, C, Dk, NULL, -1, D, L, 16, 1, 1),
           WB_ERR_BAD_SIZE);
    expect("scan negative d", scan_call(y, state, u, delta, A, B, C, Dk, NULL, BATCH, -1, L, 16, 1, 1),
           WB_ERR_BAD_SIZE);
    expect("scan negative L", scan_call(y, state, u, delta, A, B, C, Dk, NULL, BATCH, D, -1, 16, 1, 1),
           WB_ERR_BAD_SIZE);
    expect("scan sizes overflow", scan_call(y, state, u, delta, A, B, C, Dk, NULL, INT64_MAX / 2, 4, L, 16, 1, 1),
           WB_ERR_TOO_LARGE);
    expect("scan batch x L x n overflows", scan_call(y, state, u, delta, A, B, C, Dk, NULL, 1, 1, INT64_MAX / 8, 16, 1,
                                                     1), WB_ERR_TOO_LARGE);
    expect("scan NULL y", scan_call(NULL, state, u, delta, A, B, C, Dk, NULL, BATCH, D, L, 16, 1, 1),
           WB_ERR_NULL_POINTER);
    expect("scan NULL B", scan_call(y, state, u, delta, A, NULL, C, Dk, NULL, BATCH, D, L, 16, 1, 1),
           WB_ERR_NULL_POINTER);
    expect("scan NULL delta", scan_call(y, state, u, NULL, A, B, C, Dk, NULL, BATCH, D, L, 16, 1, 1),
           WB_ERR_NULL_POINTER);
    for (int t = 0; t < N_BAD_THREADS; t++)
        expect("scan bad threads", scan_call(y, state, u, delta, A, B, C, Dk, NULL, BATCH, D, L, 16, 1,
                                             BAD_THREADS[t]), WB_ERR_BAD_THREADS);
    free(u);
    free(delta);
    free(A);
    free(B);
    free(C);
    free(Dk);
    free(y);
    free(state);
}

int main(void)
{
    test_expf();
    test_softmax();
    test_attention();
    test_attention_tiles();
    test_roofline();
    test_sampling();
    test_moe();
    test_paged();
    test_bpe();
    test_pretok();
    test_linear_and_quant();
    test_quant_formats();
    /* search (issue 15) */
    test_search();
    /* word2vec (issue 15) */
    test_word2vec();
    /* selective scan (issue 23) */
    test_scan();
    if (failures) {
        fprintf(stderr, "%d sanitizer harness check(s) failed\n", failures);
        return 1;
    }
    printf("sanitize: every kernel passed its edge cases under ASan and UBSan\n");
    return 0;
}
