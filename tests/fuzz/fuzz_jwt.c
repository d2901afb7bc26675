/* fuzz_jwt: libFuzzer harness for mw_jwt_verify with HS256, RS256 and ES256 verifiers: arbitrary
 * tokens, and tokens this harness signs itself with libjwt (fuzzer-chosen claims and header
 * JSON, the right or a wrong key, any of the three algorithms, optionally one flipped bit) so
 * that claim handling (sub) is reached. Checked: a token verifies only when it was signed
 * with the verifier's algorithm and key; a correctly signed one is refused only for its sub.
 * Input: byte 0 = verifier (bits 0-1), signed (bit 2), signing algorithm (bits 3-4), key
 * (bits 5-6: right, wrong, the verifier's public key as an HMAC secret), tamper (bit 7); then
 * the token, or the claims JSON, a newline, the extra header JSON. */
#include <jwt.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "fuzz_keys.h"
#include "mw_jwt.h"

enum { HS, RS, ES, N_ALGS };
static const char *const alg_names[N_ALGS] = { "HS256", "RS256", "ES256" };
static const jwt_alg_t algs[N_ALGS] = { JWT_ALG_HS256, JWT_ALG_RS256, JWT_ALG_ES256 };
static const char hs_secret[] = "fuzz-secret-0123456789abcdef";
static const char hs_wrong[] = "fuzz-secret-0123456789abcdeF";
static const char *const private_keys[N_ALGS] = { hs_secret, fuzz_rs256_private, fuzz_es256_private };
static const char *const public_keys[N_ALGS] = { NULL, fuzz_rs256_public, fuzz_es256_public };
/* a wrong key of the same kind: the other pair's key (libjwt refuses the mismatch) or the
 * other secret */
static const char *const wrong_keys[N_ALGS] = { hs_wrong, fuzz_es256_private, fuzz_rs256_private };

static mw_jwt_verifier verifiers[N_ALGS];

/* mw_jwt_init reads public keys from files, as the server does from auth.publicKeyFile. */
static void init_verifier(int i)
{
    char path[] = "/tmp/mw-fuzz-jwt-XXXXXX", err[256];
    const char *file = NULL;
    if (public_keys[i]) {
        int fd = mkstemp(path);
        FUZZ_ASSERT(fd >= 0);
        size_t n = strlen(public_keys[i]);
        FUZZ_ASSERT(write(fd, public_keys[i], n) == (ssize_t)n);
        close(fd);
        file = path;
    }
    int rv = mw_jwt_init(&verifiers[i], alg_names[i], file ? NULL : hs_secret, file, err, sizeof(err));
    if (file)
        unlink(path);
    if (rv != 0) {
        fprintf(stderr, "fuzz_jwt: %s\n", err);
        abort();
    }
    FUZZ_ASSERT(verifiers[i].enabled);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    for (int i = 0; i < N_ALGS; i++)
        init_verifier(i);
    return 0;
}

/* Runs the verifier; checks what it answers is well formed. Returns its status. */
static int verify(int v, const char *token, size_t len, const char **reason)
{
    char *claims = NULL;
    *reason = NULL;
    int rv = mw_jwt_verify(&verifiers[v], token, len, &claims, reason);
    if (rv == 0) {
        FUZZ_ASSERT(claims != NULL && claims[0] == '{');
        free(claims);
    } else {
        FUZZ_ASSERT(rv == -1 && claims == NULL && *reason != NULL);
    }
    return rv;
}

/* Signs claims (+ extra header fields) with libjwt; returns the token or NULL when libjwt
 * refuses the JSON or the key. */
static char *sign(const char *claims, const char *headers, int alg, const char *key)
{
    jwt_t *jwt = NULL;
    char *token = NULL;
    if (jwt_new(&jwt) != 0)
        return NULL;
    if (jwt_add_grants_json(jwt, claims) == 0 && (!*headers || jwt_add_headers_json(jwt, headers) == 0) &&
        jwt_set_alg(jwt, algs[alg], (const unsigned char *)key, (int)strlen(key)) == 0)
        token = jwt_encode_str(jwt);
    jwt_free(jwt);
    return token;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int v = (data[0] & 3) % N_ALGS;
    int is_signed = (data[0] >> 2) & 1;
    int alg = ((data[0] >> 3) & 3) % N_ALGS;
    int key_choice = (data[0] >> 5) & 3;
    int tamper = data[0] >> 7;
    const char *reason;

    if (!is_signed) {
        verify(v, (const char *)data + 1, size - 1, &reason);
        return 0;
    }
    /* claims "\n" headers, as C strings */
    char *text = malloc(size);
    FUZZ_ASSERT(text != NULL);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char *nl = strchr(text, '\n');
    const char *headers = "";
    if (nl) {
        *nl = '\0';
        headers = nl + 1;
    }
    const char *key = key_choice == 1 ? wrong_keys[alg]
                    : key_choice == 2 && public_keys[v] ? public_keys[v]
                    : private_keys[alg];
    int right = key_choice != 1 && key == private_keys[alg] && alg == v;
    char *token = sign(text, headers, alg, key);
    if (token) {
        size_t len = strlen(token);
        if (tamper && len > 0)
            token[size % len] ^= 1;
        int rv = verify(v, token, len, &reason);
        if (rv == 0)
            FUZZ_ASSERT(right); /* pinned algorithm, and only the configured key */
        else if (right && !tamper && len <= MW_JWT_MAX_TOKEN)
            FUZZ_ASSERT(strncmp(reason, "sub ", 4) == 0); /* a good token is refused only for its sub */
        free(token);
    }
    free(text);
    return 0;
}
