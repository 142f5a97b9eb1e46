// The embedding layer's backward (token rows and learned positions) against central finite differences in
// double, for every shipped policy set.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/model/embedding.hpp>

#include "model/layer_harness.hpp"
#include "support/gradcheck.hpp"

TEMPLATE_LIST_TEST_CASE("embedding_backward matches central finite differences",
                        "[model][embedding][backward]", ballast::test::all_policy_sets)
{
    using ballast::act;
    INFO("policy set " << TestType::name);
    ballast::thread_scope serial(1);
    ballast::test::layer_harness<TestType> h;
    auto c = h.ctx();
    const std::size_t n = c.n, d = c.d;
    // Repeated ids: the backward must add, not assign, the rows of a token seen twice.
    std::vector<std::int32_t> tokens(n);
    std::uniform_int_distribution<std::int32_t> id(0, 4);
    for (auto& t : tokens)
    {
        t = id(h.gen);
    }
    const auto r = h.random_vector(n * d);
    const auto w = h.outer_params();
    const auto loss = [&]
    {
        ballast::layers::embedding_forward(c, w, tokens);
        return h.dot(r, h.act(act::res, 0), n, d, d);
    };
    loss();
    std::ranges::fill(h.model.gradients(), 0.0);
    std::copy(r.begin(), r.end(), h.act(act::dres)); // d loss / d x[0]
    ballast::layers::embedding_backward(c, h.outer_grads(), tokens);
    const std::vector<double> grads(h.model.gradients().begin(), h.model.gradients().end());
    ballast::test::check_parameter_gradients(h, grads, loss, { "embed", "pos_embed" });
}
