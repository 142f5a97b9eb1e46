#include <cmath>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/policies/position.hpp>

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
