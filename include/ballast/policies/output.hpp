#ifndef BALLAST_POLICIES_OUTPUT_HPP
#define BALLAST_POLICIES_OUTPUT_HPP

/// @file
/// Output-loss family. The loss per token is CE = log Z − y[target] plus, for `z_loss`, the auxiliary
/// coef·(log Z)² (PaLM; Wortsman et al. 2023 §3.1.2, coef 1e-4), which pulls log Z towards 0 and prevents
/// output-logit divergence. The model always reports the CE part and the auxiliary part separately.
/// Law (tested): z_loss with coef 0 equals plain cross-entropy.

#include <concepts>
#include <string_view>

#include <ballast/model/config.hpp>

namespace ballast::policies
{
    template <class P>
    concept output_loss_policy = requires(const model_config& cfg)
    {
        {
            P::name
            } -> std::convertible_to<std::string_view>;
        {
            P::zloss_coef(cfg)
            } -> std::convertible_to<double>;
    };

    /// Plain next-token cross-entropy (the null policy).
    struct cross_entropy
    {
        static constexpr std::string_view name = "cross_entropy";
        static constexpr double zloss_coef(const model_config&) { return 0.0; }
    };

    /// Cross-entropy + coef·(log Z)² per token.
    struct z_loss
    {
        static constexpr std::string_view name = "z_loss";
        static constexpr double zloss_coef(const model_config& cfg) { return cfg.zloss_coef; }
    };

    static_assert(output_loss_policy<cross_entropy> && output_loss_policy<z_loss>);
} // namespace ballast::policies

#endif
