/* wb_pretok.c - the GPT-2, cl100k_base and SmolLM2 split patterns as
 * hand-written scanners over UTF-8.
 *
 * The reference is the regular expression each scanner replaces (run with
 * the `regex` module in engines/tokenizers/pretokenize.py):
 *
 *   GPT-2 (r50k_base):
 *     '(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$
 *     |\s+(?!\S)|\s
 *   cl100k_base:
 *     '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+
 *     | ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s
 *   SmolLM2 (two stages, as HF's Sequence[Digits(individual_digits=True),
 *   ByteLevel] and llama.cpp's LLAMA_VOCAB_PRE_TYPE_SMOLLM run them):
 *     \p{N} splits the text into single number characters and the stretches
 *     between them; then GPT-2's pattern splits each stretch on its own.
 *
 * Alternatives are tried in order at each position, exactly as the regex
 * engine does; possessive quantifiers mean a run, once taken, is never given
 * back, which is what lets each alternative be a single forward scan. The
 * character classes come from wb_unicode_tables.h, generated from the same
 * `regex` module. Each scanner is O(length of the piece), so splitting is
 * linear in the text.
 *
 * SmolLM2 needs no scan for where a stretch ends: GPT-2's runs of letters or
 * of punctuation already stop at a number, so only two rules change. A number
 * is a piece of its own, and a space run followed by a number is at the end
 * of its stretch, so \s++$ takes all of it (GPT-2 alone would leave the last
 * space to join the number: "a  1" is a|  |1, not a| | 1).
 */
#include "wb_pretok.h"
#include "wb_pretok_internal.h"
#include "wb_status.h"
#include "wb_unicode_tables.h"

#ifdef __AVX2__
#include <immintrin.h>
#endif

/* Decodes the code point at s[i] (i < n); invalid or truncated sequences
 * decode as U+FFFD one byte wide, so scanning always advances. */
static inline uint32_t decode(const uint8_t *s, size_t n, size_t i, size_t *width)
{
    uint8_t b0 = s[i];
    if (b0 < 0x80) {
        *width = 1;
        return b0;
    }
    size_t need;
    uint32_t cp, min;
    if ((b0 & 0xE0) == 0xC0) { need = 1; cp = b0 & 0x1F; min = 0x80; }
    else if ((b0 & 0xF0) == 0xE0) { need = 2; cp = b0 & 0x0F; min = 0x800; }
    else if ((b0 & 0xF8) == 0xF0) { need = 3; cp = b0 & 0x07; min = 0x10000; }
    else { *width = 1; return 0xFFFD; }
    if (i + need >= n) { *width = 1; return 0xFFFD; }
    for (size_t k = 1; k <= need; k++) {
        uint8_t b = s[i + k];
        if ((b & 0xC0) != 0x80) { *width = 1; return 0xFFFD; }
        cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        *width = 1;
        return 0xFFFD;
    }
    *width = need + 1;
    return cp;
}

static inline int uclass(uint32_t cp)
{
    return wb_uc_stage2[((size_t)wb_uc_stage1[cp >> WB_UC_BLOCK_SHIFT] << WB_UC_BLOCK_SHIFT)
                        | (cp & ((1u << WB_UC_BLOCK_SHIFT) - 1))];
}

/* Class of the character at i, and its width; ASCII skips the decoder. */
static inline int class_at(const uint8_t *s, size_t n, size_t i, size_t *width)
{
    if (s[i] < 0x80) {
        *width = 1;
        return wb_uc_stage2[s[i]]; /* block 0 of stage2 is U+0000..U+00FF */
    }
    return uclass(decode(s, n, i, width));
}

/* End of the run of characters of class cls starting at i. */
static inline size_t run_end(const uint8_t *s, size_t n, size_t i, int cls)
{
    size_t w;
    for (;;) {
        while (i < n && s[i] < 0x80 && wb_uc_stage2[s[i]] == cls)
            i++;
        if (i >= n || s[i] < 0x80 || class_at(s, n, i, &w) != cls)
            return i;
        i += w;
    }
}

static inline int ascii_letter(uint8_t c) { return (uint8_t)((c | 0x20) - 'a') < 26; }

/* run_end(s, n, i, WB_UC_LETTER) for text that is mostly ASCII: ASCII letters 32
 * at a time where AVX2 is compiled in, then run_end from the first non-ASCII
 * byte. Most pieces of English are an ASCII word, alone or after one space or
 * other ASCII character; this and the word fast paths below took about 30% off
 * the scan. */
static inline size_t letters_end(const uint8_t *s, size_t n, size_t i)
{
#ifdef __AVX2__
    const __m256i case_bit = _mm256_set1_epi8(0x20), shift = _mm256_set1_epi8((char)(0x80 - 'a'));
    const __m256i limit = _mm256_set1_epi8((char)(-128 + 26));
    while (i + 32 <= n) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(s + i));
        /* (c | 0x20) - 'a' < 26 as a signed compare: 'a'..'z' land on -128..-103 */
        __m256i t = _mm256_add_epi8(_mm256_or_si256(v, case_bit), shift);
        uint32_t other = ~(uint32_t)_mm256_movemask_epi8(_mm256_cmpgt_epi8(limit, t));
        if (other) {
            i += (size_t)__builtin_ctz(other);
            return i < n && s[i] >= 0x80 ? run_end(s, n, i, WB_UC_LETTER) : i;
        }
        i += 32;
    }
#endif
    while (i < n && ascii_letter(s[i]))
        i++;
    return i < n && s[i] >= 0x80 ? run_end(s, n, i, WB_UC_LETTER) : i;
}

static inline int is_newline(uint32_t cp) { return cp == '\r' || cp == '\n'; }

/* Length after the apostrophe at i of a contraction suffix
 * ([sdmt]|ll|ve|re), or 0. With fold, matching is case-insensitive as the
 * regex engine folds it: s also matches S and U+017F (long s). */
static size_t contraction(const uint8_t *s, size_t n, size_t i, int fold)
{
    size_t j = i + 1;
    if (j >= n)
        return 0;
    uint8_t c = s[j];
    if (fold && c == 0xC5 && j + 1 < n && s[j + 1] == 0xBF)
        return 3;
    if (fold && c >= 'A' && c <= 'Z')
        c = (uint8_t)(c + 32);
    if (c == 's' || c == 'd' || c == 'm' || c == 't')
        return 2;
    if (j + 1 >= n)
        return 0;
    uint8_t d = s[j + 1];
    if (fold && d >= 'A' && d <= 'Z')
        d = (uint8_t)(d + 32);
    if ((c == 'l' && d == 'l') || (c == 'v' && d == 'e') || (c == 'r' && d == 'e'))
        return 3;
    return 0;
}

/* The whitespace alternatives shared by the patterns, at a space character
 * at i: \s++$ then (cl100k only) \s*[\r\n], then \s+(?!\S), then \s.
 * With number_ends (SmolLM2) a number after the run counts as the end, $. */
static size_t whitespace(const uint8_t *s, size_t n, size_t i, size_t w0, int newline_rule,
                         int number_ends)
{
    size_t e = i, w = 0, last_start = i, after_newline = 0;
    int next = WB_UC_SPACE;
    while (e < n) {
        uint32_t cp = decode(s, n, e, &w);
        next = uclass(cp);
        if (next != WB_UC_SPACE)
            break;
        if (is_newline(cp))
            after_newline = e + w;
        last_start = e;
        e += w;
    }
    if (e == n || (number_ends && next == WB_UC_NUMBER))
        return e;
    if (newline_rule && after_newline)
        return after_newline;
    if (last_start > i)
        return last_start;
    return i + w0;
}

/* GPT-2's pattern; with digits_apart, SmolLM2's (see the top of the file). */
static size_t next_gpt2(const uint8_t *s, size_t n, size_t i, int digits_apart)
{
    /*  ?\p{L}++ on an ASCII word, alone or after a space */
    if (ascii_letter(s[i]))
        return letters_end(s, n, i + 1);
    if (s[i] == ' ' && i + 1 < n && ascii_letter(s[i + 1]))
        return letters_end(s, n, i + 2);
    size_t w0, w1;
    uint32_t cp0 = decode(s, n, i, &w0);
    int c0 = uclass(cp0);
    if (digits_apart && c0 == WB_UC_NUMBER)
        return i + w0;
    if (cp0 == '\'') {
        size_t m = contraction(s, n, i, 0);
        if (m)
            return i + m;
    }
    if (cp0 == ' ' && i + 1 < n) {
        int c1 = class_at(s, n, i + 1, &w1);
        if (c1 != WB_UC_SPACE && !(digits_apart && c1 == WB_UC_NUMBER))
            return run_end(s, n, i + 1 + w1, c1);
    }
    if (c0 != WB_UC_SPACE)
        return run_end(s, n, i + w0, c0);
    return whitespace(s, n, i, w0, 0, digits_apart);
}

static size_t next_cl100k(const uint8_t *s, size_t n, size_t i)
{
    /* [^\r\n\p{L}\p{N}]?+\p{L}++ on an ASCII word, alone or after one ASCII character that is not a letter,
     * digit, newline or apostrophe */
    uint8_t b0 = s[i];
    if (ascii_letter(b0))
        return letters_end(s, n, i + 1);
    if (b0 < 0x80 && b0 != '\'' && b0 != '\r' && b0 != '\n' && wb_uc_stage2[b0] != WB_UC_NUMBER && i + 1 < n
        && ascii_letter(s[i + 1]))
        return letters_end(s, n, i + 2);
    size_t w0, w1;
    uint32_t cp0 = decode(s, n, i, &w0);
    int c0 = uclass(cp0);
    if (cp0 == '\'') {
        size_t m = contraction(s, n, i, 1);
        if (m)
            return i + m;
    }
    /* [^\r\n\p{L}\p{N}]?+\p{L}++ */
    if (c0 == WB_UC_LETTER)
        return run_end(s, n, i + w0, WB_UC_LETTER);
    if (c0 != WB_UC_NUMBER && !is_newline(cp0) && i + w0 < n
        && class_at(s, n, i + w0, &w1) == WB_UC_LETTER)
        return run_end(s, n, i + w0 + w1, WB_UC_LETTER);
    /* \p{N}{1,3}+ */
    if (c0 == WB_UC_NUMBER) {
        size_t j = i + w0;
        for (int k = 1; k < 3 && j < n && class_at(s, n, j, &w1) == WB_UC_NUMBER; k++)
            j += w1;
        return j;
    }
    /*  ?[^\s\p{L}\p{N}]++[\r\n]*+ */
    size_t j = cp0 == ' ' ? i + 1 : i;
    if (j < n && class_at(s, n, j, &w1) == WB_UC_OTHER) {
        j = run_end(s, n, j + w1, WB_UC_OTHER);
        while (j < n && (s[j] == '\r' || s[j] == '\n'))
            j++;
        return j;
    }
    return whitespace(s, n, i, w0, 1, 0);
}

size_t wb_pretok_next(int pattern, const uint8_t *s, size_t n, size_t i)
{
    switch (pattern) {
    case WB_PATTERN_GPT2: return next_gpt2(s, n, i, 0);
    case WB_PATTERN_SMOLLM: return next_gpt2(s, n, i, 1);
    case WB_PATTERN_CL100K: return next_cl100k(s, n, i);
    default: return n;
    }
}

int wb_pretok_valid(int pattern)
{
    return pattern == WB_PATTERN_WHOLE || pattern == WB_PATTERN_GPT2
        || pattern == WB_PATTERN_CL100K || pattern == WB_PATTERN_SMOLLM;
}

int wb_pretok_split(int pattern, const uint8_t *text, size_t len,
                    uint32_t *ends, size_t cap, size_t *n_pieces)
{
    if (!n_pieces || (len && (!text || !ends)))
        return WB_ERR_NULL_POINTER;
    if (!wb_pretok_valid(pattern))
        return WB_ERR_BAD_PATTERN;
    if (len > UINT32_MAX)
        return WB_ERR_BAD_SIZE;
    size_t count = 0;
    for (size_t i = 0; i < len;) {
        size_t end = wb_pretok_next(pattern, text, len, i);
        if (count == cap)
            return WB_ERR_OUTPUT_FULL;
        ends[count++] = (uint32_t)end;
        i = end;
    }
    *n_pieces = count;
    return WB_OK;
}
