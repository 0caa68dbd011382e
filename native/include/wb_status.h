/* wb_status.h - status codes shared by every native kernel family, CPU and CUDA.
 *
 * Every wb_* function returns one of these; 0 is success. The Python side
 * turns a negative code into an exception through wb_status_message() (or
 * wb_cuda_status_message() for the CUDA library, which compiles
 * wb_status.c in too, so both read the one table of messages).
 * This header is also fed to cffi's cdef (preprocessor lines are stripped),
 * so it holds declarations only.
 */
#ifndef WB_STATUS_H
#define WB_STATUS_H

enum {
    WB_OK = 0,
    WB_ERR_NULL_POINTER = -1,
    WB_ERR_BAD_SIZE = -2,
    WB_ERR_BAD_STRIDE = -3,
    WB_ERR_BAD_THREADS = -4,
    WB_ERR_NO_MEMORY = -5,
    WB_ERR_BAD_VOCAB = -6,
    WB_ERR_OUTPUT_FULL = -7,
    WB_ERR_BAD_PATTERN = -8,
    WB_ERR_BAD_ARGUMENT = -9,
    WB_ERR_TOO_LARGE = -10,
    /* The CUDA library returns WB_CUDA_ERROR_BASE - e for a failed CUDA
     * runtime call that returned cudaError_t e. */
    WB_CUDA_ERROR_BASE = -1000
};

/* The one thread cap: every kernel refuses n_threads outside
 * 1..WB_MAX_THREADS with WB_ERR_BAD_THREADS, since OpenMP runtimes crash, or
 * call exit(), when asked for tens of thousands of threads. Not a status, so
 * an enum of its own (cffi's cdef reads enums, not #defines). */
enum { WB_MAX_THREADS = 256 };

const char *wb_status_message(int status);
const char *wb_status_build_info(void);

#endif
