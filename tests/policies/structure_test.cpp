// Laws of the structural families (include/ballast/policies/structure.hpp), bias and head, over
// bias_policies and head_policies (tests/support/policy_families.hpp): each policy's forward against a
// plain double loop, its backward against central finite differences, the null bias as the identity, and
// the head's gradient overwritten (untied) or accumulated (tied). The activation family has its own suite
// (tests/policies/activation_test.cpp).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <tuple>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/policies/structure.hpp>

#include "support/gradcheck.hpp"
#include "support/policy_families.hpp"
#include "support/random.hpp"
#include "support/tolerance.hpp"

namespace
{
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
    std::apply([](auto... p) { STATIC_REQUIRE((ballast::policies::activation_policy<decltype(p)> && ...)); },
               activation_policies{});
    std::apply([](auto... p) { STATIC_REQUIRE((ballast::policies::bias_policy<decltype(p)> && ...)); },
               bias_policies{});
    std::apply([](auto... p) { STATIC_REQUIRE((ballast::policies::head_policy<decltype(p)> && ...)); },
               head_policies{});
}

TEMPLATE_LIST_TEST_CASE("bias law: forward adds the bias to every row when enabled and is the identity "
                        "otherwise; backward accumulates column sums (= finite differences)",
                        "[policies][bias][laws][grad]", ballast::test::bias_policies)
{
    using B = TestType;
    INFO(B::name);
    constexpr std::size_t rows = 5, cols = 11;
    auto g = ballast::test::rng(41);
    const auto yv = ballast::test::uniform<double>(g, rows * cols);
    const auto bv = ballast::test::uniform<double>(g, cols);
    const auto wv = ballast::test::uniform<double>(g, rows * cols);
    const std::vector<double> y0(yv.begin(), yv.end()), w(wv.begin(), wv.end());
    std::vector<double> b(bv.begin(), bv.end()), y = y0;
    B::forward(y.data(), B::enabled ? b.data() : nullptr, rows, cols);
    for (std::size_t r = 0; r < rows; ++r)
    {
        for (std::size_t c = 0; c < cols; ++c)
        {
            CHECK(y[r * cols + c] == y0[r * cols + c] + (B::enabled ? b[c] : 0.0));
        }
    }
    if constexpr (B::enabled)
    {
        std::vector<double> db(cols, 0.5); // accumulates: starts from 0.5
        B::backward(db.data(), w.data(), rows, cols);
        for (auto& v : db)
        {
            v -= 0.5;
        }
        ballast::test::check_gradient(
          db.data(),
          [&]
          {
              std::vector<double> t = y0;
              B::forward(t.data(), b.data(), rows, cols);
              double l = 0;
              for (std::size_t i = 0; i < t.size(); ++i)
              {
                  l += w[i] * t[i];
              }
              return l;
          },
          b.data(), cols);
    }
    else
    {
        B::backward(static_cast<double*>(nullptr), w.data(), rows, cols); // must not touch anything
    }
}

TEMPLATE_LIST_TEST_CASE("head law: forward is f·headᵀ; backward gives df = dlogits·head and the head "
                        "gradient (= finite differences), overwritten when untied and added when tied",
                        "[policies][head][laws][grad]", ballast::test::head_policies)
{
    using H = TestType;
    INFO(H::name);
    constexpr std::size_t n = 4, v = 9, d = 6;
    auto g = ballast::test::rng(42);
    const auto fv = ballast::test::uniform<double>(g, n * d);
    const auto hv = ballast::test::uniform<double>(g, v * d);
    const auto wv = ballast::test::uniform<double>(g, n * v);
    std::vector<double> f(fv.begin(), fv.end()), head(hv.begin(), hv.end()), w(wv.begin(), wv.end());
    const auto loss = [&]
    {
        std::vector<double> logits(n * v);
        H::forward(logits.data(), f.data(), head.data(), n, v, d);
        double l = 0;
        for (std::size_t i = 0; i < logits.size(); ++i)
        {
            l += w[i] * logits[i];
        }
        return l;
    };
    std::vector<double> logits(n * v);
    H::forward(logits.data(), f.data(), head.data(), n, v, d);
    for (std::size_t r = 0; r < n; ++r)
    {
        for (std::size_t j = 0; j < v; ++j)
        {
            double s = 0;
            for (std::size_t k = 0; k < d; ++k)
            {
                s += f[r * d + k] * head[j * d + k];
            }
            BALLAST_CHECK_CLOSE(logits[r * v + j], s, double);
        }
    }
    const double start = 0.25; // what the gradient buffer holds before (the embedding's share when tied)
    std::vector<double> ghead(v * d, start), df(n * d, 99.0);
    H::backward(ghead.data(), df.data(), w.data(), f.data(), head.data(), n, v, d);
    for (auto& x : ghead)
    {
        x -= H::tied ? start : 0.0;
    }
    ballast::test::check_gradient(ghead.data(), loss, head.data(), head.size());
    ballast::test::check_gradient(df.data(), loss, f.data(), f.size());
}
