// The output layer (final norm, head, output cap, cross-entropy and z-loss): its backward against central
// finite differences of the returned loss in double, for every shipped policy set (tied and untied heads,
// output soft cap, z-loss on and off).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/model/output.hpp>

#include "model/layer_harness.hpp"
#include "support/gradcheck.hpp"

TEMPLATE_LIST_TEST_CASE("output_backward matches central finite differences", "[model][output][backward]",
                        ballast::test::all_policy_sets)
{
    using ballast::act;
    INFO("policy set " << TestType::name);
    ballast::thread_scope serial(1);
    ballast::test::layer_harness<TestType> h;
    auto c = h.ctx();
    const std::size_t n = c.n, d = c.d, L = c.layers;
    double* x = h.act(act::res, L);
    h.fill_random(x, n * d, 2.0);
    std::vector<std::int32_t> targets(n);
    std::uniform_int_distribution<std::int32_t> id(0, static_cast<std::int32_t>(c.v) - 1);
    for (auto& t : targets)
    {
        t = id(h.gen);
    }
    const auto w = h.outer_params();
    const auto loss = [&] { return ballast::layers::output_forward(c, w, targets, false).loss; };
    const auto parts = ballast::layers::output_forward(c, w, targets, true);
    CHECK(parts.loss == parts.ce + parts.aux);
    std::ranges::fill(h.model.gradients(), 0.0);
    ballast::layers::output_backward(c, w, h.outer_grads());
    const std::vector<double> dx(h.act(act::dres), h.act(act::dres) + n * d);
    const std::vector<double> grads(h.model.gradients().begin(), h.model.gradients().end());
    {
        INFO("input x[L]");
        ballast::test::check_gradient(dx.data(), loss, x, n * d);
    }
    // A tied head's gradient lands in embed; an untied head leaves embed at exactly 0.
    if constexpr (TestType::head::tied)
    {
        ballast::test::check_parameter_gradients(h, grads, loss, { "final_norm.", "embed" });
    }
    else
    {
        ballast::test::check_parameter_gradients(h, grads, loss, { "final_norm.", "head.weight" });
    }
}
