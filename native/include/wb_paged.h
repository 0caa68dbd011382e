/* wb_paged.h - decode attention over a paged KV cache, reading blocks in place, fp32.
 *
 * PagedAttention (Kwon et al., 2023): a sequence's keys and values live in
 * fixed-size blocks scattered over a pool; block_table lists its blocks in
 * order, so token j sits in block block_table[j / block_size] at slot
 * j % block_size. One layer's pool is C-contiguous
 * [2, kv_heads, num_blocks, block_size * d]: keys, then values. A value block
 * is [block_size, d]; a key block is stored transposed, [d, block_size], as
 * vLLM's key cache is, so a block's scores are a sum over d of whole vectors
 * of keys rather than one horizontal sum per key.
 *
 * For one new token, q and out are [heads, d]; query head h reads key/value
 * head h / (heads / kv_heads) (GQA) and
 *   out[h] = sum_{j < length} softmax_j(scale * q[h] . k_j) v_j,
 * computed block by block with the online softmax (Milakov & Gimelshein,
 * 2018), so neither the scores nor a gathered copy of K and V is stored.
 * block_size and d are at most 256.
 *
 * When k_new and v_new ([kv_heads, d]) are given, the new token's key and
 * value are first stored at (write_block, write_offset), so one call does a
 * decode step's cache write and its attention; pass NULL to only read.
 */
#ifndef WB_PAGED_H
#define WB_PAGED_H

#include <stdint.h>

int wb_paged_decode_f32(float *out, const float *q, float *kv_pool,
                        int64_t heads, int64_t kv_heads, int64_t num_blocks,
                        int64_t block_size, int64_t d, const int64_t *block_table,
                        int64_t n_table, int64_t length, float scale,
                        const float *k_new, const float *v_new, int64_t write_block,
                        int64_t write_offset, int n_threads);

#endif
