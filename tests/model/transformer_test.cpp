#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include <ballast/model/transformer.hpp>

#include "support/gradcheck.hpp"
#include "support/temp_dir.hpp"
#include "support/tolerance.hpp"

namespace
{
    /// A tiny config: every dimension distinct so a transposed index cannot pass by accident.
    ballast::model_config tiny_config()
    {
        ballast::model_config c;
        c.vocab = 11;
        c.d_model = 8;
        c.n_layers = 2;
        c.n_heads = 2;
        c.context = 6;
        c.zloss_coef = 1e-2;   // larger than the paper's 1e-4 so the z-loss gradient path is visible to FD
        c.attn_soft_cap = 0.7; // small caps: tanh far from the identity, so the cap backward is exercised
        c.output_soft_cap = 1.5;
        c.kappa = 2.0;
        return c;
    }

    struct batch_data
    {
        std::size_t batch = 2, seq = 5;
        std::vector<std::int32_t> tokens, targets;
    };

    batch_data make_batch(std::size_t vocab, std::uint64_t seed, std::size_t batch = 2, std::size_t seq = 5)
    {
        batch_data b;
        b.batch = batch;
        b.seq = seq;
        ballast::splitmix64 rng(seed);
        for (std::size_t i = 0; i < batch * seq; ++i)
        {
            b.tokens.push_back(static_cast<std::int32_t>(rng.below(vocab)));
            b.targets.push_back(static_cast<std::int32_t>(rng.below(vocab)));
        }
        return b;
    }

    /// Perturb the initialisation so that norm scales are not all 1, biases not 0 and queries not 0:
    /// every gradient path carries signal.
    template <class M>
    void randomise(M& model, std::uint64_t seed)
    {
        model.init(seed);
        ballast::splitmix64 rng(seed, 99);
        for (const auto& e : model.layout().entries())
        {
            auto t = model.parameter(e.name);
            for (auto& x : t)
            {
                x += static_cast<typename M::value_type>(0.2 * rng.normal());
            }
        }
    }
} // namespace

/// SwiGLU with every bias and a tied head: the gated MLP's 2F-wide up bias and the tied head together.
struct swiglu_gpt2_like : ballast::gpt2_like
{
    static constexpr std::string_view name = "swiglu_gpt2_like";
    using activation = ballast::policies::swiglu;
};

using all_policy_sets =
  std::tuple<ballast::paper_default, ballast::paper_baseline, ballast::no_zloss, ballast::gpt2_like,
             ballast::mup_recipe, ballast::mup_full_recipe, ballast::soft_capped, ballast::forced_scale,
             ballast::swiglu_recipe, swiglu_gpt2_like, ballast::squared_relu_attention>;

TEMPLATE_LIST_TEST_CASE("full-model gradient matches central finite differences in double",
                        "[model][gradcheck]", all_policy_sets)
{
    INFO("policy set " << TestType::name);
    ballast::thread_scope serial(1); // thousands of tiny passes: thread wake-ups would dominate; threads are
                                     // covered by the determinism test below
    ballast::transformer<TestType, double> model(tiny_config());
    randomise(model, 7);
    const auto data = make_batch(model.config().vocab, 3);
    model.forward_backward(data.tokens, data.targets, data.batch, data.seq);
    const std::vector<double> analytic(model.gradients().begin(), model.gradients().end());

    // Finite differences over every parameter (padding entries have zero gradient both ways).
    double* theta = model.parameters().data();
    const auto loss = [&] { return model.evaluate(data.tokens, data.targets, data.batch, data.seq).loss; };
    for (const auto& e : model.layout().entries())
    {
        INFO("tensor " << e.name);
        ballast::test::check_gradient(analytic.data() + e.offset, loss, theta + e.offset, e.size);
    }
}

TEMPLATE_LIST_TEST_CASE("float and double models agree and threads do not change a bit",
                        "[model][determinism]", all_policy_sets)
{
    INFO("policy set " << TestType::name);
    auto cfg = tiny_config();
    cfg.d_model = 32;
    cfg.n_heads = 4;
    cfg.context = 16;
    ballast::transformer<TestType, float> f1(cfg), f2(cfg);
    ballast::transformer<TestType, double> d(cfg);
    f1.init(11);
    f2.init(11);
    d.init(11);
    const auto data = make_batch(cfg.vocab, 5, 4, 16);
    ballast::loss_parts l1, l2;
    {
        ballast::thread_scope one(1);
        l1 = f1.forward_backward(data.tokens, data.targets, data.batch, data.seq);
    }
    {
        ballast::thread_scope two(2);
        l2 = f2.forward_backward(data.tokens, data.targets, data.batch, data.seq);
    }
    CHECK(l1.loss == l2.loss);
    CHECK(std::memcmp(f1.gradients().data(), f2.gradients().data(), f1.gradients().size() * sizeof(float)) ==
          0);

    // float vs double on the same initialisation: the float run rounds every activation; relative error of
    // the loss is bounded by a few hundred ulps of float over this depth (measured ~1e-6).
    const auto ld = d.forward_backward(data.tokens, data.targets, data.batch, data.seq);
    CHECK(std::fabs(l1.loss - ld.loss) <= 1e-5 * ld.loss);
}

TEMPLATE_LIST_TEST_CASE("each backward pass starts from clean gradients", "[model][determinism]",
                        all_policy_sets)
{
    // backward zeroes only the tensors it accumulates into and overwrites the rest with beta-0 GEMMs:
    // gradients of batch A, then of another batch B, then of A again must repeat A's bit for bit (a tensor
    // neither zeroed nor overwritten would carry B's or A's first gradient into the third pass).
    INFO("policy set " << TestType::name);
    auto cfg = tiny_config();
    cfg.d_model = 32;
    cfg.n_heads = 4;
    cfg.context = 16;
    ballast::transformer<TestType, float> model(cfg);
    randomise(model, 13);
    const auto a = make_batch(cfg.vocab, 21, 3, 16), b = make_batch(cfg.vocab, 22, 3, 16);
    const auto la = model.forward_backward(a.tokens, a.targets, a.batch, a.seq);
    const std::vector<float> first(model.gradients().begin(), model.gradients().end());
    model.forward_backward(b.tokens, b.targets, b.batch, b.seq);
    REQUIRE_FALSE(std::ranges::equal(first, model.gradients())); // B's gradients really differ
    const auto again = model.forward_backward(a.tokens, a.targets, a.batch, a.seq);
    CHECK(la.loss == again.loss);
    CHECK(std::memcmp(first.data(), model.gradients().data(), first.size() * sizeof(float)) == 0);
}

TEST_CASE("z-loss with coefficient 0 equals plain cross-entropy", "[model][laws]")
{
    auto cfg = tiny_config();
    cfg.zloss_coef = 0;
    ballast::transformer<ballast::paper_default, double> with_z(cfg);
    ballast::transformer<ballast::no_zloss, double> plain(cfg);
    with_z.init(4);
    plain.init(4);
    const auto data = make_batch(cfg.vocab, 8);
    const auto a = with_z.forward_backward(data.tokens, data.targets, data.batch, data.seq);
    const auto b = plain.forward_backward(data.tokens, data.targets, data.batch, data.seq);
    CHECK(a.loss == b.loss);
    CHECK(a.aux == 0);
    CHECK(std::memcmp(with_z.gradients().data(), plain.gradients().data(), plain.gradients().size() * 8) ==
          0);
}

TEST_CASE("the z-loss part is coef times the mean squared log Z", "[model][laws]")
{
    const auto cfg = tiny_config();
    ballast::transformer<ballast::paper_default, double> model(cfg);
    model.init(2);
    const auto data = make_batch(cfg.vocab, 1);
    const auto l = model.evaluate(data.tokens, data.targets, data.batch, data.seq);
    double zz = 0, ce = 0;
    const auto logits = model.logits();
    for (std::size_t r = 0; r < data.tokens.size(); ++r)
    {
        const double lz = model.log_z()[r];
        zz += lz * lz;
        ce += lz - logits[r * cfg.vocab + static_cast<std::size_t>(data.targets[r])];
    }
    const double n = static_cast<double>(data.tokens.size());
    BALLAST_CHECK_CLOSE(l.aux, cfg.zloss_coef * zz / n, double);
    BALLAST_CHECK_CLOSE(l.ce, ce / n, double);
    BALLAST_CHECK_CLOSE(l.loss, l.ce + l.aux, double);
}

TEST_CASE("a huge soft cap is the identity to first order", "[model][laws]")
{
    auto cfg = tiny_config();
    cfg.attn_soft_cap = 1e6;
    cfg.output_soft_cap = 1e6;
    struct uncapped : ballast::soft_capped
    {
        using attention_cap = ballast::policies::no_soft_cap;
        using output_cap = ballast::policies::no_soft_cap;
    };
    ballast::transformer<ballast::soft_capped, double> capped(cfg);
    ballast::transformer<uncapped, double> plain(cfg);
    capped.init(6);
    plain.init(6);
    const auto data = make_batch(cfg.vocab, 2);
    const auto a = capped.forward_backward(data.tokens, data.targets, data.batch, data.seq);
    const auto b = plain.forward_backward(data.tokens, data.targets, data.batch, data.seq);
    // c·tanh(z/c) = z − z³/(3c²) + …: with |z| < 10 and c = 1e6 the change is < 1e-10 relative.
    CHECK(std::fabs(a.loss - b.loss) <= 1e-10 * b.loss);
    ballast::test::check_all_close(capped.gradients().data(), plain.gradients().data(),
                                   plain.gradients().size(), 1e-9, 1e-12);
}

TEST_CASE("µParam multipliers are 1 at base width and base/d elsewhere", "[model][laws][mup]")
{
    auto cfg = tiny_config();
    cfg.mup_base_width = static_cast<double>(cfg.d_model);
    ballast::transformer<ballast::mup_full_recipe, float> at_base(cfg);
    for (const auto& e : at_base.layout().entries())
    {
        CHECK(e.lr_multiplier == 1.0);
    }
    cfg.mup_base_width = 256;
    ballast::transformer<ballast::mup_recipe, float> wide(cfg);
    for (const auto& e : wide.layout().entries())
    {
        INFO(e.name);
        const bool linear =
          e.role == ballast::policies::param_role::matrix || e.role == ballast::policies::param_role::head;
        CHECK(e.lr_multiplier == (linear ? 256.0 / 8.0 : 1.0));
    }
}

TEST_CASE("initialisation follows the parameterisation", "[model][init]")
{
    ballast::model_config cfg;
    cfg.vocab = 256;
    cfg.d_model = 64;
    cfg.n_layers = 1;
    cfg.n_heads = 4;
    ballast::transformer<ballast::paper_default, double> sp(cfg);
    ballast::transformer<ballast::mup_full_recipe, double> mup(cfg);
    sp.init(1);
    mup.init(1);
    const auto stats = [](std::span<const double> x)
    {
        double s = 0, s2 = 0, mx = 0;
        for (const double v : x)
        {
            s += v;
            s2 += v * v;
            mx = std::max(mx, std::fabs(v));
        }
        const double n = static_cast<double>(x.size());
        return std::array<double, 3>{ s / n, std::sqrt(s2 / n - (s / n) * (s / n)), mx };
    };
    // Std estimates over n samples have relative standard error ~1/sqrt(2n): 4096 samples → 1.1%; allow 5%.
    const auto e = stats(sp.parameter("embed"));
    CHECK(std::fabs(e[1] * std::sqrt(64.0) - 1) < 0.05);
    const auto w = stats(sp.parameter("blocks.0.mlp.down.weight")); // fan-in 256
    CHECK(std::fabs(w[1] * std::sqrt(256.0) - 1) < 0.05);
    CHECK(w[2] <= 2.0 / std::sqrt(256.0) / ballast::truncated_normal_std); // truncated at 2σ before rescaling
    const auto h = stats(mup.parameter("head.weight"));
    CHECK(std::fabs(h[1] / (std::sqrt(256.0) / 64.0) - 1) < 0.05); // √base / d
    const auto qkv = mup.parameter("blocks.0.attn.qkv.weight");
    CHECK(std::all_of(qkv.begin(), qkv.begin() + 64 * 64, [](double v) { return v == 0; })); // zero queries
    CHECK(std::any_of(qkv.begin() + 64 * 64, qkv.end(), [](double v) { return v != 0; }));
    for (const double s : sp.parameter("blocks.0.attn.q_norm.scale"))
    {
        CHECK(s == 1.0);
    }
    // Same seed, same parameters; different seed, different parameters.
    ballast::transformer<ballast::paper_default, double> again(cfg);
    again.init(1);
    CHECK(std::ranges::equal(sp.parameters(), again.parameters()));
    again.init(2);
    CHECK_FALSE(std::ranges::equal(sp.parameters(), again.parameters()));
}

TEST_CASE("the parameter layout has the documented names, shapes and count", "[model][layout]")
{
    ballast::model_config cfg;
    cfg.vocab = 256;
    cfg.d_model = 32;
    cfg.n_layers = 3;
    cfg.n_heads = 4;
    cfg.context = 16;
    const std::size_t d = 32, L = 3, V = 256, dh = 8;
    ballast::transformer<ballast::paper_default, float> pd(cfg);
    // 12·L·d² block matrices + 2·L·d norm scales + 2·L·dh qk scales + d final scale + 2·V·d embed and head.
    CHECK(pd.layout().count() == 12 * L * d * d + 2 * L * d + 2 * L * dh + d + 2 * V * d);
    CHECK(pd.layout().at("blocks.2.attn.qkv.weight").shape == std::vector<std::size_t>{ 3 * d, d });
    CHECK(pd.layout().at("blocks.0.attn.q_norm.scale").shape == std::vector<std::size_t>{ dh });
    CHECK(pd.layout().at("head.weight").shape == std::vector<std::size_t>{ V, d });
    for (const auto& e : pd.layout().entries())
    {
        CHECK(e.offset % 16 == 0); // 64-byte aligned float tensors
    }
    ballast::transformer<ballast::gpt2_like, float> g2(cfg);
    CHECK_FALSE(g2.layout().contains("head.weight")); // tied
    CHECK(g2.layout().at("pos_embed").shape == std::vector<std::size_t>{ 16, d });
    CHECK(g2.layout().contains("blocks.1.mlp.up.bias"));
    CHECK(g2.layout().contains("final_norm.bias"));
    CHECK_FALSE(g2.layout().contains("blocks.0.attn.q_norm.scale"));
}

TEST_CASE("activation memory is allocated once per shape and matches the documented formula",
          "[model][memory]")
{
    auto cfg = tiny_config();
    ballast::transformer<ballast::soft_capped, float> m(cfg);
    m.init(1);
    const auto data = make_batch(cfg.vocab, 1, 3, 4);
    m.forward_backward(data.tokens, data.targets, 3, 4);
    CHECK(m.allocated_activation_elements() == m.activation_elements(3, 4));
    const float* before = m.logits().data();
    m.forward_backward(data.tokens, data.targets, 3, 4);
    CHECK(m.logits().data() == before); // same shape: no reallocation
}

TEST_CASE("bad configs and inputs are refused with clear messages", "[model][errors]")
{
    auto cfg = tiny_config();
    cfg.n_heads = 3;
    CHECK_THROWS_WITH((ballast::transformer<ballast::paper_default, float>(cfg)),
                      Catch::Contains("d_model (8) is not divisible by n_heads (3)"));
    cfg = tiny_config();
    cfg.d_model = 6;
    cfg.n_heads = 2; // head width 3: odd
    CHECK_THROWS_WITH((ballast::transformer<ballast::paper_default, float>(cfg)),
                      Catch::Contains("even head width"));
    cfg = tiny_config();
    cfg.norm_eps = 0;
    CHECK_THROWS_WITH((ballast::transformer<ballast::paper_default, float>(cfg)),
                      Catch::Contains("norm_eps"));

    ballast::transformer<ballast::paper_default, float> m(tiny_config());
    m.init(1);
    auto data = make_batch(11, 1);
    data.tokens[3] = 11;
    CHECK_THROWS_WITH(m.evaluate(data.tokens, data.targets, data.batch, data.seq),
                      Catch::Contains("token id 11 at position 3 is outside the vocabulary"));
    data = make_batch(11, 1);
    data.targets[0] = -1;
    CHECK_THROWS_WITH(m.evaluate(data.tokens, data.targets, data.batch, data.seq),
                      Catch::Contains("target id -1"));
    data = make_batch(11, 1, 1, 7);
    CHECK_THROWS_WITH(m.evaluate(data.tokens, data.targets, 1, 7), Catch::Contains("exceeds the context 6"));
    CHECK_THROWS_WITH(m.evaluate(data.tokens, data.targets, 1, 6), Catch::Contains("expected batch*seq = 6"));
}

TEST_CASE("weights round-trip through safetensors and bad files are refused", "[model][io]")
{
    const ballast::test::temp_dir tmp("model_io");
    const auto& dir = tmp.path();
    const auto cfg = tiny_config();
    ballast::transformer<ballast::paper_default, float> a(cfg), b(cfg);
    a.init(3);
    a.save(dir / "w.safetensors");
    b.load(dir / "w.safetensors");
    CHECK(std::ranges::equal(a.parameters(), b.parameters()));
    const auto f = ballast::io::safetensors_file::load(dir / "w.safetensors");
    CHECK(f.metadata().at("policy_set") == "paper_default");

    ballast::transformer<ballast::paper_baseline, float> no_qk(cfg); // lacks q_norm/k_norm scales
    CHECK_THROWS_WITH(no_qk.load(dir / "w.safetensors"), Catch::Contains("unexpected tensors:") &&
                                                           Catch::Contains("blocks.0.attn.q_norm.scale"));
    ballast::transformer<ballast::gpt2_like, float> g2(cfg);
    CHECK_THROWS_WITH(g2.load(dir / "w.safetensors"), Catch::Contains("missing tensors: pos_embed"));
    auto wide = cfg;
    wide.d_model = 16;
    ballast::transformer<ballast::paper_default, float> w16(wide);
    CHECK_THROWS_WITH(w16.load(dir / "w.safetensors"), Catch::Contains("expected [11, 16]"));
}

TEST_CASE("named tensors are shaped zero-copy xtensor views over parameters and gradients", "[model][xtensor]")
{
    const auto cfg = tiny_config();
    const std::size_t d = cfg.d_model;
    ballast::transformer<ballast::paper_default, double> model(cfg);
    randomise(model, 5);
    const auto& e = model.layout().at("blocks.0.attn.qkv.weight");

    auto w = model.tensor("blocks.0.attn.qkv.weight");
    REQUIRE(w.dimension() == 2);
    CHECK(w.shape()[0] == 3 * d);
    CHECK(w.shape()[1] == d);
    CHECK(w.data() == model.parameters().data() + e.offset); // zero-copy
    // Element (i, j) is row-major [out, in] in the flat buffer; xt::sum against a scalar double loop.
    double loop = 0;
    for (std::size_t i = 0; i < 3 * d; ++i)
    {
        for (std::size_t j = 0; j < d; ++j)
        {
            CHECK(w(i, j) == model.parameters()[e.offset + i * d + j]);
            loop += model.parameters()[e.offset + i * d + j];
        }
    }
    BALLAST_CHECK_CLOSE(xt::sum(w)(), loop, double);

    // Writes through a view change parameters(): zero the query rows with an xtensor view expression.
    xt::view(w, xt::range(0, d), xt::all()) = 0.0;
    for (std::size_t i = 0; i < 3 * d * d; ++i)
    {
        CHECK((model.parameters()[e.offset + i] == 0.0) == (i < d * d));
    }
    auto scale = model.tensor("final_norm.scale");
    REQUIRE(scale.dimension() == 1);
    scale *= 2.0;
    const auto fs = model.parameter("final_norm.scale");
    const ballast::transformer<ballast::paper_default, double>& cm = model;
    const auto cscale = cm.tensor("final_norm.scale");
    static_assert(std::is_const_v<std::remove_pointer_t<decltype(cscale.data())>>);
    for (std::size_t i = 0; i < d; ++i)
    {
        CHECK(fs[i] == cscale(i));
    }

    // Gradient views: the squared norm of one tensor's gradient equals the flat span's.
    const auto data = make_batch(cfg.vocab, 9);
    model.forward_backward(data.tokens, data.targets, data.batch, data.seq);
    const auto g = cm.grad_tensor("blocks.1.mlp.up.weight");
    CHECK(g.shape()[0] == cfg.mlp_width());
    CHECK(g.shape()[1] == d);
    double sq = 0;
    for (const double x : model.gradient("blocks.1.mlp.up.weight"))
    {
        sq += x * x;
    }
    REQUIRE(sq > 0);
    BALLAST_CHECK_CLOSE(xt::sum(xt::square(g))(), sq, double);
    // A row of the gradient view is a row of the flat gradient. (xt::row keeps a reference to its argument:
    // name the view first, never take a view of the temporary.)
    auto gv = model.grad_tensor("blocks.1.mlp.up.weight");
    auto grow = xt::row(gv, 3);
    CHECK(grow(2) == model.gradient("blocks.1.mlp.up.weight")[3 * d + 2]);

    CHECK_THROWS_WITH(model.tensor("blocks.9.attn.qkv.weight"), Catch::Contains("no tensor named"));
}

TEST_CASE("activations of the last pass are shaped zero-copy xtensor views by name", "[model][xtensor]")
{
    const auto cfg = tiny_config();
    ballast::transformer<ballast::paper_default, double> model(cfg);
    randomise(model, 6);
    CHECK_THROWS_WITH(model.activation_tensor("probs", 0), Catch::Contains("no forward pass yet"));
    const auto data = make_batch(cfg.vocab, 11);
    model.forward_backward(data.tokens, data.targets, data.batch, data.seq);
    const std::size_t B = data.batch, T = data.seq, H = cfg.n_heads, d = cfg.d_model;

    // Attention probabilities of block 1: [B, H, T, T], causal rows summing to 1, zero above the diagonal.
    const auto p = model.activation_tensor("probs", 1);
    REQUIRE(p.dimension() == 4);
    CHECK(p.shape()[0] == B);
    CHECK(p.shape()[1] == H);
    CHECK(p.shape()[2] == T);
    CHECK(p.shape()[3] == T);
    for (std::size_t b = 0; b < B; ++b)
    {
        for (std::size_t h = 0; h < H; ++h)
        {
            for (std::size_t i = 0; i < T; ++i)
            {
                double row = 0;
                for (std::size_t j = 0; j <= i; ++j)
                {
                    row += p(b, h, i, j);
                }
                BALLAST_CHECK_CLOSE(row, 1.0, double);
            }
        }
    }
    // The logits view equals logits(), element for element: [B, T, V].
    const auto z = model.activation_tensor("logits");
    REQUIRE(z.dimension() == 3);
    CHECK(z.shape()[2] == cfg.vocab);
    CHECK(z(1, 2, 3) == model.logits()[(1 * T + 2) * cfg.vocab + 3]);
    CHECK(z.data() == model.logits().data()); // zero-copy
    // The residual stream has L + 1 slices of [B, T, d]; the norm statistics are [mean | rstd] = [2, B, T].
    CHECK(model.activation_tensor("res", cfg.n_layers).shape()[2] == d);
    CHECK(model.activation_tensor("a_stats", 0).shape()[0] == 2);

    CHECK_THROWS_WITH(model.activation_tensor("nope"), Catch::Contains("no activation buffer 'nope'"));
    CHECK_THROWS_WITH(model.activation_tensor("probs", cfg.n_layers), Catch::Contains("slice(s), asked for slice"));
    CHECK_THROWS_WITH(model.activation_tensor("capped", 0), Catch::Contains("not used by this policy set"));
}

// The 0-layer bigram baseline (claim 21): embedding -> final norm -> head, no blocks.
TEMPLATE_TEST_CASE("a 0-layer (bigram) model's gradient matches central finite differences",
                   "[model][gradcheck][bigram]", ballast::paper_default, ballast::gpt2_like,
                   ballast::soft_capped)
{
    INFO("policy set " << TestType::name);
    ballast::thread_scope serial(1);
    auto cfg = tiny_config();
    cfg.n_layers = 0;
    ballast::transformer<TestType, double> model(cfg);
    for (const auto& e : model.layout().entries())
    {
        CHECK(e.name.rfind("blocks.", 0) != 0); // no block tensors
    }
    randomise(model, 17);
    const auto data = make_batch(cfg.vocab, 4);
    model.forward_backward(data.tokens, data.targets, data.batch, data.seq);
    const std::vector<double> analytic(model.gradients().begin(), model.gradients().end());
    double* theta = model.parameters().data();
    const auto loss = [&] { return model.evaluate(data.tokens, data.targets, data.batch, data.seq).loss; };
    for (const auto& e : model.layout().entries())
    {
        INFO("tensor " << e.name);
        ballast::test::check_gradient(analytic.data() + e.offset, loss, theta + e.offset, e.size);
    }
}

TEST_CASE("a 0-layer (bigram) model's loss equals a direct computation", "[model][bigram]")
{
    auto cfg = tiny_config();
    cfg.n_layers = 0;
    ballast::transformer<ballast::paper_default, double> model(cfg); // RoPE: no position table
    randomise(model, 23);
    const auto data = make_batch(cfg.vocab, 9);
    const auto got = model.evaluate(data.tokens, data.targets, data.batch, data.seq);

    // Direct: f = LayerNorm(E[token]) * scale (no bias), logits = W_head f, loss = mean(lse - y + c lse^2).
    const auto E = model.parameter("embed");
    const auto g = model.parameter("final_norm.scale");
    const auto W = model.parameter("head.weight");
    const std::size_t d = cfg.d_model, V = cfg.vocab, n = data.tokens.size();
    double ce = 0, z = 0;
    for (std::size_t r = 0; r < n; ++r)
    {
        const double* x = E.data() + static_cast<std::size_t>(data.tokens[r]) * d;
        double mean = 0, var = 0;
        for (std::size_t i = 0; i < d; ++i)
            mean += x[i] / double(d);
        for (std::size_t i = 0; i < d; ++i)
            var += (x[i] - mean) * (x[i] - mean) / double(d);
        std::vector<double> f(d), y(V);
        for (std::size_t i = 0; i < d; ++i)
            f[i] = (x[i] - mean) / std::sqrt(var + cfg.norm_eps) * g[i];
        double mx = -INFINITY;
        for (std::size_t j = 0; j < V; ++j)
        {
            y[j] = 0;
            for (std::size_t i = 0; i < d; ++i)
                y[j] += W[j * d + i] * f[i];
            mx = std::max(mx, y[j]);
        }
        double se = 0;
        for (std::size_t j = 0; j < V; ++j)
            se += std::exp(y[j] - mx);
        const double lse = mx + std::log(se);
        ce += (lse - y[static_cast<std::size_t>(data.targets[r])]) / double(n);
        z += cfg.zloss_coef * lse * lse / double(n);
    }
    CHECK(got.ce == Approx(ce).epsilon(1e-12));
    CHECK(got.aux == Approx(z).epsilon(1e-12));
    CHECK(got.loss == Approx(ce + z).epsilon(1e-12));
    CHECK(got.ce > 1.0); // far from a trivial case
}
