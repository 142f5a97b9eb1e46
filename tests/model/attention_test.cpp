// The attention layer's backward passes against central finite differences in double, for every shipped
// policy set (qk-norm per head and full width, forced scale, RoPE and learned positions, caps, biases, µP
// attention scales): q/k control + RoPE, causal attention, and the whole sublayer.
#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/model/attention.hpp>

#include "model/layer_harness.hpp"
#include "support/gradcheck.hpp"

namespace
{
    using ballast::act;
    using ballast::test::check_parameter_gradients;
    using ballast::test::layer_harness;

    /// [n][3d] gradient keeping only the column blocks [b0·d, b1·d) of `src` (row stride 3d); zero elsewhere.
    std::vector<double> blocks_of(const double* src, std::size_t n, std::size_t d, std::size_t b0,
                                  std::size_t b1)
    {
        std::vector<double> out(n * 3 * d, 0.0);
        for (std::size_t r = 0; r < n; ++r)
        {
            for (std::size_t j = b0 * d; j < b1 * d; ++j)
            {
                out[r * 3 * d + j] = src[r * 3 * d + j];
            }
        }
        return out;
    }
} // namespace

TEMPLATE_LIST_TEST_CASE("qk_rope_backward matches central finite differences", "[model][attention][backward]",
                        ballast::test::all_policy_sets)
{
    INFO("policy set " << TestType::name);
    ballast::thread_scope serial(1);
    layer_harness<TestType> h;
    auto c = h.ctx();
    const std::size_t l = 1, n = c.n, d = c.d;
    double* x = h.act(act::qkv_raw, l);
    h.fill_random(x, n * 3 * d);
    const auto r = h.random_vector(n * 2 * d); // weights of the q and k blocks of the output
    const auto w = h.block_params(l);
    const auto loss = [&]
    {
        ballast::layers::qk_rope_forward(c, l, w);
        return h.dot(r, h.act(act::qkv, l), n, 2 * d, 3 * d);
    };
    loss();
    std::ranges::fill(h.model.gradients(), 0.0);
    double* dqkv = h.act(act::dqkv);
    for (std::size_t i = 0; i < n; ++i)
    {
        std::copy_n(r.data() + i * 2 * d, 2 * d, dqkv + i * 3 * d);
    }
    ballast::layers::qk_rope_backward(c, l, w, h.block_grads(l));
    const auto dx = blocks_of(h.act(act::dqkv_raw), n, d, 0, 2); // the v block does not reach the loss
    const std::vector<double> grads(h.model.gradients().begin(), h.model.gradients().end());
    INFO("input qkv_raw");
    ballast::test::check_gradient(dx.data(), loss, x, n * 3 * d);
    check_parameter_gradients(h, grads, loss, { "blocks.1.attn.q_norm.", "blocks.1.attn.k_norm." });
}

TEMPLATE_LIST_TEST_CASE("causal_attention_backward matches central finite differences",
                        "[model][attention][backward]", ballast::test::all_policy_sets)
{
    INFO("policy set " << TestType::name);
    ballast::thread_scope serial(1);
    layer_harness<TestType> h;
    auto c = h.ctx();
    const std::size_t l = 0, n = c.n, d = c.d;
    double* qkv = h.act(act::qkv, l);         // q, k blocks are read
    double* qkv_raw = h.act(act::qkv_raw, l); // the v block is read
    h.fill_random(qkv, n * 3 * d, 1.5);       // logits of a few units: the soft cap (0.7) bends them
    h.fill_random(qkv_raw, n * 3 * d);
    const auto r = h.random_vector(n * d);
    const auto loss = [&]
    {
        ballast::layers::causal_attention_forward(c, l);
        return h.dot(r, h.act(act::att, l), n, d, d);
    };
    loss();
    std::copy(r.begin(), r.end(), h.act(act::datt));
    ballast::layers::causal_attention_backward(c, l);
    const auto dqk = blocks_of(h.act(act::dqkv), n, d, 0, 2);
    const auto dv = blocks_of(h.act(act::dqkv_raw), n, d, 2, 3);
    {
        INFO("input q, k");
        ballast::test::check_gradient(dqk.data(), loss, qkv, n * 3 * d);
    }
    {
        INFO("input v");
        ballast::test::check_gradient(dv.data(), loss, qkv_raw, n * 3 * d);
    }
}

TEMPLATE_LIST_TEST_CASE("attention_backward (the whole sublayer) matches central finite differences",
                        "[model][attention][backward]", ballast::test::all_policy_sets)
{
    INFO("policy set " << TestType::name);
    ballast::thread_scope serial(1);
    layer_harness<TestType> h;
    auto c = h.ctx();
    const std::size_t l = 1, n = c.n, d = c.d;
    double* x = h.act(act::res, l);
    h.fill_random(x, n * d);
    const auto r = h.random_vector(n * d);
    const auto w = h.block_params(l);
    const auto loss = [&]
    {
        ballast::layers::attention_forward(c, l, w);
        return h.dot(r, h.act(act::mid, l), n, d, d);
    };
    loss();
    std::ranges::fill(h.model.gradients(), 0.0);
    std::copy(r.begin(), r.end(), h.act(act::dres)); // d loss / d mid
    ballast::layers::attention_backward(c, l, w, h.block_grads(l));
    const std::vector<double> dx(h.act(act::dres), h.act(act::dres) + n * d);
    const std::vector<double> grads(h.model.gradients().begin(), h.model.gradients().end());
    {
        INFO("input x[l]");
        ballast::test::check_gradient(dx.data(), loss, x, n * d);
    }
    check_parameter_gradients(h, grads, loss, { "blocks.1.attn" }); // attn_norm.* and attn.*
}
