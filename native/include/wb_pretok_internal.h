/* wb_pretok_internal.h - the piece scanner shared by the encoder and the
 * trainer (not part of the cffi interface). */
#ifndef WB_PRETOK_INTERNAL_H
#define WB_PRETOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* End of the piece starting at i < n (the whole rest for WB_PATTERN_WHOLE). */
size_t wb_pretok_next(int pattern, const uint8_t *s, size_t n, size_t i);
int wb_pretok_valid(int pattern);

#endif
