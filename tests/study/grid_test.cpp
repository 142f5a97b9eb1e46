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
