/* mw_test: a minimal assertion harness for the C unit tests: each failed CHECK prints file:line
 * and the expression, and the test exits non-zero at the end (ctest reads the status). */
#ifndef MW_TEST_H
#define MW_TEST_H

#include <stdio.h>
#include <string.h>

static int mw_test_failures;

#define CHECK(expr)                                                                   \
    do {                                                                              \
        if (!(expr)) {                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr); \
            mw_test_failures++;                                                       \
        }                                                                             \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                  \
    do {                                                                                    \
        long long va_ = (long long)(a), vb_ = (long long)(b);                               \
        if (va_ != vb_) {                                                                   \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, \
                    #b, va_, vb_);                                                          \
            mw_test_failures++;                                                             \
        }                                                                                   \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                 \
    do {                                                                                   \
        const char *sa_ = (a), *sb_ = (b);                                                 \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                       \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, \
                    #a, #b, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                   \
            mw_test_failures++;                                                            \
        }                                                                                  \
    } while (0)

#define MW_TEST_DONE()                                                      \
    do {                                                                    \
        if (mw_test_failures)                                               \
            fprintf(stderr, "%d check(s) failed\n", mw_test_failures);      \
        else                                                                \
            printf("all checks passed\n");                                  \
        return mw_test_failures ? 1 : 0;                                    \
    } while (0)

#endif
