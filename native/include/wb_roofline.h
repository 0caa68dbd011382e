/* wb_roofline.h - the two ceilings of a roofline (Williams, Waterman and
 * Patterson, "Roofline: an insightful visual performance model", CACM 2009):
 * the fp32 multiply-add rate one core (or n_threads) reaches, and the memory
 * bandwidth, measured by kernels simple enough to read, so that every other
 * kernel's GFLOP/s or GB/s can be stated as a share of them.
 *
 * wb_roofline_fma_f32: each of n_threads threads runs steps / n_threads steps
 *   of WB_ROOFLINE_CHAINS independent chains acc = acc * m + a, one vector
 *   register per chain (wb_roofline_lanes() floats), and stores the sum of its
 *   registers in sums[thread] (sums holds n_threads floats), so the work
 *   cannot be dropped. FLOPs: 2 * chains * lanes * (steps / n_threads) * n_threads.
 * wb_roofline_triad_f32: a[i] = b[i] + s * c[i] for i < n (McCalpin's STREAM
 *   triad), in static thread ranges; 12 bytes a element by STREAM's count.
 * wb_roofline_read_f32: *sum = x[0] + ... + x[n-1], a read-only stream.
 * Return wb_status.h codes.
 */
#ifndef WB_ROOFLINE_H
#define WB_ROOFLINE_H

#include <stdint.h>

enum { WB_ROOFLINE_CHAINS = 12 };

int wb_roofline_lanes(void);
int wb_roofline_fma_f32(float *sums, int64_t steps, int n_threads);
int wb_roofline_triad_f32(float *a, const float *b, const float *c, float s, int64_t n, int n_threads);
int wb_roofline_read_f32(float *sum, const float *x, int64_t n, int n_threads);

#endif
