// Laws of the parameterisation family (include/ballast/policies/parameterisation.hpp), for every policy of
// param_policies (tests/support/policy_families.hpp), and the family table's closed forms.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/policies/parameterisation.hpp>

#include "support/policy_families.hpp"
#include "support/tolerance.hpp"

namespace
{
    using ballast::policies::param_role;

    /// Every (role, fan-in) a model of width d has: embeddings and tables (fan-in unused), the attention and
    /// MLP-up matrices (fan-in d), the MLP-down matrix (fan-in 4d), the head (fan-in d), scales and biases.
    struct tensor_kind
    {
        param_role role;
        std::size_t fan_in;
    };
    std::vector<tensor_kind> tensor_kinds(std::size_t d)
    {
        return { { param_role::embedding, 0 },  { param_role::position, 0 }, { param_role::matrix, d },
                 { param_role::matrix, 4 * d }, { param_role::head, d },     { param_role::scale, 0 },
                 { param_role::bias, 0 } };
    }

    ballast::model_config width(std::size_t d, double base = 256)
    {
        ballast::model_config cfg;
        cfg.d_model = d;
        cfg.n_heads = d / 32;
        cfg.mup_base_width = base;
        return cfg;
    }

    bool is_linear(param_role r)
    {
        return r == param_role::matrix || r == param_role::head;
    }
} // namespace

TEMPLATE_LIST_TEST_CASE("parameterisation law: at base width every LR multiplier and init equals standard's",
                        "[policies][param][laws]", ballast::test::param_policies)
{
    using P = TestType;
    using S = ballast::policies::standard_param;
    INFO(P::name);
    for (const double base : { 64.0, 256.0 })
    {
        const auto d = static_cast<std::size_t>(base);
        const auto cfg = width(d, base);
        for (const auto& k : tensor_kinds(d))
        {
            INFO("role " << ballast::policies::role_name(k.role) << " fan-in " << k.fan_in << " base "
                         << base);
            CHECK(P::lr_multiplier(k.role, k.fan_in, cfg) == S::lr_multiplier(k.role, k.fan_in, cfg));
            BALLAST_CHECK_CLOSE(P::init_std(k.role, k.fan_in, cfg), S::init_std(k.role, k.fan_in, cfg),
                                double);
        }
    }
}

TEMPLATE_LIST_TEST_CASE("parameterisation law: tables, scales and biases keep multiplier 1 at every width, "
                        "scales and biases have constant init, linear multipliers do not grow with width",
                        "[policies][param][laws]", ballast::test::param_policies)
{
    using P = TestType;
    INFO(P::name);
    double previous_linear = INFINITY;
    for (const std::size_t d : { 64u, 128u, 256u, 512u, 1024u })
    {
        const auto cfg = width(d);
        for (const auto& k : tensor_kinds(d))
        {
            INFO("role " << ballast::policies::role_name(k.role) << " fan-in " << k.fan_in << " width " << d);
            const double m = P::lr_multiplier(k.role, k.fan_in, cfg), s = P::init_std(k.role, k.fan_in, cfg);
            CHECK(std::isfinite(m));
            CHECK(m > 0);
            CHECK(std::isfinite(s));
            if (!is_linear(k.role))
            {
                CHECK(m == 1.0);
            }
            if (k.role == param_role::scale || k.role == param_role::bias)
            {
                CHECK(s == 0.0); // constant init (1 and 0), not drawn
            }
            else
            {
                CHECK(s > 0);
            }
        }
        const double linear = P::lr_multiplier(param_role::matrix, d, cfg);
        CHECK(linear <= previous_linear);
        previous_linear = linear;
        const double a = P::attention_scale(cfg);
        CHECK(std::isfinite(a));
        CHECK(a > 0);
    }
}

TEST_CASE("the parameterisation table's closed forms hold away from base width", "[policies][param]")
{
    namespace pol = ballast::policies;
    const std::size_t d = 1024;
    const auto cfg = width(d, 256); // d_h = 32
    const double fan_in = static_cast<double>(d);
    // standard: 1/√d embeddings, 1/√fan_in matrices and head, multiplier 1, s = 1/√d_h, random queries
    BALLAST_CHECK_CLOSE(pol::standard_param::init_std(param_role::embedding, 0, cfg), 1.0 / 32.0, double);
    BALLAST_CHECK_CLOSE(pol::standard_param::init_std(param_role::matrix, 4 * d, cfg), 1.0 / 64.0, double);
    CHECK(pol::standard_param::lr_multiplier(param_role::head, d, cfg) == 1.0);
    BALLAST_CHECK_CLOSE(pol::standard_param::attention_scale(cfg), 1.0 / std::sqrt(32.0), double);
    STATIC_REQUIRE(!pol::standard_param::zero_queries);
    // µP simple: linear multipliers base/d, everything else standard
    CHECK(pol::mup_simple::lr_multiplier(param_role::matrix, d, cfg) == 0.25);
    CHECK(pol::mup_simple::lr_multiplier(param_role::head, d, cfg) == 0.25);
    CHECK(pol::mup_simple::lr_multiplier(param_role::embedding, 0, cfg) == 1.0);
    BALLAST_CHECK_CLOSE(pol::mup_simple::init_std(param_role::head, d, cfg), 1.0 / std::sqrt(fan_in), double);
    STATIC_REQUIRE(!pol::mup_simple::zero_queries);
    // µP full: head init √base/fan_in, s = 1/d_h, zero queries
    BALLAST_CHECK_CLOSE(pol::mup_full::init_std(param_role::head, d, cfg), 16.0 / fan_in, double);
    BALLAST_CHECK_CLOSE(pol::mup_full::attention_scale(cfg), 1.0 / 32.0, double);
    CHECK(pol::mup_full::lr_multiplier(param_role::matrix, 4 * d, cfg) == 0.25);
    STATIC_REQUIRE(pol::mup_full::zero_queries);
    std::apply([](auto... p) { STATIC_REQUIRE((pol::param_policy<decltype(p)> && ...)); },
               ballast::test::param_policies{});
}

TEST_CASE("every parameter role has a distinct name", "[policies][param]")
{
    std::vector<std::string> names;
    for (const auto r : { param_role::embedding, param_role::position, param_role::matrix, param_role::head,
                          param_role::scale, param_role::bias })
    {
        names.emplace_back(ballast::policies::role_name(r));
    }
    std::sort(names.begin(), names.end());
    CHECK(std::adjacent_find(names.begin(), names.end()) == names.end());
    CHECK(std::find(names.begin(), names.end(), "?") == names.end());
}
