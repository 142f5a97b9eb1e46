#ifndef BALLAST_TRAIN_OPTIM_COMMON_HPP
#define BALLAST_TRAIN_OPTIM_COMMON_HPP

/// @file
/// What every optimizer policy shares: the `optimizer_policy` concept, the per-tensor step the driver hands
/// to a policy (`tensor_step`), the decay modes and mask, the shared numbers (`common_config`: λ, the mask,
/// clipping) and the optional diagnostics hook's result (`direction_stat`).
///
/// An optimizer policy `O` (one header each under `ballast/train/optim/`) has:
///
/// | member | meaning |
/// |---|---|
/// | `name` | string (`"adamw"`, `"lion_coupled"`, …) |
/// | `decay` | `weight_decay` mode, fixed at compile time |
/// | `config` | its own numbers: an aggregate with `validate()` (Hana-adapted, so reflected) |
/// | `state_names` | `std::array<std::string_view, N>`: N state buffers, each parallel to the parameters |
/// | `update(θ, state, g, a, cfg)` | one tensor's step (`state` = N pointers into the tensor's slots) |
/// | `param_rms_scaling` | true: the driver multiplies lr by max(RMS(θ), `rms_floor(cfg)`) before the step |
/// | `direction(state, a, cfg)` | optional: statistics of the last step's unscaled direction (diagnostics) |
///
/// State buffers are parallel to the model's flat parameter buffer (a tensor's slot has the tensor's size
/// and shape), so checkpoints store them as tensors named after the parameter. A policy may use only part
/// of a slot (Adafactor's factored second moment uses rows + cols entries of a matrix's slot).

#include <array>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

#include <boost/hana/adapt_struct.hpp>

#include <ballast/core/config.hpp>
#include <ballast/core/reflect.hpp>
#include <ballast/kernels/ref/optimizer.hpp>
#include <ballast/policies/parameterisation.hpp>

namespace ballast
{
    using kernels::weight_decay;

    /// Which parameter tensors receive weight decay.
    enum class weight_decay_mask
    {
        all,               ///< every tensor (nanodo's default, so the paper's; see docs/training.md)
        no_norms_or_biases ///< skip norm scales and biases (the GPT-2/nanoGPT convention)
    };

    template <>
    struct enum_names<weight_decay_mask>
    {
        static constexpr std::array values{ std::pair{ std::string_view("all"), weight_decay_mask::all },
                                            std::pair{ std::string_view("no_norms_or_biases"),
                                                       weight_decay_mask::no_norms_or_biases } };
    };

    /// Does a tensor of this role get weight decay under `mask`?
    constexpr bool decays(policies::param_role role, weight_decay_mask mask) noexcept
    {
        return mask == weight_decay_mask::all ||
               (role != policies::param_role::scale && role != policies::param_role::bias);
    }

    /// The clipping factor for a global gradient norm: min(1, clip/norm), 1 when clipping is off.
    inline double clip_factor(double grad_norm, double clip) noexcept
    {
        return clip > 0 && grad_norm > clip ? clip / grad_norm : 1.0;
    }

    namespace optim
    {
        /// The numbers every optimizer reads through the driver (paper defaults: independent decay 1e-4,
        /// clipping at 1).
        struct common_config
        {
            double weight_decay = 1e-4; ///< λ (meaning depends on the decay mode; coupled AdamW uses ~0.1)
            weight_decay_mask decay_mask = weight_decay_mask::all; ///< which tensors decay
            double clip = 1.0; ///< global gradient-norm clipping threshold; 0 disables

            bool operator==(const common_config&) const = default;

            void validate() const
            {
                constexpr const char* where = "optimizer_config";
                BALLAST_CHECK(weight_decay >= 0 && std::isfinite(weight_decay), where,
                              "weight_decay must be >= 0, got ", weight_decay);
                BALLAST_CHECK(clip >= 0 && std::isfinite(clip), where, "clip must be >= 0 (0: off), got ",
                              clip);
            }
        };

        /// One tensor's step, as the driver hands it to a policy.
        struct tensor_step
        {
            double lr = 0;    ///< s_t·η·μ_g·ρ_g
            double decay = 0; ///< kernel decay coefficient: s_t·λ (independent) or λ (coupled), 0 if masked
            double grad_scale = 1; ///< clipping factor c
            std::int64_t t = 1;    ///< step count, from 1
            std::size_t n = 0;     ///< elements of the tensor
            std::size_t rows = 1;  ///< the tensor as a [rows, cols] matrix: product of all but the last dim
            std::size_t cols = 0;  ///< the last dim (n for a vector)
        };

        /// Statistics of the last step's unscaled direction Δ for one tensor (NaN when the optimizer does
        /// not provide them): its RMS, and the fraction of coordinates where the optimizer's ε dominates
        /// the denominator ("ε-dominated": Wortsman et al. 2023 §3.4).
        struct direction_stat
        {
            double update_rms = std::nan("");
            double eps_fraction = std::nan("");
        };

        /// A policy's state pointers for one tensor.
        template <class O, class T>
        using state_ptrs = std::array<T*, O::state_names.size()>;

        /// An optimizer policy: see the table in this header.
        template <class O>
        concept optimizer_policy = requires
        {
            {
                O::name
                } -> std::convertible_to<std::string_view>;
            {
                O::decay
                } -> std::convertible_to<weight_decay>;
            {
                O::param_rms_scaling
                } -> std::convertible_to<bool>;
            O::state_names.size();
            typename O::config;
        }
        &&requires(float* p, state_ptrs<O, float> s, const float* g, const tensor_step& a,
                   const typename O::config& c)
        {
            c.validate();
            O::update(p, s, g, a, c);
        };

        /// Does state `i` of `O` hold a factored form for tensor `a` rather than a parameter-shaped one?
        /// Policies say so with `static bool factored(std::size_t i, const tensor_step&)` (Adafactor's "v" of
        /// a matrix: rows + cols entries); without it every state is parameter-shaped.
        template <class O>
        constexpr bool factored_state(std::size_t i, const tensor_step& a)
        {
            if constexpr (requires { O::factored(i, a); })
            {
                return O::factored(i, a);
            }
            else
            {
                return false;
            }
        }

        /// Does `O` give diagnostics its unscaled direction?
        template <class O, class T>
        concept has_direction = requires(std::array<const T*, O::state_names.size()> s, const tensor_step& a,
                                         const typename O::config& c)
        {
            {
                O::direction(s, a, c)
                } -> std::convertible_to<direction_stat>;
        };

        namespace detail
        {
            template <weight_decay D>
            constexpr std::string_view decay_suffix() noexcept
            {
                if constexpr (D == weight_decay::independent)
                {
                    return "";
                }
                else if constexpr (D == weight_decay::coupled)
                {
                    return "_coupled";
                }
                else
                {
                    return "_nodecay";
                }
            }

            /// Compile-time concatenation of two string views into static storage.
            template <const std::string_view& A, const std::string_view& B>
            struct concat
            {
                static constexpr auto storage = []
                {
                    std::array<char, A.size() + B.size()> out{};
                    for (std::size_t i = 0; i < A.size(); ++i)
                    {
                        out[i] = A[i];
                    }
                    for (std::size_t i = 0; i < B.size(); ++i)
                    {
                        out[A.size() + i] = B[i];
                    }
                    return out;
                }();
                static constexpr std::string_view value{ storage.data(), storage.size() };
            };

            template <weight_decay D>
            inline constexpr std::string_view suffix_v = decay_suffix<D>();

            /// `base` + the decay suffix ("adamw", "adamw_coupled", "adamw_nodecay").
            template <const std::string_view& Base, weight_decay D>
            inline constexpr std::string_view decay_name = concat<Base, suffix_v<D>>::value;
        } // namespace detail
    }     // namespace optim
} // namespace ballast

BOOST_HANA_ADAPT_STRUCT(ballast::optim::common_config, weight_decay, decay_mask, clip);

template <>
struct ballast::field_docs<ballast::optim::common_config>
{
    static constexpr std::array<field_doc, 3> fields{ {
      { "weight_decay", "weight decay lambda; independent decay subtracts lambda*theta per step, coupled "
                        "decay (PyTorch AdamW) lr*lambda*theta; >= 0" },
      { "decay_mask", "which tensors are decayed" },
      { "clip", "global gradient-norm clipping threshold (0: no clipping); >= 0" },
    } };
};
static_assert(ballast::documented<ballast::optim::common_config>);

#endif
