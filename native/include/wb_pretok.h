/* wb_pretok.h - pre-tokenisation: splitting UTF-8 text into the pieces that
 * byte-level BPE encodes independently.
 *
 * Patterns (the regular expressions are the reference, see wb_pretok.c):
 *   WB_PATTERN_WHOLE   the whole text is one piece (for pieces split elsewhere)
 *   WB_PATTERN_GPT2    GPT-2 / r50k_base
 *   WB_PATTERN_CL100K  cl100k_base
 *   WB_PATTERN_SMOLLM  SmolLM2: every number character (\p{N}) is a piece of
 *                      its own, and GPT-2's pattern splits the text between
 *                      two of them as if it were the whole text
 * Text should be valid UTF-8; an invalid byte is treated as one punctuation
 * character, so nothing crashes and every byte still lands in some piece.
 */
#ifndef WB_PRETOK_H
#define WB_PRETOK_H

#include <stddef.h>
#include <stdint.h>

enum {
    WB_PATTERN_WHOLE = 0,
    WB_PATTERN_GPT2 = 1,
    WB_PATTERN_CL100K = 2,
    WB_PATTERN_SMOLLM = 3
};

/* Writes the end offset of each piece to ends (at most cap of them) and the
 * number of pieces to n_pieces. cap >= len always suffices. */
int wb_pretok_split(int pattern, const uint8_t *text, size_t len,
                    uint32_t *ends, size_t cap, size_t *n_pieces);

#endif
