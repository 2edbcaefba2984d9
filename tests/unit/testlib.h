/* Minimal unit-test harness: CHECK records a failure and goes on; main returns the
 * failure count; the summary line is "N passed, N failed". */
#ifndef SEQ_TESTLIB_H
#define SEQ_TESTLIB_H
#include <stdio.h>

extern int seq_t_pass, seq_t_fail;
#define CHECK(cond)                                                                       \
    do {                                                                                   \
        if (cond) seq_t_pass++;                                                            \
        else {                                                                             \
            seq_t_fail++;                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);       \
        }                                                                                  \
    } while (0)
#define CHECK_EQ_INT(a, b)                                                                 \
    do {                                                                                   \
        long long _a = (long long)(a), _b = (long long)(b);                                \
        if (_a == _b) seq_t_pass++;                                                        \
        else {                                                                             \
            seq_t_fail++;                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld vs %lld)\n", __FILE__,    \
                    __LINE__, #a, #b, _a, _b);                                             \
        }                                                                                  \
    } while (0)
/* Runs a test function and prints its name. */
#define RUN(fn)                                                                            \
    do {                                                                                   \
        fprintf(stderr, "-- %s\n", #fn);                                                   \
        fn();                                                                              \
    } while (0)
int seq_t_done(void); /* prints the summary, returns the exit code */
#endif
