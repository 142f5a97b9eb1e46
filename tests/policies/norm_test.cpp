// Laws of the normalisation family (include/ballast/policies/norm.hpp), instantiated for every norm policy
// in tests/support/policy_families.hpp (norm_cases).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/policies/norm.hpp>

#include "support/gradcheck.hpp"
#include "support/policy_families.hpp"
#include "support/random.hpp"
#include "support/tolerance.hpp"

namespace
{
    // Every row is `cols` values in a row of `ld`: the padding must never be read or written.
    constexpr std::size_t rows = 5, cols = 12, ld = 16;
    constexpr double sentinel = -7.0;

    /// Parameters and caches for one norm policy in double (scale, bias null when the policy has none).
    template <class P>
    struct norm_fixture
    {
        std::vector<double> scale, bias, mean = std::vector<double>(rows), rstd = std::vector<double>(rows);

        explicit norm_fixture(std::uint64_t salt)
        {
            auto g = ballast::test::rng(salt);
            if constexpr (P::has_scale)
            {
                const auto s = ballast::test::uniform<double>(g, cols, 0.5, 1.5);
                scale.assign(s.begin(), s.end());
            }
            if constexpr (P::has_bias)
            {
                const auto b = ballast::test::uniform<double>(g, cols, -0.5, 0.5);
                bias.assign(b.begin(), b.end());
            }
        }
        const double* s() const { return scale.empty() ? nullptr : scale.data(); }
        const double* b() const { return bias.empty() ? nullptr : bias.data(); }

        std::vector<double> forward(const std::vector<double>& x, double eps)
        {
            std::vector<double> y(rows * ld, sentinel);
            P::forward(y.data(), ld, mean.data(), rstd.data(), x.data(), ld, s(), b(), rows, cols, eps);
            return y;
        }
    };

    std::vector<double> input(std::uint64_t salt)
    {
        auto g = ballast::test::rng(salt);
        const auto x = ballast::test::uniform<double>(g, rows * ld, -1.0, 1.0);
        return { x.begin(), x.end() };
    }

    double max_abs_difference(const std::vector<double>& a, const std::vector<double>& b)
    {
        double m = 0;
        for (std::size_t r = 0; r < rows; ++r)
        {
            for (std::size_t c = 0; c < cols; ++c)
            {
                m = std::max(m, std::fabs(a[r * ld + c] - b[r * ld + c]));
            }
        }
        return m;
    }
} // namespace

TEMPLATE_LIST_TEST_CASE("norm law: forward is invariant to a shift and a positive scale exactly as declared",
                        "[policies][norm][laws]", ballast::test::norm_cases)
{
    using P = typename TestType::policy;
    INFO(P::name);
    norm_fixture<P> f(1);
    const auto x = input(2);
    // eps is negligible next to the row variance (~1/3), so an invariance holds up to rounding.
    const double eps = 1e-300;
    const auto y = f.forward(x, eps);
    auto shifted = x, scaled = x;
    for (auto& v : shifted)
    {
        v += 1.3;
    }
    for (auto& v : scaled)
    {
        v *= 3.7;
    }
    const auto ys = f.forward(shifted, eps);
    const auto ya = f.forward(scaled, eps);
    if constexpr (TestType::shift_invariant)
    {
        ballast::test::check_all_close(ys.data(), y.data(), y.size(), ballast::test::tolerance<double>::rel,
                                       ballast::test::tolerance<double>::abs);
    }
    else
    {
        CHECK(max_abs_difference(ys, y) > 0.1); // declared not invariant: the shift must show
    }
    if constexpr (TestType::scale_invariant)
    {
        ballast::test::check_all_close(ya.data(), y.data(), y.size(), ballast::test::tolerance<double>::rel,
                                       ballast::test::tolerance<double>::abs);
    }
    else
    {
        CHECK(max_abs_difference(ya, y) > 0.1);
    }
}

TEMPLATE_LIST_TEST_CASE("norm law: backward equals central finite differences in double",
                        "[policies][norm][laws][grad]", ballast::test::norm_cases)
{
    using P = typename TestType::policy;
    INFO(P::name);
    norm_fixture<P> f(3);
    auto x = input(4);
    auto g = ballast::test::rng(5);
    const auto w = ballast::test::uniform<double>(g, rows * ld, -1.0, 1.0); // loss = Σ w·y over the rows
    const double eps = 1e-5;
    const auto loss = [&]
    {
        const auto y = f.forward(x, eps);
        double l = 0;
        for (std::size_t r = 0; r < rows; ++r)
        {
            for (std::size_t c = 0; c < cols; ++c)
            {
                l += w[r * ld + c] * y[r * ld + c];
            }
        }
        return l;
    };
    f.forward(x, eps); // the caches the backward reads
    std::vector<double> dx(rows * ld, sentinel), dscale(cols, 0.0), dbias(cols, 0.0);
    P::backward(dx.data(), ld, P::has_scale ? dscale.data() : nullptr, P::has_bias ? dbias.data() : nullptr,
                w.data(), ld, x.data(), ld, f.s(), f.mean.data(), f.rstd.data(), rows, cols);
    for (std::size_t r = 0; r < rows; ++r)
    {
        for (std::size_t c = cols; c < ld; ++c)
        {
            CHECK(dx[r * ld + c] == sentinel); // padding untouched
        }
    }
    // Central differences over the `cols` entries of every row (the padding does not enter the loss).
    std::vector<double> dx_packed, x_packed;
    for (std::size_t r = 0; r < rows; ++r)
    {
        for (std::size_t c = 0; c < cols; ++c)
        {
            const double saved = x[r * ld + c];
            x[r * ld + c] = saved + ballast::test::tolerance<double>::fd_step;
            const double lp = loss();
            x[r * ld + c] = saved - ballast::test::tolerance<double>::fd_step;
            const double lm = loss();
            x[r * ld + c] = saved;
            x_packed.push_back((lp - lm) / (2 * ballast::test::tolerance<double>::fd_step));
            dx_packed.push_back(dx[r * ld + c]);
        }
    }
    const double err = ballast::test::relative_error(dx_packed.data(), x_packed.data(), dx_packed.size());
    INFO("dx relative error " << err);
    CHECK(err <= ballast::test::tolerance<double>::fd_rel);
    if constexpr (P::has_scale)
    {
        ballast::test::check_gradient(dscale.data(), loss, f.scale.data(), cols);
    }
    if constexpr (P::has_bias)
    {
        ballast::test::check_gradient(dbias.data(), loss, f.bias.data(), cols);
    }
}

TEMPLATE_LIST_TEST_CASE("norm law: backward may run in place, overwrites dx and accumulates dscale and dbias",
                        "[policies][norm][laws]", ballast::test::norm_cases)
{
    using P = typename TestType::policy;
    INFO(P::name);
    norm_fixture<P> f(6);
    const auto x = input(7);
    f.forward(x, 1e-5);
    auto g = ballast::test::rng(8);
    const auto w = ballast::test::uniform<double>(g, rows * ld, -1.0, 1.0);
    std::vector<double> dw(w.begin(), w.end());

    std::vector<double> dx(rows * ld, 123.0), ds(cols, 0.0), db(cols, 0.0);
    P::backward(dx.data(), ld, P::has_scale ? ds.data() : nullptr, P::has_bias ? db.data() : nullptr,
                dw.data(), ld, x.data(), ld, f.s(), f.mean.data(), f.rstd.data(), rows, cols);
    // In place: dx is dy. Parameter gradients start from 0.25 and must end at 0.25 + the fresh gradient.
    std::vector<double> inplace = dw, ds2(cols, 0.25), db2(cols, 0.25);
    P::backward(inplace.data(), ld, P::has_scale ? ds2.data() : nullptr, P::has_bias ? db2.data() : nullptr,
                inplace.data(), ld, x.data(), ld, f.s(), f.mean.data(), f.rstd.data(), rows, cols);
    for (std::size_t r = 0; r < rows; ++r)
    {
        ballast::test::check_all_close(inplace.data() + r * ld, dx.data() + r * ld, cols,
                                       ballast::test::tolerance<double>::rel,
                                       ballast::test::tolerance<double>::abs);
    }
    for (std::size_t c = 0; c < cols; ++c)
    {
        if constexpr (P::has_scale)
        {
            BALLAST_CHECK_CLOSE(ds2[c], 0.25 + ds[c], double);
        }
        if constexpr (P::has_bias)
        {
            BALLAST_CHECK_CLOSE(db2[c], 0.25 + db[c], double);
        }
    }
}

TEMPLATE_LIST_TEST_CASE("norm law: rows are independent and the padding is never written",
                        "[policies][norm][laws]", ballast::test::norm_cases)
{
    using P = typename TestType::policy;
    INFO(P::name);
    norm_fixture<P> f(9);
    auto x = input(10);
    const auto y = f.forward(x, 1e-5);
    for (std::size_t c = 0; c < cols; ++c)
    {
        x[2 * ld + c] = 5.0 * x[2 * ld + c] + 0.5;
    }
    const auto y2 = f.forward(x, 1e-5);
    for (std::size_t r = 0; r < rows; ++r)
    {
        for (std::size_t c = 0; c < ld; ++c)
        {
            if (c >= cols)
            {
                CHECK(y2[r * ld + c] == sentinel);
            }
            else if (r != 2)
            {
                CHECK(y2[r * ld + c] == y[r * ld + c]);
            }
        }
    }
}

TEMPLATE_TEST_CASE("the null norm is the identity, forward and backward", "[policies][norm][laws]", float,
                   double)
{
    auto g = ballast::test::rng(1);
    auto x = ballast::test::uniform<TestType>(g, rows * ld);
    std::vector<TestType> y(rows * ld, TestType(-7)), dx(rows * ld, TestType(-7));
    ballast::policies::no_norm::forward(y.data(), ld, nullptr, nullptr, x.data(), ld, nullptr, nullptr, rows,
                                        cols, TestType(1e-6));
    ballast::policies::no_norm::backward(dx.data(), ld, nullptr, nullptr, x.data(), ld, nullptr, ld, nullptr,
                                         nullptr, nullptr, rows, cols);
    for (std::size_t r = 0; r < rows; ++r)
    {
        for (std::size_t c = 0; c < ld; ++c)
        {
            CHECK(y[r * ld + c] == (c < cols ? x[r * ld + c] : TestType(-7)));
            CHECK(dx[r * ld + c] == (c < cols ? x[r * ld + c] : TestType(-7)));
        }
    }
}

TEST_CASE("every norm policy models the concept in float and double", "[policies][norm]")
{
    std::apply(
      [](auto... c)
      {
          STATIC_REQUIRE(((ballast::policies::norm_policy<typename decltype(c)::policy, float> &&
                           ballast::policies::norm_policy<typename decltype(c)::policy, double>)&&...));
      },
      ballast::test::norm_cases{});
}
