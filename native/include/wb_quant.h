/* wb_quant.h - GGUF block quantisation: quantise and dequantise Q8_0 / Q4_0 /
 * Q4_1 / Q6_K rows and multiply float32 activations by a quantised weight matrix.
 *
 * Formats (ggml's ggml-common.h; the numbers are ggml's ggml_type ids, so a
 * GGUF tensor's type can be passed as it is). Every block holds 32 weights of
 * one row, little-endian, packed with no padding:
 *   Q8_0  fp16 d, int8 q[32]            w_i = d * q_i                34 bytes
 *   Q4_0  fp16 d, uint8 qs[16]          w_i = d * (n_i - 8)          18 bytes
 *   Q4_1  fp16 d, fp16 m, uint8 qs[16]  w_i = d * n_i + m            20 bytes
 * where n_i (0..15) is the low nibble of qs[i] for i < 16 and the high nibble
 * of qs[i - 16] for i >= 16. Q6_K, a K-quant, has super-blocks of 256:
 *   Q6_K  uint8 ql[128], uint8 qh[64], int8 sc[16], fp16 d
 *                                       w_i = d * sc[i / 16] * (L_i - 32)  210 bytes
 * with L_i (0..63) 4 bits from ql and 2 from qh (wb_quant.c says where).
 *
 * Layout: a weight matrix of rows x cols (cols a multiple of the block, 32 or
 * 256) is rows rows of blocks, rows contiguous (a GGUF tensor's data as stored).
 * x is T x cols float32 and out is T x rows float32, both C-contiguous.
 *
 * Two products compute out = x W^T:
 *   wb_quant_matmul_f32 (Q8_0, Q4_0, Q4_1; WB_ERR_BAD_ARGUMENT for Q6_K) the way llama.cpp does: each 32-element block of x
 *     is first rounded to int8 with one fp32 scale (wb_quant_quantize_x_f32),
 *     then every block product is an integer dot product times the two
 *     scales. The result is the product of the dequantised weights with the
 *     rounded x, not with x itself.
 *   wb_quant_matmul_exact_f32 keeps x in float32 and dequantises the weights
 *     in registers: out = sum over blocks of d sum_i q_i x_i + m sum_i x_i,
 *     with q_i a block's integers (Q8_0's q_i, Q4_0's n_i - 8, Q4_1's n_i)
 *     and m = 0 but for Q4_1. The result is the product of the dequantised
 *     weights with x itself, to float32 round-off: per output,
 *     |error| <= (cols / 32 + 40) 2^-24 sum_i (|d q_i| + |m|) |x_i|
 *     (d and m those of weight i's block; for Q6_K, nb = cols / 256 and m = 0).
 * Both need a workspace of wb_quant_workspace_bytes(T, cols) bytes, owned by
 * the caller, and return WB_ERR_BAD_ARGUMENT if x holds inf or nan.
 *
 * Functions return a wb_status.h code; n_threads (1..WB_MAX_THREADS)
 * splits output rows across OpenMP threads, and the result does not depend on
 * it. wb_quant_simd_path() names the kernels this build compiled in.
 */
#ifndef WB_QUANT_H
#define WB_QUANT_H

#include <stdint.h>

enum {
    WB_QUANT_Q4_0 = 2,
    WB_QUANT_Q4_1 = 3,
    WB_QUANT_Q8_0 = 8,
    WB_QUANT_Q6_K = 14,
    WB_QUANT_BLOCK = 32,
    WB_QUANT_QK_K = 256,
    WB_QUANT_Q4_0_BYTES = 18,
    WB_QUANT_Q4_1_BYTES = 20,
    WB_QUANT_Q8_0_BYTES = 34,
    WB_QUANT_Q6_K_BYTES = 210
};

const char *wb_quant_simd_path(void);

int wb_quant_dequantize_f32(float *out, const uint8_t *w, int format,
                            int64_t rows, int64_t cols, int n_threads);

/* out (rows x row bytes) = w (rows x cols) quantised as ggml's quantize_row_*_ref
 * writes it (round to nearest; Q6_K's scale search), every operation rounded on
 * its own: the bytes of gguf.quants.quantize for Q8_0 / Q4_0 / Q4_1 and of
 * engines/quant/q6_k.py for Q6_K. WB_ERR_BAD_ARGUMENT if w holds inf or nan
 * (then out is not written). */
int wb_quant_quantize_f32(uint8_t *out, const float *w, int format, int64_t rows, int64_t cols,
                          int n_threads);

/* xq (T x cols) = round(x / xd) per block, xd (T x cols/32) = block max|x| / 127,
 * xsum (T x cols/32) = the sum of each block's xq; a block with max|x| below
 * 127 * FLT_MIN is all zeros. WB_ERR_BAD_ARGUMENT if x holds inf or nan (as
 * wb_quant_matmul_f32 returns then). */
int wb_quant_quantize_x_f32(int8_t *xq, float *xd, int32_t *xsum, const float *x,
                            int64_t T, int64_t cols);

/* out (rows x cols/32) (Q8_0, Q4_0, Q4_1; WB_ERR_BAD_ARGUMENT for Q6_K): the integer part of every block product of W with one
 * quantised activation row, sum_i q_i xq_i (Q8_0, Q4_0 with q_i = n_i - 8)
 * or sum_i n_i xq_i (Q4_1), as the matmul's kernel computes it. */
int wb_quant_block_dots_i32(int32_t *out, const uint8_t *w, int format,
                            const int8_t *xq, const int32_t *xsum,
                            int64_t rows, int64_t cols);

/* Bytes of workspace either product needs, or a negative status. */
int64_t wb_quant_workspace_bytes(int64_t T, int64_t cols);

int wb_quant_matmul_f32(float *out, const float *x, const uint8_t *w, int format,
                        int64_t T, int64_t rows, int64_t cols, uint8_t *workspace,
                        int64_t workspace_bytes, int n_threads);

int wb_quant_matmul_exact_f32(float *out, const float *x, const uint8_t *w, int format,
                              int64_t T, int64_t rows, int64_t cols, uint8_t *workspace,
                              int64_t workspace_bytes, int n_threads);

#endif
