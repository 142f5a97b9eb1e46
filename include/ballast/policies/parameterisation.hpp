#ifndef BALLAST_POLICIES_PARAMETERISATION_HPP
#define BALLAST_POLICIES_PARAMETERISATION_HPP

/// @file
/// Parameterisation family: initialisation, per-tensor LR multipliers and the attention scale.
///
/// | policy           | init (std)                                   | LR multiplier of a linear layer | s        | queries |
/// |------------------|----------------------------------------------|---------------------------------|----------|---------|
/// | `standard_param` | embed 1/√d; matrices trunc. normal 1/√fan_in | 1                               | 1/√d_h   | random  |
/// | `mup_simple`     | as standard                                  | base_fan_in/fan_in = base/d     | 1/√d_h   | random  |
/// | `mup_full`       | as standard; head √base_fan_in/fan_in = √base/d | base/d                       | 1/d_h    | zero    |
///
/// Wortsman et al. 2023 §3.2.4 (µParam simple and full, after Yang et al. 2022, arXiv:2203.03466).
/// "Linear layer" includes the output head (µP for Adam scales it too; the paper leaves it open); the
/// embedding, positions, norm scales and biases keep multiplier 1. base_fan_in is the same layer's fan-in
/// at width `mup_base_width` (default 256, the paper's smallest width), so every multiplier is base/d.
/// Law (tested): all multipliers are 1 at base width.

#include <cmath>
#include <concepts>
#include <cstddef>
#include <string_view>

#include <ballast/model/config.hpp>

namespace ballast::policies
{
    /// What a parameter tensor is, which decides its init, LR multiplier, and default weight-decay mask.
    enum class param_role
    {
        embedding, ///< token embedding table [V, d]
        position,  ///< learned position table [context, d]
        matrix,    ///< hidden linear layer weight [out, in]
        head,      ///< output head [V, d]
        scale,     ///< norm scale (init 1)
        bias       ///< bias (init 0)
    };

    inline constexpr std::string_view role_name(param_role r) noexcept
    {
        switch (r)
        {
            case param_role::embedding:
                return "embedding";
            case param_role::position:
                return "position";
            case param_role::matrix:
                return "matrix";
            case param_role::head:
                return "head";
            case param_role::scale:
                return "scale";
            case param_role::bias:
                return "bias";
        }
        return "?";
    }

    template <class P>
    concept param_policy = requires(const model_config& cfg, param_role r, std::size_t fan_in)
    {
        {
            P::name
            } -> std::convertible_to<std::string_view>;
        {
            P::init_std(r, fan_in, cfg)
            } -> std::convertible_to<double>;
        {
            P::lr_multiplier(r, fan_in, cfg)
            } -> std::convertible_to<double>;
        {
            P::attention_scale(cfg)
            } -> std::convertible_to<double>;
        {
            P::zero_queries
            } -> std::convertible_to<bool>;
    };

    /// Standard parameterisation (the paper's default).
    struct standard_param
    {
        static constexpr std::string_view name = "standard";
        static constexpr bool zero_queries = false;

        /// Std of the (truncated, for matrices and head) normal init; 0 for scale/bias (constant init).
        static double init_std(param_role r, std::size_t fan_in, const model_config& cfg)
        {
            switch (r)
            {
                case param_role::embedding:
                case param_role::position:
                    return 1.0 / std::sqrt(static_cast<double>(cfg.d_model));
                case param_role::matrix:
                case param_role::head:
                    return 1.0 / std::sqrt(static_cast<double>(fan_in));
                default:
                    return 0.0;
            }
        }
        static double lr_multiplier(param_role, std::size_t, const model_config&) { return 1.0; }
        static double attention_scale(const model_config& cfg)
        {
            return 1.0 / std::sqrt(static_cast<double>(cfg.head_dim()));
        }
    };

    /// µParam (simple): LR of every linear layer × base_fan_in/fan_in.
    struct mup_simple : standard_param
    {
        static constexpr std::string_view name = "mup_simple";
        static double lr_multiplier(param_role r, std::size_t, const model_config& cfg)
        {
            const bool linear = r == param_role::matrix || r == param_role::head;
            return linear ? cfg.mup_base_width / static_cast<double>(cfg.d_model) : 1.0;
        }
    };

    /// µParam (full): simple + head init √base_fan_in/fan_in + 1/d_h attention scale + zero queries.
    struct mup_full : mup_simple
    {
        static constexpr std::string_view name = "mup_full";
        static constexpr bool zero_queries = true;
        static double init_std(param_role r, std::size_t fan_in, const model_config& cfg)
        {
            if (r == param_role::head)
            {
                const double base_fan_in = cfg.mup_base_width; // head fan-in is d; at base width it is `base`
                return std::sqrt(base_fan_in) / static_cast<double>(fan_in);
            }
            return standard_param::init_std(r, fan_in, cfg);
        }
        static double attention_scale(const model_config& cfg)
        {
            return 1.0 / static_cast<double>(cfg.head_dim());
        }
    };

    static_assert(param_policy<standard_param> && param_policy<mup_simple> && param_policy<mup_full>);
} // namespace ballast::policies

#endif
