// Forward diagnostics against direct computations on a tiny model in double: the attention logits are
// rebuilt by hand (LayerNorm, the q/k projections, the 1/√d_h scale) for a policy set without positions or
// qk-norm; log Z statistics against the model's own log_z(); and the optimizer's update RMS and ε-dominated
// fraction against a hand-computed first Adam step.
#include <cmath>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/model/transformer.hpp>
#include <ballast/train/trainer.hpp>

#include "support/tolerance.hpp"

namespace
{
    namespace pol = ballast::policies;

    /// The paper's baseline (no qk-norm) without positions: the logits are a closed form of the weights.
    struct diag_set : ballast::paper_baseline
    {
        static constexpr std::string_view name = "diag_set";
        using position = pol::no_position;
    };

    using model_t = ballast::transformer<diag_set, double, ballast::diagnostics::forward>;
} // namespace

TEST_CASE("recorded attention diagnostics equal a direct computation of the logits", "[model][diagnostics]")
{
    ballast::model_config cfg;
    cfg.vocab = 11;
    cfg.d_model = 8;
    cfg.n_layers = 1;
    cfg.n_heads = 2;
    cfg.context = 6;
    model_t model(cfg);
    model.init(5);
    // Larger projections than the init, so the logits are far from zero and the entropy far from uniform.
    for (auto& w : model.parameter("blocks.0.attn.qkv.weight"))
    {
        w *= 6.0;
    }
    const std::size_t B = 2, T = 5, d = 8, H = 2, dh = 4;
    const std::vector<std::int32_t> tokens{ 1, 4, 2, 9, 3, 0, 7, 7, 5, 10 },
      targets{ 4, 2, 9, 3, 0, 7, 7, 5, 10, 1 };

    model.evaluate(tokens, targets, B, T);
    CHECK_FALSE(model.forward_diagnostics().valid); // not recording by default
    model.set_recording(true);
    model.evaluate(tokens, targets, B, T);
    const auto& st = model.forward_diagnostics();
    REQUIRE(st.valid);
    REQUIRE(st.layers.size() == 1);

    // Direct: a = LN(x) (scale 1, no bias, ε from the config), q = Wq·a, k = Wk·a, z = q·k/√dh per head.
    const auto E = model.parameter("embed");
    const auto W = model.parameter("blocks.0.attn.qkv.weight"); // [3d, d]: rows q, then k, then v
    const auto scale = model.parameter("blocks.0.attn_norm.scale");
    std::vector<double> q(B * T * d), k(B * T * d);
    for (std::size_t r = 0; r < B * T; ++r)
    {
        const double* x = E.data() + static_cast<std::size_t>(tokens[r]) * d;
        double mean = 0, var = 0;
        for (std::size_t i = 0; i < d; ++i)
            mean += x[i] / d;
        for (std::size_t i = 0; i < d; ++i)
            var += (x[i] - mean) * (x[i] - mean) / d;
        std::vector<double> a(d);
        for (std::size_t i = 0; i < d; ++i)
            a[i] = (x[i] - mean) / std::sqrt(var + cfg.norm_eps) * scale[i];
        for (std::size_t o = 0; o < d; ++o)
        {
            for (std::size_t i = 0; i < d; ++i)
            {
                q[r * d + o] += W[o * d + i] * a[i];
                k[r * d + o] += W[(d + o) * d + i] * a[i];
            }
        }
    }
    std::vector<double> max_head(H, -INFINITY);
    double ent_min = INFINITY, ent_sum = 0, cos_sum = 0, qn_sum = 0, kn_sum = 0;
    std::size_t rows = 0, pairs = 0;
    for (std::size_t b = 0; b < B; ++b)
    {
        for (std::size_t h = 0; h < H; ++h)
        {
            for (std::size_t t = 0; t < T; ++t)
            {
                const double* qt = q.data() + (b * T + t) * d + h * dh;
                double nq = 0;
                for (std::size_t i = 0; i < dh; ++i)
                    nq += qt[i] * qt[i];
                nq = std::sqrt(nq);
                std::vector<double> z(t + 1);
                double m = -INFINITY;
                for (std::size_t u = 0; u <= t; ++u)
                {
                    const double* ku = k.data() + (b * T + u) * d + h * dh;
                    double dot = 0, nk = 0;
                    for (std::size_t i = 0; i < dh; ++i)
                    {
                        dot += qt[i] * ku[i];
                        nk += ku[i] * ku[i];
                    }
                    z[u] = dot / std::sqrt(double(dh));
                    m = std::max(m, z[u]);
                    cos_sum += dot / (nq * std::sqrt(nk));
                    ++pairs;
                }
                double s = 0, ent = 0;
                for (const double zu : z)
                    s += std::exp(zu - m);
                for (const double zu : z)
                {
                    const double p = std::exp(zu - m) / s;
                    ent -= p * std::log(p);
                }
                max_head[h] = std::max(max_head[h], m);
                ent_min = std::min(ent_min, ent);
                ent_sum += ent;
                ++rows;
            }
        }
    }
    for (std::size_t r = 0; r < B * T; ++r)
    {
        for (std::size_t h = 0; h < H; ++h)
        {
            double a = 0, c = 0;
            for (std::size_t i = 0; i < dh; ++i)
            {
                a += q[r * d + h * dh + i] * q[r * d + h * dh + i];
                c += k[r * d + h * dh + i] * k[r * d + h * dh + i];
            }
            qn_sum += std::sqrt(a);
            kn_sum += std::sqrt(c);
        }
    }
    const auto& l = st.layers[0];
    CHECK(l.max_logit_head[0] == Approx(max_head[0]).epsilon(1e-12));
    CHECK(l.max_logit_head[1] == Approx(max_head[1]).epsilon(1e-12));
    CHECK(l.max_logit == Approx(std::max(max_head[0], max_head[1])).epsilon(1e-12));
    CHECK(l.max_logit > 1.0); // far from the trivial case
    CHECK(l.entropy_min == Approx(ent_min).epsilon(1e-10));
    CHECK(l.entropy_mean == Approx(ent_sum / double(rows)).epsilon(1e-10));
    CHECK(l.qk_cos_mean == Approx(cos_sum / double(pairs)).epsilon(1e-10));
    CHECK(l.q_norm_mean == Approx(qn_sum / double(B * T * H)).epsilon(1e-12));
    CHECK(l.k_norm_mean == Approx(kn_sum / double(B * T * H)).epsilon(1e-12));
    CHECK(l.residual_rms > 0);

    // Output: statistics of the model's own log Z per token.
    const auto lz = model.log_z();
    double mean = 0, mn = INFINITY, sq = 0;
    for (const double v : lz)
    {
        mean += v / double(lz.size());
        mn = std::min(mn, v);
    }
    for (const double v : lz)
        sq += (v - mean) * (v - mean) / double(lz.size());
    CHECK(st.log_z_mean == Approx(mean).epsilon(1e-12));
    CHECK(st.log_z_min == Approx(mn).epsilon(1e-12));
    CHECK(st.log_z_std == Approx(std::sqrt(sq)).epsilon(1e-10));
}

TEST_CASE("the first AdamW step's unscaled update has RMS of g/(|g|+eps), and eps-dominated coordinates are "
          "counted",
          "[train][diagnostics]")
{
    ballast::model_config cfg;
    cfg.vocab = 256;
    cfg.d_model = 8;
    cfg.n_layers = 1;
    cfg.n_heads = 2;
    cfg.context = 8;
    std::vector<std::uint16_t> text(4000);
    for (std::size_t i = 0; i < text.size(); ++i)
        text[i] = static_cast<std::uint16_t>("the quick brown fox jumps over the lazy dog. "[i % 45]);
    const ballast::token_splits data(text, 256, 0.1, 8);
    ballast::train_config tc;
    tc.steps = 1;
    tc.warmup = 0;
    tc.batch = 2;
    tc.seq = 8;
    tc.eval_batches = 1;
    tc.diag_interval = 1;
    ballast::optimizer_config oc;
    oc.adamw.eps = 1e-3; // large, so that some coordinates are ε-dominated (zero gradients: the unused embeddings)
    ballast::trainer<diag_set, ballast::optim::adamw<>, double, ballast::diagnostics::forward> tr(cfg, tc, oc,
                                                                                                  data);
    std::vector<double> g;
    double clip = 0;
    struct grab
    {
        std::vector<double>* g;
        double* clip;
        void on_gradients(const ballast::gradient_info<double>& info) const
        {
            g->assign(info.grads.begin(), info.grads.end());
        }
        void on_step_end(const ballast::step_info& s) const
        {
            *clip = s.clip;
            REQUIRE(s.diagnostics != nullptr);
        }
    };
    const auto r = tr.run(grab{ &g, &clip });
    REQUIRE(r.diag_history.size() == 1);
    const auto& tensors = r.last_diagnostics["tensors"];
    // The run's series sample is the recorded step's block-0 and probe-tensor values.
    const auto& sample = r.diag_history.front();
    CHECK(sample.step == 1);
    CHECK(sample.max_attn_logit_l0 == r.last_diagnostics["layers"][0]["max_logit"].get<double>());
    CHECK(sample.max_attn_logit == r.last_diagnostics["max_attn_logit"].get<double>());
    CHECK(sample.probe_grad_rms == tensors[ballast::probe_tensor]["grad_rms"].get<double>());
    CHECK(sample.probe_update_rms == tensors[ballast::probe_tensor]["update_rms"].get<double>());
    for (const auto& e : tr.model().layout().entries())
    {
        CAPTURE(e.name);
        // Step 1 from zero moments: m̂ = c·g, √v̂ = c·|g| (c = clipping factor), Δ = c·g/(c·|g| + ε).
        double sq = 0, gsq = 0;
        std::size_t dominated = 0;
        for (std::size_t i = e.offset; i < e.offset + e.size; ++i)
        {
            const double cg = clip * g[i];
            const double u = cg / (std::fabs(cg) + oc.adamw.eps);
            sq += u * u;
            gsq += g[i] * g[i];
            dominated += std::fabs(cg) < oc.adamw.eps ? 1 : 0;
        }
        CHECK(tensors[e.name]["update_rms"].get<double>() ==
              Approx(std::sqrt(sq / double(e.size))).epsilon(1e-9));
        CHECK(tensors[e.name]["eps_fraction"].get<double>() ==
              Approx(double(dominated) / double(e.size)).epsilon(1e-12));
        CHECK(tensors[e.name]["grad_rms"].get<double>() ==
              Approx(std::sqrt(gsq / double(e.size))).epsilon(1e-12));
    }
    // The embedding rows of bytes absent from the text get no gradient: ε-dominated.
    CHECK(tensors["embed"]["eps_fraction"].get<double>() > 0.5);
}
