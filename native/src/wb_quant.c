/* wb_quant.c - GGUF block formats Q8_0, Q4_0, Q4_1 and the K-quant Q6_K:
 * quantisation, dequantisation and the two quantised matrix products a
 * decoder can run for every token.
 *
 * Built by native/build.py into workbench_engines._native; the NumPy
 * reference the lesson explains is engines/quant/reference.py, and
 * engines/quant/native.py checks every argument before calling in here.
 *
 * Layouts, exactly ggml's (ggml-common.h block_q8_0 / block_q4_0 /
 * block_q4_1; ggml-quants.c dequantize_row_*): 32 weights per block.
 *   Q8_0  fp16 d | int8 q[32]             w = d q        34 B = 8.5 bits/weight
 *   Q4_0  fp16 d | uint8 qs[16]           w = d (n - 8)  18 B = 4.5 bits/weight
 *   Q4_1  fp16 d | fp16 m | uint8 qs[16]  w = d n + m    20 B = 5.0 bits/weight
 * (bits per weight = bytes per block * 8 / 32: 0.5 bit each for d and m.)
 * Byte qs[j] holds weight j in its low nibble and weight j + 16 in its high
 * nibble: the low nibbles of the 16 bytes are weights 0..15, the high
 * nibbles weights 16..31 (not neighbours packed together).
 *
 * Dequantisation is bit-exact against gguf.quants.dequantize (NumPy, fp32):
 * fp16 -> fp32 is exact (F16C's vcvtph2ps where the build has it, else the
 * bit-level conversion below, subnormals, inf and NaN included), and d * n is
 * exact in fp32 (11 significant bits times an integer of at most 8 bits fits
 * in 24), so d * n + m rounds once whether or not the compiler fuses it into
 * an FMA, as NumPy's separate multiply and add do.
 *
 * Both products compute out[T, rows] = x[T, cols] W[rows, cols]^T from the
 * blocks as stored; they differ in what they do with x.
 *
 * wb_quant_matmul_f32, the int8 product, follows
 * llama.cpp (ggml_vec_dot_q4_1_q8_1 and friends): each 32-element block of x
 * is rounded to int8 with one scale dx = max|x| / 127 (ggml's
 * quantize_row_q8_1_ref, round half away from zero, the scale kept in fp32
 * as it never leaves the call), with its sum sx = sum xq. A block product is
 * then an integer dot product and two scales:
 *   Q8_0  dw dx sum q xq
 *   Q4_0  dw dx (sum n xq - 8 sx)
 *   Q4_1  dw dx sum n xq + mw dx sx        (ggml keeps dx sx in block_q8_1.s)
 * Why 8-bit activations: the integer dot reads a weight block's 18-34 bytes
 * as they are, where a dequantised block is 128 bytes of fp32 to read (3.8-7x
 * as many, and as many again to write when it is dequantised per call), and
 * one int8 multiply-add instruction does 32 products. The price is the
 * rounding of x, at most dx / 2 per element. Measured on SmolLM2-135M's
 * blk.0, 15 and 29 projections (q, k, v, output, gate, up, down) with inputs
 * made from 64 real token embeddings (RMS-normalised with the layer's norm
 * weights; SiLU(gate) * up for down): the result differs from the fp32 product of the dequantised weights by 0.4-1.6%
 * of the output's norm (median per projection), 2.3% at most. That is the
 * order of the weights' own 4-bit rounding (Q8_0 -> Q4_1 moves the output
 * head's logits by 0.7%), and the same trade llama.cpp makes.
 * tests/test_quant.py holds every output to the bound that rounding allows.
 * It is not enough for a model that must pick the same next token as its
 * float32 twin: SmolLM2-135M agrees on the top token at 96.35% of 2,000
 * positions (KL 0.0026 nats/token), the rounding flipping near-ties.
 *
 * Integer kernels, one per build, chosen at compile time from -march's
 * macros (wb_quant_simd_path() names the build's path for both products). Times: blk.0.ffn_up (1536 x 576
 * Q4_1, T = 1, one thread) and token_embd (49152 x 576 Q8_0) on the AMD EPYC
 * (Zen 4) this was written on, in C without Python:
 *   avx512vnni  _mm256_dpbusd_epi32 (AVX512-VNNI + VL): 32 u8 x s8 products
 *               summed in fours into 8 int32 lanes, one instruction.
 *               29 us / 1.2 ms. Kept. (Zen 4 splits 512-bit operations in
 *               two, so 256-bit registers lose nothing there.)
 *   avx2        _mm256_maddubs_epi16 then _mm256_madd_epi16 by ones: the same
 *               lanes in two instructions. 37 us / 1.4 ms. Kept for AVX2 CPUs.
 *   scalar      C loops, the readable statement of the sum; the compiler
 *               vectorises some of it. 210 us / 6 ms built for plain x86-64.
 *               Kept: the portable path (arm64, old x86).
 * Both SIMD kernels multiply unsigned bytes by signed bytes. 4-bit weights
 * (nibbles 0..15) go in as they are. Q8_0's signed weights take the sign
 * trick with maddubs, |q| times (xq with q's sign), as ggml's
 * mul_sum_i8_pairs does; with dpbusd they take the offset q + 128 (then
 * -128 sx), one xor per weight register, done once however many activation
 * rows meet it, where the sign trick costs two operations per product.
 * Nothing overflows: |xq| <= 127, a maddubs pair is at most 2 * 128 * 127 =
 * 32512 (Q8_0's two halves are widened before they are added), and a block's
 * sum, at most 32 * 128 * 127 in size, is exact in int32 and in fp32. So
 * every path gives the same integer per block (the test builds the scalar
 * and AVX2 kernels beside this one and compares them); only the order in
 * which the scaled block products are summed in fp32 differs by path.
 *
 * The SIMD kernels take blocks k and k + 4 of a group of 8 as a pair, one per
 * 128-bit half of a register: a 4-bit pair unpacks with one shift and two
 * masks, no shuffle, because the activations are stored in the matching
 * order (x_offset), and after the multiply-adds two levels of hadd leave the
 * 8 block sums in block order. The fp16 scales of a group come from four
 * masked loads and two word permutes (vpermt2w) rather than a gather (with
 * the gather, ffn_up took 35 us instead of 29). Output rows are split
 * across threads; a row's weights are unpacked once per group and serve up
 * to TT activation rows (a short prefill reads each weight once per TT
 * tokens).
 *
 * wb_quant_matmul_exact_f32, the float32 product, keeps x as it is and
 * dequantises the weights in registers ("dequantise on the fly", the other
 * way llama.cpp's history knows). With q the block's integers (Q8_0 q,
 * Q4_0 n - 8, Q4_1 n) and m = 0 but for Q4_1,
 *   out = sum over blocks of  d sum_i q_i x_i  +  m sum_i x_i
 * where sum_i x_i, one number per block of x, is summed once per call (into
 * the workspace) and shared by all rows. Per block: the 16 bytes of nibbles
 * become 16 int32 lanes (vpmovzxbd), a mask and a shift split them into
 * weights 0..15 and 16..31, vcvtdq2ps makes them floats (exact: at most 8
 * bits), a multiply and an FMA against x give 16 partial dot products, and
 * one FMA adds them times d into the row's accumulator; (d, m), converted
 * together from fp16, meet (0, sum x) in a 128-bit FMA whose lane 1 collects
 * the m terms. The result is the product of the dequantised weights with x
 * itself, to float32 round-off: every term passes through at most nb + 35
 * roundings (nb = cols / 32: up to 32 in a block's dot product or sum of x,
 * one per block in the row's accumulator, the final lane sums, and Q4_1's
 * rounding of d n + m in the weights it is held to), so
 *   |error| <= (nb + 40) 2^-24 sum_i (|d q_i| + |m|) |x_i|,
 * that is (nb + 40) 2^-24 |x|.|W| for Q8_0 and Q4_0, and up to 2 |m| more per
 * weight for Q4_1, whose minimum is added and taken away inside d n + m.
 * On SmolLM2's blk.0 projections with real inputs the bound is 1.6e-5 to
 * 2.8e-5 of |x|.|W| (median per output); the errors measured are at most
 * 2.6e-7 of it (1.3% of the bound) and 2e-7 to 5e-7 of the output's norm,
 * where the int8 product is off by 0.5% to 1.7%.
 *
 * Float32 kernels (same build paths). Cycles per Q4_1 block are for the
 * inner loop alone on L1-resident blocks at 3.65 GHz; GB/s for blk.0.ffn_up
 * (1536 x 576, 553 KB, L2-resident), one thread, Zen 4 (2 vCPUs, shared, so
 * every figure is a median of interleaved runs):
 *   table       w = table[n] by vpermps from a 16-entry table d * iota + m
 *               made per block with one FMA, then FMA w x: the weights bit
 *               for bit. 6.4-6.6 cycles/block. Dropped for decoding: one more
 *               FMA-port operation per block than the split (a long prefill,
 *               2 instead of 3 per row of x and block, would want it back).
 *   convert     w = fma(float(n), d, m), then FMA w x: 6.1 cycles. Dropped:
 *               two FMAs per 16 weights before the products even start.
 *   scales      d and m converted for a whole row first (a 16-lane gather,
 *               or scalar F16C into a stack array), then broadcast from
 *               memory: 6.0-7.2 cycles against 5.6 inline. Dropped.
 *   shifts      the 16 bytes broadcast to four 128-bit lanes and split by
 *               vpsrlvd (x permuted once per call to match), no vpmovzxbd:
 *               5.9 cycles. Dropped.
 *   split       d sum n x + m sum x, as above: 5.4 cycles in the loop, 6.9
 *               in the kernel (the m term, per-row sums, the L2 stream):
 *               10.6 GB/s against the int8 kernel's 16.8. Kept. A vpermps
 *               from an iota table for the low nibbles (no mask) gained
 *               2.6%, not worth the extra explanation.
 * Zen 4 runs a 512-bit FMA per cycle, so the three FMAs of a block alone
 * cap Q4_1 at 24 GB/s per core; with the unpacking, about nine 512-bit
 * operations a block, the loop is compute-bound on one core and nearly
 * memory-bound on two. The AVX2 path is the same algebra on 8 lanes (11.3
 * GB/s on the whole model here, against 11.6 for AVX-512: Zen 4 splits 512-bit
 * operations in two); the scalar path is plain loops (3.5 GB/s built for
 * plain x86-64).
 *
 * One decode token of SmolLM2-135M: all 210 Q4_1 matrices of the 30 layers
 * and the 49152 x 576 Q8_0 output head, 96.4 MB of blocks, T = 1, median
 * GB/s of blocks read (a streaming sum of the same 96 MB reads 20.4 GB/s on
 * one core, 30.8 on two):
 *                           1 thread          2 threads
 *   int8, C alone           14.2 (6.8 ms)     21.0 (4.6 ms)
 *   float32, C alone        11.6 (8.3 ms)     20.2 (4.8 ms)
 *   int8, PreparedQuant     12.8 (7.5 ms)     19.1 (5.0 ms)
 *   float32, PreparedQuant  10.5 (9.2 ms)     17.6 (5.5 ms)
 *   torch fp32 F.linear     45.1 ms           45.4 ms  (537 MB of dequantised
 *                           weights, 11.9 GB/s: 4.9-8x slower per token)
 * Verdict: the float32 product costs 20% more than int8 on one core and 5-9%
 * on two, and is exact to float32 round-off, so it is the default; int8
 * stays for the lesson and for llama.cpp parity. A prefill is compute-bound
 * for both: T = 64 takes 5.5 ms per row of x (float32) and 3.0 ms (int8).
 *
 * Q6_K (ggml-common.h block_q6_K; ggml-quants.c dequantize_row_q6_K and
 * quantize_row_q6_K_ref) packs 256 weights as 6-bit L with 16 int8 sub-scales
 * and one fp16 d, w = d sc (L - 32): 210 B = 6.5625 bits/weight. It has the
 * float32 product only (llama.cpp's int8 one needs block_q8_K activations,
 * 256 to a block). Its kernel unpacks one 16-weight sub-block at a time into
 * 16 float lanes (vpmovzxbd of the ql and qh bytes, two shifts, masks, an or,
 * vcvtdq2ps), scales them by the exact int8 sub-scale and FMAs them with x;
 * d scales the super-block's lanes. blk.0.ffn_down requantised as Q6_K (576 x
 * 1536, T = 1, one thread, C alone, Zen 4, loaded machine):
 *   bytes       the 256 integers unpacked into an int8 array first, then a
 *               loop the compiler vectorises: 460-550 us (a 32-byte store
 *               read back as 16-byte loads). Dropped.
 *   subblock    the f16x_t helpers below, each path's registers: 101 us
 *               (AVX-512 and AVX2 alike; 690 us for the scalar path). Kept;
 *               the Q8_0 float32 kernel takes 45 us on the same shape, the
 *               unpacking (about 12 operations per 16 weights) is the cost.
 *
 * Quantisation (wb_quant_quantize_f32, the last section) is ggml's
 * quantize_row_*_ref with every operation rounded on its own, as written.
 *
 * -DWB_QUANT_FORCE_SCALAR (scalar kernels, portable fp16 conversion) and
 * -DWB_QUANT_FORCE_AVX2 build the other paths on a machine that could run a
 * better one; tests/test_quant.py builds both beside the installed module.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "wb_checked.h"
#include "wb_quant.h"
#include "wb_status.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "GGUF blocks are little-endian; this file reads them in place"
#endif

#if defined(WB_QUANT_FORCE_SCALAR)
#define PATH_SCALAR 1
#elif defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512BW__) && \
    !defined(WB_QUANT_FORCE_AVX2)
#define PATH_AVX512VNNI 1
#elif defined(__AVX2__) && defined(__F16C__) && defined(__FMA__) /* FMA: the float32 kernel's */
#define PATH_AVX2 1
#else
#define PATH_SCALAR 1
#endif

#if defined(__F16C__) && !defined(WB_QUANT_FORCE_SCALAR)
#define USE_F16C 1
#endif

#if defined(PATH_AVX512VNNI) || defined(PATH_AVX2) || defined(USE_F16C)
#include <immintrin.h>
#endif

#define TT 8 /* activation rows per pass over a row of weights */
#define PARALLEL_MIN_WEIGHTS 32768

const char *wb_quant_simd_path(void)
{
#if defined(PATH_AVX512VNNI)
    return "avx512vnni";
#elif defined(PATH_AVX2)
    return "avx2";
#else
    return "scalar";
#endif
}

/* ------------------------------------------------------------------------ */
/* fp16 and block geometry                                                  */
/* ------------------------------------------------------------------------ */

static inline float fp16_to_f32(uint16_t h)
{
#if defined(USE_F16C)
    return _cvtsh_ss(h);
#else
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1Fu;
    uint32_t mantissa = h & 0x3FFu;
    uint32_t bits;
    if (exponent == 0x1F) {
        bits = sign | 0x7F800000u | (mantissa << 13); /* inf, or NaN with its payload */
    } else if (exponent != 0) {
        bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    } else {
        float f = (float)mantissa * 0x1p-24f; /* zero or subnormal: mantissa * 2^-24, exact */
        return sign ? -f : f;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
#endif
}

static inline float fp16_at(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return fp16_to_f32(h);
}

/* Bytes per block of a format, or 0 for one this file does not know. */
static int64_t block_bytes(int format)
{
    switch (format) {
    case WB_QUANT_Q8_0: return WB_QUANT_Q8_0_BYTES;
    case WB_QUANT_Q4_0: return WB_QUANT_Q4_0_BYTES;
    case WB_QUANT_Q4_1: return WB_QUANT_Q4_1_BYTES;
    case WB_QUANT_Q6_K: return WB_QUANT_Q6_K_BYTES;
    default: return 0;
    }
}

/* Weights per block: 32, or 256 for Q6_K's super-block. */
static int64_t block_weights(int format)
{
    return format == WB_QUANT_Q6_K ? WB_QUANT_QK_K : WB_QUANT_BLOCK;
}

/* Where a block's 16 bytes of nibbles (or 32 int8) start. */
static inline int64_t quants_offset(int format)
{
    return format == WB_QUANT_Q4_1 ? 4 : 2;
}

static int check_matrix(int format, int64_t rows, int64_t cols)
{
    if (block_bytes(format) == 0)
        return WB_ERR_BAD_ARGUMENT;
    if (rows < 0 || cols < 0 || cols % block_weights(format) != 0)
        return WB_ERR_BAD_SIZE;
    return WB_OK;
}

/* ------------------------------------------------------------------------ */
/* dequantisation (ggml's dequantize_row_q8_0 / q4_0 / q4_1)                */
/* ------------------------------------------------------------------------ */

/* Q6_K (ggml's block_q6_K): ql[128] low 4 bits, qh[64] high 2 bits, int8 scales[16], fp16 d
 * last, 210 bytes. Weight 128 h + 32 k + l (h = 0, 1; k = 0..3; l = 0..31) has its low bits
 * in ql[64 h + 32 (k & 1) + l] (the low nibble for k < 2, the high one for k >= 2) and its
 * high bits at bit 2 k of qh[32 h + l]; sub-block i / 16 has scale scales[i / 16]. */
#define Q6_K_QH 128
#define Q6_K_SCALES 192
#define Q6_K_D 208

#define INLINE static inline __attribute__((always_inline))

/* Sixteen float lanes, one Q6_K sub-block, in each build path's registers:
 *   f16x_sub(blk, j)       sub-block j's integers L - 32 as floats (exact)
 *   f16x_scale(a, s)       a s                   f16x_fma(acc, a, x)  acc + a x[0..16)
 *   f16x_fma_s(acc, s, a)  acc + s a             f16x_sum(a)          the sum of the lanes
 * Weights 16 j .. 16 j + 15 sit in half h = j / 8 at k = (j / 2) % 4, l from 16 (j % 2): their low
 * bits in the 16 bytes of ql at 64 h + 32 (k % 2) + 16 (j % 2), shifted by 4 (k / 2), their high
 * bits in the 16 bytes of qh at 32 h + 16 (j % 2), shifted by 2 k. */
#if defined(PATH_AVX512VNNI)

typedef __m512 f16x_t;

INLINE f16x_t f16x_sub(const uint8_t *blk, int j)
{
    int h = j >> 3, k = (j >> 1) & 3, off = 16 * (j & 1);
    __m512i lo = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 64 * h + 32 * (k & 1) + off)));
    __m512i hi = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + Q6_K_QH + 32 * h + off)));
    lo = _mm512_and_si512(_mm512_srli_epi32(lo, (unsigned)(4 * (k >> 1))), _mm512_set1_epi32(0x0F));
    hi = _mm512_and_si512(_mm512_srli_epi32(hi, (unsigned)(2 * k)), _mm512_set1_epi32(0x03));
    __m512i q = _mm512_sub_epi32(_mm512_or_si512(lo, _mm512_slli_epi32(hi, 4)), _mm512_set1_epi32(32));
    return _mm512_cvtepi32_ps(q);
}
INLINE f16x_t f16x_zero(void) { return _mm512_setzero_ps(); }
INLINE f16x_t f16x_scale(f16x_t a, float s) { return _mm512_mul_ps(a, _mm512_set1_ps(s)); }
INLINE f16x_t f16x_fma(f16x_t acc, f16x_t a, const float *x) { return _mm512_fmadd_ps(a, _mm512_loadu_ps(x), acc); }
INLINE f16x_t f16x_fma_s(f16x_t acc, float s, f16x_t a) { return _mm512_fmadd_ps(_mm512_set1_ps(s), a, acc); }
INLINE void f16x_store(float *out, f16x_t a) { _mm512_storeu_ps(out, a); }
INLINE float f16x_sum(f16x_t a) { return _mm512_reduce_add_ps(a); }

#elif defined(PATH_AVX2)

typedef struct {
    __m256 v[2];
} f16x_t;

INLINE f16x_t f16x_sub(const uint8_t *blk, int j)
{
    int h = j >> 3, k = (j >> 1) & 3, off = 16 * (j & 1);
    const uint8_t *lo = blk + 64 * h + 32 * (k & 1) + off, *hi = blk + Q6_K_QH + 32 * h + off;
    f16x_t r;
    for (int half = 0; half < 2; half++) {
        __m256i l = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(lo + 8 * half)));
        __m256i u = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(hi + 8 * half)));
        l = _mm256_and_si256(_mm256_srli_epi32(l, 4 * (k >> 1)), _mm256_set1_epi32(0x0F));
        u = _mm256_and_si256(_mm256_srli_epi32(u, 2 * k), _mm256_set1_epi32(0x03));
        __m256i q = _mm256_sub_epi32(_mm256_or_si256(l, _mm256_slli_epi32(u, 4)), _mm256_set1_epi32(32));
        r.v[half] = _mm256_cvtepi32_ps(q);
    }
    return r;
}
INLINE f16x_t f16x_zero(void) { f16x_t r = {{_mm256_setzero_ps(), _mm256_setzero_ps()}}; return r; }
INLINE f16x_t f16x_scale(f16x_t a, float s)
{
    __m256 v = _mm256_set1_ps(s);
    f16x_t r = {{_mm256_mul_ps(a.v[0], v), _mm256_mul_ps(a.v[1], v)}};
    return r;
}
INLINE f16x_t f16x_fma(f16x_t acc, f16x_t a, const float *x)
{
    f16x_t r = {{_mm256_fmadd_ps(a.v[0], _mm256_loadu_ps(x), acc.v[0]),
                 _mm256_fmadd_ps(a.v[1], _mm256_loadu_ps(x + 8), acc.v[1])}};
    return r;
}
INLINE f16x_t f16x_fma_s(f16x_t acc, float s, f16x_t a)
{
    __m256 v = _mm256_set1_ps(s);
    f16x_t r = {{_mm256_fmadd_ps(v, a.v[0], acc.v[0]), _mm256_fmadd_ps(v, a.v[1], acc.v[1])}};
    return r;
}
INLINE void f16x_store(float *out, f16x_t a)
{
    _mm256_storeu_ps(out, a.v[0]);
    _mm256_storeu_ps(out + 8, a.v[1]);
}
INLINE float f16x_sum(f16x_t a)
{
    __m256 s = _mm256_add_ps(a.v[0], a.v[1]);
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    t = _mm_add_ps(t, _mm_movehl_ps(t, t));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

#else /* PATH_SCALAR */

typedef struct {
    float v[16];
} f16x_t;

INLINE f16x_t f16x_sub(const uint8_t *blk, int j)
{
    int h = j >> 3, k = (j >> 1) & 3, off = 16 * (j & 1);
    const uint8_t *lo = blk + 64 * h + 32 * (k & 1) + off, *hi = blk + Q6_K_QH + 32 * h + off;
    f16x_t r;
    for (int i = 0; i < 16; i++)
        r.v[i] = (float)((((lo[i] >> (4 * (k >> 1))) & 0x0F) | (((hi[i] >> (2 * k)) & 0x03) << 4)) - 32);
    return r;
}
INLINE f16x_t f16x_zero(void) { f16x_t r = {{0}}; return r; }
INLINE f16x_t f16x_scale(f16x_t a, float s)
{
    for (int i = 0; i < 16; i++)
        a.v[i] *= s;
    return a;
}
INLINE f16x_t f16x_fma(f16x_t acc, f16x_t a, const float *x)
{
    for (int i = 0; i < 16; i++)
        acc.v[i] += a.v[i] * x[i];
    return acc;
}
INLINE f16x_t f16x_fma_s(f16x_t acc, float s, f16x_t a)
{
    for (int i = 0; i < 16; i++)
        acc.v[i] += s * a.v[i];
    return acc;
}
INLINE void f16x_store(float *out, f16x_t a) { memcpy(out, a.v, sizeof a.v); }
INLINE float f16x_sum(f16x_t a)
{
    float s = 0.0f;
    for (int i = 0; i < 16; i++)
        s += a.v[i];
    return s;
}

#endif

/* ggml's dequantize_row_q6_K: w = d sc q, exact in fp32 (11 + 8 + 6 significant bits at most). */
static void dequantize_q6_k(float *out, const uint8_t *blk)
{
    const int8_t *sc = (const int8_t *)(blk + Q6_K_SCALES);
    float d = fp16_at(blk + Q6_K_D);
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++)
        f16x_store(out + 16 * j, f16x_scale(f16x_sub(blk, j), d * (float)sc[j]));
}

static void dequantize_row(float *out, const uint8_t *row, int format, int64_t nb)
{
    int64_t bytes = block_bytes(format);
    if (format == WB_QUANT_Q6_K) {
        for (int64_t b = 0; b < nb; b++)
            dequantize_q6_k(out + b * WB_QUANT_QK_K, row + b * bytes);
        return;
    }
    for (int64_t b = 0; b < nb; b++, out += WB_QUANT_BLOCK) {
        const uint8_t *blk = row + b * bytes;
        float d = fp16_at(blk);
        if (format == WB_QUANT_Q8_0) {
            const int8_t *q = (const int8_t *)(blk + 2);
            for (int i = 0; i < 32; i++)
                out[i] = d * (float)q[i];
        } else if (format == WB_QUANT_Q4_0) {
            const uint8_t *qs = blk + 2;
            for (int i = 0; i < 16; i++) {
                out[i] = d * (float)((qs[i] & 0x0F) - 8);
                out[i + 16] = d * (float)((qs[i] >> 4) - 8);
            }
        } else {
            float m = fp16_at(blk + 2);
            const uint8_t *qs = blk + 4;
            for (int i = 0; i < 16; i++) {
                out[i] = d * (float)(qs[i] & 0x0F) + m;
                out[i + 16] = d * (float)(qs[i] >> 4) + m;
            }
        }
    }
}

int wb_quant_dequantize_f32(float *out, const uint8_t *w, int format, int64_t rows,
                            int64_t cols, int n_threads)
{
    int status = check_matrix(format, rows, cols);
    if (status != WB_OK)
        return status;
    if (n_threads < 1 || n_threads > WB_MAX_THREADS)
        return WB_ERR_BAD_THREADS;
    if (rows == 0 || cols == 0)
        return WB_OK;
    if (out == NULL || w == NULL)
        return WB_ERR_NULL_POINTER;
    int64_t nb = cols / block_weights(format), row_bytes = nb * block_bytes(format);
    if (n_threads == 1 || rows * cols < PARALLEL_MIN_WEIGHTS) {
        for (int64_t r = 0; r < rows; r++)
            dequantize_row(out + r * cols, w + r * row_bytes, format, nb);
        return WB_OK;
    }
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t r = 0; r < rows; r++)
        dequantize_row(out + r * cols, w + r * row_bytes, format, nb);
    return WB_OK;
}

/* ------------------------------------------------------------------------ */
/* activations: int8 blocks with an fp32 scale (ggml's quantize_row_q8_1_ref) */
/* ------------------------------------------------------------------------ */

/* One block of x as int8 with its scale and sum; 0 if the block holds inf or nan
 * (then it is left as zeros: rounding nan to an integer is undefined in C). */
static int quantize_x_block(int8_t *q, float *scale, int32_t *sum, const float *x)
{
    float amax = 0.0f;
    int bad = 0;
    for (int i = 0; i < 32; i++) {
        float a = fabsf(x[i]);
        bad |= !(a <= FLT_MAX);
        amax = a > amax ? a : amax;
    }
    memset(q, 0, WB_QUANT_BLOCK);
    *scale = 0.0f;
    *sum = 0;
    if (bad)
        return 0;
    float d = amax / 127.0f;
    if (d < FLT_MIN) /* below 127 * FLT_MIN (1.5e-36) the block rounds to zeros: a subnormal d */
        return 1;    /* has too few bits for 1 / d to be right (and 1 / d may overflow to inf) */
    float id = 1.0f / d;
    int32_t s = 0;
    for (int i = 0; i < 32; i++) {
        q[i] = (int8_t)roundf(x[i] * id);
        s += q[i];
    }
    *scale = d;
    *sum = s;
    return 1;
}

int wb_quant_quantize_x_f32(int8_t *xq, float *xd, int32_t *xsum, const float *x,
                            int64_t T, int64_t cols)
{
    if (T < 0 || cols < 0 || cols % WB_QUANT_BLOCK != 0)
        return WB_ERR_BAD_SIZE;
    if (T == 0 || cols == 0)
        return WB_OK;
    if (xq == NULL || xd == NULL || xsum == NULL || x == NULL)
        return WB_ERR_NULL_POINTER;
    int64_t blocks = T * (cols / WB_QUANT_BLOCK);
    int finite = 1;
    for (int64_t b = 0; b < blocks; b++)
        finite &= quantize_x_block(xq + b * WB_QUANT_BLOCK, xd + b, xsum + b, x + b * WB_QUANT_BLOCK);
    return finite ? WB_OK : WB_ERR_BAD_ARGUMENT;
}

/* ------------------------------------------------------------------------ */
/* kernels. Each path defines, for a group of n <= GROUP blocks of one row:   */
/*   x_offset(j, i)        where byte i of the group's activation block j     */
/*                         sits in the kernel's layout of xq                  */
/*   load_group(w, f, n)   the group's weights, unpacked once per pass        */
/*   group_dots(&g, xq, xsum, f, n)  the integer part of each block product  */
/*   load_scales(w, f, n)  dw (and mw) as fp32                                */
/*   accumulate(acc, dots, s, xd, xs, f)  acc += the scaled block products    */
/*   reduce(acc), store_dots(out, dots, n)                                    */
/* The activation arrays are padded with zeros to whole groups, so the        */
/* kernels read them without masks; weights are never read past block n - 1.  */
/* ------------------------------------------------------------------------ */

#define GROUP 8

#if defined(PATH_AVX512VNNI) || defined(PATH_AVX2)

/* Both SIMD kernels work on pairs of blocks (k, k + 4), k < 4, one per 128-bit
 * half of a ymm register: the first 16 weights of both blocks in one
 * register, the last 16 in another. The activations are stored to match, so
 * a 4-bit block is unpacked with one shift and two masks and no shuffle:
 *   pair k (64 bytes): x_k[0:16] x_k+4[0:16] x_k[16:32] x_k+4[16:32]
 * and after the multiply-adds, 128-bit half 0 of pair k's int32 lanes holds
 * block k, half 1 block k + 4, so two levels of hadd leave the 8 block sums
 * in block order. */
static inline int64_t x_offset(int j, int i)
{
    return 64 * (j & 3) + (i >= 16 ? 32 : 0) + (j >= 4 ? 16 : 0) + (i & 15);
}

typedef struct {
    __m256i lo[4], hi[4]; /* pair k: weights 0..15, 16..31 of blocks k | k + 4 */
} wgroup_t;
typedef __m256i ivec_t;
typedef struct {
    __m256 d, m;
} scales_t;
typedef __m256 facc_t;

/* 16 bytes at a, then 16 at b (zeros when b is NULL). */
INLINE __m256i load_halves(const uint8_t *a, const uint8_t *b)
{
    __m128i lo = _mm_loadu_si128((const __m128i *)a);
    __m128i hi = b != NULL ? _mm_loadu_si128((const __m128i *)b) : _mm_setzero_si128();
    return _mm256_set_m128i(hi, lo);
}

INLINE wgroup_t load_group(const uint8_t *w, int format, int n)
{
    int64_t bytes = block_bytes(format), offset = quants_offset(format);
    const __m256i low_nibbles = _mm256_set1_epi8(0x0F);
    wgroup_t g;
    for (int k = 0; k < 4; k++) {
        g.lo[k] = g.hi[k] = _mm256_setzero_si256();
        if (k >= n)
            continue;
        const uint8_t *a = w + k * bytes + offset;
        const uint8_t *b = k + 4 < n ? w + (k + 4) * bytes + offset : NULL;
        if (format == WB_QUANT_Q8_0) {
            g.lo[k] = load_halves(a, b);
            g.hi[k] = load_halves(a + 16, b != NULL ? b + 16 : NULL);
#if defined(PATH_AVX512VNNI)
            /* dpbusd takes unsigned weights: q + 128, corrected by -128 xsum in group_dots. */
            g.lo[k] = _mm256_xor_si256(g.lo[k], _mm256_set1_epi8((char)0x80));
            g.hi[k] = _mm256_xor_si256(g.hi[k], _mm256_set1_epi8((char)0x80));
#endif
        } else {
            __m256i packed = load_halves(a, b);
            g.lo[k] = _mm256_and_si256(packed, low_nibbles);
            g.hi[k] = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_nibbles);
        }
    }
    return g;
}

/* int32 lanes of w . x for one pair: lane l sums the products of bytes 4l..4l+3. */
INLINE __m256i pair_dots(const wgroup_t *g, int k, const int8_t *x, int format)
{
    __m256i xl = _mm256_loadu_si256((const __m256i *)x);
    __m256i xh = _mm256_loadu_si256((const __m256i *)(x + 32));
#if defined(PATH_AVX512VNNI)
    (void)format;
    return _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), g->lo[k], xl), g->hi[k], xh);
#else
    const __m256i ones = _mm256_set1_epi16(1);
    if (format == WB_QUANT_Q8_0) {
        /* The sign trick: |q| * (xq with q's sign) = q * xq, unsigned times signed.
         * A maddubs pair is at most 2 * 128 * 127, so the halves widen before adding. */
        __m256i lo = _mm256_maddubs_epi16(_mm256_abs_epi8(g->lo[k]), _mm256_sign_epi8(xl, g->lo[k]));
        __m256i hi = _mm256_maddubs_epi16(_mm256_abs_epi8(g->hi[k]), _mm256_sign_epi8(xh, g->hi[k]));
        return _mm256_add_epi32(_mm256_madd_epi16(lo, ones), _mm256_madd_epi16(hi, ones));
    }
    /* Nibble pairs are at most 2 * 15 * 127, so both halves add in int16. */
    __m256i both = _mm256_add_epi16(_mm256_maddubs_epi16(g->lo[k], xl), _mm256_maddubs_epi16(g->hi[k], xh));
    return _mm256_madd_epi16(both, ones);
#endif
}

INLINE ivec_t group_dots(const wgroup_t *g, const int8_t *xq, const int32_t *xsum, int format, int n)
{
    __m256i p[4];
    for (int k = 0; k < 4; k++)
        p[k] = k < n ? pair_dots(g, k, xq + 64 * k, format) : _mm256_setzero_si256();
    __m256i dots = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
#if defined(PATH_AVX512VNNI)
    if (format != WB_QUANT_Q4_1) {
        __m256i sums = _mm256_loadu_si256((const __m256i *)xsum);
        dots = _mm256_sub_epi32(dots, _mm256_slli_epi32(sums, format == WB_QUANT_Q8_0 ? 7 : 3));
    }
#else
    if (format == WB_QUANT_Q4_0)
        dots = _mm256_sub_epi32(dots, _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)xsum), 3));
#endif
    return dots;
}

/* All ones in the first n 32-bit lanes. */
INLINE __m256i first_lanes(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#if defined(PATH_AVX512VNNI)

/* A 64-bit byte mask of the first n bytes (n clamped to 0..64). */
INLINE __mmask64 first_bytes(int64_t n)
{
    return n >= 64 ? ~(__mmask64)0 : n <= 0 ? 0 : ((__mmask64)1 << n) - 1;
}

/* The group's fp16 scales without a gather: its first 256 bytes in four masked
 * loads (nothing past block n - 1), then two word permutes pick d_j (and Q4_1's
 * m_j) from bytes * j (+ 2) into words j (and 8 + j). */
INLINE scales_t load_scales(const uint8_t *w, int format, int n)
{
    int64_t bytes = block_bytes(format), span = n * bytes;
    __m512i z[4];
    for (int i = 0; i < 4; i++)
        z[i] = _mm512_maskz_loadu_epi8(first_bytes(span - 64 * i), w + 64 * i);
    /* word of slot s: (bytes / 2) * (s mod 8) + (s >= 8); a 2-source permute reads its low 6 bits */
    __m512i slot = _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16,
                                    15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    __m512i word = _mm512_add_epi16(
        _mm512_mullo_epi16(_mm512_and_si512(slot, _mm512_set1_epi16(7)), _mm512_set1_epi16((short)(bytes / 2))),
        _mm512_and_si512(_mm512_srli_epi16(slot, 3), _mm512_set1_epi16(1)));
    __mmask32 beyond = _mm512_cmpge_epu16_mask(word, _mm512_set1_epi16(64));
    __m512i dm = _mm512_mask_blend_epi16(beyond, _mm512_permutex2var_epi16(z[0], word, z[1]),
                                         _mm512_permutex2var_epi16(z[2], word, z[3]));
    scales_t s;
    if (format == WB_QUANT_Q4_1) {
        __m512 both = _mm512_cvtph_ps(_mm512_castsi512_si256(dm)); /* d0..d7, m0..m7 */
        s.d = _mm512_castps512_ps256(both);
        s.m = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(both), 1));
    } else {
        s.d = _mm256_cvtph_ps(_mm512_castsi512_si128(dm));
        s.m = _mm256_setzero_ps();
    }
    return s;
}

#else

/* 8 fp16 values, the 16-bit halves of g's lanes picked by the byte shuffle pick, as fp32. */
INLINE __m256 halves_to_f32(__m256i g, __m256i pick)
{
    __m256i packed = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(g, pick), _MM_SHUFFLE(3, 1, 2, 0));
    return _mm256_cvtph_ps(_mm256_castsi256_si128(packed));
}

INLINE scales_t load_scales(const uint8_t *w, int format, int n)
{
    /* One 32-bit gather at each block's start: fp16 d in the low half, Q4_1's m in the high. */
    __m256i at = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                    _mm256_set1_epi32((int)block_bytes(format)));
    __m256i dm = _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), (const int *)w, at, first_lanes(n), 1);
    const __m256i low = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1,
                                         0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i high = _mm256_setr_epi8(2, 3, 6, 7, 10, 11, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1,
                                          2, 3, 6, 7, 10, 11, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1);
    scales_t s;
    s.d = halves_to_f32(dm, low);
    s.m = format == WB_QUANT_Q4_1 ? halves_to_f32(dm, high) : _mm256_setzero_ps();
    return s;
}

#endif

INLINE facc_t facc_zero(void)
{
    return _mm256_setzero_ps();
}

INLINE facc_t accumulate(facc_t acc, ivec_t dots, scales_t s, const float *xd, const float *xs, int format)
{
    __m256 scale = _mm256_mul_ps(s.d, _mm256_loadu_ps(xd));
    acc = _mm256_add_ps(acc, _mm256_mul_ps(scale, _mm256_cvtepi32_ps(dots)));
    if (format == WB_QUANT_Q4_1)
        acc = _mm256_add_ps(acc, _mm256_mul_ps(s.m, _mm256_loadu_ps(xs)));
    return acc;
}

INLINE float reduce(facc_t acc)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE void store_dots(int32_t *out, ivec_t dots, int n)
{
    _mm256_maskstore_epi32(out, first_lanes(n), dots);
}

#else /* PATH_SCALAR */

static inline int64_t x_offset(int j, int i)
{
    return 32 * j + i;
}

typedef struct {
    const uint8_t *w; /* read in place */
} wgroup_t;
typedef struct {
    int32_t v[GROUP];
} ivec_t;
typedef struct {
    float d[GROUP], m[GROUP];
} scales_t;
typedef float facc_t;

INLINE wgroup_t load_group(const uint8_t *w, int format, int n)
{
    (void)format;
    (void)n;
    wgroup_t g = {w};
    return g;
}

INLINE ivec_t group_dots(const wgroup_t *g, const int8_t *xq, const int32_t *xsum, int format, int n)
{
    int64_t bytes = block_bytes(format), offset = quants_offset(format);
    ivec_t dots = {{0}};
    for (int j = 0; j < n; j++) {
        const int8_t *x = xq + 32 * j;
        const uint8_t *q = g->w + j * bytes + offset;
        /* Unsigned weights times signed xq, then the offset: Q8_0 as q + 128 (GCC 12.2 turns
         * a signed-by-signed loop into vpdpbusd, unsigned by signed, under -march with
         * AVX512-VNNI, and gets it wrong), Q4_0 as n with -8 xsum. */
        uint8_t u[WB_QUANT_BLOCK];
        int32_t offset_sum = 0;
        if (format == WB_QUANT_Q8_0) {
            for (int i = 0; i < 32; i++)
                u[i] = q[i] ^ 0x80;
            offset_sum = 128 * xsum[j];
        } else {
            for (int i = 0; i < 16; i++) {
                u[i] = q[i] & 0x0F;
                u[i + 16] = q[i] >> 4;
            }
            offset_sum = format == WB_QUANT_Q4_0 ? 8 * xsum[j] : 0;
        }
        int32_t s = 0;
        for (int i = 0; i < 32; i++)
            s += u[i] * x[i];
        dots.v[j] = s - offset_sum;
    }
    return dots;
}

INLINE scales_t load_scales(const uint8_t *w, int format, int n)
{
    int64_t bytes = block_bytes(format);
    scales_t s = {{0}, {0}};
    for (int j = 0; j < n; j++) {
        s.d[j] = fp16_at(w + j * bytes);
        if (format == WB_QUANT_Q4_1)
            s.m[j] = fp16_at(w + j * bytes + 2);
    }
    return s;
}

INLINE facc_t facc_zero(void)
{
    return 0.0f;
}

INLINE facc_t accumulate(facc_t acc, ivec_t dots, scales_t s, const float *xd, const float *xs, int format)
{
    for (int j = 0; j < GROUP; j++) {
        acc += (s.d[j] * xd[j]) * (float)dots.v[j];
        if (format == WB_QUANT_Q4_1)
            acc += s.m[j] * xs[j];
    }
    return acc;
}

INLINE float reduce(facc_t acc)
{
    return acc;
}

INLINE void store_dots(int32_t *out, ivec_t dots, int n)
{
    memcpy(out, dots.v, (size_t)n * sizeof *out);
}

#endif

/* ------------------------------------------------------------------------ */
/* the matrix product                                                       */
/* ------------------------------------------------------------------------ */

/* Quantised activations in the kernels' layout: row t's group g starts at
 * xq + (t * groups + g) * GROUP * 32 and at xd/xs/xsum + (t * groups + g) * GROUP,
 * zero-padded past the last block. */
typedef struct {
    const int8_t *xq;
    const float *xd;     /* block scales */
    const float *xs;     /* xd * xsum, Q4_1's m term */
    const int32_t *xsum; /* block sums of xq */
    int64_t T, nb, groups;
} activations_t;

/* Quantise x (T x cols) into the kernels' layout: workspace sizes, then the arrays. */
static int64_t padded_blocks(int64_t T, int64_t cols)
{
    return T * ((cols / WB_QUANT_BLOCK + GROUP - 1) / GROUP * GROUP);
}

/* WB_OK, or WB_ERR_BAD_ARGUMENT if x holds inf or nan. */
static int lay_out_activations(int8_t *xq, float *xd, float *xs, int32_t *xsum, const float *x, int64_t T,
                               int64_t cols)
{
    int finite = 1;
    int64_t nb = cols / WB_QUANT_BLOCK, padded = padded_blocks(T, cols);
    memset(xq, 0, (size_t)(padded * WB_QUANT_BLOCK));
    memset(xd, 0, (size_t)padded * sizeof *xd);
    memset(xs, 0, (size_t)padded * sizeof *xs);
    memset(xsum, 0, (size_t)padded * sizeof *xsum);
    int64_t per_row = padded / (T > 0 ? T : 1);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t b = 0; b < nb; b++) {
            int64_t at = t * per_row + b; /* this block's slot: group at / GROUP, j = at % GROUP */
            int8_t q[WB_QUANT_BLOCK];
            finite &= quantize_x_block(q, &xd[at], &xsum[at], x + (t * nb + b) * WB_QUANT_BLOCK);
            xs[at] = xd[at] * (float)xsum[at];
            int8_t *group = xq + (at - at % GROUP) * WB_QUANT_BLOCK;
            int j = (int)(at % GROUP);
            memcpy(group + x_offset(j, 0), q, 16);
            memcpy(group + x_offset(j, 16), q + 16, 16);
        }
    }
    return finite ? WB_OK : WB_ERR_BAD_ARGUMENT;
}

/* One group of n blocks at w, against nt activation rows from t0, added to acc[0..nt). */
INLINE void group_into(facc_t *acc, const uint8_t *w, int format, int n, const activations_t *a,
                       int64_t t0, int64_t nt, int64_t g)
{
    wgroup_t weights = load_group(w, format, n);
    scales_t s = load_scales(w, format, n);
    for (int64_t t = 0; t < nt; t++) {
        int64_t at = ((t0 + t) * a->groups + g) * GROUP;
        ivec_t dots = group_dots(&weights, a->xq + at * WB_QUANT_BLOCK, a->xsum + at, format, n);
        acc[t] = accumulate(acc[t], dots, s, a->xd + at, a->xs + at, format);
    }
}

/* out[t * rows] = x_t . row for nt activation rows from t0. */
INLINE void row_pass(float *out, int64_t rows, const uint8_t *row, int format, const activations_t *a,
                     int64_t t0, int64_t nt)
{
    int64_t bytes = block_bytes(format), full = a->nb / GROUP;
    facc_t acc[TT];
    for (int64_t t = 0; t < nt; t++)
        acc[t] = facc_zero();
    for (int64_t g = 0; g < full; g++)
        group_into(acc, row + g * GROUP * bytes, format, GROUP, a, t0, nt, g);
    if (full < a->groups)
        group_into(acc, row + full * GROUP * bytes, format, (int)(a->nb - full * GROUP), a, t0, nt, full);
    for (int64_t t = 0; t < nt; t++)
        out[(t0 + t) * rows] = reduce(acc[t]);
}

INLINE void matmul_row(float *out, int64_t rows, const uint8_t *row, int format, const activations_t *a)
{
    if (a->T == 1) {
        row_pass(out, rows, row, format, a, 0, 1); /* decoding: one token, accumulators in registers */
        return;
    }
    for (int64_t t0 = 0; t0 < a->T; t0 += TT)
        row_pass(out, rows, row, format, a, t0, a->T - t0 < TT ? a->T - t0 : TT);
}

/* A constant format per call, so each inlined copy drops the other formats' code. */
INLINE void matmul_row_of(float *out, int64_t rows, const uint8_t *row, int format, const activations_t *a)
{
    switch (format) {
    case WB_QUANT_Q8_0: matmul_row(out, rows, row, WB_QUANT_Q8_0, a); break;
    case WB_QUANT_Q4_0: matmul_row(out, rows, row, WB_QUANT_Q4_0, a); break;
    default: matmul_row(out, rows, row, WB_QUANT_Q4_1, a); break;
    }
}

static void matmul_rows(float *restrict out, const uint8_t *w, int format, int64_t rows,
                        const activations_t *shared, int n_threads)
{
    const activations_t local = *shared, *a = &local; /* in registers: out's stores can't touch it */
    int64_t row_bytes = a->nb * block_bytes(format);
    if (n_threads == 1 || rows * a->nb * WB_QUANT_BLOCK < PARALLEL_MIN_WEIGHTS) {
        /* No OpenMP region at all: entering one costs microseconds, and a decoder makes
         * hundreds of these calls per token. */
        for (int64_t r = 0; r < rows; r++)
            matmul_row_of(out + r, rows, w + r * row_bytes, format, a);
        return;
    }
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t r = 0; r < rows; r++)
        matmul_row_of(out + r, rows, w + r * row_bytes, format, a);
}

static int64_t round_up_64(int64_t n)
{
    return (n + 63) / 64 * 64;
}

int64_t wb_quant_workspace_bytes(int64_t T, int64_t cols)
{
    if (T < 0 || cols < 0 || cols % WB_QUANT_BLOCK != 0)
        return WB_ERR_BAD_SIZE;
    int64_t padded;
    /* Past this many blocks the byte count below would overflow (44 bytes a block, 256 of padding). */
    if (wb_mul_overflows(T, (cols / WB_QUANT_BLOCK + GROUP - 1) / GROUP * GROUP, &padded) ||
        padded > (INT64_MAX - 256) / 64)
        return WB_ERR_TOO_LARGE;
    /* 64 to align the start, then xq, xd, xs, xsum each on a 64-byte boundary. */
    return 64 + round_up_64(padded * WB_QUANT_BLOCK) + 3 * round_up_64(4 * padded);
}

/* What both products check before they read anything: WB_OK to go on, a WB_ERR_ status, or
 * PRODUCT_DONE when there is nothing to compute (T or rows is 0) or out is all zeros (cols is 0). */
#define PRODUCT_DONE 1
static int check_product(float *out, const float *x, const uint8_t *w, int format, int64_t T, int64_t rows,
                         int64_t cols, const uint8_t *workspace, int64_t workspace_bytes, int n_threads)
{
    int status = check_matrix(format, rows, cols);
    if (status != WB_OK)
        return status;
    if (T < 0)
        return WB_ERR_BAD_SIZE;
    if (n_threads < 1 || n_threads > WB_MAX_THREADS)
        return WB_ERR_BAD_THREADS;
    if (T == 0 || rows == 0)
        return PRODUCT_DONE;
    if (out == NULL || (cols > 0 && (x == NULL || w == NULL || workspace == NULL)))
        return WB_ERR_NULL_POINTER;
    if (cols == 0) {
        memset(out, 0, (size_t)(T * rows) * sizeof *out);
        return PRODUCT_DONE;
    }
    int64_t needed = wb_quant_workspace_bytes(T, cols);
    if (needed < 0)
        return (int)needed;
    if (workspace_bytes < needed)
        return WB_ERR_OUTPUT_FULL;
    return WB_OK;
}

int wb_quant_matmul_f32(float *out, const float *x, const uint8_t *w, int format,
                        int64_t T, int64_t rows, int64_t cols, uint8_t *workspace,
                        int64_t workspace_bytes, int n_threads)
{
    if (format == WB_QUANT_Q6_K) /* the int8 product takes the 32-weight formats only */
        return WB_ERR_BAD_ARGUMENT;
    int status = check_product(out, x, w, format, T, rows, cols, workspace, workspace_bytes, n_threads);
    if (status != WB_OK)
        return status == PRODUCT_DONE ? WB_OK : status;

    int64_t padded = padded_blocks(T, cols);
    uint8_t *base = workspace + (64 - (uintptr_t)workspace % 64) % 64;
    int8_t *xq = (int8_t *)base;
    float *xd = (float *)(base + round_up_64(padded * WB_QUANT_BLOCK));
    float *xs = (float *)((uint8_t *)xd + round_up_64(4 * padded));
    int32_t *xsum = (int32_t *)((uint8_t *)xs + round_up_64(4 * padded));
    status = lay_out_activations(xq, xd, xs, xsum, x, T, cols);
    if (status != WB_OK)
        return status;

    activations_t a = {xq, xd, xs, xsum, T, cols / WB_QUANT_BLOCK, padded / T / GROUP};
    matmul_rows(out, w, format, rows, &a, n_threads);
    return WB_OK;
}

/* One group's integer parts into out (n ints), with a constant format; xq and
 * xsum in natural order, copied into the kernel's layout first. */
INLINE void dots_into(int32_t *out, const uint8_t *w, int format, int n, const int8_t *xq, const int32_t *xsum)
{
    int8_t x[GROUP * WB_QUANT_BLOCK] = {0};
    int32_t sums[GROUP] = {0};
    for (int j = 0; j < n; j++) {
        memcpy(x + x_offset(j, 0), xq + j * WB_QUANT_BLOCK, 16);
        memcpy(x + x_offset(j, 16), xq + j * WB_QUANT_BLOCK + 16, 16);
        sums[j] = xsum[j];
    }
    wgroup_t g = load_group(w, format, n);
    store_dots(out, group_dots(&g, x, sums, format, n), n);
}

int wb_quant_block_dots_i32(int32_t *out, const uint8_t *w, int format, const int8_t *xq,
                            const int32_t *xsum, int64_t rows, int64_t cols)
{
    if (format == WB_QUANT_Q6_K)
        return WB_ERR_BAD_ARGUMENT;
    int status = check_matrix(format, rows, cols);
    if (status != WB_OK)
        return status;
    if (rows == 0 || cols == 0)
        return WB_OK;
    if (out == NULL || w == NULL || xq == NULL || xsum == NULL)
        return WB_ERR_NULL_POINTER;
    int64_t nb = cols / WB_QUANT_BLOCK, bytes = block_bytes(format);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t b0 = 0; b0 < nb; b0 += GROUP) {
            int n = (int)(nb - b0 < GROUP ? nb - b0 : GROUP);
            const uint8_t *wg = w + (r * nb + b0) * bytes;
            int32_t *o = out + r * nb + b0;
            const int8_t *x = xq + b0 * WB_QUANT_BLOCK;
            switch (format) {
            case WB_QUANT_Q8_0: dots_into(o, wg, WB_QUANT_Q8_0, n, x, xsum + b0); break;
            case WB_QUANT_Q4_0: dots_into(o, wg, WB_QUANT_Q4_0, n, x, xsum + b0); break;
            default: dots_into(o, wg, WB_QUANT_Q4_1, n, x, xsum + b0); break;
            }
        }
    }
    return WB_OK;
}

/* ------------------------------------------------------------------------ */
/* the float32 product: x stays as it is, the weights are dequantised in    */
/* registers. Each path defines, for one block of 32 weights:                */
/*   qblock_t unpack(blk, f)   its integers q (Q8_0 q, Q4_0 n - 8, Q4_1 n)    */
/*                             as floats, exact                               */
/*   fvec_t block_dot(q, x)    lanes that sum to sum_i q_i x_i                */
/*   scales_pair(blk)          d and m as fp32 (m meaningful for Q4_1 only)   */
/*   acc = scaled_add(acc, dm, s)      acc += d s                             */
/*   macc = min_add(macc, dm, xs)      macc += m sum x (xs holds 0, sum x)    */
/*   row_total(acc, macc)              the output                             */
/* ------------------------------------------------------------------------ */

#define TX 4 /* activation rows per pass over a row of weights */

/* A block's (d, m), or (d, the fp16 of its first two quant bytes) for Q8_0 and
 * Q4_0, whose m term the callers leave out. */
#if defined(PATH_AVX512VNNI) || defined(PATH_AVX2)

typedef __m128 pair_t;

INLINE pair_t scales_pair(const uint8_t *blk)
{
    int32_t dm;
    memcpy(&dm, blk, sizeof dm);
    return _mm_cvtph_ps(_mm_cvtsi32_si128(dm)); /* d, m, 0, 0 */
}

INLINE __m128 min_add(__m128 macc, pair_t dm, const float *xs)
{
    /* (d, m) times (0, sum x): lane 1 collects m sum x, no shuffle needed */
    return _mm_fmadd_ps(dm, _mm_castpd_ps(_mm_load_sd((const double *)xs)), macc);
}

#else

typedef struct {
    float d, m;
} pair_t;

INLINE pair_t scales_pair(const uint8_t *blk)
{
    pair_t p = {fp16_at(blk), fp16_at(blk + 2)};
    return p;
}

INLINE float min_add(float macc, pair_t dm, const float *xs)
{
    return macc + dm.m * xs[1];
}

#endif

#if defined(PATH_AVX512VNNI)

/* The integers of a block as two 16-lane float vectors, weights 0..15 and 16..31. */
typedef struct {
    __m512 lo, hi;
} qblock_t;
typedef __m512 fvec_t;
typedef __m128 macc_t;

INLINE qblock_t unpack(const uint8_t *blk, int format)
{
    qblock_t q;
    if (format == WB_QUANT_Q8_0) {
        q.lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2))));
        q.hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 18))));
        return q;
    }
    /* one byte per lane: the low nibble is weight i, the high one weight i + 16 */
    __m512i n = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + quants_offset(format))));
    __m512i lo = _mm512_and_si512(n, _mm512_set1_epi32(0x0F)), hi = _mm512_srli_epi32(n, 4);
    if (format == WB_QUANT_Q4_0) {
        lo = _mm512_sub_epi32(lo, _mm512_set1_epi32(8));
        hi = _mm512_sub_epi32(hi, _mm512_set1_epi32(8));
    }
    q.lo = _mm512_cvtepi32_ps(lo);
    q.hi = _mm512_cvtepi32_ps(hi);
    return q;
}

INLINE fvec_t block_dot(const qblock_t *q, const float *x)
{
    return _mm512_fmadd_ps(q->hi, _mm512_loadu_ps(x + 16), _mm512_mul_ps(q->lo, _mm512_loadu_ps(x)));
}

INLINE fvec_t fvec_zero(void)
{
    return _mm512_setzero_ps();
}

INLINE fvec_t scaled_add(fvec_t acc, pair_t dm, fvec_t s)
{
    return _mm512_fmadd_ps(_mm512_broadcastss_ps(dm), s, acc);
}

INLINE float row_total(fvec_t acc, macc_t macc)
{
    return _mm512_reduce_add_ps(acc) + _mm_cvtss_f32(_mm_movehdup_ps(macc));
}

#elif defined(PATH_AVX2)

/* The integers of a block as four 8-lane float vectors, weights 0..7, 8..15, 16..23, 24..31. */
typedef struct {
    __m256 v[4];
} qblock_t;
typedef __m256 fvec_t;
typedef __m128 macc_t;

INLINE qblock_t unpack(const uint8_t *blk, int format)
{
    qblock_t q;
    if (format == WB_QUANT_Q8_0) {
        for (int k = 0; k < 4; k++)
            q.v[k] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 2 + 8 * k))));
        return q;
    }
    const uint8_t *qs = blk + quants_offset(format);
    const __m256i low = _mm256_set1_epi32(0x0F);
    __m256i n0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)qs));
    __m256i n1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 8)));
    __m256i n[4] = {_mm256_and_si256(n0, low), _mm256_and_si256(n1, low), _mm256_srli_epi32(n0, 4),
                    _mm256_srli_epi32(n1, 4)};
    for (int k = 0; k < 4; k++)
        q.v[k] = _mm256_cvtepi32_ps(format == WB_QUANT_Q4_0 ? _mm256_sub_epi32(n[k], _mm256_set1_epi32(8)) : n[k]);
    return q;
}

INLINE fvec_t block_dot(const qblock_t *q, const float *x)
{
    __m256 s = _mm256_mul_ps(q->v[0], _mm256_loadu_ps(x));
    for (int k = 1; k < 4; k++)
        s = _mm256_fmadd_ps(q->v[k], _mm256_loadu_ps(x + 8 * k), s);
    return s;
}

INLINE fvec_t fvec_zero(void)
{
    return _mm256_setzero_ps();
}

INLINE fvec_t scaled_add(fvec_t acc, pair_t dm, fvec_t s)
{
    return _mm256_fmadd_ps(_mm256_broadcastss_ps(dm), s, acc);
}

INLINE float row_total(fvec_t acc, macc_t macc)
{
    return reduce(acc) + _mm_cvtss_f32(_mm_movehdup_ps(macc));
}

#else /* PATH_SCALAR */

typedef struct {
    float v[WB_QUANT_BLOCK];
} qblock_t;
typedef float fvec_t;
typedef float macc_t;

INLINE qblock_t unpack(const uint8_t *blk, int format)
{
    qblock_t q;
    if (format == WB_QUANT_Q8_0) {
        for (int i = 0; i < 32; i++)
            q.v[i] = (float)(int8_t)blk[2 + i];
        return q;
    }
    const uint8_t *qs = blk + quants_offset(format);
    int offset = format == WB_QUANT_Q4_0 ? 8 : 0;
    for (int i = 0; i < 16; i++) {
        q.v[i] = (float)((qs[i] & 0x0F) - offset);
        q.v[i + 16] = (float)((qs[i] >> 4) - offset);
    }
    return q;
}

INLINE fvec_t block_dot(const qblock_t *q, const float *x)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < 32; i++)
        s += q->v[i] * x[i];
    return s;
}

INLINE fvec_t fvec_zero(void)
{
    return 0.0f;
}

INLINE fvec_t scaled_add(fvec_t acc, pair_t dm, fvec_t s)
{
    return acc + dm.d * s;
}

INLINE float row_total(fvec_t acc, macc_t macc)
{
    return acc + macc;
}

#endif

INLINE macc_t macc_zero(void)
{
#if defined(PATH_SCALAR)
    return 0.0f;
#else
    return _mm_setzero_ps();
#endif
}

/* out[t * rows] = x_t . row for NT rows of x from t0; xs holds (0, sum x) per block of x. */
INLINE void exact_pass(float *out, int64_t rows, const uint8_t *row, int format, const float *x, const float *xs,
                       int64_t nb, int64_t t0, int NT)
{
    int64_t bytes = block_bytes(format), cols = nb * WB_QUANT_BLOCK;
    fvec_t acc[TX];
    macc_t macc[TX];
    for (int t = 0; t < NT; t++) {
        acc[t] = fvec_zero();
        macc[t] = macc_zero();
    }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = row + b * bytes;
        qblock_t q = unpack(blk, format);
        pair_t dm = scales_pair(blk);
        for (int t = 0; t < NT; t++) {
            acc[t] = scaled_add(acc[t], dm, block_dot(&q, x + (t0 + t) * cols + b * WB_QUANT_BLOCK));
            if (format == WB_QUANT_Q4_1)
                macc[t] = min_add(macc[t], dm, xs + 2 * ((t0 + t) * nb + b));
        }
    }
    for (int t = 0; t < NT; t++)
        out[(t0 + t) * rows] = row_total(acc[t], macc[t]);
}

/* One row of W against all T rows of x, TX at a time, each pass with a constant count. */
INLINE void exact_row(float *out, int64_t rows, const uint8_t *row, int format, const float *x, const float *xs,
                      int64_t T, int64_t nb)
{
    int64_t t0 = 0;
    for (; t0 + TX <= T; t0 += TX)
        exact_pass(out, rows, row, format, x, xs, nb, t0, TX);
    switch (T - t0) {
    case 1: exact_pass(out, rows, row, format, x, xs, nb, t0, 1); break;
    case 2: exact_pass(out, rows, row, format, x, xs, nb, t0, 2); break;
    case 3: exact_pass(out, rows, row, format, x, xs, nb, t0, 3); break;
    default: break;
    }
}

/* Q6_K's float32 product, one loop over each build path's f16x_t (one zmm, two ymm, or 16 floats).
 * Per super-block the weights become exact floats sc q (at most 128 * 32 in size);
 * lane i collects sum_j (sc_j q_{16j+i}) x_{16j+i} over the 16 sub-blocks, and the row's lane
 * accumulator takes d times it. So a term is rounded once as a product, at most 15 times in its
 * lane, once by d, once per super-block in the accumulator and 15 times in the final sum of the
 * lanes: nb + 32 roundings (nb = cols / 256), inside reference.exact_bound's nb + 40. The AVX paths
 * fuse the multiply-adds (fewer roundings) and sum the lanes as a tree (4). */
INLINE void q6_k_pass(float *out, int64_t rows, const uint8_t *row, const float *x, int64_t nb, int64_t t0, int NT)
{
    int64_t cols = nb * WB_QUANT_QK_K;
    f16x_t acc[TX];
    for (int t = 0; t < NT; t++)
        acc[t] = f16x_zero();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = row + b * WB_QUANT_Q6_K_BYTES;
        const int8_t *sc = (const int8_t *)(blk + Q6_K_SCALES);
        const float *xb = x + t0 * cols + b * WB_QUANT_QK_K;
        f16x_t lane[TX];
        for (int t = 0; t < NT; t++)
            lane[t] = f16x_zero();
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) {
            f16x_t w = f16x_scale(f16x_sub(blk, j), (float)sc[j]); /* exact: at most 128 * 32 */
            for (int t = 0; t < NT; t++)
                lane[t] = f16x_fma(lane[t], w, xb + t * cols + 16 * j);
        }
        float d = fp16_at(blk + Q6_K_D);
        for (int t = 0; t < NT; t++)
            acc[t] = f16x_fma_s(acc[t], d, lane[t]);
    }
    for (int t = 0; t < NT; t++)
        out[(t0 + t) * rows] = f16x_sum(acc[t]);
}

/* One Q6_K row of W against all T rows of x, TX at a time (nb = cols / 256). */
static void q6_k_row(float *out, int64_t rows, const uint8_t *row, const float *x, int64_t T, int64_t nb)
{
    int64_t t0 = 0;
    for (; t0 + TX <= T; t0 += TX)
        q6_k_pass(out, rows, row, x, nb, t0, TX);
    switch (T - t0) {
    case 1: q6_k_pass(out, rows, row, x, nb, t0, 1); break;
    case 2: q6_k_pass(out, rows, row, x, nb, t0, 2); break;
    case 3: q6_k_pass(out, rows, row, x, nb, t0, 3); break;
    default: break;
    }
}

INLINE void exact_row_of(float *out, int64_t rows, const uint8_t *row, int format, const float *x, const float *xs,
                         int64_t T, int64_t nb)
{
    switch (format) {
    case WB_QUANT_Q6_K: q6_k_row(out, rows, row, x, T, nb * WB_QUANT_BLOCK / WB_QUANT_QK_K); break;
    case WB_QUANT_Q8_0: exact_row(out, rows, row, WB_QUANT_Q8_0, x, xs, T, nb); break;
    case WB_QUANT_Q4_0: exact_row(out, rows, row, WB_QUANT_Q4_0, x, xs, T, nb); break;
    default: exact_row(out, rows, row, WB_QUANT_Q4_1, x, xs, T, nb); break;
    }
}

/* xs[2 (t nb + b)] = 0, xs[2 (t nb + b) + 1] = the sum of block b of x's row t;
 * WB_ERR_BAD_ARGUMENT if x holds inf or nan. */
static int block_sums(float *xs, const float *x, int64_t T, int64_t nb)
{
    int bad = 0;
    for (int64_t k = 0; k < T * nb; k++) {
        const float *xb = x + k * WB_QUANT_BLOCK;
        float s = 0.0f;
#pragma omp simd reduction(+ : s) reduction(| : bad)
        for (int i = 0; i < 32; i++) {
            s += xb[i];
            bad |= !(fabsf(xb[i]) <= FLT_MAX);
        }
        xs[2 * k] = 0.0f;
        xs[2 * k + 1] = s;
    }
    return bad ? WB_ERR_BAD_ARGUMENT : WB_OK;
}

int wb_quant_matmul_exact_f32(float *out, const float *x, const uint8_t *w, int format,
                              int64_t T, int64_t rows, int64_t cols, uint8_t *workspace,
                              int64_t workspace_bytes, int n_threads)
{
    int status = check_product(out, x, w, format, T, rows, cols, workspace, workspace_bytes, n_threads);
    if (status != WB_OK)
        return status == PRODUCT_DONE ? WB_OK : status;

    int64_t nb = cols / WB_QUANT_BLOCK, row_bytes = cols / block_weights(format) * block_bytes(format);
    float *xs = (float *)(workspace + (64 - (uintptr_t)workspace % 64) % 64);
    status = block_sums(xs, x, T, nb);
    if (status != WB_OK)
        return status;
    if (n_threads == 1 || rows * cols < PARALLEL_MIN_WEIGHTS) {
        for (int64_t r = 0; r < rows; r++)
            exact_row_of(out + r, rows, w + r * row_bytes, format, x, xs, T, nb);
        return WB_OK;
    }
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t r = 0; r < rows; r++)
        exact_row_of(out + r, rows, w + r * row_bytes, format, x, xs, T, nb);
    return WB_OK;
}

/* ------------------------------------------------------------------------ */
/* quantisation: ggml's quantize_row_q8_0_ref / q4_0_ref / q4_1_ref /        */
/* q6_K_ref (ggml-quants.c), step for step, every operation rounded on its  */
/* own. The build contracts a * b + c into fused multiply-adds elsewhere     */
/* (-ffp-contract=fast); here that would change the bytes: ggml-quants.c     */
/* built with -march=native and GCC's default contraction writes other Q6_K */
/* bytes in 1.3-1.8% of super-blocks (7% of 1024-1536-wide rows; Gaussian   */
/* and SmolLM2's ffn_down) and other Q4_0 bytes in 0.01% of blocks, against */
/* the same file built with -O2 -mf16c. So contraction is off from here to  */
/* the end of the file. The                                                  */
/* bytes are then those of gguf.quants.quantize (NumPy, no fusing) for the   */
/* 32-weight formats and of engines/quant/q6_k.py for Q6_K.                  */
/* ------------------------------------------------------------------------ */

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* fp32 -> fp16, rounding to nearest even, overflow to inf (as F16C's vcvtps2ph and NumPy). */
static inline uint16_t f32_to_fp16(float f)
{
#if defined(USE_F16C)
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
#else
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u)
        return (uint16_t)(sign | 0x7E00u | ((ax >> 13) & 0x3FFu)); /* NaN, kept quiet */
    if (ax >= 0x477FF000u)
        return (uint16_t)(sign | 0x7C00u); /* 65520 and up round to inf */
    uint32_t h, rest, half;
    if (ax >= 0x38800000u) { /* normal in fp16: drop 13 bits */
        h = ((((ax >> 23) - 112u) << 10) | ((ax >> 13) & 0x3FFu));
        rest = ax & 0x1FFFu;
        half = 0x1000u;
    } else if (ax >= 0x33000000u) { /* subnormal in fp16: the significand in units of 2^-24 */
        uint32_t shift = 126u - (ax >> 23), m = (ax & 0x7FFFFFu) | 0x800000u;
        h = m >> shift;
        rest = m & ((1u << shift) - 1u);
        half = 1u << (shift - 1u);
    } else {
        return (uint16_t)sign; /* at most 2^-25: ties to even, zero */
    }
    if (rest > half || (rest == half && (h & 1u)))
        h++; /* a carry into the exponent is the right answer too */
    return (uint16_t)(sign | h);
#endif
}

static inline void store_fp16(uint8_t *p, float f)
{
    uint16_t h = f32_to_fp16(f);
    memcpy(p, &h, sizeof h);
}

/* A float already rounded to an integer as an int in lo..hi (NaN as 0): C leaves converting an
 * out-of-range float undefined, which only a block whose 1 / d overflowed can reach. */
static inline int saturate(float v, int lo, int hi)
{
    return v >= (float)hi ? hi : v >= (float)lo ? (int)v : v < (float)lo ? lo : 0;
}

static void quantize_q8_0(uint8_t *blk, const float *x)
{
    float amax = 0.0f;
    for (int i = 0; i < 32; i++)
        amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    store_fp16(blk, d);
    for (int i = 0; i < 32; i++)
        blk[2 + i] = (uint8_t)(int8_t)saturate(roundf(x[i] * id), -128, 127);
}

static void quantize_q4_0(uint8_t *blk, const float *x)
{
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < 32; i++)
        if (amax < fabsf(x[i])) { /* the first of the largest |x|, with its sign */
            amax = fabsf(x[i]);
            max = x[i];
        }
    float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    store_fp16(blk, d);
    for (int i = 0; i < 16; i++) {
        int lo = saturate(truncf(x[i] * id + 8.5f), 0, 15), hi = saturate(truncf(x[i + 16] * id + 8.5f), 0, 15);
        blk[2 + i] = (uint8_t)(lo | (hi << 4));
    }
}

static void quantize_q4_1(uint8_t *blk, const float *x)
{
    float min = FLT_MAX, max = -FLT_MAX;
    for (int i = 0; i < 32; i++) {
        min = x[i] < min ? x[i] : min;
        max = x[i] > max ? x[i] : max;
    }
    float d = (max - min) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    store_fp16(blk, d);
    store_fp16(blk + 2, min);
    for (int i = 0; i < 16; i++) {
        int lo = saturate(truncf((x[i] - min) * id + 0.5f), 0, 15);
        int hi = saturate(truncf((x[i + 16] - min) * id + 0.5f), 0, 15);
        blk[4 + i] = (uint8_t)(lo | (hi << 4));
    }
}

#define GROUP_MAX_EPS 1e-15f

/* ggml's nearest_int: adding 1.5 * 2^23 leaves the integer, rounded half to even, in the low
 * mantissa bits. ggml asserts |v| <= 2^22 - 1; past that (reached only once an fp16 scale has
 * overflowed) ours clamps, and takes NaN as 0, what ggml's bit trick gives for x86's default NaN. */
static inline int nearest_int(float v)
{
    if (!(fabsf(v) <= 4194303.0f))
        v = v != v ? 0.0f : v > 0.0f ? 4194303.0f : -4194303.0f;
    float shifted = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &shifted, sizeof i);
    return (i & 0x007FFFFF) - 0x00400000;
}

static inline int clamp_int(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* ggml's make_qx_quants(16, 32, x, L, rmse_type = 1, NULL): the scale of one 16-weight sub-block
 * (0 for an all-zero one), among -max/32 and -max/(32 + 0.1 s), s = +-1..+-9, the one that
 * minimises the x^2-weighted squared error; L (0..63) its quants. */
static float make_qx_quants(int8_t *L, const float *x)
{
    const int n = 16, nmax = 32;
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / max, sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -(nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0.0f;
        for (int i = 0; i < n; i++) {
            int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* ggml's quantize_row_q6_K_ref for one super-block of 256. */
static void quantize_q6_k(uint8_t *blk, const float *x)
{
    int8_t L[WB_QUANT_QK_K];
    float scales[16], max_scale = 0.0f, max_abs_scale = 0.0f;
    for (int j = 0; j < 16; j++) {
        scales[j] = make_qx_quants(L + 16 * j, x + 16 * j);
        if (fabsf(scales[j]) > max_abs_scale) {
            max_abs_scale = fabsf(scales[j]);
            max_scale = scales[j];
        }
    }
    memset(blk, 0, WB_QUANT_Q6_K_BYTES);
    if (max_abs_scale < GROUP_MAX_EPS)
        return; /* all zeros, d = 0 */
    float iscale = -128.0f / max_scale;
    store_fp16(blk + Q6_K_D, 1.0f / iscale);
    int8_t *sc = (int8_t *)(blk + Q6_K_SCALES);
    for (int j = 0; j < 16; j++)
        sc[j] = (int8_t)clamp_int(nearest_int(iscale * scales[j]), -128, 127); /* never below -128 anyway */
    float d_stored = fp16_at(blk + Q6_K_D);
    for (int j = 0; j < 16; j++) {
        float d = d_stored * (float)sc[j];
        if (d == 0.0f)
            continue; /* keeps make_qx_quants' L, as ggml does */
        for (int i = 0; i < 16; i++)
            L[16 * j + i] = (int8_t)(clamp_int(nearest_int(x[16 * j + i] / d), -32, 31) + 32);
    }
    uint8_t *ql = blk, *qh = blk + Q6_K_QH;
    for (int h = 0; h < 2; h++) {
        const int8_t *Lh = L + 128 * h;
        for (int l = 0; l < 32; l++) {
            ql[64 * h + l] = (uint8_t)((Lh[l] & 0x0F) | ((Lh[l + 64] & 0x0F) << 4));
            ql[64 * h + 32 + l] = (uint8_t)((Lh[l + 32] & 0x0F) | ((Lh[l + 96] & 0x0F) << 4));
            qh[32 * h + l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                                       ((Lh[l + 96] >> 4) << 6));
        }
    }
}

static void quantize_row(uint8_t *out, const float *w, int format, int64_t nb)
{
    int64_t bytes = block_bytes(format), size = block_weights(format);
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *blk = out + b * bytes;
        const float *x = w + b * size;
        switch (format) {
        case WB_QUANT_Q8_0: quantize_q8_0(blk, x); break;
        case WB_QUANT_Q4_0: quantize_q4_0(blk, x); break;
        case WB_QUANT_Q4_1: quantize_q4_1(blk, x); break;
        default: quantize_q6_k(blk, x); break;
        }
    }
}

int wb_quant_quantize_f32(uint8_t *out, const float *w, int format, int64_t rows, int64_t cols, int n_threads)
{
    int status = check_matrix(format, rows, cols);
    if (status != WB_OK)
        return status;
    if (n_threads < 1 || n_threads > WB_MAX_THREADS)
        return WB_ERR_BAD_THREADS;
    if (rows == 0 || cols == 0)
        return WB_OK;
    if (out == NULL || w == NULL)
        return WB_ERR_NULL_POINTER;
    int bad = 0;
    for (int64_t i = 0; i < rows * cols; i++)
        bad |= !(fabsf(w[i]) <= FLT_MAX);
    if (bad)
        return WB_ERR_BAD_ARGUMENT;
    int64_t nb = cols / block_weights(format), row_bytes = nb * block_bytes(format);
    if (n_threads == 1 || rows * cols < PARALLEL_MIN_WEIGHTS) {
        for (int64_t r = 0; r < rows; r++)
            quantize_row(out + r * row_bytes, w + r * cols, format, nb);
        return WB_OK;
    }
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t r = 0; r < rows; r++)
        quantize_row(out + r * row_bytes, w + r * cols, format, nb);
    return WB_OK;
}
