/* mw_jwt: checks a JWT's signature with libjwt, with the configured algorithm pinned.
 * libjwt 1.10 checks signatures only: the claims (exp, nbf, iss, aud, sub) are checked by
 * lua/moonwire/auth.lua on the JSON this returns. */
#ifndef MW_JWT_H
#define MW_JWT_H

#include <stddef.h>

#define MW_JWT_MAX_TOKEN 8192

typedef struct mw_jwt_verifier {
    int enabled;       /* a secret or public key is configured */
    int alg;           /* jwt_alg_t */
    unsigned char *key;
    size_t key_len;
} mw_jwt_verifier;

/* secret (HS*) or public_key_file (RS*, ES*) per algorithm; neither given: disabled.
 * Returns 0, or -1 with a message naming the config key in err. */
int mw_jwt_init(mw_jwt_verifier *v, const char *algorithm, const char *secret,
                const char *public_key_file, char *err, size_t errlen);
void mw_jwt_free(mw_jwt_verifier *v);

/* Largest |sub| accepted as a JSON number: 2^53, the last integer every double holds exactly,
 * so no two subjects can round to one userId. Larger ids must be strings. */
#define MW_JWT_MAX_EXACT_SUB 9007199254740992LL

/* Verifies token. Returns 0 with the claims as a malloc'd JSON object in *claims_json, or -1
 * with a static reason (never containing the token). A "sub" that is neither a string nor an
 * integer of magnitude <= 2^53 (a real, a larger integer, a boolean, null, an array, an
 * object) is refused: two different subjects must never share a userId. */
int mw_jwt_verify(const mw_jwt_verifier *v, const char *token, size_t len, char **claims_json,
                  const char **reason);

#endif
