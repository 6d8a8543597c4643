/*
 * The C tests' one assertion, shared: check() counts what passed and what
 * failed and names each failure on stderr; report() prints the summary line
 * the Rust driver looks for ("N passed, M failed") and gives the exit code.
 */
#ifndef TICKCAST_TEST_CHECK_H
#define TICKCAST_TEST_CHECK_H

#include <stdio.h>

static int passed, failed;

static void check(int ok, const char *what) {
    if (ok) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAILED: %s\n", what);
    }
}

static int report(void) {
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#endif
