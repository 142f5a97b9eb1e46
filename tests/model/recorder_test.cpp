// The recorder's block-output RMS and mean output logit against direct computations in double, and the
// squared-ReLU attention policy's forward (P = relu(z)^2/sqrt(T), causal) against a hand-written block: a
// 1-layer model without positions whose MLP adds nothing (down-projection zeroed), so the block output
// x[1] = x[0] + Wo·(P·v) is a closed form of the weights for both the softmax and the squared-ReLU sets.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/model/transformer.hpp>

#include "support/gradcheck.hpp"

namespace
{
    namespace pol = ballast::policies;

    struct softmax_set : ballast::paper_baseline
    {
        static constexpr std::string_view name = "softmax_set";
        using position = pol::no_position;
    };
    struct squared_relu_set : ballast::squared_relu_attention
    {
        static constexpr std::string_view name = "squared_relu_set";
        using position = pol::no_position;
    };

    /// P[t][0..t] from the logits z[0..t] of query t of a sequence of length T.
    template <class S>
    std::vector<double> direct_probs(const std::vector<double>& z, std::size_t T)
    {
        std::vector<double> p(z.size());
        if constexpr (std::is_same_v<pol::attention_probs_t<S>, pol::squared_relu_attention>)
        {
            for (std::size_t u = 0; u < z.size(); ++u)
                p[u] = std::max(z[u], 0.0) * std::max(z[u], 0.0) / std::sqrt(double(T));
        }
        else
        {
            const double m = *std::max_element(z.begin(), z.end());
            double s = 0;
            for (const double zu : z)
                s += std::exp(zu - m);
            for (std::size_t u = 0; u < z.size(); ++u)
                p[u] = std::exp(z[u] - m) / s;
        }
        return p;
    }
} // namespace

TEMPLATE_TEST_CASE("block-output RMS and mean output logit equal a direct computation",
                   "[model][diagnostics][recorder]", softmax_set, squared_relu_set)
{
    INFO("policy set " << TestType::name);
    ballast::model_config cfg;
    cfg.vocab = 11;
    cfg.d_model = 8;
    cfg.n_layers = 1;
    cfg.n_heads = 2;
    cfg.context = 6;
    ballast::transformer<TestType, double, ballast::diagnostics::forward> model(cfg);
    model.init(5);
    for (auto& w : model.parameter("blocks.0.attn.qkv.weight"))
        w *= 6.0; // logits far from zero: relu cuts some, the softmax is far from uniform
    for (auto& w : model.parameter("blocks.0.attn.out.weight"))
        w *= 4.0; // the attention output is a visible part of x[1]
    for (auto& w : model.parameter("blocks.0.mlp.down.weight"))
        w = 0.0; // the MLP adds nothing: x[1] = mid
    const std::size_t B = 2, T = 5, d = 8, H = 2, dh = 4;
    const std::vector<std::int32_t> tokens{ 1, 4, 2, 9, 3, 0, 7, 7, 5, 10 },
      targets{ 4, 2, 9, 3, 0, 7, 7, 5, 10, 1 };
    model.set_recording(true);
    model.evaluate(tokens, targets, B, T);
    const auto& st = model.forward_diagnostics();
    REQUIRE(st.valid);
    REQUIRE(st.layers.size() == 1);

    const auto E = model.parameter("embed");
    const auto W = model.parameter("blocks.0.attn.qkv.weight"); // [3d, d]: q, k, v rows
    const auto Wo = model.parameter("blocks.0.attn.out.weight"); // [d, d]
    const auto scale = model.parameter("blocks.0.attn_norm.scale");
    std::vector<double> q(B * T * d), k(B * T * d), v(B * T * d);
    for (std::size_t r = 0; r < B * T; ++r)
    {
        const double* x = E.data() + static_cast<std::size_t>(tokens[r]) * d;
        double mean = 0, var = 0;
        for (std::size_t i = 0; i < d; ++i)
            mean += x[i] / d;
        for (std::size_t i = 0; i < d; ++i)
            var += (x[i] - mean) * (x[i] - mean) / d;
        for (std::size_t o = 0; o < d; ++o)
        {
            for (std::size_t i = 0; i < d; ++i)
            {
                const double a = (x[i] - mean) / std::sqrt(var + cfg.norm_eps) * scale[i];
                q[r * d + o] += W[o * d + i] * a;
                k[r * d + o] += W[(d + o) * d + i] * a;
                v[r * d + o] += W[(2 * d + o) * d + i] * a;
            }
        }
    }
    std::vector<double> att(B * T * d, 0.0);
    std::size_t cut = 0; // logits relu sets to 0 (the squared-ReLU case must cut some)
    for (std::size_t b = 0; b < B; ++b)
        for (std::size_t h = 0; h < H; ++h)
            for (std::size_t t = 0; t < T; ++t)
            {
                std::vector<double> z(t + 1);
                for (std::size_t u = 0; u <= t; ++u)
                {
                    double dot = 0;
                    for (std::size_t i = 0; i < dh; ++i)
                        dot += q[(b * T + t) * d + h * dh + i] * k[(b * T + u) * d + h * dh + i];
                    z[u] = dot / std::sqrt(double(dh));
                    cut += z[u] < 0;
                }
                const auto p = direct_probs<TestType>(z, T);
                for (std::size_t u = 0; u <= t; ++u)
                    for (std::size_t i = 0; i < dh; ++i)
                        att[(b * T + t) * d + h * dh + i] += p[u] * v[(b * T + u) * d + h * dh + i];
            }
    CHECK(cut > 0);
    double ss = 0;
    for (std::size_t r = 0; r < B * T; ++r)
    {
        const double* x = E.data() + static_cast<std::size_t>(tokens[r]) * d;
        for (std::size_t o = 0; o < d; ++o)
        {
            double x1 = x[o];
            for (std::size_t i = 0; i < d; ++i)
                x1 += Wo[o * d + i] * att[r * d + i];
            ss += x1 * x1;
        }
    }
    double emb_ss = 0; // RMS of x[0]: the recorded value must differ from it (the block's output is read)
    for (std::size_t r = 0; r < B * T; ++r)
        for (std::size_t o = 0; o < d; ++o)
        {
            const double e = E[static_cast<std::size_t>(tokens[r]) * d + o];
            emb_ss += e * e;
        }
    const double rms = std::sqrt(ss / double(B * T * d));
    CHECK(st.layers[0].residual_rms == Approx(rms).epsilon(1e-12));
    CHECK(std::fabs(rms - std::sqrt(emb_ss / double(B * T * d))) > 1e-3 * rms);

    // Mean output logit: the plain mean of the model's [N][V] logits.
    const auto lg = model.logits();
    double lsum = 0;
    for (const double x : lg)
        lsum += x;
    REQUIRE(lg.size() == B * T * cfg.vocab);
    CHECK(st.logit_mean == Approx(lsum / double(lg.size())).epsilon(1e-12).margin(1e-15));
    CHECK(st.logit_mean != Approx(st.log_z_mean));
}

TEST_CASE("squared-ReLU attention probabilities: forward, mask, entropy and backward vs finite differences",
          "[model][attention][squared_relu]")
{
    using SR = pol::squared_relu_attention;
    const std::size_t T = 5;
    std::vector<double> z(T * T), zin;
    for (std::size_t i = 0; i < T * T; ++i)
        z[i] = std::sin(1.3 * double(i) + 0.4) * 2.0; // both signs, none near 0
    zin = z;
    std::vector<double> p = z, mx(T), ent(T);
    SR::forward(p.data(), T, T, mx.data(), ent.data());
    for (std::size_t i = 0; i < T; ++i)
    {
        double m = -INFINITY, s = 0;
        for (std::size_t j = 0; j <= i; ++j)
        {
            const double r = std::max(zin[i * T + j], 0.0);
            CHECK(p[i * T + j] == Approx(r * r / std::sqrt(double(T))).epsilon(1e-15).margin(1e-300));
            m = std::max(m, zin[i * T + j]);
            s += p[i * T + j];
        }
        for (std::size_t j = i + 1; j < T; ++j)
            CHECK(p[i * T + j] == 0.0);
        double h = 0;
        for (std::size_t j = 0; j <= i && s > 0; ++j)
            h -= p[i * T + j] > 0 ? p[i * T + j] / s * std::log(p[i * T + j] / s) : 0.0;
        CHECK(mx[i] == m);
        CHECK(ent[i] == Approx(h).epsilon(1e-12).margin(1e-15));
    }
    // backward: loss = Σ r·P over the causal part; dZ vs central differences of the forward.
    std::vector<double> r(T * T);
    for (std::size_t i = 0; i < T * T; ++i)
        r[i] = std::cos(0.7 * double(i));
    std::vector<double> dz(T * T);
    SR::backward(dz.data(), p.data(), r.data(), T, T);
    for (std::size_t i = 0; i < T; ++i)
        for (std::size_t j = i + 1; j < T; ++j)
            CHECK(dz[i * T + j] == 0.0);
    const auto loss = [&]
    {
        std::vector<double> y = z;
        SR::forward(y.data(), T, T, static_cast<double*>(nullptr), static_cast<double*>(nullptr));
        double l = 0;
        for (std::size_t i = 0; i < T * T; ++i)
            l += r[i] * y[i];
        return l;
    };
    ballast::test::check_gradient(dz.data(), loss, z.data(), T * T);
}
