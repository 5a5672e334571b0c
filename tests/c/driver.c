/* Bad-input and extreme-input driver for generated/c, run under ASan+UBSan and valgrind
 * (tests/test_c_sanitizers.py).  Every output buffer is malloc'ed at its exact size, so any
 * write or read past an end is caught by the tools; every error case checks the return code and
 * that the outputs still hold the sentinel.  The checks run once per dtype: driver_body.h is
 * included twice, with T = float / double.  Prints "symce driver: N checks, F failures" and
 * exits nonzero on any failure.
 */
#include "symce.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long checks = 0, failures = 0;

static void check(int ok, const char *what, const char *fn, int line)
{
    ++checks;
    if (!ok) {
        ++failures;
        fprintf(stderr, "FAIL line %d: %s: %s\n", line, fn, what);
    }
}
#define CHECK(cond, fn) check((cond) ? 1 : 0, #cond, fn, __LINE__)

static int64_t *labels_of(size_t n, const int64_t *values)
{
    int64_t *out = malloc(n ? n * sizeof *out : 1);
    if (out == NULL) abort();
    if (n) memcpy(out, values, n * sizeof *out);
    return out;
}

#define SENTINEL (-12345.0)

/* ---- float ---- */
#define T float
#define SFX f32
#define TMAX FLT_MAX
#include "driver_body.h"
#undef T
#undef SFX
#undef TMAX

/* ---- double ---- */
#define T double
#define SFX f64
#define TMAX DBL_MAX
#include "driver_body.h"
#undef T
#undef SFX
#undef TMAX

int main(void)
{
    CHECK(strcmp(symce_strerror(SYMCE_OK), "success") == 0, "symce_strerror");
    CHECK(symce_strerror(-999) != NULL, "symce_strerror");
    run_f32();
    run_f64();
    printf("symce driver: %ld checks, %ld failures\n", checks, failures);
    return failures ? 1 : 0;
}
