/* wb_attention_cuda.h - attention forward on an NVIDIA GPU: fp16/bf16 in and
 * out, fp32 accumulation. Built with nvcc into a shared library and loaded
 * through cffi's ABI mode (engines/cudalib.py); this header, after
 * wb_status.h and wb_attention.h, is also its cdef, so it holds declarations
 * only (preprocessor lines are stripped).
 *
 * Layout (contiguous, on the device): q [batch, heads, lq, d],
 * k and v [batch, kv_heads, lk, d], out [batch, heads, lq, d]. Query head h
 * reads key/value head h / (heads / kv_heads). Query i sits at position
 * i + lk - lq and, when causal, sees keys j <= that position; a query that
 * sees no key gets a zero row (the CPU kernels' contract).
 *
 * kernel: the CPU's enum from wb_attention.h. WB_ATTN_NAIVE writes every
 * score to a float workspace of wb_attention_workspace_cuda(...) bytes that
 * the caller allocates; WB_ATTN_FLASH needs none (d 64 or 128 only). The
 * size query returns a negative status instead (WB_ERR_TOO_LARGE when the
 * byte count would overflow int64_t).
 * device: the GPU to run on; the caller's current device is restored before
 * the call returns.
 * stream: a cudaStream_t (torch.cuda.current_stream().cuda_stream), or NULL.
 * Returns 0, a negative argument error (wb_status.h's codes), or
 * WB_CUDA_ERROR_BASE - cudaError_t for a CUDA failure;
 * wb_cuda_status_message() names either.
 */
#ifndef WB_ATTENTION_CUDA_H
#define WB_ATTENTION_CUDA_H

#include <stdint.h>

#include "wb_attention.h"
#include "wb_status.h"

int wb_cuda_device_count(int *count);
const char *wb_cuda_status_message(int status);
int64_t wb_attention_workspace_cuda(int kernel, int64_t batch, int64_t heads,
                                    int64_t lq, int64_t lk);
int wb_attention_forward_cuda_f16(void *out, const void *q, const void *k,
                                  const void *v, int64_t batch, int64_t heads,
                                  int64_t kv_heads, int64_t lq, int64_t lk,
                                  int64_t d, float scale, int causal, int kernel,
                                  void *workspace, int64_t workspace_bytes,
                                  int device, void *stream);
int wb_attention_forward_cuda_bf16(void *out, const void *q, const void *k,
                                   const void *v, int64_t batch, int64_t heads,
                                   int64_t kv_heads, int64_t lq, int64_t lk,
                                   int64_t d, float scale, int causal, int kernel,
                                   void *workspace, int64_t workspace_bytes,
                                   int device, void *stream);

#endif
