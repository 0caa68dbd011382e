/* wb_checked.h - size arithmetic that reports overflow (internal header).
 *
 * Sizes are int64_t products of caller-supplied counts (threads x lq x lk,
 * batch x heads x lq x d, ...). A product that wraps would size a buffer
 * too small and let a kernel write past it, so every such product goes
 * through these and the entry point returns WB_ERR_TOO_LARGE instead.
 * Not part of the cffi interface.
 */
#ifndef WB_CHECKED_H
#define WB_CHECKED_H

#include <stdint.h>

/* *out = a * b; nonzero when the product does not fit in int64_t. */
static inline int wb_mul_overflows(int64_t a, int64_t b, int64_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}

/* *out = a * b * c * d; nonzero when any partial product overflows. */
static inline int wb_mul4_overflows(int64_t a, int64_t b, int64_t c, int64_t d, int64_t *out)
{
    int64_t ab, abc;
    return __builtin_mul_overflow(a, b, &ab) || __builtin_mul_overflow(ab, c, &abc) ||
           __builtin_mul_overflow(abc, d, out);
}

/* *out = a + b; nonzero on overflow. */
static inline int wb_add_overflows(int64_t a, int64_t b, int64_t *out)
{
    return __builtin_add_overflow(a, b, out);
}

#endif
