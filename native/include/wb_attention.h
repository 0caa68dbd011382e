/* wb_attention.h - scaled dot-product attention forward, fp32, two kernels.
 *
 * Layout (C-contiguous): q [batch, heads, lq, d], k [batch, kv_heads, lk, d],
 * v [batch, kv_heads, lk, dv], out [batch, heads, lq, dv]; heads is a
 * multiple of kv_heads and query head h reads key/value head
 * h / (heads / kv_heads) (MQA when kv_heads = 1, GQA in between).
 *
 * Query i sits at position i + lk - lq (the last lq of lk positions, as when
 * decoding with a cache) and may attend to key j when:
 *   causal:               j <= pos
 *   window > 0, causal:   j >  pos - window      (sliding window)
 *   window > 0, not:      |pos - j| < window
 *   key_mask (batch, lk): key_mask[b, j] != 0    (padding), or NULL for all
 * A query with no allowed key gets a zero output row.
 *
 * workspace: at least wb_attention_workspace_f32(...) floats, owned by the
 * caller (so its size shows in the caller's memory accounting). The size
 * query returns a negative wb_status.h code instead of a size for bad
 * arguments, and WB_ERR_TOO_LARGE when the size would overflow int64_t.
 */
#ifndef WB_ATTENTION_H
#define WB_ATTENTION_H

#include <stdint.h>

enum { WB_ATTN_NAIVE = 0, WB_ATTN_FLASH = 1 };
/* The CPU flash kernel's tiles: queries per block, keys per step. */
enum { WB_ATTN_FLASH_BLOCK_Q = 64, WB_ATTN_FLASH_BLOCK_K = 64 };

/* The flash kernel's register blocking in this build: "avx512" (16 lanes,
 * 4 vectors wide), "avx2" (8 lanes, 2 wide), "sse" or "vec128" (4 lanes,
 * 2 wide; x86 or another architecture). */
const char *wb_attention_simd_path(void);
int64_t wb_attention_workspace_f32(int kernel, int64_t lq, int64_t lk, int64_t d,
                                   int64_t dv, int n_threads);
int wb_attention_forward_f32(float *out, const float *q, const float *k,
                             const float *v, int64_t batch, int64_t heads,
                             int64_t kv_heads, int64_t lq, int64_t lk, int64_t d,
                             int64_t dv, float scale, int causal, int64_t window,
                             const uint8_t *key_mask, int kernel, float *workspace,
                             int64_t workspace_len, int n_threads);

#endif
