/* wb_attention_cuda.h - attention forward on an NVIDIA GPU: fp16/bf16 in and
 * out, fp32 accumulation. Built with nvcc into a shared library and loaded
 * through cffi's ABI mode (engines/cudalib.py); this header is also its cdef,
 * so it holds declarations only (preprocessor lines are stripped).
 *
 * Layout (contiguous, on the device): q [batch, heads, lq, d],
 * k and v [batch, kv_heads, lk, d], out [batch, heads, lq, d]. Query head h
 * reads key/value head h / (heads / kv_heads). Query i sits at position
 * i + lk - lq and, when causal, sees keys j <= that position; a query that
 * sees no key gets a zero row (the CPU kernels' contract).
 *
 * kernel: WB_CUDA_NAIVE writes every score to a float workspace of
 * wb_cuda_attention_workspace_bytes(...) bytes that the caller allocates;
 * WB_CUDA_FLASH needs none (d 64 or 128 only).
 * stream: a cudaStream_t (torch.cuda.current_stream().cuda_stream), or NULL.
 * Returns 0, a negative argument error (wb_status.h's codes), or
 * WB_CUDA_ERROR_BASE - cudaError_t for a CUDA failure; wb_cuda_message()
 * names either.
 */
#ifndef WB_ATTENTION_CUDA_H
#define WB_ATTENTION_CUDA_H

#include <stdint.h>

enum { WB_CUDA_NAIVE = 0, WB_CUDA_FLASH = 1 };
enum { WB_CUDA_F16 = 0, WB_CUDA_BF16 = 1 };
enum { WB_CUDA_ERROR_BASE = -1000 };

int wb_cuda_device_count(int *count);
const char *wb_cuda_message(int status);
int64_t wb_cuda_attention_workspace_bytes(int kernel, int64_t batch, int64_t heads, int64_t lq, int64_t lk);
int wb_cuda_attention(void *out, const void *q, const void *k, const void *v, int dtype,
                      int64_t batch, int64_t heads, int64_t kv_heads, int64_t lq, int64_t lk, int64_t d,
                      float scale, int causal, int kernel, void *workspace, int64_t workspace_bytes,
                      int device, void *stream);

#endif
