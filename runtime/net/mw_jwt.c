/* mw_jwt: the algorithm is pinned before trusting anything: a token whose header names another
 * algorithm (including "none", or HS256 signed with an RSA public key used as an HMAC secret)
 * is refused whatever libjwt thinks of its signature. */
#include "mw_jwt.h"

#include <errno.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_hmac(jwt_alg_t alg)
{
    return alg == JWT_ALG_HS256 || alg == JWT_ALG_HS384 || alg == JWT_ALG_HS512;
}

int mw_jwt_init(mw_jwt_verifier *v, const char *algorithm, const char *secret,
                const char *public_key_file, char *err, size_t errlen)
{
    memset(v, 0, sizeof(*v));
    jwt_alg_t alg = jwt_str_alg(algorithm ? algorithm : "HS256");
    if (alg == JWT_ALG_INVAL || alg == JWT_ALG_NONE) {
        snprintf(err, errlen, "config error: auth.algorithm must be one of HS256, HS384, HS512, RS256, "
                              "RS384, RS512, ES256, ES384, ES512; got \"%s\"", algorithm);
        return -1;
    }
    v->alg = alg;
    if (is_hmac(alg)) {
        if (!secret || !*secret)
            return 0; /* anonymous connections only */
        v->key_len = strlen(secret);
        v->key = (unsigned char *)strdup(secret);
    } else {
        if (!public_key_file || !*public_key_file) {
            if (secret && *secret) {
                snprintf(err, errlen, "config error: auth.publicKeyFile is required for %s (a secret is "
                                      "only used by HS256/384/512)", algorithm);
                return -1;
            }
            return 0;
        }
        FILE *f = fopen(public_key_file, "rb");
        if (!f) {
            snprintf(err, errlen, "config error: auth.publicKeyFile '%s' cannot be read: %s",
                     public_key_file, strerror(errno));
            return -1;
        }
        unsigned char buf[16384];
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        int too_big = n == sizeof(buf) - 1 && fgetc(f) != EOF; /* a public key PEM is a few KB */
        fclose(f);
        if (too_big) {
            snprintf(err, errlen, "config error: auth.publicKeyFile '%s' is larger than %zu bytes: "
                     "give the file holding only the PEM public key", public_key_file, sizeof(buf) - 1);
            return -1;
        }
        buf[n] = 0;
        if (n == 0 || !strstr((char *)buf, "-----BEGIN")) {
            snprintf(err, errlen, "config error: auth.publicKeyFile '%s' is not a PEM public key",
                     public_key_file);
            return -1;
        }
        v->key = malloc(n + 1);
        if (v->key)
            memcpy(v->key, buf, n + 1);
        v->key_len = n;
    }
    if (!v->key) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    v->enabled = 1;
    return 0;
}

void mw_jwt_free(mw_jwt_verifier *v)
{
    free(v->key);
    v->key = NULL;
    v->enabled = 0;
}

/* Why the token's top-level "sub" cannot name a user, or NULL when it can (or is absent).
 * libjwt's integer getter answers 0 for a real, so every token with "sub": 1e16 would be user
 * 0: the claim's own JSON text is classified instead. A number is accepted only as an integer
 * a double holds exactly (|n| <= 2^53); the Lua side turns it into the userId. */
static const char *sub_refusal(jwt_t *jwt)
{
    char *text = jwt_get_grants_json(jwt, "sub");
    if (!text)
        return NULL;
    const char *why = NULL;
    char c = text[0];
    if (c == '"') {
        why = NULL;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        if (strpbrk(text, ".eE")) { /* jansson prints every real with a '.' or an exponent */
            why = "sub is a number that is not an integer";
        } else {
            errno = 0;
            long long n = strtoll(text, NULL, 10);
            if (errno == ERANGE || n > MW_JWT_MAX_EXACT_SUB || n < -MW_JWT_MAX_EXACT_SUB)
                why = "sub is an integer beyond 2^53 (send it as a string)";
        }
    } else {
        why = "sub must be a string or an integer";
    }
    free(text);
    return why;
}

int mw_jwt_verify(const mw_jwt_verifier *v, const char *token, size_t len, char **claims_json,
                  const char **reason)
{
    *claims_json = NULL;
    if (!v->enabled) {
        *reason = "a token was sent but no JWT secret or key is configured";
        return -1;
    }
    if (len == 0 || len > MW_JWT_MAX_TOKEN) {
        *reason = len ? "token too large" : "empty token";
        return -1;
    }
    if (memchr(token, '\0', len)) { /* the bytes checked must be the bytes sent */
        *reason = "malformed token";
        return -1;
    }
    char *copy = malloc(len + 1);
    if (!copy) {
        *reason = "out of memory";
        return -1;
    }
    memcpy(copy, token, len);
    copy[len] = 0;
    jwt_t *jwt = NULL;
    int rv = jwt_decode(&jwt, copy, v->key, (int)v->key_len);
    free(copy);
    if (rv != 0 || !jwt) {
        *reason = "invalid token signature or format";
        return -1;
    }
    if (jwt_get_alg(jwt) != (jwt_alg_t)v->alg) { /* pinned: whatever the signature said */
        jwt_free(jwt);
        *reason = "token algorithm does not match the configured one";
        return -1;
    }
    *reason = sub_refusal(jwt);
    if (!*reason)
        *claims_json = jwt_get_grants_json(jwt, NULL);
    jwt_free(jwt);
    if (*reason)
        return -1;
    if (!*claims_json) {
        *reason = "token has no claims";
        return -1;
    }
    return 0;
}
