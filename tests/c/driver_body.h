/* One dtype of the driver: included by driver.c with T (float/double), SFX (f32/f64) and TMAX.
 * No include guard on purpose. */
#define CAT_(a, b, c) a##b##c
#define CAT(a, b, c) CAT_(a, b, c)
#define FN(name) CAT(symce_, name, CAT(_, SFX, ))
#define LOCAL(name) CAT(name, _, SFX)

/* A T buffer of exactly n elements (1 byte for n = 0, so the pointer is not NULL). */
static T *LOCAL(buf)(size_t n, T fill)
{
    T *out = malloc(n ? n * sizeof *out : 1);
    if (out == NULL) abort();
    for (size_t i = 0; i < n; ++i) out[i] = fill;
    return out;
}

static T *LOCAL(copy)(size_t n, const T *values)
{
    T *out = LOCAL(buf)(n, 0);
    if (n) memcpy(out, values, n * sizeof *out);
    return out;
}

static int LOCAL(untouched)(const T *a, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if (a[i] != (T)SENTINEL) return 0;
    return 1;
}

static int LOCAL(all_finite)(const T *a, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if (!isfinite(a[i])) return 0;
    return 1;
}

/* ---- elementwise ----------------------------------------------------------------------- */
typedef int (*LOCAL(elem_fn))(size_t, const T *restrict, T *restrict);

static void LOCAL(elementwise)(void)
{
    const T xs[] = {0, 1, -1, 30, -30, 100, -100, 1e4, -1e4, TMAX, -TMAX, INFINITY, -INFINITY,
                    NAN, (T)1e-40, -(T)1e-40};
    const size_t count = sizeof xs / sizeof xs[0];
    const LOCAL(elem_fn) fns[] = {FN(sigmoid), FN(sigmoid_grad)};
    const char *names[] = {"sigmoid", "sigmoid_grad"};
    T *x = LOCAL(copy)(count, xs);
    for (size_t f = 0; f < 2; ++f) {
        T *out = LOCAL(buf)(count, (T)SENTINEL);
        CHECK(fns[f](count, x, out) == SYMCE_OK, names[f]);
        for (size_t i = 0; i < count; ++i)
            CHECK(isnan(xs[i]) ? isnan(out[i]) : (out[i] >= 0 && out[i] <= 1), names[f]);
        free(out);
        out = LOCAL(buf)(count, (T)SENTINEL);
        CHECK(fns[f](count, NULL, out) == SYMCE_ERR_NULL && LOCAL(untouched)(out, count), names[f]);
        CHECK(fns[f](count, x, NULL) == SYMCE_ERR_NULL, names[f]);
        CHECK(fns[f](SIZE_MAX, x, out) == SYMCE_ERR_SIZE && LOCAL(untouched)(out, count), names[f]);
        CHECK(fns[f](0, x, out) == SYMCE_OK && LOCAL(untouched)(out, count), names[f]);
        free(out);
    }
    free(x);
}

/* ---- rowwise --------------------------------------------------------------------------- */
#define ROWS 9
#define COLS 4
static const T LOCAL(extreme_rows)[ROWS][COLS] = {
    {1e4, -1e4, 0, 5},
    {TMAX, -TMAX, 0, 1},
    {-TMAX, -TMAX, -TMAX, -TMAX},
    {3, 3, 3, 3},
    {0, -INFINITY, 2, -INFINITY},
    {-INFINITY, -INFINITY, -INFINITY, -INFINITY},
    {0, INFINITY, 1, 2},
    {0, NAN, 1, 2},
    {(T)1e-40, 0, -(T)1e-40, 88},
};
/* rows 0-4 and 8 are finite or masked: their outputs must be finite where p > 0 */
static const int LOCAL(row_is_tame)[ROWS] = {1, 1, 1, 1, 1, 0, 0, 0, 1};

static void LOCAL(rowwise)(void)
{
    const size_t n = ROWS, k = COLS;
    T *z = LOCAL(copy)(n * k, &LOCAL(extreme_rows)[0][0]);
    T *g = LOCAL(buf)(n * k, (T)0.5);
    T *p = LOCAL(buf)(n * k, (T)SENTINEL);
    T *lp = LOCAL(buf)(n * k, (T)SENTINEL);
    T *lse = LOCAL(buf)(n, (T)SENTINEL);
    T *jac = LOCAL(buf)(n * k * k, (T)SENTINEL);
    T *vjp = LOCAL(buf)(n * k, (T)SENTINEL);
    CHECK(FN(softmax)(n, k, z, p) == SYMCE_OK, "softmax");
    CHECK(FN(log_softmax)(n, k, z, lp) == SYMCE_OK, "log_softmax");
    CHECK(FN(logsumexp)(n, k, z, lse) == SYMCE_OK, "logsumexp");
    CHECK(FN(softmax_jacobian)(n, k, z, jac) == SYMCE_OK, "softmax_jacobian");
    CHECK(FN(softmax_vjp)(n, k, z, g, vjp) == SYMCE_OK, "softmax_vjp");
    for (size_t i = 0; i < n; ++i) {
        if (!LOCAL(row_is_tame)[i]) continue;
        double total = 0;
        for (size_t j = 0; j < k; ++j) total += p[i * k + j];
        CHECK(fabs(total - 1) < 1e-5, "softmax");
        CHECK(LOCAL(all_finite)(p + i * k, k), "softmax");
        CHECK(isfinite(lse[i]), "logsumexp");
        CHECK(LOCAL(all_finite)(jac + i * k * k, k * k), "softmax_jacobian");
        CHECK(LOCAL(all_finite)(vjp + i * k, k), "softmax_vjp");
    }
    CHECK(isnan(p[7 * k]) && isnan(lse[7]), "NaN row");
    CHECK(lp[4 * k + 1] == -INFINITY && p[4 * k + 1] == 0, "masked class");
    /* a row of -inf: p and log p NaN, logsumexp -inf */
    for (size_t j = 0; j < k; ++j) CHECK(isnan(p[5 * k + j]) && isnan(lp[5 * k + j]), "-inf row");
    CHECK(lse[5] == -INFINITY, "-inf row");
    /* a row holding +inf: that entry NaN, the others p = 0 and log p = -inf; logsumexp +inf */
    CHECK(isnan(p[6 * k + 1]) && isnan(lp[6 * k + 1]), "+inf row");
    for (size_t j = 0; j < k; ++j)
        if (j != 1) CHECK(p[6 * k + j] == 0 && lp[6 * k + j] == -INFINITY, "+inf row");
    CHECK(lse[6] == INFINITY, "+inf row");

    /* bad input: nothing written */
    T *out = LOCAL(buf)(n * k, (T)SENTINEL);
    T *big = LOCAL(buf)(n * k * k, (T)SENTINEL);
    CHECK(FN(softmax)(n, k, NULL, out) == SYMCE_ERR_NULL, "softmax");
    CHECK(FN(softmax)(n, k, z, NULL) == SYMCE_ERR_NULL, "softmax");
    CHECK(FN(softmax)(n, 0, z, out) == SYMCE_ERR_NO_CLASSES, "softmax");
    CHECK(FN(log_softmax)(SIZE_MAX / 2 + 1, 2, z, out) == SYMCE_ERR_SIZE, "log_softmax");
    CHECK(FN(logsumexp)(n, 0, z, out) == SYMCE_ERR_NO_CLASSES, "logsumexp");
    CHECK(FN(softmax_vjp)(n, k, z, NULL, out) == SYMCE_ERR_NULL, "softmax_vjp");
    CHECK(FN(softmax_vjp)(n, 0, z, g, out) == SYMCE_ERR_NO_CLASSES, "softmax_vjp");
    CHECK(FN(softmax_jacobian)((size_t)1 << 22, (size_t)1 << 20, z, big) == SYMCE_ERR_SIZE,
          "softmax_jacobian");
    CHECK(LOCAL(untouched)(out, n * k) && LOCAL(untouched)(big, n * k * k), "rowwise errors");
    CHECK(FN(softmax)(0, k, z, out) == SYMCE_OK && LOCAL(untouched)(out, n * k), "softmax n=0");
    free(out); free(big);
    free(z); free(g); free(p); free(lp); free(lse); free(jac); free(vjp);
}

/* ---- cross-entropy --------------------------------------------------------------------- */
typedef int (*LOCAL(ce_label_fn))(size_t, size_t, const T *restrict, const int64_t *restrict,
                                  const T *restrict, int64_t, double, symce_reduction, T *restrict);
typedef int (*LOCAL(ce_soft_fn))(size_t, size_t, const T *restrict, const T *restrict,
                                 const T *restrict, double, symce_reduction, T *restrict);

struct LOCAL(ce_case) {
    const char *name;
    LOCAL(ce_label_fn) labels;
    LOCAL(ce_soft_fn) soft;
    int grad;    /* the output is n*k (a gradient), else a loss */
    int probs;   /* input is probabilities */
};

static size_t LOCAL(out_len)(int grad, size_t n, size_t k, symce_reduction r)
{
    return grad ? n * k : (r == SYMCE_REDUCTION_NONE ? n : 1);
}

static void LOCAL(ce_one)(const struct LOCAL(ce_case) *c)
{
    enum { n = 4, k = 3 };
    const T logits_v[n * k] = {1e4, -1e4, 0, 0, -INFINITY, 2, -TMAX, TMAX, 0, 0.5, -0.25, 3};
    const T probs_v[n * k] = {0, 1, 0, 0.5, 0, 0.5, 1e-30f, 0.5, 0.5, 0.2, 0.3, 0.5};
    const T soft_v[n * k] = {0.2, 0.3, 0.5, 0.5, 0, 0.5, 0, 0, 1, 1, 0, 0};
    const int64_t lab_v[n] = {1, 2, -100, 0};
    const T weight_v[k] = {0.5, 2, 1};
    T *x = LOCAL(copy)(n * k, c->probs ? probs_v : logits_v);
    T *y = LOCAL(copy)(n * k, soft_v);
    T *w = LOCAL(copy)(k, weight_v);
    int64_t *lab = labels_of(n, lab_v);
    const symce_reduction reds[] = {SYMCE_REDUCTION_NONE, SYMCE_REDUCTION_MEAN, SYMCE_REDUCTION_SUM};
    for (int r = 0; r < 3; ++r) {
        const size_t len = LOCAL(out_len)(c->grad, n, k, reds[r]);
        for (int opt = 0; opt < 2; ++opt) {
            T *out = LOCAL(buf)(len, (T)SENTINEL);
            const T *wt = opt ? w : NULL;
            const double eps = opt ? 0.1 : 0;
            CHECK(c->labels(n, k, x, lab, wt, -100, eps, reds[r], out) == SYMCE_OK, c->name);
            /* -TMAX/TMAX row 2 is ignored; the others are finite (masked class has target 0
               only without smoothing) */
            if (opt == 0 || c->probs) CHECK(LOCAL(all_finite)(out, len), c->name);
            free(out);
            out = LOCAL(buf)(len, (T)SENTINEL);
            CHECK(c->soft(n, k, x, y, wt, eps, reds[r], out) == SYMCE_OK, c->name);
            free(out);
        }
    }
    /* every error: nothing written */
    const size_t len = LOCAL(out_len)(c->grad, n, k, SYMCE_REDUCTION_NONE);
    T *out = LOCAL(buf)(len, (T)SENTINEL);
    const symce_reduction mean = SYMCE_REDUCTION_MEAN;
    CHECK(c->labels(n, k, NULL, lab, NULL, -100, 0, mean, out) == SYMCE_ERR_NULL, c->name);
    CHECK(c->labels(n, k, x, NULL, NULL, -100, 0, mean, out) == SYMCE_ERR_NULL, c->name);
    CHECK(c->labels(n, k, x, lab, NULL, -100, 0, mean, NULL) == SYMCE_ERR_NULL, c->name);
    CHECK(c->labels(n, 0, x, lab, NULL, -100, 0, mean, out) == SYMCE_ERR_NO_CLASSES, c->name);
    CHECK(c->labels(SIZE_MAX / 2 + 1, 2, x, lab, NULL, -100, 0, mean, out) == SYMCE_ERR_SIZE, c->name);
    CHECK(c->labels(n, k, x, lab, NULL, -100, -0.5, mean, out) == SYMCE_ERR_SMOOTHING, c->name);
    CHECK(c->labels(n, k, x, lab, NULL, -100, (double)NAN, mean, out) == SYMCE_ERR_SMOOTHING, c->name);
    /* outside [0, 1] as a double, although a float would round it to 1 or -0 */
    CHECK(c->labels(n, k, x, lab, NULL, -100, 1.00000001, mean, out) == SYMCE_ERR_SMOOTHING, c->name);
    CHECK(c->labels(n, k, x, lab, NULL, -100, -1e-300, mean, out) == SYMCE_ERR_SMOOTHING, c->name);
    CHECK(c->labels(n, k, x, lab, NULL, -100, 0, (symce_reduction)7, out) == SYMCE_ERR_REDUCTION, c->name);
    w[2] = -1;
    CHECK(c->labels(n, k, x, lab, w, -100, 0, mean, out) == SYMCE_ERR_WEIGHT, c->name);
    w[2] = (T)NAN;
    CHECK(c->labels(n, k, x, lab, w, -100, 0, mean, out) == SYMCE_ERR_WEIGHT, c->name);
    CHECK(c->soft(n, k, x, y, w, 0, mean, out) == SYMCE_ERR_WEIGHT, c->name);
    w[2] = 1;
    lab[3] = k;
    CHECK(c->labels(n, k, x, lab, w, -100, 0, mean, out) == SYMCE_ERR_LABEL, c->name);
    lab[3] = -1;
    CHECK(c->labels(n, k, x, lab, w, -100, 0, mean, out) == SYMCE_ERR_LABEL, c->name);
    lab[3] = INT64_MIN;
    CHECK(c->labels(n, k, x, lab, w, -100, 0, mean, out) == SYMCE_ERR_LABEL, c->name);
    CHECK(c->soft(n, k, NULL, y, NULL, 0, mean, out) == SYMCE_ERR_NULL, c->name);
    CHECK(c->soft(n, k, x, NULL, NULL, 0, mean, out) == SYMCE_ERR_NULL, c->name);
    CHECK(c->soft(n, 0, x, y, NULL, 0, mean, out) == SYMCE_ERR_NO_CLASSES, c->name);
    CHECK(c->soft(n, k, x, y, NULL, 2, mean, out) == SYMCE_ERR_SMOOTHING, c->name);
    if (c->probs) {  /* a probability outside [0, 1]: checked last, NaN passes */
        lab[3] = lab_v[3];
        const T keep = x[n * k - 1];
        const T bad[] = {(T)1.5, (T)-0.25, INFINITY, -INFINITY};
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; ++b) {
            x[n * k - 1] = bad[b];
            CHECK(c->labels(n, k, x, lab, w, -100, 0, mean, out) == SYMCE_ERR_DOMAIN, c->name);
            CHECK(c->soft(n, k, x, y, NULL, 0, mean, out) == SYMCE_ERR_DOMAIN, c->name);
            CHECK(c->soft(n, k, x, y, NULL, 2, mean, out) == SYMCE_ERR_SMOOTHING, c->name);
        }
        lab[0] = -7;
        CHECK(c->labels(n, k, x, lab, w, -100, 0, mean, out) == SYMCE_ERR_LABEL, c->name);
        lab[0] = lab_v[0];
        CHECK(LOCAL(untouched)(out, len), c->name);
        x[n * k - 1] = keep;
        x[n * k - 3] = (T)NAN;  /* row 3, class 0: its soft target is 1 */
        CHECK(c->soft(n, k, x, y, NULL, 0, SYMCE_REDUCTION_NONE, out) == SYMCE_OK, c->name);
        CHECK(isnan(out[c->grad ? n * k - 3 : n - 1]), c->name);
        x[n * k - 3] = probs_v[n * k - 3];
    }
    free(out);
    out = LOCAL(buf)(len, (T)SENTINEL);
    CHECK(LOCAL(untouched)(out, len), c->name);
    free(out);
    free(x); free(y); free(w); free(lab);
}

static void LOCAL(with_grad)(void)
{
    enum { n = 3, k = 5 };
    const T z_v[n * k] = {1e4, -1e4, 0, 1, 2, -INFINITY, 0, 1, -INFINITY, 3, 0, 0, 0, 0, 0};
    const int64_t lab_v[n] = {4, 1, -100};
    T *z = LOCAL(copy)(n * k, z_v);
    T *y = LOCAL(buf)(n * k, (T)0.2);
    int64_t *lab = labels_of(n, lab_v);
    T *loss = LOCAL(buf)(n, (T)SENTINEL);
    T *grad = LOCAL(buf)(n * k, (T)SENTINEL);
    CHECK(FN(softmax_cross_entropy_with_grad)(n, k, z, lab, NULL, -100, 0, SYMCE_REDUCTION_NONE,
                                              loss, grad) == SYMCE_OK, "with_grad");
    CHECK(LOCAL(all_finite)(loss, n) && LOCAL(all_finite)(grad, n * k), "with_grad");
    CHECK(grad[k] == 0 && grad[2 * k] == 0, "with_grad masked / ignored");
    CHECK(FN(softmax_cross_entropy_with_grad_soft)(n, k, z, y, NULL, 0, SYMCE_REDUCTION_SUM,
                                                   loss, grad) == SYMCE_OK, "with_grad_soft");
    free(loss); free(grad);
    loss = LOCAL(buf)(n, (T)SENTINEL);
    grad = LOCAL(buf)(n * k, (T)SENTINEL);
    CHECK(FN(softmax_cross_entropy_with_grad)(n, k, z, lab, NULL, -100, 0, SYMCE_REDUCTION_MEAN,
                                              loss, NULL) == SYMCE_ERR_NULL, "with_grad");
    CHECK(FN(softmax_cross_entropy_with_grad)(n, k, z, lab, NULL, -100, 0, SYMCE_REDUCTION_MEAN,
                                              NULL, grad) == SYMCE_ERR_NULL, "with_grad");
    lab[2] = 5;
    CHECK(FN(softmax_cross_entropy_with_grad)(n, k, z, lab, NULL, -100, 0, SYMCE_REDUCTION_MEAN,
                                              loss, grad) == SYMCE_ERR_LABEL, "with_grad");
    CHECK(FN(softmax_cross_entropy_with_grad_soft)(n, k, z, y, NULL, 2, SYMCE_REDUCTION_MEAN,
                                                   loss, grad) == SYMCE_ERR_SMOOTHING, "with_grad_soft");
    CHECK(LOCAL(untouched)(loss, n) && LOCAL(untouched)(grad, n * k), "with_grad errors");
    free(loss); free(grad); free(z); free(y); free(lab);
}

/* ---- binary cross-entropy -------------------------------------------------------------- */
typedef int (*LOCAL(bce_fn))(size_t, size_t, const T *restrict, const T *restrict,
                             const T *restrict, symce_reduction, T *restrict);
typedef int (*LOCAL(sbce_fn))(size_t, size_t, const T *restrict, const T *restrict,
                              const T *restrict, const T *restrict, symce_reduction, T *restrict);

static void LOCAL(bce)(void)
{
    enum { n = 3, k = 4 };
    const T p_v[n * k] = {0, 1, 0.5, (T)1e-30, 1, 0, 0.25, 0.75, 0.1, 0.9, 0.5, 0.5};
    const T x_v[n * k] = {-1e4, 1e4, 0, -TMAX, TMAX, 100, -100, 30, 0.5, -0.5, 88, -88};
    const T y_v[n * k] = {1, 0, 0.5, 1, 0, 1, 0, 1, 0.3, 0.7, 0, 1};
    T *p = LOCAL(copy)(n * k, p_v);
    T *x = LOCAL(copy)(n * k, x_v);
    T *y = LOCAL(copy)(n * k, y_v);
    T *w = LOCAL(buf)(n * k, 2);
    T *pw = LOCAL(buf)(k, 3);
    const LOCAL(bce_fn) bfns[] = {FN(binary_cross_entropy), FN(binary_cross_entropy_grad)};
    const LOCAL(sbce_fn) sfns[] = {FN(sigmoid_binary_cross_entropy),
                                   FN(sigmoid_binary_cross_entropy_grad)};
    const symce_reduction reds[] = {SYMCE_REDUCTION_NONE, SYMCE_REDUCTION_MEAN, SYMCE_REDUCTION_SUM};
    for (int f = 0; f < 2; ++f) {
        for (int r = 0; r < 3; ++r) {
            const size_t len = (f == 1 || reds[r] == SYMCE_REDUCTION_NONE) ? n * k : 1;
            T *out = LOCAL(buf)(len, (T)SENTINEL);
            CHECK(bfns[f](n, k, p, y, w, reds[r], out) == SYMCE_OK, "bce");
            CHECK(LOCAL(all_finite)(out, len), "bce: probabilities 0 and 1 give finite values");
            CHECK(sfns[f](n, k, x, y, w, pw, reds[r], out) == SYMCE_OK, "sbce");
            CHECK(LOCAL(all_finite)(out, len) || f == 0, "sbce");
            free(out);
        }
        T *out = LOCAL(buf)(n * k, (T)SENTINEL);
        const symce_reduction none = SYMCE_REDUCTION_NONE;
        CHECK(bfns[f](n, k, NULL, y, w, none, out) == SYMCE_ERR_NULL, "bce");
        CHECK(bfns[f](n, k, p, NULL, w, none, out) == SYMCE_ERR_NULL, "bce");
        CHECK(bfns[f](n, k, p, y, w, none, NULL) == SYMCE_ERR_NULL, "bce");
        CHECK(bfns[f](n, 0, p, y, w, none, out) == SYMCE_OK, "bce: k = 0 is no elements");
        CHECK(out[0] == (T)SENTINEL, "bce: k = 0 writes nothing for none");
        CHECK(bfns[f](SIZE_MAX / 3, 4, p, y, w, none, out) == SYMCE_ERR_SIZE, "bce");
        CHECK(bfns[f](n, k, p, y, w, (symce_reduction)-1, out) == SYMCE_ERR_REDUCTION, "bce");
        CHECK(sfns[f](n, k, NULL, y, w, pw, none, out) == SYMCE_ERR_NULL, "sbce");
        CHECK(sfns[f](n, 0, x, y, w, pw, none, out) == SYMCE_OK, "sbce: k = 0 is no elements");
        CHECK(out[0] == (T)SENTINEL, "sbce: k = 0 writes nothing for none");
        CHECK(sfns[f](n, k, x, y, w, pw, (symce_reduction)3, out) == SYMCE_ERR_REDUCTION, "sbce");
        w[n * k - 1] = -1;
        CHECK(bfns[f](n, k, p, y, w, none, out) == SYMCE_ERR_WEIGHT, "bce");
        CHECK(sfns[f](n, k, x, y, w, pw, none, out) == SYMCE_ERR_WEIGHT, "sbce");
        w[n * k - 1] = 2;
        pw[k - 1] = (T)NAN;
        CHECK(sfns[f](n, k, x, y, w, pw, none, out) == SYMCE_ERR_POS_WEIGHT, "sbce");
        pw[k - 1] = 3;
        p[n * k - 1] = (T)1.0001;  /* a probability outside [0, 1]; the logits have no domain */
        CHECK(bfns[f](n, k, p, y, w, none, out) == SYMCE_ERR_DOMAIN, "bce");
        CHECK(bfns[f](n, k, p, y, w, (symce_reduction)9, out) == SYMCE_ERR_REDUCTION, "bce");
        p[n * k - 1] = (T)-1e-30;
        CHECK(bfns[f](n, k, p, y, w, none, out) == SYMCE_ERR_DOMAIN, "bce");
        p[n * k - 1] = p_v[n * k - 1];
        CHECK(LOCAL(untouched)(out, n * k), "bce errors");
        free(out);
    }
    free(p); free(x); free(y); free(w); free(pw);
}

static void CAT(run_, SFX, )(void)
{
    const struct LOCAL(ce_case) cases[] = {
        {"cross_entropy", FN(cross_entropy), FN(cross_entropy_soft), 0, 1},
        {"cross_entropy_grad", FN(cross_entropy_grad), FN(cross_entropy_grad_soft), 1, 1},
        {"softmax_cross_entropy", FN(softmax_cross_entropy), FN(softmax_cross_entropy_soft), 0, 0},
        {"softmax_cross_entropy_grad", FN(softmax_cross_entropy_grad),
         FN(softmax_cross_entropy_grad_soft), 1, 0},
    };
    LOCAL(elementwise)();
    LOCAL(rowwise)();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; ++c) LOCAL(ce_one)(&cases[c]);
    LOCAL(with_grad)();
    LOCAL(bce)();
}

#undef ROWS
#undef COLS
#undef CAT_
#undef CAT
#undef FN
#undef LOCAL
