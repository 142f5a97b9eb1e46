#ifndef BALLAST_TRAIN_OPTIM_ADAFACTOR_HPP
#define BALLAST_TRAIN_OPTIM_ADAFACTOR_HPP

/// @file
/// Adafactor (Shazeer & Stern 2018, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost",
/// ICML, arXiv:1804.04235), Algorithm 4 (weight matrices, factored second moment) and Algorithm 5 (weight
/// vectors), with the paper's update clipping, increasing decay and relative step size; β1 optional.
/// With G = c·g the clipped gradient, t the step (from 1), X the tensor before the step:
///
/// | quantity | formula (paper) | config |
/// |---|---|---|
/// | decay (section "Increasing decay parameter") | β̂2t = 1 − t^(−c) (so β̂21 = 0: no bias correction) | `decay_rate` c = 0.8 |
/// | matrix [n, m] (Alg. 4) | R_t = β̂2t R_{t−1} + (1−β̂2t)(G² + ε1 1_n 1_mᵀ) 1_m | `eps1` ε1 = 1e-30 |
/// | | C_t = β̂2t C_{t−1} + (1−β̂2t) 1_nᵀ (G² + ε1 1_n 1_mᵀ) | |
/// | | V̂_t = R_t C_t / (1_nᵀ R_t) | |
/// | vector (Alg. 5) | V̂_t = β̂2t V̂_{t−1} + (1−β̂2t)(G² + ε1) | |
/// | both | U_t = G / √V̂_t | |
/// | update clipping (section "Update clipping") | Û_t = U_t / max(1, RMS(U_t)/d),  RMS(U) = √(mean U²) | `clip_threshold` d = 1 |
/// | first moment (optional; the paper's experiments drop it) | M_t = β1 M_{t−1} + (1−β1) Û_t  (β1 = 0: M_t = Û_t) | `beta1` = 0 |
/// | relative step (section "Relative step size") | α_t = max(ε2, RMS(X_{t−1})) · ρ_t | `eps2` ε2 = 1e-3 |
/// | step | X_t = X_{t−1} − α_t M_t  (plus the decay of the mode) | |
///
/// ρ_t is ballast's scheduled LR s_t·η·μ_g (the variant that is fully specified by the run's schedule):
/// the paper's ρ_t = min(1e-2, 1/√t) is a schedule choice, not part of the update, and is not built in.
/// ε2-floored RMS scaling is the same mechanism as `rms_scaled` (Wortsman et al. 2023 Fig E.14 cite it),
/// so the driver applies it (`param_rms_scaling`, floor ε2). "Matrix" means a tensor whose [rows, cols]
/// view (all but the last dimension, the last dimension) has rows, cols ≥ 2; others are vectors.
///
/// State: "m" (M, parameter-sized) and "v": for a matrix its slot holds R (rows entries) then C (cols
/// entries), the rest of the slot unused (zero); for a vector, V̂. (The slot keeps checkpoints parallel to
/// the parameters; Adafactor's memory saving is not the point here.)
/// Diagnostics hook: the RMS of M, the step direction before α_t (no ε-dominated fraction: NaN).

#include <array>
#include <cmath>
#include <cstddef>
#include <string_view>

#include <boost/hana/adapt_struct.hpp>

#include <ballast/core/config.hpp>
#include <ballast/core/reflect.hpp>
#include <ballast/kernels/optimizer.hpp>
#include <ballast/train/optim/common.hpp>

namespace ballast::optim
{
    /// Adafactor's numbers, paper defaults (flags and TOML keys `adafactor_<field>`).
    struct adafactor_config
    {
        double beta1 = 0.0;          ///< first moment of the clipped update; 0: none
        double decay_rate = 0.8;     ///< c in β̂2t = 1 − t^(−c)
        double eps1 = 1e-30;         ///< ε1, added to G²
        double eps2 = 1e-3;          ///< ε2, the floor of the parameter RMS in α_t
        double clip_threshold = 1.0; ///< d, the update-clipping threshold

        bool operator==(const adafactor_config&) const = default;

        void validate() const
        {
            constexpr const char* where = "optimizer_config";
            BALLAST_CHECK(beta1 >= 0 && beta1 < 1, where, "adafactor_beta1 must be in [0, 1), got ", beta1);
            BALLAST_CHECK(decay_rate > 0 && decay_rate <= 1, where,
                          "adafactor_decay_rate must be in (0, 1], got ", decay_rate);
            BALLAST_CHECK(eps1 >= 0 && std::isfinite(eps1), where, "adafactor_eps1 must be >= 0, got ", eps1);
            BALLAST_CHECK(eps2 > 0 && std::isfinite(eps2), where, "adafactor_eps2 must be > 0, got ", eps2);
            BALLAST_CHECK(clip_threshold > 0, where, "adafactor_clip_threshold must be > 0, got ",
                          clip_threshold);
        }
    };

    namespace detail
    {
        inline constexpr std::string_view adafactor_base = "adafactor";
    }

    /// Adafactor, state m and v. Name: "adafactor" (independent decay, as the paper's runs use),
    /// "adafactor_coupled", "adafactor_nodecay".
    template <weight_decay Decay = weight_decay::independent>
    struct adafactor
    {
        using config = adafactor_config;
        static constexpr std::string_view name = detail::decay_name<detail::adafactor_base, Decay>;
        static constexpr weight_decay decay = Decay;
        static constexpr bool param_rms_scaling = true; ///< α_t = ρ_t·max(ε2, RMS(X))
        static constexpr std::array<std::string_view, 2> state_names{ "m", "v" };

        static double rms_floor(const config& c) noexcept { return c.eps2; }

        /// "v" of a matrix is factored: its slot starts with R (rows entries) then C (cols entries).
        static constexpr bool factored(std::size_t i, const tensor_step& a) noexcept
        {
            return i == 1 && kernels::adafactor_factored(a.rows, a.cols);
        }

        /// β̂2t = 1 − t^(−c).
        static double beta2_at(std::int64_t t, const config& c)
        {
            return 1.0 - std::pow(static_cast<double>(t), -c.decay_rate);
        }

        template <class T>
        static void update(T* theta, std::array<T*, 2> state, const T* grad, const tensor_step& a,
                           const config& c)
        {
            kernels::adafactor_hparams h;
            h.lr = a.lr;
            h.beta1 = c.beta1;
            h.beta2 = beta2_at(a.t, c);
            h.eps1 = c.eps1;
            h.clip_threshold = c.clip_threshold;
            h.weight_decay = a.decay;
            h.grad_scale = a.grad_scale;
            kernels::adafactor_update<Decay>(theta, state[0], state[1], grad, h, a.rows, a.cols);
        }

        template <class T>
        static direction_stat direction(std::array<const T*, 2> state, const tensor_step& a, const config&)
        {
            direction_stat out;
            if (a.t < 1 || a.n == 0)
            {
                return out;
            }
            double sq = 0;
            for (std::size_t i = 0; i < a.n; ++i)
            {
                const double u = static_cast<double>(state[0][i]);
                sq += u * u;
            }
            out.update_rms = std::sqrt(sq / static_cast<double>(a.n));
            return out;
        }
    };
} // namespace ballast::optim

BOOST_HANA_ADAPT_STRUCT(ballast::optim::adafactor_config, beta1, decay_rate, eps1, eps2, clip_threshold);

template <>
struct ballast::field_docs<ballast::optim::adafactor_config>
{
    static constexpr std::array<field_doc, 5> fields{ {
      { "beta1", "Adafactor: first-moment decay of the clipped update (0: no first moment); 0 .. <1" },
      { "decay_rate", "Adafactor: c in the second-moment decay 1 - t^(-c); 0 .. 1" },
      { "eps1", "Adafactor: epsilon1 added to the squared gradient; > 0" },
      { "eps2", "Adafactor: epsilon2, floor of the parameter RMS in the relative step size; >= 0" },
      { "clip_threshold", "Adafactor: update-clipping threshold d; > 0" },
    } };
};
static_assert(ballast::documented<ballast::optim::adafactor_config>);

#endif
