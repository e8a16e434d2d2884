/* unit.h: a tiny test harness. Each test binary calls CHECK* in test
 * functions run by RUN(); main() ends with `return unit_report();`, which
 * prints "N passed, N failed" for tests/run.sh to add up. */
#ifndef IMGSEARCH_UNIT_H
#define IMGSEARCH_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed, unit_cur_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                      \
            unit_cur_failed = 1;                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long unit_a_ = (long long)(a), unit_b_ = (long long)(b);                              \
        if (unit_a_ != unit_b_) {                                                                  \
            fprintf(stderr, "  FAIL %s:%d: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, #a, #b, \
                    unit_a_, unit_b_);                                                             \
            unit_cur_failed = 1;                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *unit_a_ = (a), *unit_b_ = (b);                                                 \
        if (!unit_a_ || !unit_b_ || strcmp(unit_a_, unit_b_) != 0) {                               \
            fprintf(stderr, "  FAIL %s:%d: %s == %s (\"%s\" != \"%s\")\n", __FILE__, __LINE__, #a, \
                    #b, unit_a_ ? unit_a_ : "(null)", unit_b_ ? unit_b_ : "(null)");               \
            unit_cur_failed = 1;                                                                   \
        }                                                                                          \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        unit_cur_failed = 0;                                                                       \
        fn();                                                                                      \
        if (unit_cur_failed) {                                                                     \
            unit_failed++;                                                                         \
            fprintf(stderr, "not ok - %s\n", #fn);                                                 \
        } else {                                                                                   \
            unit_passed++;                                                                         \
            fprintf(stderr, "ok - %s\n", #fn);                                                     \
        }                                                                                          \
    } while (0)

static inline int unit_report(void)
{
    printf("%d passed, %d failed\n", unit_passed, unit_failed);
    return unit_failed ? 1 : 0;
}

#endif
