// Laws of the attention-logit control family (include/ballast/policies/attention.hpp): the q/k controls
// (qk_policies) and the soft caps (soft_cap_policies) of tests/support/policy_families.hpp.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/policies/attention.hpp>

#include "support/gradcheck.hpp"
#include "support/policy_families.hpp"
#include "support/random.hpp"
#include "support/tolerance.hpp"

namespace
{
    // The model's layout: rows of q | k | v (ld = 3d); a q/k control sees one d-wide block of each row.
    constexpr std::size_t N = 4, H = 3, dh = 4, d = H * dh, ld = 3 * d;
    constexpr double sentinel = -7.0;

    ballast::model_config qk_config()
    {
        ballast::model_config cfg;
        cfg.d_model = d;
        cfg.n_heads = H;
        cfg.kappa = 2.0;
        return cfg;
    }

    /// One q/k control in double with its (random) scale, caches and state.
    template <class P>
    struct qk_fixture
    {
        typename P::template state<double> state = P::template make_state<double>(qk_config());
        std::vector<double> scale, mean = std::vector<double>(H * N), rstd = std::vector<double>(H * N);

        explicit qk_fixture(std::uint64_t salt)
        {
            auto g = ballast::test::rng(salt);
            const auto s = ballast::test::uniform<double>(g, P::scale_size(d, dh), 0.5, 1.5);
            scale.assign(s.begin(), s.end());
        }
        const double* s() const { return scale.empty() ? nullptr : scale.data(); }

        std::vector<double> forward(const std::vector<double>& x)
        {
            std::vector<double> y(N * ld, sentinel);
            P::forward(y.data(), mean.data(), rstd.data(), x.data(), s(), ld, N, H, dh, state);
            return y;
        }
        std::vector<double> backward(const std::vector<double>& dy, const std::vector<double>& x,
                                     double* dscale)
        {
            std::vector<double> dx(N * ld, sentinel);
            P::backward(dx.data(), dscale, dy.data(), x.data(), s(), mean.data(), rstd.data(), ld, N, H, dh,
                        state);
            return dx;
        }
    };

    std::vector<double> qkv_rows(std::uint64_t salt)
    {
        auto g = ballast::test::rng(salt);
        const auto x = ballast::test::uniform<double>(g, N * ld, -2.0, 2.0);
        return { x.begin(), x.end() };
    }
} // namespace

TEMPLATE_LIST_TEST_CASE("qk law: backward equals central finite differences in double",
                        "[policies][qk][laws][grad]", ballast::test::qk_policies)
{
    using P = TestType;
    INFO(P::name);
    qk_fixture<P> f(1);
    auto x = qkv_rows(2);
    const auto w = qkv_rows(3); // loss = Σ w·y over the q block
    const auto loss = [&]
    {
        const auto y = f.forward(x);
        double l = 0;
        for (std::size_t r = 0; r < N; ++r)
        {
            for (std::size_t c = 0; c < d; ++c)
            {
                l += w[r * ld + c] * y[r * ld + c];
            }
        }
        return l;
    };
    f.forward(x);
    std::vector<double> dscale(f.scale.size(), 0.0);
    const auto dx = f.backward(w, x, dscale.empty() ? nullptr : dscale.data());
    std::vector<double> analytic, numeric;
    const double h = ballast::test::tolerance<double>::fd_step;
    for (std::size_t r = 0; r < N; ++r)
    {
        for (std::size_t c = 0; c < d; ++c)
        {
            const double saved = x[r * ld + c];
            x[r * ld + c] = saved + h;
            const double lp = loss();
            x[r * ld + c] = saved - h;
            const double lm = loss();
            x[r * ld + c] = saved;
            numeric.push_back((lp - lm) / (2 * h));
            analytic.push_back(dx[r * ld + c]);
        }
    }
    const double err = ballast::test::relative_error(analytic.data(), numeric.data(), analytic.size());
    INFO("dx relative error " << err);
    CHECK(err <= ballast::test::tolerance<double>::fd_rel);
    if (!f.scale.empty())
    {
        ballast::test::check_gradient(dscale.data(), loss, f.scale.data(), f.scale.size());
    }
}

TEMPLATE_LIST_TEST_CASE("qk law: only the d-wide block of each row is written, rows are independent, and "
                        "the scale gradient accumulates",
                        "[policies][qk][laws]", ballast::test::qk_policies)
{
    using P = TestType;
    INFO(P::name);
    qk_fixture<P> f(4);
    auto x = qkv_rows(5);
    const auto y = f.forward(x);
    const auto w = qkv_rows(6);
    std::vector<double> ds(f.scale.size(), 0.0), ds2(f.scale.size(), 0.25);
    const auto dx = f.backward(w, x, ds.empty() ? nullptr : ds.data());
    const auto dx2 = f.backward(w, x, ds2.empty() ? nullptr : ds2.data());
    for (std::size_t r = 0; r < N; ++r)
    {
        for (std::size_t c = d; c < ld; ++c)
        {
            CHECK(y[r * ld + c] == sentinel); // k and v columns are not this call's to write
            CHECK(dx[r * ld + c] == sentinel);
        }
    }
    CHECK(dx == dx2); // dx is overwritten, whatever the scale gradient held
    for (std::size_t i = 0; i < ds.size(); ++i)
    {
        BALLAST_CHECK_CLOSE(ds2[i], 0.25 + ds[i], double);
    }
    for (std::size_t c = 0; c < ld; ++c)
    {
        x[1 * ld + c] = 3.0 * x[1 * ld + c] - 0.5;
    }
    const auto y2 = f.forward(x);
    for (std::size_t r = 0; r < N; ++r)
    {
        if (r == 1)
        {
            continue;
        }
        for (std::size_t c = 0; c < d; ++c)
        {
            CHECK(y2[r * ld + c] == y[r * ld + c]);
        }
    }
}

TEMPLATE_TEST_CASE("the null qk control is the identity, forward and backward", "[policies][qk][laws]", float,
                   double)
{
    const std::size_t rows = 5, cols = 12, ldx = 20;
    auto g = ballast::test::rng(1);
    auto x = ballast::test::uniform<TestType>(g, rows * ldx);
    ballast::model_config cfg;
    const auto s = ballast::policies::no_qk_control::make_state<TestType>(cfg);
    std::vector<TestType> q(rows * ldx, TestType(-7)), dq(rows * ldx, TestType(-7));
    ballast::policies::no_qk_control::forward(q.data(), static_cast<TestType*>(nullptr),
                                              static_cast<TestType*>(nullptr), x.data(),
                                              static_cast<const TestType*>(nullptr), ldx, rows, 3, 4, s);
    ballast::policies::no_qk_control::backward(
      dq.data(), static_cast<TestType*>(nullptr), x.data(), static_cast<const TestType*>(nullptr),
      static_cast<const TestType*>(nullptr), static_cast<const TestType*>(nullptr),
      static_cast<const TestType*>(nullptr), ldx, rows, 3, 4, s);
    STATIC_REQUIRE(ballast::policies::no_qk_control::scale_size(12, 4) == 0);
    for (std::size_t r = 0; r < rows; ++r)
    {
        for (std::size_t c = 0; c < ldx; ++c)
        {
            CHECK(q[r * ldx + c] == (c < cols ? x[r * ldx + c] : TestType(-7)));
            CHECK(dq[r * ldx + c] == (c < cols ? x[r * ldx + c] : TestType(-7)));
        }
    }
}

TEST_CASE("forced logit scale sets every head vector's RMS to sqrt(kappa)", "[policies][laws][qk]")
{
    ballast::model_config cfg;
    cfg.d_model = 12;
    cfg.n_heads = 3;
    cfg.kappa = 9.0;
    const std::size_t rows = 4, hd = 4, heads = 3, ldx = 36;
    const auto s = ballast::policies::forced_logit_scale::make_state<double>(cfg);
    auto g = ballast::test::rng(2);
    auto x = ballast::test::uniform<double>(g, rows * ldx, -3, 3);
    std::vector<double> y(rows * ldx), rstd(heads * rows);
    ballast::policies::forced_logit_scale::forward(y.data(), nullptr, rstd.data(), x.data(), nullptr, ldx,
                                                   rows, heads, hd, s);
    for (std::size_t r = 0; r < rows; ++r)
    {
        for (std::size_t h = 0; h < heads; ++h)
        {
            double ms = 0, mx = 0;
            for (std::size_t i = 0; i < hd; ++i)
            {
                ms += y[r * ldx + h * hd + i] * y[r * ldx + h * hd + i];
                mx += x[r * ldx + h * hd + i] * x[r * ldx + h * hd + i];
            }
            // RMS √κ, exactly √κ·√(m/(m + ε)) with m = mean x² and ε = norm_eps inside the root (for a short
            // head vector m can be small enough that ε shows in the fifth digit).
            mx /= static_cast<double>(hd);
            BALLAST_CHECK_CLOSE(std::sqrt(ms / hd), 3.0 * std::sqrt(mx / (mx + cfg.norm_eps)), double);
        }
    }
}

// --------------------------------------------------------------------------------------------------------
// Soft caps

namespace
{
    constexpr double cap_c = 2.0;

    template <class P>
    std::vector<double> capped(std::vector<double> z, double c = cap_c)
    {
        P::forward(z.data(), z.size(), c);
        return z;
    }
} // namespace

TEMPLATE_LIST_TEST_CASE("soft-cap law: an inactive cap is the identity; an active cap is bounded by c, "
                        "monotone, and leaves small logits alone",
                        "[policies][soft_cap][laws]", ballast::test::soft_cap_policies)
{
    using P = TestType;
    INFO(P::name);
    std::vector<double> z;
    for (int i = -200; i <= 200; ++i)
    {
        z.push_back(i * 0.05 * cap_c); // sorted, from -10c to 10c
    }
    for (const double big : { 1e6, 1e30, 1e300 })
    {
        z.insert(z.begin(), -big);
        z.push_back(big);
    }
    const auto y = capped<P>(z);
    if constexpr (!P::active)
    {
        CHECK(y == z);
        std::vector<double> dz(z.size(), 0.5);
        P::backward(dz.data(), y.data(), dz.size(), cap_c);
        CHECK(std::all_of(dz.begin(), dz.end(), [](double v) { return v == 0.5; }));
    }
    else
    {
        for (std::size_t i = 0; i < z.size(); ++i)
        {
            INFO("z = " << z[i] << " -> " << y[i]);
            CHECK(std::fabs(y[i]) <= cap_c);
            if (i > 0)
            {
                CHECK(y[i] >= y[i - 1]);
            }
            // |z| ≤ c/10: the cap moves z by at most |z|·(z/c)² (tanh: |z|³/(3c²)).
            if (std::fabs(z[i]) <= cap_c / 10)
            {
                CHECK(std::fabs(y[i] - z[i]) <= std::fabs(z[i]) * (z[i] / cap_c) * (z[i] / cap_c) + 1e-300);
            }
        }
    }
}

TEMPLATE_LIST_TEST_CASE("soft-cap law: backward from the capped values equals central finite differences",
                        "[policies][soft_cap][laws][grad]", ballast::test::soft_cap_policies)
{
    using P = TestType;
    INFO(P::name);
    auto g = ballast::test::rng(11);
    const auto zv = ballast::test::uniform<double>(g, 37, -3 * cap_c, 3 * cap_c);
    const auto wv = ballast::test::uniform<double>(g, 37, -1.0, 1.0);
    std::vector<double> z(zv.begin(), zv.end()), w(wv.begin(), wv.end());
    const auto loss = [&]
    {
        const auto y = capped<P>(z);
        double l = 0;
        for (std::size_t i = 0; i < y.size(); ++i)
        {
            l += w[i] * y[i];
        }
        return l;
    };
    const auto y = capped<P>(z);
    auto dz = w;
    P::backward(dz.data(), y.data(), dz.size(), cap_c);
    ballast::test::check_gradient(dz.data(), loss, z.data(), z.size());
}

TEST_CASE("every attention policy models its concept in float and double", "[policies][qk][soft_cap]")
{
    std::apply(
      [](auto... p)
      {
          STATIC_REQUIRE(((ballast::policies::qk_policy<decltype(p), float> &&
                           ballast::policies::qk_policy<decltype(p), double>)&&...));
      },
      ballast::test::qk_policies{});
    std::apply(
      [](auto... p)
      {
          STATIC_REQUIRE(((ballast::policies::soft_cap_policy<decltype(p), float> &&
                           ballast::policies::soft_cap_policy<decltype(p), double>)&&...));
      },
      ballast::test::soft_cap_policies{});
}
