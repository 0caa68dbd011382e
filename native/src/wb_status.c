/* wb_status.c - status messages and build information for every family.
 *
 * Built by native/build.py (cffi API mode) into workbench_engines._native,
 * and by engines/cudalib.py (nvcc) into the CUDA library, whose
 * wb_cuda_status_message() names CUDA runtime errors itself and asks this
 * table for the rest: one message per code, whichever library returned it.
 */
#include "wb_status.h"

#ifndef WB_BUILD_INFO
#define WB_BUILD_INFO "unknown build"
#endif

const char *wb_status_message(int status)
{
    if (status <= WB_CUDA_ERROR_BASE)
        return "a CUDA runtime call failed";
    switch (status) {
    case WB_OK: return "ok";
    case WB_ERR_NULL_POINTER: return "a required pointer was NULL";
    case WB_ERR_BAD_SIZE: return "a size was negative or too large";
    case WB_ERR_BAD_STRIDE: return "a leading dimension was smaller than the row length";
    case WB_ERR_BAD_THREADS: return "the thread count must be from 1 to WB_MAX_THREADS";
    case WB_ERR_NO_MEMORY: return "out of memory";
    case WB_ERR_BAD_VOCAB: return "the vocabulary has a duplicate or empty token, or lacks a single byte";
    case WB_ERR_OUTPUT_FULL: return "the output buffer or workspace is too small";
    case WB_ERR_BAD_PATTERN: return "unknown pre-tokenisation pattern";
    case WB_ERR_BAD_ARGUMENT: return "an argument was out of range";
    case WB_ERR_TOO_LARGE: return "the sizes multiply to more than 64-bit arithmetic can hold";
    default: return "unknown status";
    }
}

const char *wb_status_build_info(void)
{
    return WB_BUILD_INFO;
}
