/* wb_dot.h - the float32 dot product every kernel shares (internal header).
 *
 * One accumulator under `omp simd`: GCC vectorises it with a tree of partial
 * sums, so the order of additions (and the last bits) follows the vector
 * width, not i = 0..n-1.
 */
#ifndef WB_DOT_H
#define WB_DOT_H

#include <stdint.h>

static inline float wb_dot_f32(const float *restrict a, const float *restrict b, int64_t n)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) {
        s += a[i] * b[i];
    }
    return s;
}

#endif
