// The policy-set registry (include/ballast/policies/registry.hpp): names to types, and the shipped sets'
// policies are all under their family's law suite (tests/support/policy_families.hpp).

#include <algorithm>
#include <string>
#include <vector>

#include <boost/hana/for_each.hpp>
#include <catch2/catch.hpp>

#include <ballast/policies/registry.hpp>

#include "support/policy_families.hpp"

TEST_CASE("policy sets are found by name and unknown names are refused", "[policies][registry]")
{
    const auto names = ballast::policy_set_names();
    CHECK(names.size() == 9); // the eight of the paper table plus swiglu_recipe
    auto sorted = names;
    std::sort(sorted.begin(), sorted.end());
    CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
    for (const auto& n : names)
    {
        std::string seen;
        ballast::with_policy_set(n, [&](auto t) { seen = std::string(decltype(t)::type::name); });
        CHECK(seen == n);
    }
    CHECK_THROWS_WITH(ballast::with_policy_set("nope", [](auto) {}),
                      Catch::Contains("unknown name 'nope'") && Catch::Contains("paper_default"));
}

TEST_CASE("every policy a shipped set uses is in its family's law suite", "[policies][registry][laws]")
{
    using namespace ballast::test;
    boost::hana::for_each(ballast::shipped_policy_sets,
                          [](auto t)
                          {
                              using S = typename decltype(t)::type;
                              INFO(S::name);
                              CHECK(listed<policies_of<norm_cases>::type, typename S::norm>);
                              CHECK(listed<position_policies, typename S::position>);
                              CHECK(listed<qk_policies, typename S::qk>);
                              CHECK(listed<soft_cap_policies, typename S::attention_cap>);
                              CHECK(listed<output_loss_policies, typename S::output_loss>);
                              CHECK(listed<soft_cap_policies, typename S::output_cap>);
                              CHECK(listed<param_policies, typename S::parameterisation>);
                              CHECK(listed<bias_policies, typename S::bias>);
                              CHECK(listed<head_policies, typename S::head>);
                              CHECK(listed<activation_policies, typename S::activation>);
                              CHECK(ballast::policy_set_checks<S>::ok);
                          });
}
