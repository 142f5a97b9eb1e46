// The MLP sublayer's backward against central finite differences in double, for every shipped policy set
// (LayerNorm with and without bias, RMSNorm, biases, GELU forms).
#include <algorithm>
#include <cstddef>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/model/mlp.hpp>

#include "model/layer_harness.hpp"
#include "support/gradcheck.hpp"

TEMPLATE_LIST_TEST_CASE("mlp_backward matches central finite differences", "[model][mlp][backward]",
                        ballast::test::all_policy_sets)
{
    using ballast::act;
    INFO("policy set " << TestType::name);
    ballast::thread_scope serial(1);
    ballast::test::layer_harness<TestType> h;
    auto c = h.ctx();
    const std::size_t l = 1, n = c.n, d = c.d;
    double* mid = h.act(act::mid, l);
    h.fill_random(mid, n * d);
    const auto r = h.random_vector(n * d);
    const auto w = h.block_params(l);
    const auto loss = [&]
    {
        ballast::layers::mlp_forward(c, l, w);
        return h.dot(r, h.act(act::res, l + 1), n, d, d);
    };
    loss();
    std::ranges::fill(h.model.gradients(), 0.0);
    std::copy(r.begin(), r.end(), h.act(act::dres)); // d loss / d x[l+1]
    ballast::layers::mlp_backward(c, l, w, h.block_grads(l));
    const std::vector<double> dmid(h.act(act::dres), h.act(act::dres) + n * d);
    const std::vector<double> grads(h.model.gradients().begin(), h.model.gradients().end());
    {
        INFO("input mid");
        ballast::test::check_gradient(dmid.data(), loss, mid, n * d);
    }
    ballast::test::check_parameter_gradients(h, grads, loss, { "blocks.1.mlp" }); // mlp_norm.* and mlp.*
}
