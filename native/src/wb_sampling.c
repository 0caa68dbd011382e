/* wb_sampling.c - top-k and top-p (nucleus) filtering without sorting the vocabulary.
 *
 * Nucleus sampling (Holtzman et al., "The Curious Case of Neural Text
 * Degeneration", ICLR 2020) keeps the smallest set of most probable tokens
 * whose mass reaches p. The textbook way sorts all n probabilities,
 * O(n log n); torch does exactly that. Here:
 *
 *   1. one pass finds the row maximum m; a second computes the softmax
 *      normaliser Z = sum exp((x - m) / T) and drops every logit into one of
 *      NBUCKETS buckets by (m - x) / T, the negative log of its relative
 *      probability, so bucket 0 holds the most probable tokens;
 *   2. walking the buckets from the top, add up their mass until the next
 *      bucket would reach p: every token above that boundary bucket is kept
 *      without being ordered;
 *   3. only the boundary bucket (typically a few dozen tokens) is sorted, by
 *      probability then index, and taken one by one until the mass reaches p.
 *
 * Tokens whose relative probability is below e^-MAX_GAP (about 1e-16) all
 * share the last bucket; they only matter when p is within that much of 1.
 * Top-k is the same idea with counts instead of mass. Each row is a few
 * passes over its logits, so a 100k vocabulary costs tens of microseconds.
 * The readable versions are in engines/sampling/reference.py.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "wb_sampling.h"
#include "wb_status.h"

#define NBUCKETS 512
#define MAX_GAP 36.0f /* buckets cover (m - x)/T in [0, MAX_GAP) */

typedef struct {
    float value; /* a logit */
    int64_t index;
} wb_entry;

/* Larger value first, NaN after every number (as NumPy sorts); on a tie, the lower index first.
 * A total order: qsort may misbehave, in glibc even write out of bounds, with one that is not. */
static int entry_order(const void *a, const void *b)
{
    const wb_entry *x = a, *y = b;
    int x_nan = isnan(x->value), y_nan = isnan(y->value);
    if (x_nan != y_nan)
        return x_nan - y_nan;
    if (!x_nan && x->value != y->value)
        return x->value > y->value ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

static inline int bucket_of(float gap)
{
    if (!(gap < MAX_GAP)) /* also catches NaN and -inf logits */
        return NBUCKETS - 1;
    int b = (int)(gap * (NBUCKETS - 1) / MAX_GAP);
    return b < NBUCKETS - 1 ? b : NBUCKETS - 2;
}

/* A token's softmax weight relative to the row maximum, e^((x - m) / T), in
 * double as the definition computes it: float weights move the sum by about
 * 1e-7 of itself, enough to end the nucleus one token early or late. In
 * double too because 1 / T overflows float for T below about 3e-39. */
static inline double weight(float x, float m, double inv_t)
{
    return exp(((double)x - (double)m) * inv_t);
}

static float row_max(const float *x, int64_t n)
{
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t i = 0; i < n; i++)
        m = x[i] > m ? x[i] : m;
    return m;
}

/* Writes x's kept entries (bucket < boundary, plus the chosen ones) and -inf elsewhere. */
static int64_t keep_row(float *out, const float *x, int64_t n, const uint16_t *bucket, int boundary,
                        const wb_entry *chosen, int64_t n_chosen)
{
    int64_t kept = n_chosen;
    for (int64_t i = 0; i < n; i++) {
        int keep = bucket[i] < boundary;
        out[i] = keep ? x[i] : -INFINITY;
        kept += keep;
    }
    for (int64_t c = 0; c < n_chosen; c++)
        out[chosen[c].index] = x[chosen[c].index];
    return kept;
}

/* Keeps only the first entry equal to m (the first entry when none is): what the reference's stable
 * sort keeps when the probabilities are NaN, as they are for a row holding NaN or +inf. */
static void keep_first_max(float *out, const float *x, int64_t n, float m, int64_t *kept)
{
    int64_t first = 0;
    while (first < n && !(x[first] == m))
        first++;
    first = first < n ? first : 0;
    for (int64_t i = 0; i < n; i++)
        out[i] = -INFINITY;
    out[first] = x[first];
    *kept = 1;
}

static int top_p_row(float *out, const float *x, int64_t n, double p, double inv_t, int64_t *kept,
                     uint16_t *bucket, wb_entry *scratch)
{
    float m = row_max(x, n);
    /* p = 1 keeps everything, whatever rounding says about the last tokens. */
    if (p >= 1.0) {
        memcpy(out, x, (size_t)n * sizeof *out);
        *kept = n;
        return WB_OK;
    }
    if (m == INFINITY) {
        keep_first_max(out, x, n, m, kept);
        return WB_OK;
    }
    double mass[NBUCKETS] = {0};
    int64_t count[NBUCKETS] = {0};
    double z = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double w = weight(x[i], m, inv_t);
        int b = bucket_of((float)(((double)m - x[i]) * inv_t));
        bucket[i] = (uint16_t)b;
        mass[b] += w;
        count[b]++;
        z += w;
    }
    /* A NaN logit makes the mass NaN; so does a row of -inf alone (m - x is -inf - -inf). */
    if (isnan(z) || m == -INFINITY) {
        keep_first_max(out, x, n, m, kept);
        return WB_OK;
    }
    double target = p * z, above = 0.0;
    int boundary = 0;
    while (boundary < NBUCKETS - 1 && above + mass[boundary] < target) {
        above += mass[boundary];
        boundary++;
    }
    /* Sort the boundary bucket by logit, as the definition orders the row,
     * and take tokens until the mass reaches p. */
    int64_t n_in = 0;
    for (int64_t i = 0; i < n; i++)
        if (bucket[i] == boundary)
            scratch[n_in++] = (wb_entry){x[i], i};
    qsort(scratch, (size_t)n_in, sizeof *scratch, entry_order);
    /* above < target here, so at least one token of the bucket is taken. */
    int64_t take = 0;
    while (take < n_in && above < target) {
        above += weight(scratch[take].value, m, inv_t);
        take++;
    }
    *kept = keep_row(out, x, n, bucket, boundary, scratch, take);
    return WB_OK;
}

static int top_k_row(float *out, const float *x, int64_t n, int64_t k, int64_t *kept,
                     uint16_t *bucket, wb_entry *scratch)
{
    if (k >= n) {
        memcpy(out, x, (size_t)n * sizeof *out);
        *kept = n;
        return WB_OK;
    }
    float m = row_max(x, n);
    int64_t count[NBUCKETS] = {0};
    for (int64_t i = 0; i < n; i++) {
        int b = m == -INFINITY ? NBUCKETS - 1 : bucket_of(m - x[i]);
        bucket[i] = (uint16_t)b;
        count[b]++;
    }
    int64_t above = 0;
    int boundary = 0;
    while (boundary < NBUCKETS - 1 && above + count[boundary] < k) {
        above += count[boundary];
        boundary++;
    }
    int64_t n_in = 0;
    for (int64_t i = 0; i < n; i++)
        if (bucket[i] == boundary)
            scratch[n_in++] = (wb_entry){x[i], i};
    qsort(scratch, (size_t)n_in, sizeof *scratch, entry_order);
    int64_t take = k - above;
    *kept = keep_row(out, x, n, bucket, boundary, scratch, take < n_in ? take : n_in);
    return WB_OK;
}

static int run_rows(float *out, const float *x, int64_t rows, int64_t n, int64_t *kept, int n_threads,
                    int is_top_p, int64_t k, double p, double inv_t)
{
    int status = WB_OK;
#pragma omp parallel num_threads(n_threads) if (n_threads > 1 && rows > 1)
    {
        uint16_t *bucket = malloc((size_t)n * sizeof *bucket);
        wb_entry *scratch = malloc((size_t)n * sizeof *scratch);
        if (!bucket || !scratch) {
#pragma omp atomic write
            status = WB_ERR_NO_MEMORY;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t r = 0; r < rows; r++) {
            if (!bucket || !scratch)
                continue;
            int64_t row_kept = 0;
            if (is_top_p)
                top_p_row(out + r * n, x + r * n, n, p, inv_t, &row_kept, bucket, scratch);
            else
                top_k_row(out + r * n, x + r * n, n, k, &row_kept, bucket, scratch);
            if (kept)
                kept[r] = row_kept;
        }
        free(bucket);
        free(scratch);
    }
    return status;
}

int wb_sampling_top_k_f32(float *out, const float *x, int64_t rows, int64_t n, int64_t k,
                          int64_t *kept, int n_threads)
{
    if (!out || !x)
        return WB_ERR_NULL_POINTER;
    if (rows < 0 || n < 1)
        return WB_ERR_BAD_SIZE;
    if (k < 1)
        return WB_ERR_BAD_ARGUMENT;
    if (n_threads < 1 || n_threads > WB_MAX_THREADS)
        return WB_ERR_BAD_THREADS;
    return run_rows(out, x, rows, n, kept, n_threads, 0, k, 0.0, 1.0);
}

int wb_sampling_top_p_f32(float *out, const float *x, int64_t rows, int64_t n, double p,
                          double temperature, int64_t *kept, int n_threads)
{
    if (!out || !x)
        return WB_ERR_NULL_POINTER;
    if (rows < 0 || n < 1)
        return WB_ERR_BAD_SIZE;
    if (!(p > 0.0 && p <= 1.0) || !(temperature > 0.0) || !isfinite(temperature) || !isfinite(1.0 / temperature))
        return WB_ERR_BAD_ARGUMENT;
    if (n_threads < 1 || n_threads > WB_MAX_THREADS)
        return WB_ERR_BAD_THREADS;
    return run_rows(out, x, rows, n, kept, n_threads, 1, 0, p, 1.0 / temperature);
}
