#ifndef BALLAST_POLICIES_ATTENTION_HPP
#define BALLAST_POLICIES_ATTENTION_HPP

/// @file
/// Attention-logit control family: what happens to q and k before the logits z = s·q·kᵀ, and to z
/// before the causal mask.
///
/// q/k control (the `qk` slot of a policy set):
/// | policy                                  | q, k ←                                 | parameters                  |
/// |-----------------------------------------|----------------------------------------|-----------------------------|
/// | `no_qk_control`                         | q, k                                   | none                        |
/// | `qk_norm<Norm, qk_scope::per_head>`     | Norm over each head's d_h values       | scale [d_h] shared by heads |
/// | `qk_norm<Norm, qk_scope::full_width>`   | Norm over the token's whole d-vector   | scale [d]                   |
/// | `forced_logit_scale`                    | √κ·z/√(mean(z²) + ε) over d_h (Fig 10) | none (κ in config)          |
///
/// qk-norm: Dehghani et al. 2023 (ViT-22B); Wortsman et al. 2023 §3.1.1 (per-head is the default and
/// slightly better, Fig E.8; never a bias). Applied before RoPE.
///
/// Logit soft-cap (the `attention_cap` and `output_cap` slots): `no_soft_cap` or `tanh_soft_cap`,
/// z ← c·tanh(z/c) (Gemma 2), applied to attention logits before the causal mask.
///
/// Attention probabilities (the optional `attention_probs` member of a policy set; absent = softmax, read
/// through `attention_probs_of<S>`): how the masked, capped logits z of one (batch, head) pair become the
/// weights P that multiply v. The causal mask applies to both: P[i][j] = 0 for j > i.
/// | policy                   | P[i][j] for j ≤ i                        | used by                           |
/// |--------------------------|------------------------------------------|-----------------------------------|
/// | `softmax_attention`      | exp(z[i][j]) / Σ_{u≤i} exp(z[i][u])      | every set without the member      |
/// | `squared_relu_attention` | max(z[i][j], 0)² / √T (T: sequence len)  | set `squared_relu_attention`      |

#include <cmath>
#include <concepts>
#include <cstddef>
#include <string_view>
#include <type_traits>

#include <ballast/core/aligned.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/kernels/norm.hpp>
#include <ballast/kernels/soft_cap.hpp>
#include <ballast/kernels/softmax.hpp>
#include <ballast/model/config.hpp>
#include <ballast/policies/norm.hpp>

namespace ballast::policies
{
    enum class qk_scope
    {
        per_head,
        full_width
    };

    /// A q/k control policy transforms the q (or k) block of the qkv activations: `forward` reads
    /// `x` (rows N, row stride ld, the q or k block of each row, d = heads·dh wide) and writes `y` with the
    /// same layout, caching per-(head, row) statistics in mean/rstd ([heads][N]); `backward` OVERWRITES dx
    /// and ACCUMULATES the scale gradient. `scale_size(d, dh)` is the parameter length (0 = none).
    template <class P, class T = float>
    concept qk_policy = requires(const model_config& cfg, T* p, const T* c, std::size_t n,
                                 const typename P::template state<T>& s)
    {
        {
            P::name
            } -> std::convertible_to<std::string_view>;
        {
            P::scale_size(n, n)
            } -> std::convertible_to<std::size_t>;
        {
            P::template make_state<T>(cfg)
            } -> std::same_as<typename P::template state<T>>;
        P::forward(p, p, p, c, c, n, n, n, n, s);
        P::backward(p, p, c, c, c, c, c, n, n, n, n, s);
    };

    /// No control: q and k pass through.
    struct no_qk_control
    {
        static constexpr std::string_view name = "no_qk_control";
        static constexpr std::size_t scale_size(std::size_t, std::size_t) { return 0; }

        template <class T>
        struct state
        {
        };
        template <class T>
        static state<T> make_state(const model_config&)
        {
            return {};
        }

        template <class T>
        static void forward(T* y, std::type_identity_t<T>*, std::type_identity_t<T>*,
                            const std::type_identity_t<T>* x, const std::type_identity_t<T>*, std::size_t ld,
                            std::size_t rows, std::size_t heads, std::size_t dh,
                            const state<std::type_identity_t<T>>&)
        {
            no_norm::forward(y, ld, static_cast<T*>(nullptr), static_cast<T*>(nullptr), x, ld, nullptr,
                             nullptr, rows, heads * dh, T(0));
        }

        template <class T>
        static void backward(T* dx, std::type_identity_t<T>*, const std::type_identity_t<T>* dy,
                             const std::type_identity_t<T>*, const std::type_identity_t<T>*,
                             const std::type_identity_t<T>*, const std::type_identity_t<T>*, std::size_t ld,
                             std::size_t rows, std::size_t heads, std::size_t dh,
                             const state<std::type_identity_t<T>>&)
        {
            no_norm::backward(dx, ld, static_cast<T*>(nullptr), static_cast<T*>(nullptr), dy, ld, nullptr, ld,
                              nullptr, nullptr, nullptr, rows, heads * dh);
        }
    };

    /// qk-norm with a normalisation policy (LayerNorm or RMSNorm) per head or over the full width.
    template <class Norm, qk_scope Scope = qk_scope::per_head>
    struct qk_norm
    {
        static_assert(norm_policy<Norm>,
                      "qk_norm<Norm>: Norm must be a norm policy (layer_norm or rms_norm)");
        static_assert(Norm::has_scale,
                      "qk_norm<Norm>: Norm must have a scale; no_norm gives no qk control, use "
                      "no_qk_control");
        static_assert(!Norm::has_bias,
                      "qk_norm<Norm>: qk-norm never has a bias (Wortsman et al. 2023 §2.1); use "
                      "layer_norm, not layer_norm_bias");

        static constexpr std::string_view name =
          Scope == qk_scope::per_head
            ? (std::is_same_v<Norm, rms_norm> ? "qk_rms_norm_per_head" : "qk_layer_norm_per_head")
            : (std::is_same_v<Norm, rms_norm> ? "qk_rms_norm_full_width" : "qk_layer_norm_full_width");
        static constexpr std::size_t scale_size(std::size_t d, std::size_t dh)
        {
            return Scope == qk_scope::per_head ? dh : d;
        }

        template <class T>
        struct state
        {
            T eps = T(1e-6);
        };
        template <class T>
        static state<T> make_state(const model_config& cfg)
        {
            return { static_cast<T>(cfg.norm_eps) };
        }

        template <class T>
        static void forward(T* y, std::type_identity_t<T>* mean, std::type_identity_t<T>* rstd,
                            const std::type_identity_t<T>* x, const std::type_identity_t<T>* scale,
                            std::size_t ld, std::size_t rows, std::size_t heads, std::size_t dh,
                            const state<std::type_identity_t<T>>& s)
        {
            if constexpr (Scope == qk_scope::per_head)
            {
                for (std::size_t h = 0; h < heads; ++h)
                {
                    Norm::forward(y + h * dh, ld, mean + h * rows, rstd + h * rows, x + h * dh, ld, scale,
                                  nullptr, rows, dh, s.eps);
                }
            }
            else
            {
                Norm::forward(y, ld, mean, rstd, x, ld, scale, nullptr, rows, heads * dh, s.eps);
            }
        }

        /// dscale accumulates over heads in head order (deterministic).
        template <class T>
        static void backward(T* dx, std::type_identity_t<T>* dscale, const std::type_identity_t<T>* dy,
                             const std::type_identity_t<T>* x, const std::type_identity_t<T>* scale,
                             const std::type_identity_t<T>* mean, const std::type_identity_t<T>* rstd,
                             std::size_t ld, std::size_t rows, std::size_t heads, std::size_t dh,
                             const state<std::type_identity_t<T>>&)
        {
            if constexpr (Scope == qk_scope::per_head)
            {
                for (std::size_t h = 0; h < heads; ++h)
                {
                    Norm::backward(dx + h * dh, ld, dscale, static_cast<T*>(nullptr), dy + h * dh, ld,
                                   x + h * dh, ld, scale, mean + h * rows, rstd + h * rows, rows, dh);
                }
            }
            else
            {
                Norm::backward(dx, ld, dscale, static_cast<T*>(nullptr), dy, ld, x, ld, scale, mean, rstd,
                               rows, heads * dh);
            }
        }
    };

    /// The paper's forced logit scale (Fig 10): g(z) = √κ·z/√(mean(z²) + ε) on each head's q and k, so every
    /// q and k vector has RMS √κ and |z| ≤ s·κ·d_h. Implemented as RMSNorm with a constant gain √κ.
    struct forced_logit_scale
    {
        static constexpr std::string_view name = "forced_logit_scale";
        static constexpr std::size_t scale_size(std::size_t, std::size_t) { return 0; }

        template <class T>
        struct state
        {
            aligned_vector<T> gain; // [d_h], every entry √κ
            T eps = T(1e-6);
        };
        template <class T>
        static state<T> make_state(const model_config& cfg)
        {
            state<T> s;
            s.gain.assign(cfg.head_dim(), static_cast<T>(std::sqrt(cfg.kappa)));
            s.eps = static_cast<T>(cfg.norm_eps);
            return s;
        }

        template <class T>
        static void forward(T* y, std::type_identity_t<T>*, std::type_identity_t<T>* rstd,
                            const std::type_identity_t<T>* x, const std::type_identity_t<T>*, std::size_t ld,
                            std::size_t rows, std::size_t heads, std::size_t dh,
                            const state<std::type_identity_t<T>>& s)
        {
            for (std::size_t h = 0; h < heads; ++h)
            {
                kernels::rms_norm_forward(y + h * dh, ld, rstd + h * rows, x + h * dh, ld, s.gain.data(),
                                          rows, dh, s.eps);
            }
        }

        template <class T>
        static void backward(T* dx, std::type_identity_t<T>*, const std::type_identity_t<T>* dy,
                             const std::type_identity_t<T>* x, const std::type_identity_t<T>*,
                             const std::type_identity_t<T>*, const std::type_identity_t<T>* rstd,
                             std::size_t ld, std::size_t rows, std::size_t heads, std::size_t dh,
                             const state<std::type_identity_t<T>>& s)
        {
            for (std::size_t h = 0; h < heads; ++h)
            {
                kernels::rms_norm_backward(dx + h * dh, ld, static_cast<T*>(nullptr), dy + h * dh, ld,
                                           x + h * dh, ld, s.gain.data(), rstd + h * rows, rows, dh);
            }
        }
    };

    static_assert(qk_policy<no_qk_control> && qk_policy<qk_norm<layer_norm>> &&
                  qk_policy<forced_logit_scale>);
    static_assert(qk_policy<qk_norm<rms_norm, qk_scope::full_width>, double>);

    // ------------------------------------------------------------------------------------------------------
    // Soft-capping (attention logits and output logits)

    /// A soft-cap policy maps logits in place and back-propagates from the capped values.
    template <class P, class T = float>
    concept soft_cap_policy = requires(T* p, const T* c, std::size_t n, double cap)
    {
        {
            P::name
            } -> std::convertible_to<std::string_view>;
        {
            P::active
            } -> std::convertible_to<bool>;
        P::forward(p, n, cap);
        P::backward(p, c, n, cap);
    };

    /// The null cap: identity.
    struct no_soft_cap
    {
        static constexpr std::string_view name = "no_soft_cap";
        static constexpr bool active = false;
        template <class T>
        static void forward(T*, std::size_t, double)
        {
        }
        template <class T>
        static void backward(T*, const std::type_identity_t<T>*, std::size_t, double)
        {
        }
    };

    /// z ← c·tanh(z/c); backward dz ← dz·(1 − (y/c)²) from the capped y.
    struct tanh_soft_cap
    {
        static constexpr std::string_view name = "tanh_soft_cap";
        static constexpr bool active = true;
        template <class T>
        static void forward(T* z, std::size_t n, double c)
        {
            kernels::soft_cap_forward(z, n, c);
        }
        template <class T>
        static void backward(T* dz, const std::type_identity_t<T>* y, std::size_t n, double c)
        {
            kernels::soft_cap_backward(dz, y, n, c);
        }
    };

    static_assert(soft_cap_policy<no_soft_cap> && soft_cap_policy<tanh_soft_cap, double>);

    // ------------------------------------------------------------------------------------------------------
    // Attention probabilities

    /// An attention-probability policy maps one (batch, head) pair's logits z ([T][ld], row i valid in
    /// columns 0..i) to the weights P in place, writing 0 right of the diagonal, and reports per query row
    /// the max logit and the entropy of the row's weights (normalised to sum 1) when those pointers are
    /// non-null. `backward(dz, p, dp, T, ld)` turns dP into dZ from the cached P (in place allowed, zero
    /// right of the diagonal).
    template <class P, class T = float>
    concept attention_probs_policy = requires(T* p, const T* c, std::size_t n)
    {
        {
            P::name
            } -> std::convertible_to<std::string_view>;
        P::forward(p, n, n, p, p);
        P::backward(p, c, c, n, n);
    };

    /// The causal softmax (the transformer's and the paper's default).
    struct softmax_attention
    {
        static constexpr std::string_view name = "softmax_attention";
        template <class T>
        static void forward(T* z, std::size_t t_len, std::size_t ld, std::type_identity_t<T>* row_max,
                            std::type_identity_t<T>* row_entropy)
        {
            kernels::softmax_causal_forward(z, z, t_len, ld, row_max, row_entropy);
        }
        template <class T>
        static void backward(T* dz, const std::type_identity_t<T>* p, const std::type_identity_t<T>* dp,
                             std::size_t t_len, std::size_t ld)
        {
            kernels::softmax_causal_backward(dz, p, dp, t_len, ld);
        }
    };

    /// Pointwise squared-ReLU attention (Wortsman et al. 2023 Fig E.11, claim 7): P[i][j] = relu(z[i][j])²/√T
    /// for j ≤ i, where T is the sequence length of the pass (the row length of the causal block, not the
    /// row's i+1 keys): no normalisation over keys, so the logits' growth is not hidden by a softmax.
    /// Backward: dz = dp·2·relu(z)/√T = dp·2·√(p/√T), recovered from the cached p (relu(z) = √(p·√T)).
    /// Row entropy: of the row's weights normalised to sum 1 (0 for an all-zero row). Scalar loops: a
    /// research mechanism, not a tuned kernel.
    struct squared_relu_attention
    {
        static constexpr std::string_view name = "squared_relu_attention";

        /// The normalisation 1/√T of a pass with sequence length T.
        static double inv_norm(std::size_t t_len) { return 1.0 / std::sqrt(static_cast<double>(t_len)); }

        template <class T>
        static void forward(T* z, std::size_t t_len, std::size_t ld, std::type_identity_t<T>* row_max,
                            std::type_identity_t<T>* row_entropy)
        {
            const T c = static_cast<T>(inv_norm(t_len));
            for (std::size_t i = 0; i < t_len; ++i)
            {
                T* row = z + i * ld;
                T mx = row[0];
                T sum = 0;
                for (std::size_t j = 0; j <= i; ++j)
                {
                    mx = std::isnan(row[j]) || row[j] > mx ? row[j] : mx;
                    const T r = row[j] > T(0) ? row[j] : T(0);
                    row[j] = r * r * c;
                    sum += row[j];
                }
                for (std::size_t j = i + 1; j < t_len; ++j)
                {
                    row[j] = T(0);
                }
                if (row_max)
                {
                    row_max[i] = mx;
                }
                if (row_entropy)
                {
                    T h = 0;
                    if (sum > T(0))
                    {
                        for (std::size_t j = 0; j <= i; ++j)
                        {
                            const T q = row[j] / sum;
                            h -= q > T(0) ? q * std::log(q) : T(0);
                        }
                    }
                    row_entropy[i] = h;
                }
            }
        }

        template <class T>
        static void backward(T* dz, const std::type_identity_t<T>* p, const std::type_identity_t<T>* dp,
                             std::size_t t_len, std::size_t ld)
        {
            const T c = static_cast<T>(inv_norm(t_len));
            for (std::size_t i = 0; i < t_len; ++i)
            {
                for (std::size_t j = 0; j <= i; ++j)
                {
                    dz[i * ld + j] = dp[i * ld + j] * T(2) * std::sqrt(p[i * ld + j] * c);
                }
                for (std::size_t j = i + 1; j < t_len; ++j)
                {
                    dz[i * ld + j] = T(0);
                }
            }
        }
    };

    static_assert(attention_probs_policy<softmax_attention> &&
                  attention_probs_policy<squared_relu_attention, double>);

    /// The attention-probability policy of policy set S: `S::attention_probs` if S declares one, else the
    /// softmax (an optional slot, so every existing set keeps its meaning unchanged).
    template <class S>
    struct attention_probs_of
    {
        using type = softmax_attention;
    };
    template <class S>
    requires requires { typename S::attention_probs; }
    struct attention_probs_of<S>
    {
        using type = typename S::attention_probs;
    };
    template <class S>
    using attention_probs_t = typename attention_probs_of<S>::type;
} // namespace ballast::policies

#endif
