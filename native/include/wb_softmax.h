/* wb_softmax.h - row-wise softmax, log-softmax and logsumexp over fp32.
 *
 * Layout: x is a rows x cols matrix whose rows start ld_x floats apart and
 * whose columns are contiguous (ld_x >= cols); out likewise with ld_out.
 * lse has one float per row. n_threads >= 1 splits rows across OpenMP
 * threads when the build has OpenMP, and is ignored otherwise.
 */
#ifndef WB_SOFTMAX_H
#define WB_SOFTMAX_H

#include <stdint.h>

int wb_softmax_forward_f32(float *out, const float *x, int64_t rows,
                           int64_t cols, int64_t ld_out, int64_t ld_x,
                           int n_threads);
int wb_softmax_log_f32(float *out, const float *x, int64_t rows,
                       int64_t cols, int64_t ld_out, int64_t ld_x,
                       int n_threads);
int wb_softmax_logsumexp_f32(float *lse, const float *x, int64_t rows,
                             int64_t cols, int64_t ld_x, int n_threads);

#endif
