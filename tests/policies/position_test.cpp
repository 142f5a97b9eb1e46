#include <algorithm>
#include <cmath>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/policies/position.hpp>

#include "support/gradcheck.hpp"
#include "support/policy_families.hpp"
#include "support/random.hpp"
#include "support/tolerance.hpp"

TEST_CASE("rope matches its closed form, preserves norms, and its inverse undoes it",
          "[policies][position][rope]")
{
    ballast::model_config cfg;
    cfg.d_model = 16;
    cfg.n_heads = 2;
    cfg.context = 9;
    cfg.rope_base = 100.0;
    const std::size_t dh = 8, half = 4, H = 2, B = 2, T = 9, ld = 3 * cfg.d_model;
    const auto s = ballast::policies::rope::make_state<double>(cfg);
    auto g = ballast::test::rng(17);
    auto x = ballast::test::uniform<double>(g, B * T * ld);
    auto y = x;
    ballast::policies::rope::rotate(y.data(), ld, B, T, H, dh, s, false);
    for (std::size_t r = 0; r < B * T; ++r)
    {
        const double t = static_cast<double>(r % T);
        for (std::size_t h = 0; h < H; ++h)
        {
            double n0 = 0, n1 = 0;
            for (std::size_t i = 0; i < half; ++i)
            {
                const double theta = std::pow(100.0, -2.0 * static_cast<double>(i) / static_cast<double>(dh));
                const double a = x[r * ld + h * dh + i], b = x[r * ld + h * dh + i + half];
                BALLAST_CHECK_CLOSE(y[r * ld + h * dh + i], a * std::cos(t * theta) - b * std::sin(t * theta),
                                    double);
                BALLAST_CHECK_CLOSE(y[r * ld + h * dh + i + half],
                                    b * std::cos(t * theta) + a * std::sin(t * theta), double);
                n0 += a * a + b * b;
                n1 += y[r * ld + h * dh + i] * y[r * ld + h * dh + i] +
                      y[r * ld + h * dh + i + half] * y[r * ld + h * dh + i + half];
            }
            BALLAST_CHECK_CLOSE(n1, n0, double);
        }
        for (std::size_t c = H * dh; c < ld; ++c)
        {
            CHECK(y[r * ld + c] == x[r * ld + c]); // columns outside the rotated block are untouched
        }
    }
    ballast::policies::rope::rotate(y.data(), ld, B, T, H, dh, s, true);
    ballast::test::check_all_close(y.data(), x.data(), x.size(), ballast::test::tolerance<double>::rel,
                                   1e-15);
}

TEST_CASE("rope refuses an odd head width", "[policies][position][rope][errors]")
{
    ballast::model_config cfg;
    cfg.d_model = 6;
    cfg.n_heads = 2;
    CHECK_THROWS_WITH(ballast::policies::rope::make_state<float>(cfg), Catch::Contains("even head width"));
}

TEST_CASE("learned positions add the table row of each position and accumulate its gradient",
          "[policies][position]")
{
    const std::size_t B = 2, T = 3, d = 4;
    std::vector<double> x(B * T * d, 1.0), table(5 * d);
    for (std::size_t i = 0; i < table.size(); ++i)
    {
        table[i] = static_cast<double>(i);
    }
    ballast::policies::learned_position::embed_forward(x.data(), table.data(), B, T, d);
    for (std::size_t r = 0; r < B * T; ++r)
    {
        for (std::size_t j = 0; j < d; ++j)
        {
            CHECK(x[r * d + j] == 1.0 + table[(r % T) * d + j]);
        }
    }
    std::vector<double> dtable(5 * d, 0.5);
    ballast::policies::learned_position::embed_backward(dtable.data(), x.data(), B, T, d);
    for (std::size_t t = 0; t < 5; ++t)
    {
        for (std::size_t j = 0; j < d; ++j)
        {
            const double expected = t < T ? 0.5 + 2 * (1.0 + table[t * d + j]) : 0.5; // B rows per position
            CHECK(dtable[t * d + j] == expected);
        }
    }
    std::vector<double> y(B * T * d, 2.0);
    ballast::policies::no_position::embed_forward(y.data(), table.data(), B, T, d);
    CHECK(
      std::all_of(y.begin(), y.end(), [](double v) { return v == 2.0; })); // the null policy is the identity
}

// --------------------------------------------------------------------------------------------------------
// Laws of the position family, for every policy of position_policies (tests/support/policy_families.hpp).

namespace
{
    constexpr std::size_t pB = 2, pT = 5, pH = 2, pdh = 8, pd = pH * pdh, pld = 3 * pd;

    ballast::model_config position_config()
    {
        ballast::model_config cfg;
        cfg.d_model = pd;
        cfg.n_heads = pH;
        cfg.context = 7; // longer than pT: a policy must index its tables by position, not by row
        cfg.rope_base = 50.0;
        return cfg;
    }

    std::vector<double> position_rows(std::uint64_t salt, std::size_t n)
    {
        auto g = ballast::test::rng(salt);
        const auto x = ballast::test::uniform<double>(g, n, -1.0, 1.0);
        return { x.begin(), x.end() };
    }
} // namespace

TEMPLATE_LIST_TEST_CASE("position law: rotation preserves every head vector's norm, is the identity at "
                        "position 0, touches only the head block, and its inverse undoes it",
                        "[policies][position][laws]", ballast::test::position_policies)
{
    using P = TestType;
    INFO(P::name);
    const auto s = P::template make_state<double>(position_config());
    const auto x = position_rows(21, pB * pT * pld);
    auto y = x;
    P::rotate(y.data(), pld, pB, pT, pH, pdh, s, false);
    for (std::size_t r = 0; r < pB * pT; ++r)
    {
        for (std::size_t h = 0; h < pH; ++h)
        {
            double n0 = 0, n1 = 0;
            for (std::size_t i = 0; i < pdh; ++i)
            {
                n0 += x[r * pld + h * pdh + i] * x[r * pld + h * pdh + i];
                n1 += y[r * pld + h * pdh + i] * y[r * pld + h * pdh + i];
            }
            BALLAST_CHECK_CLOSE(n1, n0, double);
        }
        for (std::size_t c = 0; c < pld; ++c)
        {
            if (r % pT == 0 || c >= pd)
            {
                CHECK(y[r * pld + c] == x[r * pld + c]);
            }
        }
    }
    P::rotate(y.data(), pld, pB, pT, pH, pdh, s, true);
    ballast::test::check_all_close(y.data(), x.data(), x.size(), ballast::test::tolerance<double>::rel,
                                   ballast::test::tolerance<double>::abs);
}

TEMPLATE_LIST_TEST_CASE("position law: the backward of rotate (the inverse rotation) equals central finite "
                        "differences",
                        "[policies][position][laws][grad]", ballast::test::position_policies)
{
    using P = TestType;
    INFO(P::name);
    const auto s = P::template make_state<double>(position_config());
    auto x = position_rows(22, pB * pT * pld);
    const auto w = position_rows(23, pB * pT * pld);
    const auto loss = [&]
    {
        auto y = x;
        P::rotate(y.data(), pld, pB, pT, pH, pdh, s, false);
        double l = 0;
        for (std::size_t i = 0; i < y.size(); ++i)
        {
            l += w[i] * y[i];
        }
        return l;
    };
    auto dx = w;
    P::rotate(dx.data(), pld, pB, pT, pH, pdh, s, true);
    ballast::test::check_gradient(dx.data(), loss, x.data(), x.size());
}

TEMPLATE_LIST_TEST_CASE("position law: the embedding hook adds a function of the table, its backward "
                        "accumulates the table gradient, and a policy without a table never reads one",
                        "[policies][position][laws][grad]", ballast::test::position_policies)
{
    using P = TestType;
    INFO(P::name);
    const auto cfg = position_config();
    auto x = position_rows(24, pB * pT * pd);
    auto table = position_rows(25, cfg.context * pd);
    const auto w = position_rows(26, pB * pT * pd);
    const auto loss = [&]
    {
        auto y = x;
        P::embed_forward(y.data(), table.data(), pB, pT, pd);
        double l = 0;
        for (std::size_t i = 0; i < y.size(); ++i)
        {
            l += w[i] * y[i];
        }
        return l;
    };
    // d loss / d x = w: the hook adds to the embedding, so the model passes dx through unchanged.
    ballast::test::check_gradient(w.data(), loss, x.data(), x.size());
    std::vector<double> dtable(table.size(), 0.0);
    P::embed_backward(dtable.data(), w.data(), pB, pT, pd);
    ballast::test::check_gradient(dtable.data(), loss, table.data(), table.size());
    std::vector<double> dtable2(table.size(), 0.25);
    P::embed_backward(dtable2.data(), w.data(), pB, pT, pd);
    for (std::size_t i = 0; i < dtable.size(); ++i)
    {
        BALLAST_CHECK_CLOSE(dtable2[i], 0.25 + dtable[i], double);
    }
    if constexpr (!P::has_table)
    {
        auto y = x; // the model has no table to pass: nullptr must be fine and change nothing
        P::embed_forward(y.data(), static_cast<const double*>(nullptr), pB, pT, pd);
        CHECK(y == x);
        CHECK(std::all_of(dtable.begin(), dtable.end(), [](double v) { return v == 0.0; }));
    }
    STATIC_REQUIRE(ballast::policies::position_policy<P, float>);
    STATIC_REQUIRE(ballast::policies::position_policy<P, double>);
}
