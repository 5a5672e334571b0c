/* generated/c/symce.c as the tests build it (tests/c_build.py): the whole file, plus exported
 * wrappers of the static helpers that tests/test_c_exp.py measures.  Compiled under the strict
 * warnings and each build's flags, it is also the object every library, driver and caller links. */
#include "symce.c"

void symce_test_exp_f64(size_t n, const double *x, double *out);
void symce_test_exp_f32(size_t n, const double *x, double *out);
void symce_test_exp_neg_f64(size_t n, const double *x, double *out);
void symce_test_exp_neg_f32(size_t n, const double *x, double *out);
void symce_test_log1p01_f32(size_t n, const double *x, double *out);
void symce_test_log1p_f32(size_t n, const double *x, double *out);
void symce_test_log1p01_f64(size_t n, const double *x, double *out);
int symce_test_fast_fma(void);

void symce_test_exp_f64(size_t n, const double *x, double *out)
{
    for (size_t i = 0; i < n; ++i) out[i] = symce_exp_for_f64(x[i]);
}

void symce_test_exp_f32(size_t n, const double *x, double *out)
{
    for (size_t i = 0; i < n; ++i) out[i] = symce_exp_for_f32(x[i]);
}

void symce_test_exp_neg_f64(size_t n, const double *x, double *out)
{
    for (size_t i = 0; i < n; ++i) out[i] = symce_exp_neg_for_f64(x[i]);
}

void symce_test_exp_neg_f32(size_t n, const double *x, double *out)
{
    for (size_t i = 0; i < n; ++i) out[i] = symce_exp_neg_for_f32(x[i]);
}

void symce_test_log1p01_f64(size_t n, const double *x, double *out)
{
    for (size_t i = 0; i < n; ++i) out[i] = symce_log1p01_for_f64(x[i]);
}

void symce_test_log1p01_f32(size_t n, const double *x, double *out)
{
    for (size_t i = 0; i < n; ++i) out[i] = symce_log1p_s_for_f32(x[i] / (2 + x[i]));
}

void symce_test_log1p_f32(size_t n, const double *x, double *out)
{
    for (size_t i = 0; i < n; ++i) out[i] = symce_log1p_for_f32(x[i]);
}

int symce_test_fast_fma(void)
{
    return SYMCE_FUSED;
}
