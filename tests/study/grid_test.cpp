// Policy grids: the Hana cartesian product builds every combination as a distinct, valid policy set with
// the slots replaced and a name made of the labels.
#include <string_view>
#include <type_traits>

#include <boost/hana/at.hpp>
#include <boost/hana/length.hpp>
#include <catch2/catch.hpp>

#include <ballast/policies/policy_set.hpp>
#include <ballast/study/grid.hpp>

namespace
{
    namespace hana = boost::hana;
    namespace st = ballast::study;
    namespace pol = ballast::policies;
    using qk_ln = pol::qk_norm<pol::layer_norm, pol::qk_scope::per_head>;

    constexpr auto grid = st::policy_grid<ballast::paper_default>(
      hana::tuple_t<st::with_qk<"qk_ln", qk_ln>, st::with_qk<"no_qk", pol::no_qk_control>>,
      hana::tuple_t<st::with_output_loss<"zloss", pol::z_loss>,
                    st::with_output_loss<"ce", pol::cross_entropy>>,
      hana::tuple_t<st::with_parameterisation<"sp", pol::standard_param>,
                    st::with_parameterisation<"mup", pol::mup_simple>>);

    template <std::size_t I>
    using at = typename decltype(+hana::at_c<I>(grid))::type;
} // namespace

TEST_CASE("a policy grid is the cartesian product of its axes, first axis slowest", "[study][grid]")
{
    STATIC_REQUIRE(decltype(hana::length(grid))::value == 8);
    STATIC_REQUIRE(at<0>::name == std::string_view("qk_ln+zloss+sp"));
    STATIC_REQUIRE(at<1>::name == std::string_view("qk_ln+zloss+mup"));
    STATIC_REQUIRE(at<2>::name == std::string_view("qk_ln+ce+sp"));
    STATIC_REQUIRE(at<7>::name == std::string_view("no_qk+ce+mup"));
    // Slots replaced, the rest inherited from the base.
    STATIC_REQUIRE(std::is_same_v<at<7>::qk, pol::no_qk_control>);
    STATIC_REQUIRE(std::is_same_v<at<7>::output_loss, pol::cross_entropy>);
    STATIC_REQUIRE(std::is_same_v<at<7>::parameterisation, pol::mup_simple>);
    STATIC_REQUIRE(std::is_same_v<at<0>::qk, qk_ln>);
    STATIC_REQUIRE(std::is_same_v<at<7>::norm, ballast::paper_default::norm>);
    STATIC_REQUIRE(std::is_same_v<at<7>::position, ballast::paper_default::position>);
    // Every combination is a valid policy set.
    hana::for_each(grid,
                   [](auto t)
                   {
                       using S = typename decltype(t)::type;
                       STATIC_REQUIRE(ballast::policy_set<S>);
                   });
}

TEST_CASE("a recipe grid pairs every policy set with every optimizer", "[study][grid]")
{
    constexpr auto recipes = st::recipe_grid(
      hana::tuple_t<ballast::paper_default, ballast::paper_baseline>,
      hana::tuple_t<ballast::optim::adamw<>, ballast::optim::adamw<ballast::weight_decay::coupled>>);
    STATIC_REQUIRE(decltype(hana::length(recipes))::value == 4);
    using r1 = typename decltype(+hana::at_c<1>(recipes))::type;
    STATIC_REQUIRE(std::is_same_v<r1::policies, ballast::paper_default>);
    STATIC_REQUIRE(r1::optimizer::name == std::string_view("adamw_coupled"));
}

TEST_CASE("there is a setter for every slot of the slot list, each replacing exactly its slot",
          "[study][grid]")
{
    using all = st::policy_variant<
      ballast::paper_default, st::with_norm<"rms", pol::rms_norm>, st::with_position<"nopos", pol::no_position>,
      st::with_qk<"noqk", pol::no_qk_control>, st::with_attention_cap<"acap", pol::tanh_soft_cap>,
      st::with_output_loss<"ce", pol::cross_entropy>, st::with_output_cap<"ocap", pol::tanh_soft_cap>,
      st::with_parameterisation<"mup", pol::mup_simple>, st::with_bias<"bias", pol::with_bias>,
      st::with_head<"untied", pol::untied_head>, st::with_activation<"swiglu", pol::swiglu>>;
    STATIC_REQUIRE(ballast::policy_set<all>);
    STATIC_REQUIRE(ballast::policy_slot_names.size() == 10); // one setter above per slot
    STATIC_REQUIRE(all::name == std::string_view("rms+nopos+noqk+acap+ce+ocap+mup+bias+untied+swiglu"));
    STATIC_REQUIRE(std::is_same_v<all::norm, pol::rms_norm>);
    STATIC_REQUIRE(std::is_same_v<all::position, pol::no_position>);
    STATIC_REQUIRE(std::is_same_v<all::qk, pol::no_qk_control>);
    STATIC_REQUIRE(std::is_same_v<all::attention_cap, pol::tanh_soft_cap>);
    STATIC_REQUIRE(std::is_same_v<all::output_loss, pol::cross_entropy>);
    STATIC_REQUIRE(std::is_same_v<all::output_cap, pol::tanh_soft_cap>);
    STATIC_REQUIRE(std::is_same_v<all::parameterisation, pol::mup_simple>);
    STATIC_REQUIRE(std::is_same_v<all::bias, pol::with_bias>);
    STATIC_REQUIRE(std::is_same_v<all::head, pol::untied_head>);
    STATIC_REQUIRE(std::is_same_v<all::activation, pol::swiglu>);
    using gated = st::policy_variant<ballast::gpt2_like, st::with_activation<"swiglu", pol::swiglu>>;
    STATIC_REQUIRE(std::is_same_v<gated::head, pol::tied_head>); // the rest inherited
}
