// A C++ program that calls the generated C library (tests/test_c_builds.py): symce.h compiles as
// C++ (SYMCE_RESTRICT, extern "C"), the C symbols link, and the results are the C results.
// Prints "symce C++ caller: N checks, F failures" and exits nonzero on any failure.
#include "symce.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

static int checks = 0, failures = 0;

static void check(bool ok, const char *what, int line)
{
    ++checks;
    if (!ok) {
        ++failures;
        std::fprintf(stderr, "FAIL line %d: %s\n", line, what);
    }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

int main()
{
    // README's example: the mean of 0.464368784108 and 1.040190569430
    const double logits[2 * 3] = {1.0, 2.0, 0.5, -2.85, 0.86, 0.28};
    const int64_t labels[2] = {1, 2};
    double loss = 0, grad[2 * 3];
    int rc = symce_softmax_cross_entropy_with_grad_f64(2, 3, logits, labels, nullptr, -100, 0.0,
                                                       SYMCE_REDUCTION_MEAN, &loss, grad);
    CHECK(rc == SYMCE_OK);
    CHECK(std::fabs(loss - 0.752279676769) < 1e-11);
    CHECK(std::fabs(grad[0] - 0.115612) < 1e-6 && grad[1] < 0);

    std::vector<float> z = {1.0f, 2.0f, 3.0f}, p(3, -1.0f);
    CHECK(symce_softmax_f32(1, 3, z.data(), p.data()) == SYMCE_OK);
    CHECK(std::fabs(p[2] - 0.66524096f) < 1e-6f && std::fabs(p[0] + p[1] + p[2] - 1.0f) < 1e-6f);

    // an error: the code, its description, and nothing written
    const int64_t bad[2] = {1, 3};
    double untouched = -7;
    rc = symce_softmax_cross_entropy_f64(2, 3, logits, bad, nullptr, -100, 0.0,
                                         SYMCE_REDUCTION_SUM, &untouched);
    CHECK(rc == SYMCE_ERR_LABEL && untouched == -7);
    CHECK(std::strlen(symce_strerror(rc)) > 0);
    CHECK(std::strcmp(symce_strerror(SYMCE_OK), "success") == 0);

    std::printf("symce C++ caller: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
