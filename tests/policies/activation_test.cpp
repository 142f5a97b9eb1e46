// Laws of the activation family (include/ballast/policies/activation.hpp), instantiated for every policy
// of activation_policies (tests/support/policy_families.hpp), gated or not: backward equals central finite
// differences in double (also when dx aliases dy, as the model calls it), float agrees with double, and the
// declared widths keep the MLP's parameter count. Then each policy's own closed form: GELU as printed by
// Hendrycks & Gimpel 2016, SwiGLU as printed by Shazeer 2020 (policies/swiglu.hpp), in long double.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/kernels/gelu.hpp>
#include <ballast/kernels/ref/swiglu.hpp>
#include <ballast/policies/activation.hpp>
#include <ballast/policies/swiglu.hpp>

#include "support/gradcheck.hpp"
#include "support/policy_families.hpp"
#include "support/random.hpp"
#include "support/tolerance.hpp"

namespace
{
    constexpr std::size_t rows = 5, hidden = 7; // odd widths: partial SIMD registers in every row

    /// GELU as printed in Hendrycks & Gimpel 2016, in long double: the form the policy names.
    long double textbook_gelu(ballast::kernels::gelu_form form, long double x)
    {
        const long double pi = 3.141592653589793238462643383279502884L;
        if (form == ballast::kernels::gelu_form::tanh)
        {
            return 0.5L * x * (1 + std::tanh(std::sqrt(2 / pi) * (x + 0.044715L * x * x * x)));
        }
        return 0.5L * x * (1 + std::erf(x / std::sqrt(2.0L)));
    }

    /// Σ w·y of the policy's forward over x [rows, u·F].
    template <class A>
    double weighted_output(const std::vector<double>& x, const std::vector<double>& w)
    {
        std::vector<double> y(rows * hidden);
        A::forward(y.data(), x.data(), rows, hidden);
        double l = 0;
        for (std::size_t i = 0; i < y.size(); ++i)
        {
            l += w[i] * y[i];
        }
        return l;
    }
} // namespace

TEMPLATE_LIST_TEST_CASE("activation law: backward equals central finite differences in double, with dx "
                        "aliasing dy as the model calls it",
                        "[policies][activation][laws][grad]", ballast::test::activation_policies)
{
    using A = TestType;
    INFO(A::name);
    constexpr std::size_t fu = A::up_factor * hidden;
    auto g = ballast::test::rng(31);
    const auto xv = ballast::test::uniform<double>(g, rows * fu, -4.0, 4.0);
    const auto wv = ballast::test::uniform<double>(g, rows * hidden, -1.0, 1.0);
    std::vector<double> x(xv.begin(), xv.end()), w(wv.begin(), wv.end());
    // dy = w in the first F columns of rows u·F apart; the rest is garbage the backward must ignore
    std::vector<double> dy(rows * fu, 1e30);
    for (std::size_t r = 0; r < rows; ++r)
    {
        std::copy_n(w.data() + r * hidden, hidden, dy.data() + r * fu);
    }
    std::vector<double> dx(rows * fu, -7.0), in_place = dy;
    A::backward(dx.data(), dy.data(), x.data(), rows, hidden);
    A::backward(in_place.data(), in_place.data(), x.data(), rows, hidden);
    CHECK(in_place == dx);
    ballast::test::check_gradient(dx.data(), [&] { return weighted_output<A>(x, w); }, x.data(), x.size());
}

TEMPLATE_LIST_TEST_CASE("activation law: float agrees with double on the same inputs, outputs are finite on a wide range",
                        "[policies][activation][laws]", ballast::test::activation_policies)
{
    using A = TestType;
    INFO(A::name);
    constexpr std::size_t fu = A::up_factor * hidden;
    auto g = ballast::test::rng(32);
    const auto xv = ballast::test::uniform<float>(g, rows * fu, -30.0, 30.0);
    std::vector<float> xf(xv.begin(), xv.end()), yf(rows * hidden);
    std::vector<double> xd(xf.begin(), xf.end()), yd(rows * hidden); // the same inputs, exactly
    A::forward(yd.data(), xd.data(), rows, hidden);
    A::forward(yf.data(), xf.data(), rows, hidden);
    for (std::size_t i = 0; i < yd.size(); ++i)
    {
        INFO("i = " << i);
        REQUIRE(std::isfinite(yd[i]));
        BALLAST_CHECK_CLOSE(yf[i], yd[i], float);
    }
}

TEMPLATE_LIST_TEST_CASE("activation law: the hidden width keeps the MLP's parameter count of a width-w GELU "
                        "MLP up to rounding",
                        "[policies][activation][laws]", ballast::test::activation_policies)
{
    using A = TestType;
    INFO(A::name);
    STATIC_REQUIRE(A::up_factor >= 1);
    for (const std::size_t w : { 3u, 64u, 128u, 256u, 1000u, 3072u })
    {
        const std::size_t f = A::hidden_width(w);
        INFO("w = " << w << ", F = " << f);
        CHECK(f >= 1);
        // up (u·F·d) + down (F·d) versus 2·w·d
        const auto params = static_cast<long>((A::up_factor + 1) * f), gelu = static_cast<long>(2 * w);
        CHECK(std::labs(params - gelu) <= static_cast<long>(A::up_factor));
    }
}

TEMPLATE_TEST_CASE("GELU policies compute the form they name, vanish at 0 and tend to max(x, 0)",
                   "[policies][activation]", ballast::policies::gelu_tanh, ballast::policies::gelu_erf)
{
    using A = TestType;
    STATIC_REQUIRE(A::up_factor == 1);
    std::vector<double> x;
    for (int i = -80; i <= 80; ++i)
    {
        x.push_back(i * 0.1);
    }
    x.push_back(-40.0);
    x.push_back(40.0);
    std::vector<double> y(x.size());
    A::forward(y.data(), x.data(), 1, x.size());
    for (std::size_t i = 0; i < x.size(); ++i)
    {
        INFO("x = " << x[i]);
        BALLAST_CHECK_CLOSE(y[i], static_cast<double>(textbook_gelu(A::form, x[i])), double);
        if (std::fabs(x[i]) >= 40.0)
        {
            CHECK(std::fabs(y[i] - std::max(x[i], 0.0)) <= 1e-12);
        }
    }
    CHECK(y[80] == 0.0); // x = 0
}

TEMPLATE_TEST_CASE("SwiGLU computes Swish(gate)·value row by row (Shazeer 2020) and its kernel equals the "
                   "scalar twin",
                   "[policies][activation][swiglu]", float, double)
{
    using A = ballast::policies::swiglu;
    STATIC_REQUIRE(A::up_factor == 2);
    CHECK(A::hidden_width(64) == 43); // round(2/3 · 64) = round(42.67)
    CHECK(A::hidden_width(6) == 4);
    CHECK(A::hidden_width(1) == 1);
    constexpr std::size_t n = 3, f = 37; // several registers plus a partial one per row
    auto g = ballast::test::rng(33);
    const auto xv = ballast::test::uniform<TestType>(g, n * 2 * f, -6.0, 6.0);
    std::vector<TestType> x(xv.begin(), xv.end()), y(n * f), y_ref(n * f);
    A::forward(y.data(), x.data(), n, f);
    ballast::kernels::ref::swiglu_forward(y_ref.data(), x.data(), n, f);
    for (std::size_t r = 0; r < n; ++r)
    {
        for (std::size_t j = 0; j < f; ++j)
        {
            const long double a = x[r * 2 * f + j], b = x[r * 2 * f + f + j];
            const long double want = a / (1 + std::exp(-a)) * b;
            INFO("row " << r << " col " << j);
            BALLAST_CHECK_CLOSE(y[r * f + j], static_cast<TestType>(want), TestType);
            BALLAST_CHECK_CLOSE(y[r * f + j], y_ref[r * f + j], TestType);
        }
    }
    std::vector<TestType> dy(n * 2 * f), dx(n * 2 * f), dx_ref(n * 2 * f);
    const auto dyv = ballast::test::uniform<TestType>(g, n * 2 * f, -1.0, 1.0);
    std::copy(dyv.begin(), dyv.end(), dy.begin());
    A::backward(dx.data(), dy.data(), x.data(), n, f);
    ballast::kernels::ref::swiglu_backward(dx_ref.data(), dy.data(), x.data(), n, f);
    for (std::size_t i = 0; i < dx.size(); ++i)
    {
        INFO("i = " << i);
        BALLAST_CHECK_CLOSE(dx[i], dx_ref[i], TestType);
    }
}
