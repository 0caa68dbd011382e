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

#include "wb_simd.h"

/* The range, the two-part ln 2 of the reduction, and 1.5 * 2^23: adding it
 * rounds to the nearest integer and leaves that integer in the low mantissa
 * bits. Shared by the scalar and the vector versions. */
#define WB_EXPF_HI 88.3762626647949f
#define WB_EXPF_LO (-87.3365478515625f)
#define WB_EXPF_LOG2E 1.44269504088896341f
#define WB_EXPF_C1 0.693359375f
#define WB_EXPF_C2 (-2.12194440e-4f)
#define WB_EXPF_MAGIC 12582912.0f

/* exp(r) - 1 - r = r^2 p(r) on |r| <= ln2/2, Horner's rule; works on a float or a wb_vf. */
#define WB_EXPF_POLY(r, z)                                                                   \
    ((((((((r) * 1.9875691500e-4f + 1.3981999507e-3f) * (r) + 8.3334519073e-3f) * (r) +      \
         4.1665795894e-2f) * (r) + 1.6666665459e-1f) * (r) + 5.0000001201e-1f) * (z)) + (r) + 1.0f)

static inline float wb_expf(float x)
{
    float xc = x > WB_EXPF_HI ? WB_EXPF_HI : x;
    xc = xc < WB_EXPF_LO ? WB_EXPF_LO : xc;
    float shifted = xc * WB_EXPF_LOG2E + WB_EXPF_MAGIC;
    float n = shifted - WB_EXPF_MAGIC;
    float r = xc - n * WB_EXPF_C1 - n * WB_EXPF_C2;
    float z = r * r;
    float p = WB_EXPF_POLY(r, z);

    /* Unsigned, so that a NaN's bit pattern (which no clamp above catches)
     * shifts without undefined behaviour; its result is replaced below. */
    uint32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    uint32_t scale_bits = (bits - 0x4B400000u + 127u) << 23;
    float scale;
    memcpy(&scale, &scale_bits, sizeof scale);
    float y = p * scale;
    /* Below the clamp the true value is a subnormal or 0; -inf gives 0; NaN stays NaN. */
    y = x < WB_EXPF_LO ? 0.0f : y;
    return x != x ? x : y;
}

/* Lane by lane, yes where mask is all ones and no where it is 0 (a vector compare's result). */
static inline wb_vf wb_vselect(wb_vi mask, wb_vf yes, wb_vf no)
{
    return (wb_vf)((mask & (wb_vi)yes) | (~mask & (wb_vi)no));
}

/* e^x for x <= 0, -inf or NaN, a register at a time: the polynomial above
 * without the upper clamp (a softmax shifted by its maximum never needs it).
 * NaN stays NaN through the polynomial; below the range, and at -inf, the
 * result is 0. */
static inline wb_vf wb_expf_nonpositive_v(wb_vf x)
{
    const wb_vf zero = {0};
    wb_vi under = x < WB_EXPF_LO;
    wb_vf xc = wb_vselect(under, zero + WB_EXPF_LO, x);
    wb_vf shifted = xc * WB_EXPF_LOG2E + WB_EXPF_MAGIC;
    wb_vf n = shifted - WB_EXPF_MAGIC;
    wb_vf r = xc - n * WB_EXPF_C1 - n * WB_EXPF_C2;
    wb_vf z = r * r;
    wb_vf p = WB_EXPF_POLY(r, z);
    wb_vu scale = ((wb_vu)shifted - 0x4B400000u + 127u) << 23; /* unsigned, as in wb_expf */
    return wb_vselect(under, zero, p * (wb_vf)scale);
}

#endif
