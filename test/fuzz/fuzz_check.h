/*
 * fuzz_check.h: the one check the libFuzzer harnesses use for what they
 * assert beyond "no crash": on failure, the file, line and condition, then
 * abort(), which libFuzzer (and test/fuzz/replay.c's run) reports as a
 * crash with the input kept.
 */
#ifndef MAILWARD_FUZZ_CHECK_H
#define MAILWARD_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                 \
        do {                                                                             \
                if (!(cond)) {                                                           \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                                #cond);                                                  \
                        abort();                                                         \
                }                                                                        \
        } while (0)

#endif
