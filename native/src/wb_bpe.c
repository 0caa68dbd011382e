/* wb_bpe.c - byte-level BPE encoding over a ranked vocabulary.
 *
 * The algorithm is the rank-based merge of tiktoken (OpenAI, 2022), itself
 * BPE as applied by Sennrich et al., "Neural Machine Translation of Rare
 * Words with Subword Units", ACL 2016: split the piece into single bytes,
 * then repeatedly merge the adjacent pair whose concatenation has the lowest
 * rank (the leftmost such pair on a tie) until no concatenation is a token.
 * The readable version is engines/tokenizers/bpe_reference.py.
 *
 * Speed comes from four things:
 *  - a piece that is itself a token (most words) costs one hash lookup;
 *  - short pieces use tiktoken's O(n^2) scan over a small stack array, which
 *    beats anything cleverer below WB_BPE_SHORT bytes, starting from a
 *    table of every two-byte rank;
 *  - a short piece merged once in a text is remembered (wb_piece_cache);
 *  - long pieces are encoded by backtracking over the text's longest
 *    tokens (the linear-time encoder of the `bpe` crate in GitHub's
 *    rust-gems, 2024), checked token pair by token pair, O(n) for a fixed
 *    vocabulary: see merge_backtrack.
 * A vocabulary in which some token does not encode to itself keeps the
 * older long path, a linked list and a binary min-heap of (rank, start)
 * with lazy deletion, O(n log n). The scan and the heap pick the same
 * (lowest rank, leftmost) pair at every step, so they produce the same
 * tokens; the backtracking encoder produces them too (tests compare it with
 * tiktoken, and both with the Python reference on random vocabularies).
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
    unsigned shift; /* a key's home slot is its hash's top bits: hash >> shift */
    size_t max_len;
    uint32_t byte_rank[256];
    uint32_t *pair_rank; /* 65,536: the rank of each two-byte string (b0 << 8 | b1), or WB_NO_RANK */
    int pattern;
    /* For merge_backtrack: a byte trie of the tokens (node 0 the root; the
     * child of node v by byte b is found under key (v << 8 | b) + 1 in an
     * open-addressed table), each node's token rank or WB_NO_RANK, and for
     * each token the rank of its longest proper prefix that is a token. */
    struct {
        uint32_t parent, child; /* child 0: an empty slot (the root is nobody's child) */
        uint8_t byte;
    } *trie; /* one probe reads a whole edge (12 bytes): the longest-prefix walk misses the cache at every step */
    size_t trie_mask;
    uint32_t *node_rank;
    uint32_t *trie2; /* 65,536: the node after two bytes (b0 << 8 | b1), or 0 */
    uint32_t *shorter;
    /* For valid_split: the two tokens each token is merged from (itself twice
     * for one no merge makes), and the token of each merge, open-addressed
     * under key (left << 32 | right) + 1. */
    uint32_t (*split)[2];
    struct {
        uint64_t key; /* 0: an empty slot */
        uint32_t token;
    } *merges;
    size_t merge_mask;
    int backtrack; /* 1 when every token encodes to itself (see build_backtrack) */
    int prepared;  /* 0, 1 while the fields above are built (on the first long piece), 2 once they are */
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

/* A token of up to eight bytes (nine in ten pieces) is hashed with one multiply,
 * Fibonacci hashing (Knuth, TAOCP vol. 3, 6.4): the product's top bits pick the
 * slot, and every byte of the head reaches them. It made the encoder about 7%
 * faster on the plays than a full mixer (two multiplies, three shifts). */
static inline uint64_t key_hash(const uint8_t *p, size_t n, uint64_t head)
{
    return n <= 8 ? (head ^ ((uint64_t)n << 59)) * 0x9E3779B97F4A7C15ull : wb_hash_bytes(p, n);
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
    for (size_t i = h >> bpe->shift;; i = (i + 1) & bpe->mask) {
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

static inline size_t token_len(const wb_bpe *bpe, uint32_t rank)
{
    return bpe->offsets[rank + 1] - bpe->offsets[rank];
}

static void drop_splits(wb_bpe *bpe)
{
    free(bpe->split);
    free(bpe->merges);
    bpe->split = NULL;
    bpe->merges = NULL;
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
    bpe->shift = 64 - (unsigned)__builtin_ctzll(n_slots);
    bpe->pattern = pattern;
    for (size_t i = 0; i < n_slots; i++)
        bpe->slots[i].rank = WB_NO_RANK;
    bpe->pair_rank = malloc(65536 * sizeof *bpe->pair_rank);
    if (!bpe->pair_rank) {
        wb_bpe_free(bpe);
        return WB_ERR_NO_MEMORY;
    }
    for (size_t i = 0; i < 65536; i++)
        bpe->pair_rank[i] = WB_NO_RANK;
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
        if (n == 2)
            bpe->pair_rank[p[0] << 8 | p[1]] = (uint32_t)r;
        if (n > bpe->max_len)
            bpe->max_len = n;
        if (n > 1 && find(bpe, p, n, n, &existing)) {
            status = WB_ERR_BAD_VOCAB;
            break;
        }
        uint64_t head = head_of(p, n, n);
        size_t i = key_hash(p, n, head) >> bpe->shift;
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
    free(bpe->pair_rank);
    free(bpe->trie);
    free(bpe->node_rank);
    free(bpe->trie2);
    free(bpe->shorter);
    drop_splits(bpe);
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
 * ranks[k] the rank of parts k and k+1 joined; both have room for n + 1.
 * Only merges ranked below `below` are made (WB_NO_RANK: all). Returns the
 * number of parts left, or 0 as soon as a merge would join the bytes before
 * `cut` to those after it (cut 0: never stop). */
static size_t merge_parts(const wb_bpe *bpe, const uint8_t *p, size_t n, size_t readable, uint32_t *starts,
                          uint32_t *ranks, size_t cut, uint32_t below)
{
    size_t parts = n;
    for (size_t k = 0; k <= n; k++)
        starts[k] = (uint32_t)k;
    for (size_t k = 0; k + 1 < parts; k++)
        ranks[k] = bpe->pair_rank[p[k] << 8 | p[k + 1]];
    while (parts > 1) {
        uint32_t best = below;
        size_t at = 0;
        for (size_t k = 0; k + 1 < parts; k++)
            if (ranks[k] < best) {
                best = ranks[k];
                at = k;
            }
        if (best == below)
            break;
        if (starts[at + 1] == cut)
            return 0;
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
    return parts;
}

/* merge_parts, then each part's rank into out. */
static size_t merge_scan(const wb_bpe *bpe, const uint8_t *p, size_t n, size_t readable, uint32_t *out,
                         uint32_t *starts, uint32_t *ranks)
{
    size_t parts = merge_parts(bpe, p, n, readable, starts, ranks, 0, WB_NO_RANK);
    for (size_t k = 0; k < parts; k++)
        out[k] = span_rank(bpe, p, starts[k], starts[k + 1], readable);
    return parts;
}

static size_t merge_short(const wb_bpe *bpe, const uint8_t *p, size_t n, size_t readable, uint32_t *out)
{
    uint32_t starts[WB_BPE_SHORT + 1];
    uint32_t ranks[WB_BPE_SHORT + 1];
    return merge_scan(bpe, p, n, readable, out, starts, ranks);
}

/* ---- the trie and the properness check behind merge_backtrack ---------- */

static inline size_t trie_slot(const wb_bpe *bpe, uint64_t key)
{
    return (size_t)wb_mix64(key) & bpe->trie_mask;
}

/* The child of node by byte, or 0 (the root is nobody's child). */
static inline uint32_t trie_next(const wb_bpe *bpe, uint32_t node, uint8_t byte)
{
    uint64_t key = ((uint64_t)node << 8 | byte) + 1;
    for (size_t i = trie_slot(bpe, key);; i = (i + 1) & bpe->trie_mask) {
        if (bpe->trie[i].child == 0)
            return 0;
        if (bpe->trie[i].parent == node && bpe->trie[i].byte == byte)
            return bpe->trie[i].child;
    }
}

/* The merge table's slot for tokens a then b: theirs, or the empty one where it would go. */
static inline size_t merge_slot(const wb_bpe *bpe, uint32_t a, uint32_t b)
{
    uint64_t key = ((uint64_t)a << 32 | b) + 1;
    size_t i = (size_t)wb_mix64(key) & bpe->merge_mask;
    while (bpe->merges[i].key != key && bpe->merges[i].key != 0)
        i = (i + 1) & bpe->merge_mask;
    return i;
}

/* The token the merge of tokens a and b makes, or WB_NO_RANK. */
static inline uint32_t merged(const wb_bpe *bpe, uint32_t a, uint32_t b)
{
    size_t i = merge_slot(bpe, a, b);
    return bpe->merges[i].key ? bpe->merges[i].token : WB_NO_RANK;
}

/* Whether tokens a then b stay two tokens when their bytes are encoded
 * together, read off the merges instead of encoding (is_valid_token_pair in
 * the bpe crate, rust-gems 2024). Undo the later of the two tokens' last
 * merges, one at a time, walking down the sides that touch the boundary;
 * the pair is invalid as soon as the two tokens now touching it merge into
 * a token BPE would make before the one just undone (before a merge of the
 * left token, or no later than one of the right: ties go to the leftmost
 * pair), and valid when both sides are down to tokens no merge makes.
 * limit is one past the highest rank such a cross merge may have. */
static int valid_split(const wb_bpe *bpe, uint32_t a, uint32_t b)
{
    uint64_t limit = UINT64_MAX;
    for (;;) {
        uint32_t across = merged(bpe, a, b);
        if (across != WB_NO_RANK && across < limit)
            return 0;
        if (a > b) {
            limit = a;
            a = bpe->split[a][1];
            if (a == limit) {
                limit = (uint64_t)b + 1;
                b = bpe->split[b][0];
                if ((uint64_t)b + 1 == limit)
                    return 1;
            }
        } else {
            limit = (uint64_t)b + 1;
            b = bpe->split[b][0];
            if ((uint64_t)b + 1 == limit) {
                limit = a;
                a = bpe->split[a][1];
                if (a == limit)
                    return 1;
            }
        }
    }
}

/* Whether tokens a, b (a's bytes at p[0 .. la), b's right after, lb of them)
 * stay two tokens when their bytes are encoded together, by encoding them:
 * the scan on la + lb bytes reaches exactly [a, b] before any merge across.
 * scratch has room for 2 (la + lb + 1). */
static int valid_by_merging(const wb_bpe *bpe, const uint8_t *p, size_t la, size_t lb, size_t readable,
                            uint32_t *scratch)
{
    size_t n = la + lb;
    /* Two parts split where a ends are a and b: a token's bytes name it. */
    return merge_parts(bpe, p, n, readable, scratch, scratch + n + 1, la, WB_NO_RANK) == 2;
}

/* split and the merge table, rank by rank: token r is merged from the pair
 * (prefix token, rest) that valid_split accepts, trying its prefix tokens
 * longest first (as the bpe crate does). Needs shorter[]. For cl100k they
 * take 0.8 MB and 4 MB (without memory for them, pairs are tested by
 * encoding, as below). valid_split holds
 * only where every token is the merge of two of lower rank, as in a vocabulary
 * learned merge by merge; in one where BPE makes some token from a newer one
 * (tiktoken's rule allows it: "acbb" from "ac" and "bb" with "ac" ranked
 * after "acbb"), or where a split is not BPE's own last merge, the tables are
 * dropped and valid_pair encodes instead. */
static int build_splits(wb_bpe *bpe)
{
    size_t n_slots = wb_pow2_at_least(2 * bpe->n_ranks);
    bpe->split = malloc(bpe->n_ranks * sizeof *bpe->split);
    bpe->merges = calloc(n_slots, sizeof *bpe->merges);
    if (!bpe->split || !bpe->merges) {
        drop_splits(bpe); /* backtracking still runs, testing pairs by encoding */
        return WB_OK;
    }
    bpe->merge_mask = n_slots - 1;
    for (size_t r = 0; r < bpe->n_ranks; r++) {
        const uint8_t *p = bpe->blob + bpe->offsets[r];
        size_t n = token_len(bpe, (uint32_t)r);
        bpe->split[r][0] = bpe->split[r][1] = (uint32_t)r;
        uint32_t left = n >= 2 ? bpe->shorter[r] : WB_NO_RANK;
        for (; left != WB_NO_RANK; left = bpe->shorter[left]) {
            size_t taken = token_len(bpe, left);
            uint32_t right;
            if (left < r && find(bpe, p + taken, n - taken, n - taken, &right) && right < r
                && valid_split(bpe, left, right)) {
                size_t i = merge_slot(bpe, left, right); /* empty: tokens have one split each, pairs one token */
                bpe->merges[i].key = ((uint64_t)left << 32 | right) + 1;
                bpe->merges[i].token = (uint32_t)r;
                bpe->split[r][0] = left;
                bpe->split[r][1] = right;
                break;
            }
        }
    }
    /* Each split must be where the scan, making only merges ranked below the token, stops. */
    uint32_t *scratch = malloc(2 * (bpe->max_len + 1) * sizeof *scratch);
    if (!scratch) {
        drop_splits(bpe);
        return WB_OK;
    }
    for (size_t r = 0; r < bpe->n_ranks; r++) {
        size_t n = token_len(bpe, (uint32_t)r);
        uint32_t left = bpe->split[r][0];
        if (n >= 2 && (left == r || merge_parts(bpe, bpe->blob + bpe->offsets[r], n, n, scratch, scratch + n + 1, 0,
                                                (uint32_t)r) != 2 || scratch[1] != token_len(bpe, left))) {
            drop_splits(bpe);
            break;
        }
    }
    free(scratch);
    return WB_OK;
}

/* Builds the trie and shorter[], then checks that every token of two or more
 * bytes encodes to itself by the scan, then builds the merge tables
 * (build_splits). Backtracking is exact only then (its pair test assumes each
 * token is reachable by merges); a vocabulary that fails keeps the heap
 * (bpe->backtrack stays 0). About 0.13 s for cl100k, so it waits for the
 * first piece that needs it. */
static int build_backtrack(wb_bpe *bpe)
{
    size_t total = bpe->offsets[bpe->n_ranks];
    if (total >= UINT32_MAX)
        return WB_ERR_TOO_LARGE; /* trie nodes are 32-bit; such a vocabulary keeps the heap */
    size_t n_slots = wb_pow2_at_least(total + total / 2 + 2);
    bpe->trie = calloc(n_slots, sizeof *bpe->trie);
    bpe->node_rank = malloc((total + 1) * sizeof *bpe->node_rank);
    bpe->shorter = malloc(bpe->n_ranks * sizeof *bpe->shorter);
    if (!bpe->trie || !bpe->node_rank || !bpe->shorter)
        return WB_ERR_NO_MEMORY;
    bpe->trie_mask = n_slots - 1;
    uint32_t nodes = 1;
    bpe->node_rank[0] = WB_NO_RANK;
    for (size_t r = 0; r < bpe->n_ranks; r++) {
        const uint8_t *p = bpe->blob + bpe->offsets[r];
        size_t n = bpe->offsets[r + 1] - bpe->offsets[r];
        uint32_t node = 0;
        bpe->shorter[r] = WB_NO_RANK;
        for (size_t i = 0; i < n; i++) {
            uint32_t child = trie_next(bpe, node, p[i]);
            if (child == 0) {
                uint64_t key = ((uint64_t)node << 8 | p[i]) + 1;
                size_t j = trie_slot(bpe, key);
                while (bpe->trie[j].child != 0)
                    j = (j + 1) & bpe->trie_mask;
                child = nodes++;
                bpe->trie[j].parent = node;
                bpe->trie[j].byte = p[i];
                bpe->trie[j].child = child;
                bpe->node_rank[child] = WB_NO_RANK;
            }
            if (i + 1 < n && bpe->node_rank[child] != WB_NO_RANK)
                bpe->shorter[r] = bpe->node_rank[child];
            node = child;
        }
        if (n)
            bpe->node_rank[node] = (uint32_t)r;
    }
    /* shorter[] above saw only the tokens of lower rank; fill in the rest now that every node has its rank. */
    for (size_t r = 0; r < bpe->n_ranks; r++) {
        const uint8_t *p = bpe->blob + bpe->offsets[r];
        size_t n = bpe->offsets[r + 1] - bpe->offsets[r];
        uint32_t node = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            node = trie_next(bpe, node, p[i]);
            if (bpe->node_rank[node] != WB_NO_RANK)
                bpe->shorter[r] = bpe->node_rank[node];
        }
    }
    bpe->trie2 = malloc(65536 * sizeof *bpe->trie2);
    uint32_t *scratch = malloc(3 * (bpe->max_len + 1) * sizeof *scratch);
    if (!bpe->trie2 || !scratch) {
        free(scratch);
        return WB_ERR_NO_MEMORY;
    }
    for (uint32_t pair = 0; pair < 65536; pair++) {
        uint32_t first = trie_next(bpe, 0, (uint8_t)(pair >> 8));
        bpe->trie2[pair] = first ? trie_next(bpe, first, (uint8_t)pair) : 0;
    }
    int proper = 1;
    for (size_t r = 0; r < bpe->n_ranks && proper; r++) {
        const uint8_t *p = bpe->blob + bpe->offsets[r];
        size_t n = bpe->offsets[r + 1] - bpe->offsets[r];
        if (n >= 2)
            proper = merge_scan(bpe, p, n, n, scratch, scratch + n + 1, scratch + 2 * (n + 1)) == 1
                     && scratch[0] == (uint32_t)r;
    }
    free(scratch);
    bpe->backtrack = proper;
    return proper ? build_splits(bpe) : WB_OK;
}

/* Whether merge_backtrack may run. The first caller builds its tables (a
 * cache of the vocabulary, so a const encoder may fill them); a thread that
 * finds them being built takes the heap for its piece rather than wait,
 * unless told to wait. No lock: prepared goes 0 -> 1 (building) -> 2. Out of
 * memory leaves the heap path in use. */
static int backtrack_ready(const wb_bpe *shared, int wait)
{
    wb_bpe *bpe = (wb_bpe *)shared;
    int state = __atomic_load_n(&bpe->prepared, __ATOMIC_ACQUIRE);
    if (state == 0) {
        int expected = 0;
        if (__atomic_compare_exchange_n(&bpe->prepared, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            if (build_backtrack(bpe) != WB_OK)
                bpe->backtrack = 0;
            __atomic_store_n(&bpe->prepared, 2, __ATOMIC_RELEASE);
            return bpe->backtrack;
        }
        state = expected;
    }
    while (state == 1 && wait) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause(); /* the build takes about 0.13 s: spin gently */
#endif
        state = __atomic_load_n(&bpe->prepared, __ATOMIC_ACQUIRE);
    }
    return state == 2 && bpe->backtrack;
}

/* ---- long pieces: linear-time backtracking ------------------------------ */

#define WB_PAIR_CACHE_MIN 1024
#define WB_PAIR_CACHE_MAX 131072

/* Pair verdicts already computed for this piece: key (a << 32 | b) + 1, 0
 * empty, beside its verdict. Direct-mapped, sized to the piece (a random
 * string of letters meets tens of thousands of distinct pairs). */
typedef struct {
    uint64_t *key;
    uint8_t *valid;
    size_t mask;
} wb_pair_cache;

/* Whether tokens a, b (a's bytes at p[0 .. la), b's right after, lb of them)
 * stay two tokens when their bytes are encoded together, remembered for the
 * piece: read off the merges (valid_split) where the vocabulary allows, else
 * by encoding them (valid_by_merging, scratch for it). This is the
 * definition of a compatible pair in the bpe crate; a BPE encoding has only
 * compatible neighbours, and a token sequence whose neighbours are all
 * compatible is the encoding. */
static int valid_pair(const wb_bpe *bpe, const uint8_t *p, uint32_t a, size_t la, uint32_t b, size_t lb,
                      size_t readable, wb_pair_cache *cache, uint32_t *scratch)
{
    uint64_t key = ((uint64_t)a << 32 | b) + 1;
    size_t slot = (size_t)wb_mix64(key) & cache->mask;
    if (cache->key[slot] == key)
        return cache->valid[slot];
    int valid = bpe->split ? valid_split(bpe, a, b) : valid_by_merging(bpe, p, la, lb, readable, scratch);
    cache->key[slot] = key;
    cache->valid[slot] = (uint8_t)valid;
    return valid;
}

/* The longest token that p[0 .. n) starts with (a single byte at least). */
static uint32_t longest_prefix(const wb_bpe *bpe, const uint8_t *p, size_t n)
{
    uint32_t best = bpe->byte_rank[p[0]];
    if (n < 2)
        return best;
    uint32_t node = bpe->trie2[p[0] << 8 | p[1]];
    if (node == 0)
        return best;
    if (bpe->node_rank[node] != WB_NO_RANK)
        best = bpe->node_rank[node];
    size_t limit = n < bpe->max_len ? n : bpe->max_len;
    for (size_t i = 2; i < limit; i++) {
        node = trie_next(bpe, node, p[i]);
        if (node == 0)
            break;
        if (bpe->node_rank[node] != WB_NO_RANK)
            best = bpe->node_rank[node];
    }
    return best;
}

/* Backtracking BPE (the bpe crate's BacktrackEncoder): take the longest token
 * at the current position; keep it when it forms a compatible pair with the
 * token before it and its end has not been ruled out, else try the next
 * shorter token that is a prefix of it; with none left, rule the position
 * out (no encoding has a token boundary there) and step back one token.
 * A position is ruled out at most once, and between two rulings the tokens
 * tried from a position are at most max_len, so the work is O(n max_len)
 * pair tests, each cached and each a walk down the merges that made the
 * pair (valid_split), at most one step per byte of the two, or, without the
 * split tables, an encoding of the pair's bytes (valid_by_merging). Returns
 * WB_ERR_BAD_VOCAB, before writing *n_out, only if every start were ruled
 * out, which the proof excludes for a vocabulary that passed build_backtrack;
 * the caller then keeps the heap's answer. */
static int merge_backtrack(const wb_bpe *bpe, const uint8_t *p, size_t n, size_t readable, uint32_t *out,
                           size_t *n_out)
{
    uint8_t *ruled_out = calloc(n + 1, 1);
    size_t slots = wb_pow2_at_least(n / 4);
    slots = slots < WB_PAIR_CACHE_MIN ? WB_PAIR_CACHE_MIN : slots > WB_PAIR_CACHE_MAX ? WB_PAIR_CACHE_MAX : slots;
    wb_pair_cache cache_ = {calloc(slots, sizeof(uint64_t)), malloc(slots), slots - 1}, *cache = &cache_;
    uint32_t *scratch = bpe->split ? NULL : malloc(2 * (2 * bpe->max_len + 1) * sizeof *scratch);
    int status = WB_OK;
    if (!ruled_out || !cache->key || !cache->valid || (!bpe->split && !scratch)) {
        status = WB_ERR_NO_MEMORY;
        goto done;
    }
    size_t count = 0, pos = 0;
    uint32_t token = longest_prefix(bpe, p, n);
    while (pos < n) {
        size_t len = token_len(bpe, token);
        size_t before = count ? token_len(bpe, out[count - 1]) : 0;
        if (!ruled_out[pos + len]
            && (count == 0 || valid_pair(bpe, p + pos - before, out[count - 1], before, token, len,
                                         readable - (pos - before), cache, scratch))) {
            out[count++] = token;
            pos += len;
            if (pos < n)
                token = longest_prefix(bpe, p + pos, n - pos);
        } else if (bpe->shorter[token] != WB_NO_RANK) {
            token = bpe->shorter[token];
        } else {
            ruled_out[pos] = 1;
            if (count == 0) {
                status = WB_ERR_BAD_VOCAB; /* unreachable for a proper vocabulary */
                goto done;
            }
            token = out[--count];
            pos -= token_len(bpe, token);
        }
    }
    *n_out = count;
done:
    free(ruled_out);
    free(cache->key);
    free(cache->valid);
    free(scratch);
    return status;
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
        pair[s] = s + 1 < n ? bpe->pair_rank[p[s] << 8 | p[s + 1]] : WB_NO_RANK;
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

int wb_bpe_backtracks(const wb_bpe *bpe)
{
    if (!bpe)
        return -1;
    return backtrack_ready(bpe, 1) ? (bpe->split ? 2 : 1) : 0;
}

/* Short pieces that are not tokens, with their ids, so a word met again
 * costs one lookup instead of a merge (words recur: in the plays, most
 * pieces that need merging were merged before). Direct-mapped, a slot per
 * 256 bytes of text up to WB_PIECE_SLOTS_MAX (72 bytes a slot), so a short
 * text clears a small table; one per thread of one encode call, so it needs
 * no lock. */
#define WB_PIECE_SLOTS_MIN 16
#define WB_PIECE_SLOTS_MAX 16384
#define WB_PIECE_BYTES 24
#define WB_PIECE_IDS 8
#define WB_PIECE_MIN_TEXT 4096

typedef struct {
    uint8_t len; /* 0: empty */
    uint8_t n_ids;
    uint8_t bytes[WB_PIECE_BYTES];
    uint32_t ids[WB_PIECE_IDS];
} wb_piece_entry;

typedef struct {
    wb_piece_entry *slot;
    size_t mask;
} wb_piece_cache;

/* A cleared cache sized to `bytes` of text into *cache; 0 (no cache) for a short text or without memory. */
static int piece_cache_new(wb_piece_cache *cache, size_t bytes)
{
    size_t slots = wb_pow2_at_least(bytes / 256);
    if (bytes < WB_PIECE_MIN_TEXT)
        return 0;
    slots = slots < WB_PIECE_SLOTS_MIN ? WB_PIECE_SLOTS_MIN : slots > WB_PIECE_SLOTS_MAX ? WB_PIECE_SLOTS_MAX : slots;
    cache->slot = calloc(slots, sizeof *cache->slot);
    cache->mask = slots - 1;
    return cache->slot != NULL;
}

/* Encodes one piece into out (room for n ids); readable >= n bytes from p; cache may be NULL. */
static int encode_piece(const wb_bpe *bpe, const uint8_t *p, size_t n, size_t readable, uint32_t *out, size_t *n_out,
                        wb_piece_cache *cache)
{
    uint32_t rank;
    if (find(bpe, p, n, readable, &rank)) {
        out[0] = rank;
        *n_out = 1;
        return WB_OK;
    }
    if (n <= WB_BPE_SHORT) {
        wb_piece_entry *entry = NULL;
        if (cache && n <= WB_PIECE_BYTES) {
            entry = &cache->slot[wb_hash_bytes(p, n) & cache->mask];
            if (entry->len == n && memcmp(entry->bytes, p, n) == 0) {
                memcpy(out, entry->ids, entry->n_ids * sizeof *out);
                *n_out = entry->n_ids;
                return WB_OK;
            }
        }
        *n_out = merge_short(bpe, p, n, readable, out);
        if (entry && *n_out <= WB_PIECE_IDS) {
            entry->len = (uint8_t)n;
            entry->n_ids = (uint8_t)*n_out;
            memcpy(entry->bytes, p, n);
            memcpy(entry->ids, out, *n_out * sizeof *out);
        }
        return WB_OK;
    }
    if (backtrack_ready(bpe, 0)) {
        int status = merge_backtrack(bpe, p, n, readable, out, n_out);
        if (status != WB_ERR_BAD_VOCAB)
            return status;
    }
    return merge_long(bpe, p, n, readable, out, n_out);
}

static int encode_text(const wb_bpe *bpe, const uint8_t *text, size_t len, uint32_t *out, size_t *n_out,
                       wb_piece_cache *cache)
{
    size_t count = 0;
    for (size_t i = 0; i < len;) {
        size_t end = bpe->pattern == 0 ? len : wb_pretok_next(bpe->pattern, text, len, i);
        size_t produced = 0;
        int status = encode_piece(bpe, text + i, end - i, len - i, out + count, &produced, cache);
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
    wb_piece_cache cache;
    int cached = piece_cache_new(&cache, len);
    int status = encode_text(bpe, text, len, out, n_out, cached ? &cache : NULL);
    if (cached)
        free(cache.slot);
    return status;
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
    size_t total = n_texts ? starts[n_texts] - starts[0] : 0;
#pragma omp parallel num_threads(n_threads) if (n_threads > 1 && n_texts > 1)
    {
        /* One cache per thread, kept across its texts. */
        wb_piece_cache cache;
        int cached = piece_cache_new(&cache, total);
#pragma omp for schedule(dynamic, 1)
        for (long long t = 0; t < n; t++) {
            size_t produced = 0;
            int s = encode_text(bpe, text + starts[t], starts[t + 1] - starts[t], out + starts[t], &produced,
                                cached ? &cache : NULL);
            counts[t] = produced;
            if (s != WB_OK) {
#pragma omp atomic write
                status = s;
            }
        }
        if (cached)
            free(cache.slot);
    }
    return status;
}
