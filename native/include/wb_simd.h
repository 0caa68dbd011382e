/* wb_simd.h - one native vector register of floats for GCC's generic vectors (internal header).
 *
 * WB_VW floats: 16 with AVX-512, 8 with AVX2, 4 otherwise (SSE, AVX without AVX2, and the
 * portable build). A generic vector wider than the target's registers is kept
 * in memory by GCC, so kernels that block for registers use exactly this width.
 * WB_VREGS is how many such registers the target has (32 with AVX-512, else 16).
 */
#ifndef WB_SIMD_H
#define WB_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__)
#define WB_VW 16
#define WB_VREGS 32
#define WB_SIMD_PATH "avx512"
#elif defined(__AVX2__)
#define WB_VW 8
#define WB_VREGS 16
#define WB_SIMD_PATH "avx2"
#else
#define WB_VW 4
#define WB_VREGS 16
#if defined(__x86_64__) || defined(__i386__)
#define WB_SIMD_PATH "sse"
#else
#define WB_SIMD_PATH "vec128"
#endif
#endif

typedef float wb_vf __attribute__((vector_size(4 * WB_VW)));
typedef int32_t wb_vi __attribute__((vector_size(4 * WB_VW))); /* what a compare of two wb_vf gives */
typedef uint32_t wb_vu __attribute__((vector_size(4 * WB_VW))); /* for bit shifts without signed overflow */

static inline wb_vf wb_loadv(const float *p)
{
    wb_vf x;
    memcpy(&x, p, sizeof x);
    return x;
}

static inline void wb_storev(float *p, wb_vf x)
{
    memcpy(p, &x, sizeof x);
}

#endif
