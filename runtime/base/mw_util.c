/* mw_util: clocks, unguessable ids (getrandom), base64 through OpenSSL's EVP_EncodeBlock, and
 * the small text helpers the HTTP side needs (hex digits, optional whitespace). */
#include "mw_util.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>

uint64_t mw_wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

int mw_random_id(char out[MW_RANDOM_ID_LEN + 1])
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t raw[16];
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    /* 16 bytes = 128 bits; 22 six-bit characters carry 132 bits, the last one partly zero */
    uint32_t acc = 0;
    int bits = 0, o = 0;
    for (size_t i = 0; i < sizeof(raw); i++) {
        acc = (acc << 8) | raw[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = alphabet[(acc << (6 - bits)) & 63];
    out[o] = '\0';
    return 0;
}

size_t mw_base64_encode(const uint8_t *in, size_t len, char *out)
{
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

int mw_base64_decoded_len(const char *in, size_t len)
{
    if (len == 0 || len % 4 != 0)
        return -1;
    size_t pad = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '+' || c == '/';
        if (c == '=') {
            if (i < len - 2)
                return -1;
            pad++;
        } else if (!ok || pad) {
            return -1;
        }
    }
    return (int)(len / 4 * 3 - pad);
}

int mw_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int mw_hex_byte(const char *two)
{
    int hi = mw_hex_digit(two[0]);
    int lo = hi < 0 ? -1 : mw_hex_digit(two[1]);
    return lo < 0 ? -1 : hi * 16 + lo;
}

const char *mw_trim_ows(const char *s, size_t *len)
{
    size_t n = *len;
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    *len = n;
    return s;
}

int mw_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    uint64_t w;
    /* most text is ASCII: eight bytes at a time up to the first byte that is not (every text
     * message is checked once received and once sent) */
    while (i + 8 <= len && (memcpy(&w, s + i, 8), (w & 0x8080808080808080ull) == 0))
        i += 8;
    while (i < len) {
        uint8_t b = s[i];
        if (b < 0x80) {
            i++;
            while (i + 8 <= len && (memcpy(&w, s + i, 8), (w & 0x8080808080808080ull) == 0))
                i += 8;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if ((b & 0xE0) == 0xC0) {
            n = 1, cp = b & 0x1F, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            n = 2, cp = b & 0x0F, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            n = 3, cp = b & 0x07, min = 0x10000;
        } else {
            return 0; /* a continuation byte first, or 0xF8..0xFF */
        }
        if (len - i - 1 < n)
            return 0; /* cut short */
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}
