/* wb_word2vec.h - word2vec training with negative sampling (skip-gram or CBOW), one chunk of sentences per call.
 *
 * The algorithm of the original word2vec.c (Mikolov et al., 2013), thread for
 * thread: Hogwild SGD (each thread trains its own contiguous share of the
 * chunk's words and writes the shared matrices without locks), frequent-word
 * subsampling, a dynamic window, negatives from a unigram^0.75 table.
 *
 * Arrays (all C-contiguous):
 *   syn0      V x dim float32, input vectors (the embeddings), updated in place.
 *   syn1neg   V x dim float32, output vectors, updated in place.
 *   rng       n_threads uint64 LCG states, next = next * 25214903917 + 11;
 *             thread t draws from rng[t] and leaves its last state there, so
 *             consecutive calls continue one stream per thread.
 *   ids       n_ids corpus words as vocabulary ids in [0, V).
 *   starts    n_sentences + 1 offsets into ids: sentence s is
 *             ids[starts[s] .. starts[s+1]), at most WB_W2V_MAX_SENTENCE words,
 *             starts non-decreasing, starts[n_sentences] <= n_ids.
 * window: at most WB_W2V_MAX_SENTENCE (no sentence is longer); negative: at
 * most WB_W2V_MAX_NEGATIVE (each thread keeps negative + 1 target ids).
 *   keep      V float32 subsampling thresholds (word2vec.c's "ran"): a word is
 *             kept when keep[w] >= (next & 0xFFFF) / 65536; NULL keeps all.
 *   table     table_size noise words in [0, V).
 * words_before: corpus positions processed before starts[0] (over all epochs);
 * words_total: epochs x corpus words. A sentence starting at position p
 * trains with alpha * max(1e-4, 1 - p / (words_total + 1)).
 * sg: 1 skip-gram, 0 CBOW (mean of the context). trained (optional) receives
 * the words kept after subsampling. Returns a wb_status.h code.
 */
#ifndef WB_WORD2VEC_H
#define WB_WORD2VEC_H

#include <stdint.h>

enum {
    WB_W2V_MAX_SENTENCE = 1000,
    WB_W2V_MAX_NEGATIVE = 1000
};

int wb_word2vec_train_f32(float *syn0, float *syn1neg, uint64_t *rng, int64_t *trained, const int32_t *ids,
                          int64_t n_ids, const int64_t *starts, int64_t n_sentences, const float *keep,
                          const int32_t *table, int64_t table_size, int64_t vocab_size, int64_t dim, int64_t window, int64_t negative,
                          int sg, double alpha, int64_t words_before, int64_t words_total, int n_threads);

#endif
