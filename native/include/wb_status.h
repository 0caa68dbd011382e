/* wb_status.h - status codes shared by every native kernel family.
 *
 * Every wb_* function returns one of these; 0 is success. The Python side
 * turns a negative code into an exception through wb_status_message().
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
    WB_ERR_BAD_ARGUMENT = -9
};

const char *wb_status_message(int status);
const char *wb_build_info(void);

#endif
