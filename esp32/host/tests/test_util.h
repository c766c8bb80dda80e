/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * A minimal test harness: CHECK records a failure and goes on; main returns the count.
 */
#pragma once

#include <stdio.h>

static int test_failures;
static int test_checks;

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        test_checks++;                                                                         \
        if (!(cond)) {                                                                         \
            test_failures++;                                                                   \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                               \
        }                                                                                      \
    } while (0)

static inline int test_summary(const char *name)
{
    printf("%s: %d checks, %d passed, %d failed\n", name, test_checks, test_checks - test_failures,
           test_failures);
    return test_failures ? 1 : 0;
}
