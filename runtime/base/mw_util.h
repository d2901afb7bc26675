/* mw_util: small helpers shared by every unit: clocks, random ids, base64, UTF-8 checks, hex
 * digits and HTTP's optional whitespace. */
#ifndef MW_UTIL_H
#define MW_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MW_RANDOM_ID_LEN 22 /* base64url of 16 random bytes: 128 bits, URL-safe */
#define MW_WORKER_TAG_LEN 8 /* a worker's short random id, unique across the cluster */
/* A clientId is its worker's tag followed by 128 random bits: any worker can route a message
 * to the client's worker without asking anyone where it is. */
#define MW_CLIENT_ID_LEN (MW_WORKER_TAG_LEN + MW_RANDOM_ID_LEN)

uint64_t mw_wall_ms(void);          /* milliseconds since the epoch */
/* Fills out with MW_RANDOM_ID_LEN URL-safe characters plus NUL. Returns 0 or -errno. */
int mw_random_id(char out[MW_RANDOM_ID_LEN + 1]);
/* For the runtime's small hash tables (client ids, room names): FNV-1a over 8-byte words (a
 * clientId is hashed on every send: a byte at a time cost ~100 instructions), then the high bits
 * folded down so that the low bits the buckets use depend on every byte. */
static inline uint64_t mw_hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL, w;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 1099511628211ULL;
    }
    for (; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ULL;
    h ^= h >> 32;
    h *= 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 29);
}

/* Standard base64 of len bytes into out (needs 4*ceil(len/3)+1 bytes); returns the length. */
size_t mw_base64_encode(const uint8_t *in, size_t len, char *out);
/* Decoded length of a standard base64 string, or -1 when it is not valid base64. */
int mw_base64_decoded_len(const char *in, size_t len);

/* The value of one hexadecimal digit (either case), or -1. */
int mw_hex_digit(char c);
/* The byte two hex digits spell (two[0] high), or -1 when either is not a hex digit; reads
 * two[1] only when two[0] is one (so a '%' at the end of a NUL-terminated string is safe). */
int mw_hex_byte(const char *two);
/* Drops the spaces and tabs around s..s+*len (HTTP's optional whitespace, RFC 9110 5.6.3):
 * returns the new start and sets *len. */
const char *mw_trim_ows(const char *s, size_t *len);

/* 1 when the len bytes are valid UTF-8 (no overlong forms, no surrogates, at most U+10FFFF),
 * as a text frame must be; 0 otherwise. */
int mw_utf8_valid(const uint8_t *s, size_t len);

#endif
