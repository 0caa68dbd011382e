/* wb_word2vec.c - word2vec with negative sampling (skip-gram and CBOW), Hogwild threads, float32.
 *
 * Built by native/build.py into workbench_engines._native; the reference is
 * the NumPy trainer in engines/embeddings/word2vec.py, which draws the same
 * random numbers in the same order, so with one thread the two agree step
 * for step (tests/test_word2vec.py). The algorithm is the original
 * word2vec.c (Mikolov et al., 2013, "Efficient Estimation of Word
 * Representations in Vector Space"; "Distributed Representations of Words
 * and Phrases and their Compositionality"):
 *   - subsampling: word w is kept when keep[w] >= u, u = (next & 0xFFFF) / 65536,
 *     keep[w] = (sqrt(f_w / (t N)) + 1) t N / f_w (computed by the caller);
 *   - dynamic window: b = next % window, context positions pos - (window - b)
 *     .. pos + (window - b), so nearer words are seen more often;
 *   - negative sampling (eq. 4 of the second paper): for an input vector h
 *     and output word o with label l (1 for the true word, 0 for a noise word
 *     drawn from the unigram^0.75 table), g = alpha (l - sigma(h . u_o));
 *     the input's error gathers g u_o, then u_o += g h (u_o updated before
 *     the next target reads it, exactly as word2vec.c). |h . u_o| > 6
 *     saturates sigma to 0 or 1 (word2vec.c's MAX_EXP);
 *   - skip-gram: h = syn0[context], o = the centre word; CBOW: h = the mean
 *     of the context rows, and every context row receives the whole error.
 * Unlike word2vec.c, sigma is computed with expf rather than read from a
 * 1,000-entry table (the table differs from expf by up to 3e-3 and would have
 * to be rebuilt bit for bit in NumPy), and the noise table is built by the
 * caller (word2vec.c hard-codes 10^8 entries).
 *
 * Threads: thread t trains the sentences whose first word lies in the t-th
 * of n equal slices of the chunk's words, drawing from rng[t]; all threads
 * write syn0 and syn1neg without locks (Hogwild, Recht et al., 2011: updates
 * are sparse, so collisions are rare and harmless to convergence). The
 * learning rate depends on a sentence's corpus position only, so it is the
 * same for any thread count.
 *
 * Versions (skip-gram on the plays, 0.84M words, dim 100, window 5, negative 5,
 * sample 1e-3, one thread, 2-vCPU AMD EPYC shared with other jobs):
 *   draw a noise word, train it, draw the next: 234k words/s (gensim 4.4:
 *   305k). perf: half the time waited on the 40 MB noise table and the
 *   noise word's syn1neg row, both cache misses. Dropped.
 *   draw all noise words first and prefetch their rows, then train them in
 *   order (same stream, same updates): 463k words/s, gensim 393k (1.18x,
 *   medians of 5). Kept. The per-target work is two OpenMP SIMD loops over
 *   dim: the dot, then err += g u and u += g h fused in one pass.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "wb_dot.h"
#include "wb_status.h"
#include "wb_word2vec.h"

#define MAX_EXP 6.0f

static inline uint64_t lcg(uint64_t next)
{
    return next * (uint64_t)25214903917ULL + 11;
}


/* One output word: the gradient step of -log sigma(+-h . u) for input h, output row u (eq. 4). */
static inline void train_pair(const float *restrict h, float *restrict u, float *restrict err, float label,
                              float alpha, int64_t dim)
{
    float f = wb_dot_f32(h, u, dim);
    float g;
    if (f > MAX_EXP) {
        g = (label - 1.0f) * alpha;
    } else if (f < -MAX_EXP) {
        g = label * alpha;
    } else {
        g = (label - 1.0f / (1.0f + expf(-f))) * alpha;
    }
#pragma omp simd
    for (int64_t i = 0; i < dim; i++) {
        err[i] += g * u[i];
        u[i] += g * h[i];
    }
}

typedef struct {
    float *syn0, *syn1;
    const int32_t *ids, *table;
    const int64_t *starts;
    const float *keep;
    int64_t table_size, vocab_size, dim, window, negative, words_before, words_total;
    double alpha;
    int sg;
} job_t;

/* The positive word, then `negative` draws from the table (a draw equal to the positive word is skipped).
 * The draws come first and their rows are prefetched: a noise row is a cache miss (syn1neg is megabytes),
 * and fetching all of them at once overlaps the misses. The stream is consumed in the same order. */
static int train_targets(const job_t *job, const float *h, float *err, int32_t *targets, int32_t word, float alpha,
                         uint64_t *next)
{
    const int64_t dim = job->dim;
    targets[0] = word;
    for (int64_t d = 1; d <= job->negative; d++) {
        *next = lcg(*next);
        int32_t target = job->table[(*next >> 16) % (uint64_t)job->table_size];
        if (target < 0 || target >= job->vocab_size) {
            return WB_ERR_BAD_VOCAB;
        }
        targets[d] = target;
        __builtin_prefetch(job->syn1 + (int64_t)target * dim);
    }
    memset(err, 0, (size_t)dim * sizeof(float));
    for (int64_t d = 0; d <= job->negative; d++) {
        if (d > 0 && targets[d] == word) {
            continue;
        }
        train_pair(h, job->syn1 + (int64_t)targets[d] * dim, err, d == 0 ? 1.0f : 0.0f, alpha, dim);
    }
    return WB_OK;
}

static int train_range(const job_t *job, int64_t first, int64_t last, uint64_t *state, float *neu1, float *neu1e,
                       int32_t *targets, int64_t *kept)
{
    int32_t sen[WB_W2V_MAX_SENTENCE];
    const int64_t dim = job->dim, window = job->window, base = job->starts[0];
    uint64_t next = *state;
    int status = WB_OK;
    for (int64_t s = first; s < last && status == WB_OK; s++) {
        double position = (double)(job->words_before + job->starts[s] - base);
        float alpha = (float)(job->alpha * (1.0 - position / ((double)job->words_total + 1.0)));
        if (alpha < (float)(job->alpha * 1e-4)) {
            alpha = (float)(job->alpha * 1e-4);
        }
        int64_t len = 0;
        for (int64_t i = job->starts[s]; i < job->starts[s + 1]; i++) {
            int32_t w = job->ids[i];
            if (w < 0 || w >= job->vocab_size) {
                status = WB_ERR_BAD_VOCAB;
                break;
            }
            if (job->keep) {
                next = lcg(next);
                if (job->keep[w] < (float)(next & 0xFFFF) / 65536.0f) {
                    continue;
                }
            }
            sen[len++] = w;
        }
        *kept += len;
        for (int64_t pos = 0; pos < len && status == WB_OK; pos++) {
            int32_t word = sen[pos];
            next = lcg(next);
            int64_t b = (int64_t)(next % (uint64_t)window);
            if (job->sg) {
                for (int64_t a = b; a < window * 2 + 1 - b && status == WB_OK; a++) {
                    int64_t c = pos - window + a;
                    if (a == window || c < 0 || c >= len) {
                        continue;
                    }
                    float *l1 = job->syn0 + (int64_t)sen[c] * dim;
                    status = train_targets(job, l1, neu1e, targets, word, alpha, &next);
#pragma omp simd
                    for (int64_t i = 0; i < dim; i++) {
                        l1[i] += neu1e[i];
                    }
                }
            } else {
                int64_t cw = 0;
                memset(neu1, 0, (size_t)dim * sizeof(float));
                for (int64_t a = b; a < window * 2 + 1 - b; a++) {
                    int64_t c = pos - window + a;
                    if (a == window || c < 0 || c >= len) {
                        continue;
                    }
                    const float *row = job->syn0 + (int64_t)sen[c] * dim;
#pragma omp simd
                    for (int64_t i = 0; i < dim; i++) {
                        neu1[i] += row[i];
                    }
                    cw++;
                }
                if (cw == 0) {
                    continue;
                }
                for (int64_t i = 0; i < dim; i++) {
                    neu1[i] /= (float)cw;
                }
                status = train_targets(job, neu1, neu1e, targets, word, alpha, &next);
                for (int64_t a = b; a < window * 2 + 1 - b && status == WB_OK; a++) {
                    int64_t c = pos - window + a;
                    if (a == window || c < 0 || c >= len) {
                        continue;
                    }
                    float *row = job->syn0 + (int64_t)sen[c] * dim;
#pragma omp simd
                    for (int64_t i = 0; i < dim; i++) {
                        row[i] += neu1e[i];
                    }
                }
            }
        }
    }
    *state = next;
    return status;
}

/* First sentence of thread t's slice: the first whose start lies at or past t/n of the chunk's words. */
static int64_t slice_start(const int64_t *starts, int64_t n_sentences, int64_t t, int64_t n)
{
    int64_t words = starts[n_sentences] - starts[0];
    int64_t goal = (int64_t)((double)words * (double)t / (double)n);
    int64_t lo = 0, hi = n_sentences;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (starts[mid] - starts[0] < goal) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return t == 0 ? 0 : lo;
}

static int thread_work(const job_t *job, int64_t n_sentences, int64_t t, int64_t n, uint64_t *rng, int64_t *kept)
{
    float *buffers = malloc(2 * (size_t)job->dim * sizeof(float));
    int32_t *targets = malloc(((size_t)job->negative + 1) * sizeof(int32_t));
    if (!buffers || !targets) {
        free(buffers);
        free(targets);
        return WB_ERR_NO_MEMORY;
    }
    int64_t first = slice_start(job->starts, n_sentences, t, n);
    int64_t last = t + 1 == n ? n_sentences : slice_start(job->starts, n_sentences, t + 1, n);
    int status = train_range(job, first, last, &rng[t], buffers, buffers + job->dim, targets, kept);
    free(buffers);
    free(targets);
    return status;
}

int wb_word2vec_train_f32(float *syn0, float *syn1neg, uint64_t *rng, int64_t *trained, const int32_t *ids,
                          int64_t n_ids, const int64_t *starts, int64_t n_sentences, const float *keep, const int32_t *table,
                          int64_t table_size, int64_t vocab_size, int64_t dim, int64_t window, int64_t negative,
                          int sg, double alpha, int64_t words_before, int64_t words_total, int n_threads)
{
    if (n_threads < 1 || n_threads > WB_MAX_THREADS) {
        return WB_ERR_BAD_THREADS;
    }
    if (n_sentences < 0 || vocab_size < 1 || vocab_size > INT32_MAX || dim < 1 || dim > INT32_MAX || window < 1 ||
        window > WB_W2V_MAX_SENTENCE || negative < 1 || negative > WB_W2V_MAX_NEGATIVE || table_size < 1 || words_before < 0 ||
        words_total < 0) {
        return WB_ERR_BAD_SIZE;
    }
    if ((sg != 0 && sg != 1) || !(alpha > 0.0) || !isfinite(alpha)) {
        return WB_ERR_BAD_ARGUMENT;
    }
    if (trained) {
        *trained = 0;
    }
    if (!starts || !syn0 || !syn1neg || !rng || !table) {
        return WB_ERR_NULL_POINTER;
    }
    if (starts[0] < 0) {
        return WB_ERR_BAD_SIZE;
    }
    for (int64_t s = 0; s < n_sentences; s++) {
        int64_t len = starts[s + 1] - starts[s];
        if (len < 0 || len > WB_W2V_MAX_SENTENCE) {
            return WB_ERR_BAD_SIZE;
        }
    }
    if (n_ids < 0 || starts[n_sentences] > n_ids) {
        return WB_ERR_BAD_SIZE; /* a sentence would read past the ids */
    }
    if (n_sentences == 0 || starts[n_sentences] == starts[0]) {
        return WB_OK;
    }
    if (!ids) {
        return WB_ERR_NULL_POINTER;
    }
    job_t job = {syn0, syn1neg, ids, table, starts, keep, table_size, vocab_size, dim, window, negative,
                 words_before, words_total, alpha, sg};
    int64_t kept = 0;
    int status = WB_OK;
    if (n_threads == 1) {
        status = thread_work(&job, n_sentences, 0, 1, rng, &kept);
    } else {
#pragma omp parallel num_threads(n_threads) reduction(+ : kept)
        {
#ifdef _OPENMP
            int64_t n = omp_get_num_threads(), id = omp_get_thread_num();
#else
            int64_t n = 1, id = 0;
#endif
            int mine = thread_work(&job, n_sentences, id, n, rng, &kept);
            if (mine != WB_OK) {
#pragma omp atomic write
                status = mine;
            }
        }
    }
    if (trained) {
        *trained = kept;
    }
    return status;
}
