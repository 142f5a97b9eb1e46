#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/policies/registry.hpp>

#include "support/random.hpp"

TEMPLATE_TEST_CASE("null norm and null qk control are the identity, forward and backward", "[policies][laws]",
                   float, double)
{
    const std::size_t rows = 5, cols = 12, ld = 20;
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
    ballast::model_config cfg;
    const auto s = ballast::policies::no_qk_control::make_state<TestType>(cfg);
    std::vector<TestType> q(rows * ld, TestType(0));
    ballast::policies::no_qk_control::forward(q.data(), static_cast<TestType*>(nullptr),
                                              static_cast<TestType*>(nullptr), x.data(),
                                              static_cast<const TestType*>(nullptr), ld, rows, 3, 4, s);
    for (std::size_t r = 0; r < rows; ++r)
    {
        for (std::size_t c = 0; c < cols; ++c)
        {
            CHECK(q[r * ld + c] == x[r * ld + c]);
        }
    }
}

TEST_CASE("forced logit scale sets every head vector's RMS to sqrt(kappa)", "[policies][laws][qk]")
{
    ballast::model_config cfg;
    cfg.d_model = 12;
    cfg.n_heads = 3;
    cfg.kappa = 9.0;
    const std::size_t rows = 4, dh = 4, H = 3, ld = 36;
    const auto s = ballast::policies::forced_logit_scale::make_state<double>(cfg);
    auto g = ballast::test::rng(2);
    auto x = ballast::test::uniform<double>(g, rows * ld, -3, 3);
    std::vector<double> y(rows * ld), rstd(H * rows);
    ballast::policies::forced_logit_scale::forward(y.data(), nullptr, rstd.data(), x.data(), nullptr, ld,
                                                   rows, H, dh, s);
    for (std::size_t r = 0; r < rows; ++r)
    {
        for (std::size_t h = 0; h < H; ++h)
        {
            double ms = 0;
            for (std::size_t i = 0; i < dh; ++i)
            {
                ms += y[r * ld + h * dh + i] * y[r * ld + h * dh + i];
            }
            // eps = 1e-6 inside the root shifts the RMS by ~eps/(2·mean x²): well below 1e-5.
            CHECK(std::fabs(std::sqrt(ms / dh) - 3.0) < 1e-5);
        }
    }
}

TEST_CASE("policy sets are found by name and unknown names are refused", "[policies][registry]")
{
    const auto names = ballast::policy_set_names();
    CHECK(names.size() == 8);
    for (const auto& n : names)
    {
        std::string seen;
        ballast::with_policy_set(n, [&](auto t) { seen = std::string(decltype(t)::type::name); });
        CHECK(seen == n);
    }
    CHECK_THROWS_WITH(ballast::with_policy_set("nope", [](auto) {}),
                      Catch::Contains("unknown name 'nope'") && Catch::Contains("paper_default"));
}

TEST_CASE("the shipped recipes differ from paper_default exactly where documented", "[policies][sets]")
{
    using namespace ballast;
    STATIC_REQUIRE(std::is_same_v<paper_default::qk,
                                  policies::qk_norm<policies::layer_norm, policies::qk_scope::per_head>>);
    STATIC_REQUIRE(std::is_same_v<paper_default::output_loss, policies::z_loss>);
    STATIC_REQUIRE(std::is_same_v<paper_baseline::qk, policies::no_qk_control>);
    STATIC_REQUIRE(std::is_same_v<paper_baseline::output_loss, paper_default::output_loss>);
    STATIC_REQUIRE(std::is_same_v<no_zloss::output_loss, policies::cross_entropy>);
    STATIC_REQUIRE(std::is_same_v<no_zloss::qk, paper_default::qk>);
    STATIC_REQUIRE(gpt2_like::head::tied && gpt2_like::bias::enabled);
    STATIC_REQUIRE(std::is_same_v<mup_full_recipe::parameterisation, policies::mup_full>);
}
