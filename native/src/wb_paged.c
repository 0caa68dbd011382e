/* wb_paged.c - decode attention through a block table (see wb_paged.h). */
#include "wb_paged.h"

#include <math.h>

#include "wb_expf.h"
#include "wb_status.h"

#define WB_PAGED_MAX 256

/* The `group` query heads that share one key/value head, against its blocks:
 * each key and value row is loaded once for all of them. */
static inline __attribute__((always_inline)) void
attend_group(float *restrict out, const float *restrict q, const float *restrict keys,
             const float *restrict values, int64_t group, int64_t block_size, int64_t d,
             const int64_t *restrict block_table, int64_t length, float scale)
{
    float scores[WB_PAGED_MAX];
    float m[WB_PAGED_MAX], l[WB_PAGED_MAX];
    for (int64_t h = 0; h < group; h++) {
        m[h] = -INFINITY;
        l[h] = 0.0f;
        for (int64_t i = 0; i < d; i++)
            out[h * d + i] = 0.0f;
    }
    for (int64_t start = 0, t = 0; start < length; start += block_size, t++) {
        const int64_t n = length - start < block_size ? length - start : block_size;
        const float *kb = keys + block_table[t] * block_size * d;
        const float *vb = values + block_table[t] * block_size * d;
        for (int64_t h = 0; h < group; h++) {
            const float *qh = q + h * d;
            float *oh = out + h * d;
            /* scores = scale * K_block^T q, the key block being [d, block_size]. Four partial
             * sums over i break the chain of dependent adds (d is a multiple of 4 or handled
             * by the tail loop). */
            float part[4][WB_PAGED_MAX];
            for (int r = 0; r < 4; r++)
                for (int64_t j = 0; j < n; j++)
                    part[r][j] = 0.0f;
            int64_t i = 0;
            for (; i + 4 <= d; i += 4)
                for (int r = 0; r < 4; r++) {
                    const float qi = qh[i + r];
                    const float *row = kb + (i + r) * block_size;
#pragma omp simd
                    for (int64_t j = 0; j < n; j++)
                        part[r][j] += qi * row[j];
                }
            for (; i < d; i++) {
                const float *row = kb + i * block_size;
#pragma omp simd
                for (int64_t j = 0; j < n; j++)
                    part[0][j] += qh[i] * row[j];
            }
            for (int64_t j = 0; j < n; j++)
                scores[j] = scale * ((part[0][j] + part[1][j]) + (part[2][j] + part[3][j]));
            float block_max = -INFINITY;
            for (int64_t j = 0; j < n; j++)
                block_max = scores[j] > block_max ? scores[j] : block_max;
            /* Rescale what was accumulated under the old maximum (online softmax). */
            const float m_new = block_max > m[h] ? block_max : m[h];
            const float correction = wb_expf(m[h] - m_new);
            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j < n; j++) {
                scores[j] = wb_expf(scores[j] - m_new);
                sum += scores[j];
            }
            l[h] = l[h] * correction + sum;
            for (int64_t i = 0; i < d; i++)
                oh[i] *= correction;
            for (int64_t j = 0; j < n; j++) {
                const float p = scores[j];
                const float *vr = vb + j * d;
#pragma omp simd
                for (int64_t i = 0; i < d; i++)
                    oh[i] += p * vr[i];
            }
            m[h] = m_new;
        }
    }
    for (int64_t h = 0; h < group; h++) {
        const float inv = l[h] > 0.0f ? 1.0f / l[h] : 0.0f;
        for (int64_t i = 0; i < d; i++)
            out[h * d + i] *= inv;
    }
}

int wb_paged_decode_f32(float *out, const float *q, float *kv_pool,
                        int64_t heads, int64_t kv_heads, int64_t num_blocks,
                        int64_t block_size, int64_t d, const int64_t *block_table,
                        int64_t n_table, int64_t length, float scale,
                        const float *k_new, const float *v_new, int64_t write_block,
                        int64_t write_offset, int n_threads)
{
    if (!out || !q || !kv_pool || !block_table)
        return WB_ERR_NULL_POINTER;
    if (heads < 1 || kv_heads < 1 || heads % kv_heads || num_blocks < 1 || block_size < 1 ||
        block_size > WB_PAGED_MAX || d < 1 || d > WB_PAGED_MAX || heads / kv_heads > WB_PAGED_MAX || length < 1 ||
        length > n_table * block_size)
        return WB_ERR_BAD_SIZE;
    if (n_threads < 1 || n_threads > WB_MAX_THREADS)
        return WB_ERR_BAD_THREADS;
    for (int64_t t = 0; t < (length + block_size - 1) / block_size; t++)
        if (block_table[t] < 0 || block_table[t] >= num_blocks)
            return WB_ERR_BAD_ARGUMENT;
    if ((k_new == NULL) != (v_new == NULL))
        return WB_ERR_NULL_POINTER;
    if (k_new && (write_block < 0 || write_block >= num_blocks || write_offset < 0 || write_offset >= block_size))
        return WB_ERR_BAD_ARGUMENT;
    const int64_t group = heads / kv_heads;
    const int64_t head_stride = num_blocks * block_size * d;
    if (k_new) {
        for (int64_t g = 0; g < kv_heads; g++) {
            float *kb = kv_pool + g * head_stride + write_block * block_size * d;
            float *vb = kv_pool + (kv_heads + g) * head_stride + write_block * block_size * d;
            for (int64_t i = 0; i < d; i++) {
                kb[i * block_size + write_offset] = k_new[g * d + i]; /* keys transposed: [d, block_size] */
                vb[write_offset * d + i] = v_new[g * d + i];
            }
        }
    }
#pragma omp parallel for schedule(static) num_threads(n_threads) if (n_threads > 1 && kv_heads > 1 && length > 256)
    for (int64_t g = 0; g < kv_heads; g++) {
        float *o = out + g * group * d;
        const float *qg = q + g * group * d;
        const float *k = kv_pool + g * head_stride, *v = kv_pool + (kv_heads + g) * head_stride;
        /* Common head sizes get a copy with d known at compile time: fully unrolled rows in registers. */
        switch (d) {
        case 32: attend_group(o, qg, k, v, group, block_size, 32, block_table, length, scale); break;
        case 64: attend_group(o, qg, k, v, group, block_size, 64, block_table, length, scale); break;
        case 128: attend_group(o, qg, k, v, group, block_size, 128, block_table, length, scale); break;
        default: attend_group(o, qg, k, v, group, block_size, d, block_table, length, scale);
        }
    }
    return WB_OK;
}
