/* wb_hash.h - the byte-string hash shared by the BPE encoder and trainer
 * (internal; not part of the cffi interface).
 *
 * Eight bytes at a time, each mixed in with a multiply and xor-shift (the
 * finaliser of splitmix64, Steele et al., "Fast splittable pseudorandom
 * number generators", OOPSLA 2014). Keys are short, so speed per key matters
 * more than throughput.
 */
#ifndef WB_HASH_H
#define WB_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t wb_mix64(uint64_t h)
{
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

static inline uint64_t wb_hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull * (n + 1);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdull;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t tail = 0;
    switch (n) {
    case 7: tail |= (uint64_t)p[6] << 48; /* fall through */
    case 6: tail |= (uint64_t)p[5] << 40; /* fall through */
    case 5: tail |= (uint64_t)p[4] << 32; /* fall through */
    case 4: tail |= (uint64_t)p[3] << 24; /* fall through */
    case 3: tail |= (uint64_t)p[2] << 16; /* fall through */
    case 2: tail |= (uint64_t)p[1] << 8;  /* fall through */
    case 1: tail |= (uint64_t)p[0]; break;
    default: break;
    }
    return wb_mix64(h ^ tail);
}

static inline size_t wb_pow2_at_least(size_t n)
{
    size_t p = 16;
    while (p < n)
        p <<= 1;
    return p;
}

#endif
