/* wb_bpe.c - byte-level BPE encoding over a ranked vocabulary.
 *
 * The algorithm is the rank-based merge of tiktoken (OpenAI, 2022), itself
 * BPE as applied by Sennrich et al., "Neural Machine Translation of Rare
 * Words with Subword Units", ACL 2016: split the piece into single bytes,
 * then repeatedly merge the adjacent pair whose concatenation has the lowest
 * rank (the leftmost such pair on a tie) until no concatenation is a token.
 * The readable version is engines/tokenizers/bpe_reference.py.
 *
 * Speed comes from three things:
 *  - a piece that is itself a token (most words) costs one hash lookup;
 *  - short pieces use tiktoken's O(n^2) scan over a small stack array, which
 *    beats anything cleverer below WB_BPE_SHORT bytes;
 *  - long pieces use a linked list and a binary min-heap of (rank, start)
 *    with lazy deletion, O(n log n), so one megabyte of a repeated character
 *    costs milliseconds where the quadratic scan would take hours.
 * Both paths pick the same (lowest rank, leftmost) pair at every step, so
 * they produce the same tokens.
 */
#include <stdlib.h>
#include <string.h>

#include "wb_bpe.h"
#include "wb_hash.h"
#include "wb_pretok_internal.h"
#include "wb_status.h"

#define WB_BPE_SHORT 128
#define WB_NO_RANK UINT32_MAX

/* A slot keeps a token's first eight bytes and its length beside its rank, so
 * most lookups (tokens are mostly short) compare without touching the blob. */
typedef struct {
    uint64_t head;
    uint32_t rank; /* WB_NO_RANK marks an empty slot */
    uint32_t len;
} wb_slot;

struct wb_bpe {
    uint8_t *blob;
    uint64_t *offsets; /* n_ranks + 1 */
    size_t n_ranks;
    wb_slot *slots;
    size_t mask;
    size_t max_len;
    uint32_t byte_rank[256];
    int pattern;
};

/* The first min(n, 8) bytes of p as a little-endian integer, zero-padded.
 * When at least eight bytes are readable one unaligned load does it. */
static inline uint64_t head_of(const uint8_t *p, size_t n, size_t readable)
{
    uint64_t v = 0;
    if (readable >= 8) {
        memcpy(&v, p, 8);
        return n >= 8 ? v : v & ((1ull << (8 * n)) - 1);
    }
    memcpy(&v, p, n < 8 ? n : 8);
    return v;
}

static inline uint64_t key_hash(const uint8_t *p, size_t n, uint64_t head)
{
    return n <= 8 ? wb_mix64(head ^ (0x9E3779B97F4A7C15ull * n)) : wb_hash_bytes(p, n);
}

/* Rank of p[0 .. n) into *rank; readable >= n bytes may be read from p. */
static inline int find(const wb_bpe *bpe, const uint8_t *p, size_t n, size_t readable, uint32_t *rank)
{
    if (n == 1) {
        *rank = bpe->byte_rank[p[0]];
        return 1;
    }
    if (n > bpe->max_len)
        return 0;
    uint64_t head = head_of(p, n, readable);
    uint64_t h = key_hash(p, n, head);
    for (size_t i = h & bpe->mask;; i = (i + 1) & bpe->mask) {
        const wb_slot *slot = &bpe->slots[i];
        if (slot->rank == WB_NO_RANK)
            return 0;
        if (slot->head == head && slot->len == n
            && (n <= 8 || memcmp(bpe->blob + bpe->offsets[slot->rank] + 8, p + 8, n - 8) == 0)) {
            *rank = slot->rank;
            return 1;
        }
    }
}

int wb_bpe_new(wb_bpe **out, const uint8_t *blob, const uint64_t *offsets,
               size_t n_ranks, int pattern)
{
    if (!out || !offsets || (n_ranks && !blob))
        return WB_ERR_NULL_POINTER;
    *out = NULL;
    if (!wb_pretok_valid(pattern))
        return WB_ERR_BAD_PATTERN;
    if (n_ranks == 0 || n_ranks >= WB_NO_RANK)
        return WB_ERR_BAD_SIZE;
    for (size_t r = 0; r < n_ranks; r++)
        if (offsets[r + 1] < offsets[r])
            return WB_ERR_BAD_VOCAB;
    wb_bpe *bpe = calloc(1, sizeof *bpe);
    if (!bpe)
        return WB_ERR_NO_MEMORY;
    size_t total = offsets[n_ranks] - offsets[0];
    size_t n_slots = wb_pow2_at_least(2 * n_ranks);
    bpe->blob = malloc(total ? total : 1);
    bpe->offsets = malloc((n_ranks + 1) * sizeof *bpe->offsets);
    bpe->slots = malloc(n_slots * sizeof *bpe->slots);
    if (!bpe->blob || !bpe->offsets || !bpe->slots) {
        wb_bpe_free(bpe);
        return WB_ERR_NO_MEMORY;
    }
    memcpy(bpe->blob, blob + offsets[0], total);
    for (size_t r = 0; r <= n_ranks; r++)
        bpe->offsets[r] = offsets[r] - offsets[0];
    bpe->n_ranks = n_ranks;
    bpe->mask = n_slots - 1;
    bpe->pattern = pattern;
    for (size_t i = 0; i < n_slots; i++)
        bpe->slots[i].rank = WB_NO_RANK;
    for (int b = 0; b < 256; b++)
        bpe->byte_rank[b] = WB_NO_RANK;
    int status = WB_OK;
    for (size_t r = 0; r < n_ranks && status == WB_OK; r++) {
        const uint8_t *p = bpe->blob + bpe->offsets[r];
        size_t n = bpe->offsets[r + 1] - bpe->offsets[r];
        if (n == 0)
            continue; /* a hole */
        uint32_t existing;
        if (n == 1) {
            if (bpe->byte_rank[p[0]] != WB_NO_RANK)
                status = WB_ERR_BAD_VOCAB;
            bpe->byte_rank[p[0]] = (uint32_t)r;
        }
        if (n > bpe->max_len)
            bpe->max_len = n;
        if (n > 1 && find(bpe, p, n, n, &existing)) {
            status = WB_ERR_BAD_VOCAB;
            break;
        }
        uint64_t head = head_of(p, n, n);
        size_t i = key_hash(p, n, head) & bpe->mask;
        while (bpe->slots[i].rank != WB_NO_RANK)
            i = (i + 1) & bpe->mask;
        bpe->slots[i].head = head;
        bpe->slots[i].len = (uint32_t)n;
        bpe->slots[i].rank = (uint32_t)r;
    }
    for (int b = 0; b < 256 && status == WB_OK; b++)
        if (bpe->byte_rank[b] == WB_NO_RANK)
            status = WB_ERR_BAD_VOCAB;
    if (status != WB_OK) {
        wb_bpe_free(bpe);
        return status;
    }
    *out = bpe;
    return WB_OK;
}

void wb_bpe_free(wb_bpe *bpe)
{
    if (!bpe)
        return;
    free(bpe->blob);
    free(bpe->offsets);
    free(bpe->slots);
    free(bpe);
}

int64_t wb_bpe_rank(const wb_bpe *bpe, const uint8_t *bytes, size_t len)
{
    uint32_t rank;
    if (!bpe || !bytes || len == 0)
        return -1;
    return find(bpe, bytes, len, len, &rank) ? (int64_t)rank : -1;
}

/* Rank of p[a .. b), or WB_NO_RANK; readable bytes may be read from p. */
static inline uint32_t span_rank(const wb_bpe *bpe, const uint8_t *p, size_t a, size_t b, size_t readable)
{
    uint32_t rank;
    return find(bpe, p + a, b - a, readable - a, &rank) ? rank : WB_NO_RANK;
}

/* tiktoken's scan: starts[k] is where part k begins (starts[n_parts] = n),
 * ranks[k] the rank of parts k and k+1 joined. */
static size_t merge_short(const wb_bpe *bpe, const uint8_t *p, size_t n, size_t readable, uint32_t *out)
{
    uint32_t starts[WB_BPE_SHORT + 1];
    uint32_t ranks[WB_BPE_SHORT];
    size_t parts = n;
    for (size_t k = 0; k <= n; k++)
        starts[k] = (uint32_t)k;
    for (size_t k = 0; k + 1 < parts; k++)
        ranks[k] = span_rank(bpe, p, k, k + 2, readable);
    while (parts > 1) {
        uint32_t best = WB_NO_RANK;
        size_t at = 0;
        for (size_t k = 0; k + 1 < parts; k++)
            if (ranks[k] < best) {
                best = ranks[k];
                at = k;
            }
        if (best == WB_NO_RANK)
            break;
        /* Part at+1 joins part at. */
        memmove(starts + at + 1, starts + at + 2, (parts - at - 1) * sizeof *starts);
        memmove(ranks + at + 1, ranks + at + 2,
                (parts > at + 3 ? parts - at - 3 : 0) * sizeof *ranks);
        parts--;
        if (at + 1 < parts)
            ranks[at] = span_rank(bpe, p, starts[at], starts[at + 2], readable);
        if (at > 0)
            ranks[at - 1] = span_rank(bpe, p, starts[at - 1], starts[at + 1], readable);
    }
    for (size_t k = 0; k < parts; k++)
        out[k] = span_rank(bpe, p, starts[k], starts[k + 1], readable);
    return parts;
}

typedef struct {
    uint32_t rank;
    uint32_t start;
} wb_heap_item;

static inline int heap_less(wb_heap_item x, wb_heap_item y)
{
    return x.rank < y.rank || (x.rank == y.rank && x.start < y.start);
}

static void heap_push(wb_heap_item *heap, size_t *size, wb_heap_item item)
{
    size_t i = (*size)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_less(item, heap[parent]))
            break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = item;
}

static wb_heap_item heap_pop(wb_heap_item *heap, size_t *size)
{
    wb_heap_item top = heap[0];
    wb_heap_item last = heap[--(*size)];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= *size)
            break;
        if (child + 1 < *size && heap_less(heap[child + 1], heap[child]))
            child++;
        if (!heap_less(heap[child], last))
            break;
        heap[i] = heap[child];
        i = child;
    }
    if (*size)
        heap[i] = last;
    return top;
}

/* Linked list of parts indexed by start byte: next[s] is the start of the
 * following part (n at the end), prev[s] of the preceding one, pair[s] the
 * rank of s joined with its successor. A heap entry is current when its start
 * is still a part and its rank still equals pair[start]: a part's pair only
 * ever grows, and a longer byte string has a different rank. */
static int merge_long(const wb_bpe *bpe, const uint8_t *p, size_t n, size_t readable, uint32_t *out, size_t *n_out)
{
    uint32_t *next = malloc(n * sizeof *next);
    uint32_t *prev = malloc(n * sizeof *prev);
    uint32_t *pair = malloc(n * sizeof *pair);
    uint8_t *alive = malloc(n);
    wb_heap_item *heap = malloc(n * 2 * sizeof *heap);
    int status = WB_OK;
    if (!next || !prev || !pair || !alive || !heap) {
        status = WB_ERR_NO_MEMORY;
        goto done;
    }
    size_t size = 0;
    for (size_t s = 0; s < n; s++) {
        next[s] = (uint32_t)(s + 1);
        prev[s] = (uint32_t)(s ? s - 1 : 0);
        alive[s] = 1;
        pair[s] = s + 1 < n ? span_rank(bpe, p, s, s + 2, readable) : WB_NO_RANK;
        if (pair[s] != WB_NO_RANK)
            heap_push(heap, &size, (wb_heap_item){pair[s], (uint32_t)s});
    }
    while (size) {
        wb_heap_item top = heap_pop(heap, &size);
        uint32_t s = top.start;
        if (!alive[s] || pair[s] != top.rank)
            continue;
        uint32_t gone = next[s];
        alive[gone] = 0;
        next[s] = next[gone];
        if (next[s] < n)
            prev[next[s]] = s;
        /* The heap holds at most one current entry per part plus stale ones;
         * 2n slots suffice because each merge pushes at most two. */
        pair[s] = next[s] < n ? span_rank(bpe, p, s, next[next[s]], readable) : WB_NO_RANK;
        if (pair[s] != WB_NO_RANK)
            heap_push(heap, &size, (wb_heap_item){pair[s], s});
        if (s > 0) {
            uint32_t before = prev[s];
            pair[before] = span_rank(bpe, p, before, next[s], readable);
            if (pair[before] != WB_NO_RANK)
                heap_push(heap, &size, (wb_heap_item){pair[before], before});
        }
    }
    size_t count = 0;
    for (size_t s = 0; s < n; s = next[s])
        out[count++] = span_rank(bpe, p, s, next[s], readable);
    *n_out = count;
done:
    free(next);
    free(prev);
    free(pair);
    free(alive);
    free(heap);
    return status;
}

/* Encodes one piece into out (room for n ids); readable >= n bytes from p. */
static int encode_piece(const wb_bpe *bpe, const uint8_t *p, size_t n, size_t readable, uint32_t *out, size_t *n_out)
{
    uint32_t rank;
    if (find(bpe, p, n, readable, &rank)) {
        out[0] = rank;
        *n_out = 1;
        return WB_OK;
    }
    if (n <= WB_BPE_SHORT) {
        *n_out = merge_short(bpe, p, n, readable, out);
        return WB_OK;
    }
    return merge_long(bpe, p, n, readable, out, n_out);
}

static int encode_text(const wb_bpe *bpe, const uint8_t *text, size_t len, uint32_t *out, size_t *n_out)
{
    size_t count = 0;
    for (size_t i = 0; i < len;) {
        size_t end = bpe->pattern == 0 ? len : wb_pretok_next(bpe->pattern, text, len, i);
        size_t produced = 0;
        int status = encode_piece(bpe, text + i, end - i, len - i, out + count, &produced);
        if (status != WB_OK)
            return status;
        count += produced;
        i = end;
    }
    *n_out = count;
    return WB_OK;
}

int wb_bpe_encode(const wb_bpe *bpe, const uint8_t *text, size_t len,
                  uint32_t *out, size_t cap, size_t *n_out)
{
    if (!bpe || !n_out || (len && (!text || !out)))
        return WB_ERR_NULL_POINTER;
    if (cap < len)
        return WB_ERR_OUTPUT_FULL;
    if (len > UINT32_MAX)
        return WB_ERR_BAD_SIZE;
    return encode_text(bpe, text, len, out, n_out);
}

int wb_bpe_encode_batch(const wb_bpe *bpe, const uint8_t *text,
                        const uint64_t *starts, size_t n_texts, uint32_t *out,
                        uint64_t *counts, int n_threads)
{
    if (!bpe || !starts || (n_texts && (!counts || (starts[n_texts] && (!text || !out)))))
        return WB_ERR_NULL_POINTER;
    if (n_threads < 1 || n_threads > WB_MAX_THREADS)
        return WB_ERR_BAD_THREADS;
    for (size_t t = 0; t < n_texts; t++)
        if (starts[t + 1] < starts[t] || starts[t + 1] - starts[t] > UINT32_MAX)
            return WB_ERR_BAD_SIZE;
    int status = WB_OK;
    long long n = (long long)n_texts;
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads) if (n_threads > 1 && n_texts > 1)
    for (long long t = 0; t < n; t++) {
        size_t produced = 0;
        int s = encode_text(bpe, text + starts[t], starts[t + 1] - starts[t],
                            out + starts[t], &produced);
        counts[t] = produced;
        if (s != WB_OK) {
#pragma omp atomic write
            status = s;
        }
    }
    return status;
}
