#ifndef BALLAST_TRAIN_OPTIM_ADAMW_HPP
#define BALLAST_TRAIN_OPTIM_ADAMW_HPP

/// @file
/// AdamW (Loshchilov & Hutter 2019) with bias correction and ε outside the square root (optax and
/// PyTorch); the paper's defaults (Wortsman et al. 2023 §1: β = (0.9, 0.95), ε = 1e-8). With g the clipped
/// gradient and t the step (from 1):
///
///   m ← β1 m + (1−β1) g,   v ← β2 v + (1−β2) g²,   Δ = m̂ / (√v̂ + ε),   m̂ = m/(1−β1^t),  v̂ = v/(1−β2^t)
///
/// and θ moves by −lr·Δ plus the decay of the mode (`ballast/kernels/optimizer.hpp`). State: m, v.
/// Diagnostics hook: the RMS of Δ and the fraction of coordinates with √v̂ < ε.

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <boost/hana/adapt_struct.hpp>

#include <ballast/core/config.hpp>
#include <ballast/core/reflect.hpp>
#include <ballast/kernels/optimizer.hpp>
#include <ballast/train/optim/common.hpp>

namespace ballast::optim
{
    /// AdamW's numbers (flags and TOML keys `beta1`, `beta2`, `eps`).
    struct adamw_config
    {
        double beta1 = 0.9;  ///< first-moment decay
        double beta2 = 0.95; ///< second-moment decay
        double eps = 1e-8;   ///< ε, outside the square root

        bool operator==(const adamw_config&) const = default;

        void validate() const
        {
            constexpr const char* where = "optimizer_config";
            BALLAST_CHECK(beta1 >= 0 && beta1 < 1, where, "beta1 must be in [0, 1), got ", beta1);
            BALLAST_CHECK(beta2 >= 0 && beta2 < 1, where, "beta2 must be in [0, 1), got ", beta2);
            BALLAST_CHECK(eps >= 0 && std::isfinite(eps), where, "eps must be >= 0, got ", eps);
        }
    };

    namespace detail
    {
        inline constexpr std::string_view adamw_base = "adamw";
    }

    /// AdamW, state m and v. Name: "adamw" (independent decay, the paper's), "adamw_coupled",
    /// "adamw_nodecay".
    template <weight_decay Decay = weight_decay::independent>
    struct adamw
    {
        using config = adamw_config;
        static constexpr std::string_view name = detail::decay_name<detail::adamw_base, Decay>;
        static constexpr weight_decay decay = Decay;
        static constexpr bool param_rms_scaling = false;
        static constexpr std::array<std::string_view, 2> state_names{ "m", "v" };

        template <class T>
        static void update(T* theta, std::array<T*, 2> state, const T* grad, const tensor_step& a,
                           const config& c)
        {
            kernels::adamw_hparams h;
            h.lr = a.lr;
            h.beta1 = c.beta1;
            h.beta2 = c.beta2;
            h.eps = c.eps;
            h.weight_decay = a.decay;
            h.grad_scale = a.grad_scale;
            kernels::adamw_update<Decay>(theta, state[0], state[1], grad, h.with_step(a.t), a.n);
        }

        /// Δ = m̂/(√v̂ + ε) re-derived from the state after step `a.t`: its RMS and the fraction of
        /// coordinates where √v̂ < ε (there the update shrinks towards m̂/ε, Wortsman et al. 2023 §3.4).
        template <class T>
        static direction_stat direction(std::array<const T*, 2> state, const tensor_step& a, const config& c)
        {
            direction_stat out;
            if (a.t < 1 || a.n == 0)
            {
                return out;
            }
            const double t = static_cast<double>(a.t);
            const double bc1 = 1 - std::pow(c.beta1, t), bc2 = 1 - std::pow(c.beta2, t);
            const T* m = state[0];
            const T* v = state[1];
            double sq = 0;
            std::size_t dominated = 0;
            for (std::size_t i = 0; i < a.n; ++i)
            {
                const double root = std::sqrt(static_cast<double>(v[i]) / bc2);
                const double u = (static_cast<double>(m[i]) / bc1) / (root + c.eps);
                // u² rounded on its own, never fused with the sum into an FMA: whether the compiler fuses
                // depends on its inlining and tuning (GCC's Zen tuning avoids FMA in reduction chains), and
                // the diagnostics must not change bits with the surrounding code.
                const volatile double u2 = u * u;
                sq += u2;
                dominated += root < c.eps ? 1 : 0;
            }
            out.update_rms = std::sqrt(sq / static_cast<double>(a.n));
            out.eps_fraction = static_cast<double>(dominated) / static_cast<double>(a.n);
            return out;
        }
    };
} // namespace ballast::optim

BOOST_HANA_ADAPT_STRUCT(ballast::optim::adamw_config, beta1, beta2, eps);

template <>
struct ballast::field_docs<ballast::optim::adamw_config>
{
    static constexpr std::array<field_doc, 3> fields{ {
      { "beta1", "AdamW: first-moment decay; 0 .. <1" },
      { "beta2", "AdamW: second-moment decay; 0 .. <1" },
      { "eps",
        "AdamW: epsilon added outside the square root (paper 3.4: too large collapses the update); >= 0" },
    } };
};
static_assert(ballast::documented<ballast::optim::adamw_config>);

#endif
