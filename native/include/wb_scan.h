/* wb_scan.h - the selective state-space scan of Mamba, fp32, sequential in time.
 *
 * Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State
 * Spaces" (2023), Algorithm 2 and equations 2a-2b, discretised by zero-order
 * hold on A and Euler on B as the reference implementation's
 * selective_scan_ref does. For every batch row b, channel c and state index j:
 *
 *   dt_t    = delta[b,c,t], or softplus(delta[b,c,t]) when delta_softplus
 *   h_t[j]  = exp(dt_t * A[c,j]) * h_{t-1}[j] + dt_t * B[b,j,t] * u[b,c,t]
 *   y[b,c,t] = sum_j C[b,j,t] * h_t[j]  (+ D[c] * u[b,c,t] when D is given)
 *
 * with h_{-1} = h0[b,c,:] (zeros when h0 is NULL). Layouts, all C-contiguous:
 *   y, u, delta:        batch x d x L
 *   A:                  d x n
 *   B, C:               batch x n x L (one B and C per batch row and step, shared by the channels)
 *   D (optional):       d
 *   h0, last_state (both optional, may alias): batch x d x n
 * last_state receives h_{L-1} (h0, or zeros, when L = 0).
 *
 * 1 <= n <= WB_SCAN_MAX_STATE (the state lives in registers and on the
 * stack); batch, d, L >= 0. Statuses: WB_ERR_NULL_POINTER, WB_ERR_BAD_SIZE
 * (n out of range, a negative size), WB_ERR_TOO_LARGE (sizes whose products
 * overflow), WB_ERR_BAD_THREADS, WB_ERR_NO_MEMORY. NaN in any input spreads
 * to the outputs it reaches, as in the definition. A is meant negative (a
 * decay, as Mamba's -exp(A_log)); where delta * A exceeds 88.38 the kernel's
 * exp saturates near 2.4e38 where the definition gives inf.
 */
#ifndef WB_SCAN_H
#define WB_SCAN_H

#include <stdint.h>

/* The largest state dimension n the kernel keeps on its stack (Mamba uses 16). */
enum { WB_SCAN_MAX_STATE = 256 };

int wb_scan_selective_f32(float *y, float *last_state, const float *u, const float *delta, const float *A,
                          const float *B, const float *C, const float *D, const float *h0, int64_t batch,
                          int64_t d, int64_t L, int64_t n, int delta_softplus, int n_threads);

#endif
