// Named policy sets (include/ballast/policies/policy_set.hpp): the shipped recipes are what the table says,
// a derived recipe is a policy set, and an incomplete or misfit one is not.

#include <cstddef>
#include <string_view>
#include <type_traits>

#include <catch2/catch.hpp>

#include <ballast/policies/policy_set.hpp>

namespace
{
    // The pattern policy_set.hpp documents: derive, override one slot and the name.
    struct my_recipe : ballast::paper_default
    {
        static constexpr std::string_view name = "my_recipe";
        using qk = ballast::policies::qk_norm<ballast::policies::rms_norm>;
    };

    struct missing_a_slot // no `activation`
    {
        static constexpr std::string_view name = "missing_a_slot";
        using norm = ballast::policies::layer_norm;
        using position = ballast::policies::rope;
        using qk = ballast::policies::no_qk_control;
        using attention_cap = ballast::policies::no_soft_cap;
        using output_loss = ballast::policies::z_loss;
        using output_cap = ballast::policies::no_soft_cap;
        using parameterisation = ballast::policies::standard_param;
        using bias = ballast::policies::no_bias;
        using head = ballast::policies::untied_head;
    };

    struct wrong_family : ballast::paper_default // a norm in the qk slot
    {
        static constexpr std::string_view name = "wrong_family";
        using qk = ballast::policies::layer_norm;
    };
} // namespace

TEST_CASE("a derived recipe is a policy set; an incomplete or misfit one is not", "[policies][sets]")
{
    STATIC_REQUIRE(ballast::policy_set<my_recipe>);
    STATIC_REQUIRE(ballast::policy_set_checks<my_recipe>::ok);
    STATIC_REQUIRE(std::is_same_v<my_recipe::norm, ballast::paper_default::norm>);
    STATIC_REQUIRE(!ballast::policy_set<missing_a_slot>);
    STATIC_REQUIRE(!ballast::policy_set<wrong_family>);
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
    STATIC_REQUIRE(std::is_same_v<gpt2_like::norm, policies::layer_norm_bias>);
    STATIC_REQUIRE(std::is_same_v<gpt2_like::position, policies::learned_position>);
    STATIC_REQUIRE(std::is_same_v<mup_recipe::parameterisation, policies::mup_simple>);
    STATIC_REQUIRE(std::is_same_v<mup_full_recipe::parameterisation, policies::mup_full>);
    STATIC_REQUIRE(std::is_same_v<soft_capped::attention_cap, policies::tanh_soft_cap>);
    STATIC_REQUIRE(std::is_same_v<soft_capped::output_cap, policies::tanh_soft_cap>);
    STATIC_REQUIRE(std::is_same_v<soft_capped::norm, policies::rms_norm>);
    STATIC_REQUIRE(std::is_same_v<forced_scale::qk, policies::forced_logit_scale>);
    STATIC_REQUIRE(std::is_same_v<forced_scale::output_loss, policies::cross_entropy>);
    STATIC_REQUIRE(std::is_same_v<swiglu_recipe::activation, policies::swiglu>);
    STATIC_REQUIRE(std::is_same_v<swiglu_recipe::qk, paper_default::qk>);
    STATIC_REQUIRE(std::is_same_v<paper_default::activation, policies::gelu_tanh>);
}

TEST_CASE("the slot list names every slot once, and a set missing any one of them is not a policy set",
          "[policies][sets]")
{
    using ballast::policy_slot_names;
    CHECK(policy_slot_names.size() == 10);
    CHECK(policy_slot_names.front() == "norm");
    CHECK(policy_slot_names.back() == "activation");
    for (std::size_t i = 0; i < policy_slot_names.size(); ++i)
    {
        for (std::size_t j = i + 1; j < policy_slot_names.size(); ++j)
        {
            CHECK(policy_slot_names[i] != policy_slot_names[j]);
        }
    }
    // The concept is generated from the same list: the last slot is required too.
    STATIC_REQUIRE(!ballast::policy_set<missing_a_slot>);
}
