/* wb_expf.h - a branch-free expf that GCC vectorises (internal header).
 *
 * The Cephes expf polynomial (S. L. Moshier, Cephes Math Library, expf.c):
 * x = n ln 2 + r with |r| <= ln2/2, exp(r) by a degree-6 polynomial, and 2^n
 * built in the exponent bits. Relative error about 1e-7 over the clamped
 * range; below it the result is 0, so exp(-inf) = 0 as masking needs, and
 * exp(NaN) is NaN (a softmax row holding +inf produces inf - inf = NaN).
 */
#ifndef WB_EXPF_H
#define WB_EXPF_H

#include <stdint.h>
#include <string.h>

static inline float wb_expf(float x)
{
    const float hi = 88.3762626647949f, lo = -87.3365478515625f;
    const float log2e = 1.44269504088896341f;
    const float c1 = 0.693359375f, c2 = -2.12194440e-4f;
    /* 1.5 * 2^23: adding it rounds to the nearest integer and leaves that
     * integer in the low mantissa bits. */
    const float magic = 12582912.0f;

    float xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    float shifted = xc * log2e + magic;
    float n = shifted - magic;
    float r = xc - n * c1 - n * c2;
    float z = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * z + r + 1.0f;

    /* Unsigned, so that a NaN's bit pattern (which no clamp above catches)
     * shifts without undefined behaviour; its result is replaced below. */
    uint32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    uint32_t scale_bits = (bits - 0x4B400000u + 127u) << 23;
    float scale;
    memcpy(&scale, &scale_bits, sizeof scale);
    float y = p * scale;
    /* Below the clamp the true value is a subnormal or 0; -inf gives 0; NaN stays NaN. */
    y = x < lo ? 0.0f : y;
    return x != x ? x : y;
}

#endif
