// Laws of the structural families (include/ballast/policies/structure.hpp): activation (a law suite over
// activation_policies), bias and head (flags), from tests/support/policy_families.hpp.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <tuple>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/kernels/gelu.hpp>
#include <ballast/policies/structure.hpp>

#include "support/gradcheck.hpp"
#include "support/policy_families.hpp"
#include "support/random.hpp"
#include "support/tolerance.hpp"

namespace
{
    /// GELU as printed in Hendrycks & Gimpel 2016, in long double: the form the policy names.
    long double textbook_gelu(ballast::kernels::gelu_form form, long double x)
    {
        const long double pi = 3.141592653589793238462643383279502884L;
        if (form == ballast::kernels::gelu_form::tanh)
        {
            return 0.5L * x * (1 + std::tanh(std::sqrt(2 / pi) * (x + 0.044715L * x * x * x)));
        }
        return 0.5L * x * (1 + std::erf(x / std::sqrt(2.0L)));
    }

    template <class List>
    std::vector<std::string> names_of()
    {
        return std::apply(
          [](auto... p) { return std::vector<std::string>{ std::string(decltype(p)::name)... }; }, List{});
    }

    bool distinct(std::vector<std::string> names)
    {
        std::sort(names.begin(), names.end());
        return std::adjacent_find(names.begin(), names.end()) == names.end();
    }
} // namespace

TEMPLATE_LIST_TEST_CASE("activation law: the model's activation kernel computes the form the policy names, "
                        "vanishes at 0 and tends to max(x, 0)",
                        "[policies][activation][laws]", ballast::test::activation_policies)
{
    using A = TestType;
    INFO(A::name);
    std::vector<double> x;
    for (int i = -80; i <= 80; ++i)
    {
        x.push_back(i * 0.1);
    }
    x.push_back(-40.0);
    x.push_back(40.0);
    std::vector<double> y(x.size());
    ballast::kernels::gelu_forward<A::form>(y.data(), x.data(), x.size());
    for (std::size_t i = 0; i < x.size(); ++i)
    {
        INFO("x = " << x[i]);
        BALLAST_CHECK_CLOSE(y[i], static_cast<double>(textbook_gelu(A::form, x[i])), double);
        if (std::fabs(x[i]) >= 40.0)
        {
            CHECK(std::fabs(y[i] - std::max(x[i], 0.0)) <= 1e-12);
        }
    }
    CHECK(y[80] == 0.0); // x = 0
}

TEMPLATE_LIST_TEST_CASE("activation law: the backward kernel equals central finite differences in double",
                        "[policies][activation][laws][grad]", ballast::test::activation_policies)
{
    using A = TestType;
    INFO(A::name);
    auto g = ballast::test::rng(31);
    const auto xv = ballast::test::uniform<double>(g, 41, -4.0, 4.0);
    const auto wv = ballast::test::uniform<double>(g, 41, -1.0, 1.0);
    std::vector<double> x(xv.begin(), xv.end()), w(wv.begin(), wv.end()), dx(x.size());
    ballast::kernels::gelu_backward<A::form>(dx.data(), w.data(), x.data(), x.size());
    ballast::test::check_gradient(
      dx.data(),
      [&]
      {
          std::vector<double> y(x.size());
          ballast::kernels::gelu_forward<A::form>(y.data(), x.data(), x.size());
          double l = 0;
          for (std::size_t i = 0; i < y.size(); ++i)
          {
              l += w[i] * y[i];
          }
          return l;
      },
      x.data(), x.size());
}

TEST_CASE("each structural family has distinct names and exactly one null policy", "[policies][structure]")
{
    using namespace ballast::test;
    CHECK(distinct(names_of<activation_policies>()));
    CHECK(distinct(names_of<bias_policies>()));
    CHECK(distinct(names_of<head_policies>()));
    const auto count = [](auto list, auto pred)
    { return std::apply([&](auto... p) { return (0 + ... + (pred(p) ? 1 : 0)); }, list); };
    CHECK(count(bias_policies{}, [](auto p) { return !decltype(p)::enabled; }) == 1);
    CHECK(count(head_policies{}, [](auto p) { return !decltype(p)::tied; }) == 1);
    // the activation forms differ (the tanh and erf forms of GELU are distinct kernels)
    CHECK(count(activation_policies{},
                [](auto p) { return decltype(p)::form == ballast::kernels::gelu_form::tanh; }) == 1);
    std::apply([](auto... p) { STATIC_REQUIRE((ballast::policies::activation_policy<decltype(p)> && ...)); },
               activation_policies{});
    std::apply([](auto... p) { STATIC_REQUIRE((ballast::policies::bias_policy<decltype(p)> && ...)); },
               bias_policies{});
    std::apply([](auto... p) { STATIC_REQUIRE((ballast::policies::head_policy<decltype(p)> && ...)); },
               head_policies{});
}
