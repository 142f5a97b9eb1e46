// Row softmax forward/backward (plain and causal) against the double scalar twin, closed forms,
// central finite differences, NaN/-Inf behaviour, aliasing and thread-count independence.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/core/parallel.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/kernels/softmax.hpp>

#include "support/gradcheck.hpp"
#include "support/random.hpp"
#include "support/sizes.hpp"
#include "support/tolerance.hpp"

namespace
{
    namespace bk = ballast::kernels;
    using ballast::test::check_all_close;
    using ballast::test::tolerance;

    template <class T>
    std::vector<std::size_t> softmax_sizes()
    {
        return ballast::test::awkward_sizes<T>({ 13, 37, 64, 257, 1031 });
    }

    /// Padding columns (ld > cols) are filled with this and must come back unchanged.
    template <class T>
    constexpr T sentinel = T(-12345);

    // Softmax outputs: exp has <= 2 ulp error (checked below), x − max and the normalisation add a
    // few roundings and the row sum ~ (cols/32 + 6) eps relative (reduce.hpp order) — well inside
    // tolerance::rel (64 eps) for the sizes here. Backward values y·(dy − s) can cancel to ~0, so
    // tolerance::abs applies.
    template <class T>
    constexpr double rel = tolerance<T>::rel;
    template <class T>
    constexpr double abs_tol = tolerance<T>::abs;

    /// ulp distance of `a` from the exact value `r`, measured in ulps of T at r.
    template <class T>
    double ulp_error(T a, long double r)
    {
        const T rt = static_cast<T>(r);
        const double u = static_cast<double>(std::nextafter(rt, std::numeric_limits<T>::infinity()) - rt);
        return static_cast<double>(std::fabs(static_cast<long double>(a) - r)) / u;
    }
} // namespace

TEMPLATE_TEST_CASE("xsimd::exp is within 2 ulp of std::exp on the softmax domain and keeps special values",
                   "[kernels][softmax][exp]", float, double)
{
    // Softmax only evaluates exp(x − max) with x − max <= 0; below the normal range (about −87 for
    // float) results are subnormal and compared absolutely. Note: xsimd 8.1 float exp overflows to
    // +Inf for x > ~88.37 (std::exp only at 88.72); irrelevant here, arguments are <= 0.
    using T = TestType;
    using B = ballast::simd::batch<T>;
    constexpr std::size_t L = ballast::simd::lanes<T>;
    const double lo = std::log(static_cast<double>(std::numeric_limits<T>::min()));
    auto g = ballast::test::rng(301);
    const auto x = ballast::test::uniform<T>(g, 1 << 14, lo, 0.0, 0);
    double worst = 0;
    for (std::size_t i = 0; i + L <= x.size(); i += L)
    {
        alignas(64) T y[L];
        xsimd::exp(B::load_unaligned(x.data() + i)).store_unaligned(y);
        for (std::size_t j = 0; j < L; ++j)
        {
            worst = std::max(worst, ulp_error(y[j], std::exp(static_cast<long double>(x[i + j]))));
        }
    }
    INFO("worst exp error " << worst << " ulp");
    CHECK(worst <= 2.0);
    const T inf = std::numeric_limits<T>::infinity();
    constexpr std::size_t n_special = (4 + L - 1) / L * L; // 4 values, padded to whole registers (L may be 2)
    alignas(64) T special[n_special] = { -inf, T(0), std::numeric_limits<T>::quiet_NaN(), T(-1000) };
    alignas(64) T out[n_special];
    for (std::size_t i = 0; i < n_special; i += L)
    {
        xsimd::exp(B::load_aligned(special + i)).store_aligned(out + i);
    }
    CHECK(out[0] == T(0));
    CHECK(out[1] == T(1));
    CHECK(std::isnan(out[2]));
    CHECK(out[3] == T(0));
}

TEMPLATE_TEST_CASE(
  "softmax_forward and softmax_backward match the scalar twin over awkward widths, ld padding and "
  "misalignment",
  "[kernels][softmax]", float, double)
{
    using T = TestType;
    auto g = ballast::test::rng(302);
    const std::size_t rows = 3;
    for (const std::size_t cols : softmax_sizes<T>())
    {
        for (const std::size_t mis : { 0u, 1u })
        {
            for (const std::size_t pad : { 0u, 3u })
            {
                CAPTURE(cols, mis, pad);
                const std::size_t ld = cols + pad, n = rows * ld;
                auto xb = ballast::test::uniform<T>(g, n, -8.0, 8.0, mis);
                auto dyb = ballast::test::uniform<T>(g, n, -1.0, 1.0, mis);
                T* x = xb.data() + mis;
                ballast::aligned_vector<T> y(n + mis, sentinel<T>), y_ref(n + mis, sentinel<T>);
                bk::softmax_forward(y.data() + mis, x, rows, cols, ld);
                bk::ref::softmax_forward(y_ref.data() + mis, x, rows, cols, ld);
                check_all_close(y.data(), y_ref.data(), n + mis, rel<T>,
                                abs_tol<T>); // incl. untouched padding
                ballast::aligned_vector<T> dx(n + mis, sentinel<T>), dx_ref(n + mis, sentinel<T>);
                bk::softmax_backward(dx.data() + mis, y_ref.data() + mis, dyb.data() + mis, rows, cols, ld);
                bk::ref::softmax_backward(dx_ref.data() + mis, y_ref.data() + mis, dyb.data() + mis, rows,
                                          cols, ld);
                check_all_close(dx.data(), dx_ref.data(), n + mis, rel<T>, abs_tol<T>);
            }
        }
    }
}

TEMPLATE_TEST_CASE("causal softmax forward and backward match the scalar twin and zero the masked triangle",
                   "[kernels][softmax][causal]", float, double)
{
    using T = TestType;
    auto g = ballast::test::rng(303);
    constexpr std::size_t L = ballast::simd::lanes<T>;
    for (const std::size_t tl : { std::size_t{ 1 }, std::size_t{ 2 }, L - 1, L, L + 1, std::size_t{ 13 },
                                  std::size_t{ 64 }, std::size_t{ 67 } })
    {
        for (const std::size_t mis : { 0u, 1u })
        {
            CAPTURE(tl, mis);
            const std::size_t ld = tl + mis,
                              n = tl * ld; // ld padding only when misaligned: both shapes covered
            auto xb = ballast::test::uniform<T>(g, n, -8.0, 8.0, mis);
            auto dyb = ballast::test::uniform<T>(g, n, -1.0, 1.0, mis);
            ballast::aligned_vector<T> y(n + mis, sentinel<T>), y_ref(n + mis, sentinel<T>);
            bk::softmax_causal_forward(y.data() + mis, xb.data() + mis, tl, ld);
            bk::ref::softmax_causal_forward(y_ref.data() + mis, xb.data() + mis, tl, ld);
            check_all_close(y.data(), y_ref.data(), n + mis, rel<T>, abs_tol<T>);
            const T* yp = y.data() + mis;
            CHECK(yp[0] == T(1)); // row 0 attends only to itself
            bool masked_zero = true;
            for (std::size_t t = 0; t < tl; ++t)
            {
                for (std::size_t j = t + 1; j < tl; ++j)
                {
                    masked_zero = masked_zero && yp[t * ld + j] == T(0);
                }
            }
            CHECK(masked_zero);
            ballast::aligned_vector<T> dx(n + mis, sentinel<T>), dx_ref(n + mis, sentinel<T>);
            bk::softmax_causal_backward(dx.data() + mis, y_ref.data() + mis, dyb.data() + mis, tl, ld);
            bk::ref::softmax_causal_backward(dx_ref.data() + mis, y_ref.data() + mis, dyb.data() + mis, tl,
                                             ld);
            check_all_close(dx.data(), dx_ref.data(), n + mis, rel<T>, abs_tol<T>);
        }
    }
}

TEMPLATE_TEST_CASE("softmax rows sum to one and equal logits give the uniform distribution",
                   "[kernels][softmax]", float, double)
{
    using T = TestType;
    auto g = ballast::test::rng(304);
    for (const std::size_t cols : softmax_sizes<T>())
    {
        CAPTURE(cols);
        std::vector<T> x(cols, T(3.25)), y(cols);
        bk::softmax_forward(y.data(), x.data(), 1, cols, cols);
        std::vector<double> uniform(cols, 1.0 / static_cast<double>(cols));
        check_all_close(y.data(), uniform.data(), cols, rel<T>, 0.0);
        const auto xr = ballast::test::uniform<T>(g, cols, -20.0, 20.0, 0);
        bk::softmax_forward(y.data(), xr.data(), 1, cols, cols);
        double s = 0;
        for (const T v : y)
        {
            s += v;
        }
        BALLAST_CHECK_CLOSE(s, 1.0, T);
    }
}

TEST_CASE("softmax backward agrees with central finite differences in double",
          "[kernels][softmax][gradcheck]")
{
    // Loss L(x) = Σ w ⊙ softmax(x), so dL/dy = w and dL/dx = softmax_backward(y, w).
    auto g = ballast::test::rng(305);
    for (const bool causal : { false, true })
    {
        CAPTURE(causal);
        const std::size_t rows = 7, cols = 7, ld = 9; // square so the causal variant uses the same shape
        auto x = ballast::test::uniform<double>(g, rows * ld, -3.0, 3.0, 0);
        const auto w = ballast::test::uniform<double>(g, rows * ld, -1.0, 1.0, 0);
        std::vector<double> y(rows * ld), dx(rows * ld, 0.0);
        const auto forward = [&]
        {
            if (causal)
            {
                bk::softmax_causal_forward(y.data(), x.data(), rows, ld);
            }
            else
            {
                bk::softmax_forward(y.data(), x.data(), rows, cols, ld);
            }
        };
        const auto loss = [&]
        {
            forward();
            double l = 0;
            for (std::size_t r = 0; r < rows; ++r)
            {
                for (std::size_t j = 0; j < cols; ++j)
                {
                    l += w[r * ld + j] * y[r * ld + j];
                }
            }
            return l;
        };
        forward();
        if (causal)
        {
            bk::softmax_causal_backward(dx.data(), y.data(), w.data(), rows, ld);
        }
        else
        {
            bk::softmax_backward(dx.data(), y.data(), w.data(), rows, cols, ld);
        }
        // Padding columns have zero gradient in both: FD perturbs them with no effect; dx there is 0.
        ballast::test::check_gradient(dx.data(), loss, x.data(), rows * ld);
    }
}

TEMPLATE_TEST_CASE("a NaN in a row makes only that row NaN, and -Inf logits get exactly zero probability",
                   "[kernels][softmax][nan]", float, double)
{
    using T = TestType;
    const T nan = std::numeric_limits<T>::quiet_NaN();
    const T inf = std::numeric_limits<T>::infinity();
    auto g = ballast::test::rng(306);
    const std::size_t rows = 4, cols = 37;
    auto x = ballast::test::uniform<T>(g, rows * cols, -2.0, 2.0, 0);
    x[1 * cols + 20] = nan;
    x[2 * cols + 5] = -inf;
    x[2 * cols + 36] = -inf;
    std::vector<T> y(rows * cols), dx(rows * cols);
    bk::softmax_forward(y.data(), x.data(), rows, cols, cols);
    const auto row_all = [&](const std::vector<T>& v, std::size_t r, auto pred)
    {
        return std::all_of(v.begin() + static_cast<std::ptrdiff_t>(r * cols),
                           v.begin() + static_cast<std::ptrdiff_t>((r + 1) * cols), pred);
    };
    const auto is_nan = [](T v) { return std::isnan(v); };
    const auto finite = [](T v) { return std::isfinite(v); };
    CHECK(row_all(y, 0, finite));
    CHECK(row_all(y, 1, is_nan));
    CHECK(row_all(y, 2, finite));
    CHECK(row_all(y, 3, finite));
    CHECK(y[2 * cols + 5] == T(0));
    CHECK(y[2 * cols + 36] == T(0));
    // Backward: a NaN upstream gradient poisons its row only.
    auto dy = ballast::test::uniform<T>(g, rows * cols, -1.0, 1.0, 0);
    dy[3 * cols + 1] = nan;
    bk::ref::softmax_forward(y.data(), x.data(), rows, cols, cols);
    bk::softmax_backward(dx.data(), y.data(), dy.data(), rows, cols, cols);
    CHECK(row_all(dx, 0, finite));
    CHECK(row_all(dx, 3, is_nan));

    // Causal: a NaN in a masked position (j > t) is never read; one at j <= t poisons row t only.
    const std::size_t tl = 13;
    auto s = ballast::test::uniform<T>(g, tl * tl, -2.0, 2.0, 0);
    s[4 * tl + 9] = nan; // masked for row 4
    s[6 * tl + 2] = nan; // visible to row 6
    std::vector<T> p(tl * tl);
    bk::softmax_causal_forward(p.data(), s.data(), tl, tl);
    for (std::size_t t = 0; t < tl; ++t)
    {
        CAPTURE(t);
        for (std::size_t j = 0; j < tl; ++j)
        {
            const T v = p[t * tl + j];
            if (t == 6 && j <= t)
            {
                CHECK(std::isnan(v));
            }
            else
            {
                CHECK(std::isfinite(v));
            }
        }
    }
}

TEMPLATE_TEST_CASE("softmax in place equals out of place", "[kernels][softmax]", float, double)
{
    using T = TestType;
    auto g = ballast::test::rng(307);
    const std::size_t rows = 5, cols = 37;
    auto x = ballast::test::uniform<T>(g, rows * cols, -4.0, 4.0, 0);
    std::vector<T> y(rows * cols), dx(rows * cols);
    auto inplace = x;
    bk::softmax_forward(y.data(), x.data(), rows, cols, cols);
    bk::softmax_forward(inplace.data(), inplace.data(), rows, cols, cols);
    CHECK(std::memcmp(y.data(), inplace.data(), y.size() * sizeof(T)) == 0);
    auto dy = ballast::test::uniform<T>(g, rows * cols, -1.0, 1.0, 0);
    bk::softmax_backward(dx.data(), y.data(), dy.data(), rows, cols, cols);
    bk::softmax_backward(dy.data(), y.data(), dy.data(), rows, cols, cols);
    CHECK(std::memcmp(dx.data(), dy.data(), dx.size() * sizeof(T)) == 0);
}

TEST_CASE("softmax kernels reject ld smaller than the row width", "[kernels][softmax]")
{
    std::vector<float> a(16);
    CHECK_THROWS_AS(bk::softmax_forward(a.data(), a.data(), 2, 8, 7), ballast::error);
    CHECK_THROWS_AS(bk::softmax_backward(a.data(), a.data(), a.data(), 2, 8, 7), ballast::error);
    CHECK_THROWS_AS(bk::softmax_causal_forward(a.data(), a.data(), 4, 3), ballast::error);
    CHECK_THROWS_AS(bk::softmax_causal_backward(a.data(), a.data(), a.data(), 4, 3), ballast::error);
    CHECK_NOTHROW(bk::softmax_forward(a.data(), a.data(), 0, 0, 0));
}

TEMPLATE_TEST_CASE("threaded softmax kernels are bit-identical for 1 and 2 threads",
                   "[kernels][softmax][threads]", float, double)
{
    using T = TestType;
    auto g = ballast::test::rng(308);
    const std::size_t rows = 2048, cols = 64, tl = 256; // 8 and 4 chunks (row_chunk_elems)
    const auto x = ballast::test::uniform<T>(g, rows * cols, -6.0, 6.0, 0);
    const auto dy = ballast::test::uniform<T>(g, rows * cols, -1.0, 1.0, 0);
    const auto run = [&](int threads)
    {
        ballast::thread_scope scope(threads);
        std::vector<T> out(4 * rows * cols);
        T* y = out.data();
        bk::softmax_forward(y, x.data(), rows, cols, cols);
        bk::softmax_backward(y + rows * cols, y, dy.data(), rows, cols, cols);
        bk::softmax_causal_forward(y + 2 * rows * cols, x.data(), tl, tl);
        bk::softmax_causal_backward(y + 3 * rows * cols, y + 2 * rows * cols, dy.data(), tl, tl);
        return out;
    };
    const auto one = run(1), two = run(2);
    CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(T)) == 0);
}

TEMPLATE_TEST_CASE("causal softmax row diagnostics: the max logit and the entropy of each row",
                   "[kernels][softmax][diagnostics]", float, double)
{
    // Direct definitions in double: max_j x[t, j≤t] and H = −Σ p log p of the softmax of that row.
    using T = TestType;
    auto g = ballast::test::rng(311);
    for (const std::size_t tl : { std::size_t{ 1 }, std::size_t{ 7 }, std::size_t{ 33 }, std::size_t{ 70 } })
    {
        CAPTURE(tl);
        const auto x = ballast::test::uniform<T>(g, tl * tl, -6.0, 6.0);
        std::vector<T> y(tl * tl), mx(tl), ent(tl), mx_ref(tl), ent_ref(tl), y_ref(tl * tl);
        bk::softmax_causal_forward(y.data(), x.data(), tl, tl, mx.data(), ent.data());
        bk::ref::softmax_causal_forward(y_ref.data(), x.data(), tl, tl, mx_ref.data(), ent_ref.data());
        std::vector<double> mx_direct(tl), ent_direct(tl);
        for (std::size_t t = 0; t < tl; ++t)
        {
            double m = -INFINITY, s = 0, h = 0;
            for (std::size_t j = 0; j <= t; ++j)
            {
                m = std::max(m, double(x[t * tl + j]));
            }
            for (std::size_t j = 0; j <= t; ++j)
            {
                s += std::exp(double(x[t * tl + j]) - m);
            }
            for (std::size_t j = 0; j <= t; ++j)
            {
                const double p = std::exp(double(x[t * tl + j]) - m) / s;
                h -= p > 0 ? p * std::log(p) : 0.0;
            }
            mx_direct[t] = m;
            ent_direct[t] = h;
        }
        check_all_close(mx.data(), mx_direct.data(), tl, 0.0, 0.0); // the max is exact
        check_all_close(mx_ref.data(), mx_direct.data(), tl, 0.0, 0.0);
        check_all_close(ent.data(), ent_direct.data(), tl, tolerance<T>::rel, tolerance<T>::abs);
        check_all_close(ent_ref.data(), ent_direct.data(), tl, tolerance<T>::rel, tolerance<T>::abs);
        check_all_close(y.data(), y_ref.data(), tl * tl, tolerance<T>::rel,
                        tolerance<T>::abs); // unchanged output
    }
    // Closed forms: equal logits over t+1 keys give entropy log(t+1); one dominant logit gives ~0.
    const std::size_t tl = 9;
    std::vector<T> x(tl * tl, T(0.5)), y(tl * tl), mx(tl), ent(tl);
    bk::softmax_causal_forward(y.data(), x.data(), tl, tl, mx.data(), ent.data());
    for (std::size_t t = 0; t < tl; ++t)
    {
        BALLAST_CHECK_CLOSE(ent[t], std::log(double(t + 1)), T);
        CHECK(mx[t] == T(0.5));
    }
}
