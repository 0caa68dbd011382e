/* wb_bpe.h - byte-level BPE: an encoder over a ranked vocabulary and a trainer.
 *
 * Vocabulary: token r (its rank, which is also its id) is the byte string
 * blob[offsets[r] .. offsets[r + 1]); an empty entry is a hole (an id used for
 * something else, such as a special token). Every single byte must be a token.
 */
#ifndef WB_BPE_H
#define WB_BPE_H

#include <stddef.h>
#include <stdint.h>

typedef struct wb_bpe wb_bpe;
typedef struct wb_bpe_counter wb_bpe_counter;
typedef struct wb_bpe_trainer wb_bpe_trainer;

/* ---- encoder ---------------------------------------------------------- */
int wb_bpe_new(wb_bpe **out, const uint8_t *blob, const uint64_t *offsets,
               size_t n_ranks, int pattern);
void wb_bpe_free(wb_bpe *bpe);

/* Encodes text; out needs room for len ids (a token covers at least a byte). */
int wb_bpe_encode(const wb_bpe *bpe, const uint8_t *text, size_t len,
                  uint32_t *out, size_t cap, size_t *n_out);

/* Encodes n_texts texts, text i being text[starts[i] .. starts[i + 1]).
 * Its ids go to out + starts[i] and their count to counts[i]; out needs
 * room for starts[n_texts] ids. Texts are shared among n_threads threads. */
int wb_bpe_encode_batch(const wb_bpe *bpe, const uint8_t *text,
                        const uint64_t *starts, size_t n_texts, uint32_t *out,
                        uint64_t *counts, int n_threads);

/* The rank of one byte string, or -1 when it is not a token. */
int64_t wb_bpe_rank(const wb_bpe *bpe, const uint8_t *bytes, size_t len);
/* How pieces longer than 128 bytes are encoded: 2 by backtracking (linear),
 * its pair tests read off the merge tree; 1 by backtracking, each pair tested
 * by encoding it (a vocabulary where some token is merged from a newer one,
 * or whose merge tree does not match its encoding, or no memory for the merge
 * tables); 0 by the heap (a vocabulary with a token that its own bytes do not
 * merge back to, or no memory for the trie); -1 for NULL.
 * Builds the backtracking tables if no long piece has yet. */
int wb_bpe_backtracks(const wb_bpe *bpe);

/* ---- training ---------------------------------------------------------- */
/* Counts the pieces of streamed text: call add for each chunk (split at a
 * place no piece crosses, such as a line end). */
int wb_bpe_counter_new(wb_bpe_counter **out, int pattern);
int wb_bpe_counter_add(wb_bpe_counter *counter, const uint8_t *text,
                       size_t len);
/* Adds one piece count directly (pieces split elsewhere). */
int wb_bpe_counter_add_piece(wb_bpe_counter *counter, const uint8_t *piece,
                             size_t len, uint64_t count);
size_t wb_bpe_counter_size(const wb_bpe_counter *counter);
void wb_bpe_counter_free(wb_bpe_counter *counter);

/* A trainer starts from the counted pieces as sequences of bytes 0..255. */
int wb_bpe_trainer_new(wb_bpe_trainer **out, const wb_bpe_counter *counter);
/* Performs up to max_merges merges. Merge k creates token 256 + k from the
 * pair (left[i], right[i]) that occurred counts[i] times; n_done may be less
 * than max_merges when no pair occurs any more. */
int wb_bpe_trainer_step(wb_bpe_trainer *trainer, size_t max_merges,
                        uint32_t *left, uint32_t *right, uint64_t *counts,
                        size_t *n_done);
void wb_bpe_trainer_free(wb_bpe_trainer *trainer);

#endif
