#ifndef BALLAST_TESTS_MODEL_LAYER_HARNESS_HPP
#define BALLAST_TESTS_MODEL_LAYER_HARNESS_HPP

// One layer of the model, run on its own in double: the parameters of a real transformer (by name, through
// the public layout), an activation store of the pass shape, the policies' precomputed state and a pass
// context. Each layer test writes a random input into the layer's input slice, defines the scalar
// loss Σ r·output for a fixed random r, and checks the layer's backward against central finite
// differences of that loss over the input and every parameter the layer reads.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/model/transformer.hpp>

#include "support/gradcheck.hpp"
#include "support/random.hpp"

namespace ballast::test
{
    /// SwiGLU with every bias and a tied head (gpt2_like's structure): the up bias is 2F wide.
    struct swiglu_gpt2_like : ballast::gpt2_like
    {
        static constexpr std::string_view name = "swiglu_gpt2_like";
        using activation = ballast::policies::swiglu;
    };

    /// Squared-ReLU attention with per-head qk-LayerNorm (the other arm of the `pointwise_attention` preset).
    struct squared_relu_qk_ln : ballast::squared_relu_attention
    {
        static constexpr std::string_view name = "squared_relu_qk_ln";
        using qk = policies::qk_norm<policies::layer_norm, policies::qk_scope::per_head>;
    };

    using all_policy_sets =
      std::tuple<ballast::paper_default, ballast::paper_baseline, ballast::no_zloss, ballast::gpt2_like,
                 ballast::mup_recipe, ballast::mup_full_recipe, ballast::soft_capped, ballast::forced_scale,
                 ballast::swiglu_recipe, swiglu_gpt2_like, ballast::squared_relu_attention, squared_relu_qk_ln>;

    /// A tiny config: every dimension distinct so a transposed index cannot pass by accident; small caps
    /// and a large z-loss coefficient so those paths carry visible gradient.
    inline model_config layer_test_config()
    {
        model_config c;
        c.vocab = 11;
        c.d_model = 8;
        c.n_layers = 2;
        c.n_heads = 2;
        c.context = 6;
        c.zloss_coef = 1e-2;
        c.attn_soft_cap = 0.7;
        c.output_soft_cap = 1.5;
        c.kappa = 2.0;
        return c;
    }

    template <class P>
    struct layer_harness
    {
        using context = layers::pass_context<P, double, diagnostics::none>;

        model_config cfg = layer_test_config();
        transformer<P, double> model{ cfg };
        std::size_t batch = 2, seq = 5;
        activation_store<double> act;
        typename P::position::template state<double> rope = P::position::template make_state<double>(cfg);
        typename P::qk::template state<double> qk = P::qk::template make_state<double>(cfg);
        diagnostics::no_recorder diag;
        std::mt19937_64 gen = rng(17);

        /// Parameters from init(seed) plus N(0, 0.2²) noise: norm scales are not 1, biases and queries not 0.
        explicit layer_harness(std::uint64_t seed = 7)
        {
            model.init(seed);
            std::normal_distribution<double> noise(0.0, 0.2);
            for (auto& x : model.parameters())
            {
                x += noise(gen);
            }
            activation_dims s;
            s.batch = batch;
            s.seq = seq;
            s.d = cfg.d_model;
            s.f = ballast::layers::mlp_hidden<P>(cfg);
            s.up = P::activation::up_factor;
            s.v = cfg.vocab;
            s.heads = cfg.n_heads;
            s.layers = cfg.n_layers;
            s.threads = static_cast<std::size_t>(ballast::num_threads());
            s.attn_cap = P::attention_cap::active;
            act.ensure(s);
        }

        context ctx()
        {
            return context{ .cfg = cfg,
                            .batch = batch,
                            .seq = seq,
                            .n = batch * seq,
                            .d = cfg.d_model,
                            .f = ballast::layers::mlp_hidden<P>(cfg),
                            .v = cfg.vocab,
                            .heads = cfg.n_heads,
                            .head_dim = cfg.head_dim(),
                            .layers = cfg.n_layers,
                            .eps = cfg.norm_eps,
                            .act = act,
                            .rope = rope,
                            .qk = qk,
                            .diag = diag };
        }

        double* param(const std::string& name)
        {
            return model.layout().contains(name) ? model.parameter(name).data() : nullptr;
        }
        double* grad(const std::string& name)
        {
            return model.layout().contains(name) ? model.gradient(name).data() : nullptr;
        }

        /// Pointers of block l's tensors in `buffer` (parameters or gradients); absent tensors are null.
        template <class Ptr, class F>
        layers::block_tensors<Ptr> block(std::size_t l, F lookup)
        {
            const std::string b = "blocks." + std::to_string(l);
            return { lookup(b + ".attn_norm.scale"),   lookup(b + ".attn_norm.bias"),
                     lookup(b + ".attn.qkv.weight"),   lookup(b + ".attn.qkv.bias"),
                     lookup(b + ".attn.q_norm.scale"), lookup(b + ".attn.k_norm.scale"),
                     lookup(b + ".attn.out.weight"),   lookup(b + ".attn.out.bias"),
                     lookup(b + ".mlp_norm.scale"),    lookup(b + ".mlp_norm.bias"),
                     lookup(b + ".mlp.up.weight"),     lookup(b + ".mlp.up.bias"),
                     lookup(b + ".mlp.down.weight"),   lookup(b + ".mlp.down.bias") };
        }
        layers::block_tensors<const double*> block_params(std::size_t l)
        {
            return block<const double*>(l, [this](const std::string& n) { return param(n); });
        }
        layers::block_tensors<double*> block_grads(std::size_t l)
        {
            return block<double*>(l, [this](const std::string& n) { return grad(n); });
        }
        template <class Ptr, class F>
        layers::outer_tensors<Ptr> outer(F lookup)
        {
            Ptr head = lookup(P::head::tied ? "embed" : "head.weight");
            return { lookup("embed"), lookup("pos_embed"), lookup("final_norm.scale"),
                     lookup("final_norm.bias"), head };
        }
        layers::outer_tensors<const double*> outer_params()
        {
            return outer<const double*>([this](const std::string& n) { return param(n); });
        }
        layers::outer_tensors<double*> outer_grads()
        {
            return outer<double*>([this](const std::string& n) { return grad(n); });
        }

        /// Uniform [-1, 1) values into x[0, n).
        void fill_random(double* x, std::size_t n, double scale = 1.0)
        {
            std::uniform_real_distribution<double> u(-scale, scale);
            for (std::size_t i = 0; i < n; ++i)
            {
                x[i] = u(gen);
            }
        }
        std::vector<double> random_vector(std::size_t n)
        {
            std::vector<double> r(n);
            fill_random(r.data(), n);
            return r;
        }

        /// Σ r[i]·y[i·stride + j] over rows i·stride.. of `cols` columns: the loss of a strided output.
        static double dot(const std::vector<double>& r, const double* y, std::size_t rows, std::size_t cols,
                          std::size_t ld)
        {
            double s = 0;
            for (std::size_t i = 0; i < rows; ++i)
            {
                for (std::size_t j = 0; j < cols; ++j)
                {
                    s += r[i * cols + j] * y[i * ld + j];
                }
            }
            return s;
        }
    };
    /// Gradients of every layout tensor whose name starts with one of `prefixes` against finite
    /// differences, and every other tensor's gradient exactly 0 (a layer touches only its own tensors).
    template <class H, class Loss>
    void check_parameter_gradients(H& h, const std::vector<double>& analytic, const Loss& loss,
                                   const std::vector<std::string>& prefixes)
    {
        double* theta = h.model.parameters().data();
        for (const auto& e : h.model.layout().entries())
        {
            INFO("tensor " << e.name);
            const bool mine =
              std::ranges::any_of(prefixes, [&](const std::string& p) { return e.name.starts_with(p); });
            if (mine)
            {
                check_gradient(analytic.data() + e.offset, loss, theta + e.offset, e.size);
            }
            else
            {
                CHECK(std::all_of(analytic.begin() + static_cast<std::ptrdiff_t>(e.offset),
                                  analytic.begin() + static_cast<std::ptrdiff_t>(e.offset + e.size),
                                  [](double g) { return g == 0; }));
            }
        }
    }
} // namespace ballast::test

#endif
