#ifndef BALLAST_POLICIES_OUTPUT_HPP
#define BALLAST_POLICIES_OUTPUT_HPP

/// @file
/// Output-loss family: a policy turns the (capped) output logits and the targets into the loss and
/// d loss / d logits. The model calls `P::output_loss::forward(args)` once per pass (model/output.hpp)
/// and knows nothing else about the loss, so a new loss is a new policy, not an edit of the model.
///
/// The shipped losses run the fused cross-entropy kernel (kernels/cross_entropy.hpp): CE = log Z −
/// y[target] per token plus, for `z_loss`, the auxiliary coef·(log Z)² (PaLM; Wortsman et al. 2023
/// §3.1.2, coef 1e-4), which pulls log Z towards 0 and prevents output-logit divergence. The model
/// always reports the CE part and the auxiliary part separately (`loss_parts`).
/// Laws (tests/policies/output_test.cpp, for every policy of the family): the reported loss is the mean
/// of the policy's per-token loss, dlogits equals central finite differences of it, lse is log Z, and
/// `ce` is the plain cross-entropy; z_loss with coef 0 equals cross_entropy.

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <ballast/kernels/cross_entropy.hpp>
#include <ballast/model/config.hpp>

namespace ballast
{
    /// The loss of one forward pass, averaged over tokens. `loss = ce + aux`; `aux` is the auxiliary part
    /// (z-loss, a user penalty; 0 for plain cross-entropy).
    struct loss_parts
    {
        double loss = 0;
        double ce = 0;
        double aux = 0;
    };
} // namespace ballast

namespace ballast::policies
{
    /// What an output-loss policy's forward receives: `rows` rows of `vocab` logits (leading dimension
    /// `vocab`), one target id per row (checked by the model to be in [0, vocab)), and outputs it must
    /// fill: `lse[r]` = log Σ_j exp(logits[r, j]) (the model's log_z() and diagnostics read it),
    /// `row_loss[r]` (scratch, rows elements, free to use) and, when `dlogits` is not null,
    /// dlogits[r, j] = d loss / d logits[r, j] of the MEAN loss over rows (overwritten; may not alias
    /// logits).
    template <class T>
    struct loss_args
    {
        const model_config& cfg;
        const T* logits;
        const std::int32_t* targets;
        std::size_t rows, vocab;
        T* lse;
        T* row_loss;
        T* dlogits; ///< null: no gradient wanted
    };

    template <class P>
    concept output_loss_policy = requires(const loss_args<float>& af, const loss_args<double>& ad)
    {
        {
            P::name
            } -> std::convertible_to<std::string_view>;
        {
            P::forward(af)
            } -> std::same_as<loss_parts>;
        {
            P::forward(ad)
            } -> std::same_as<loss_parts>;
    };

    namespace detail
    {
        /// Fused CE + coef·(log Z)² rows (one kernel call), summed in a fixed order (deterministic).
        template <class T>
        loss_parts fused_cross_entropy(const loss_args<T>& a, double coef)
        {
            const std::size_t n = a.rows;
            kernels::cross_entropy_rows(a.row_loss, a.lse, a.dlogits, a.logits, a.targets,
                                        static_cast<T>(1.0 / static_cast<double>(n)), static_cast<T>(coef), n,
                                        a.vocab, a.vocab);
            double total = 0, zsum = 0;
            for (std::size_t r = 0; r < n; ++r)
            {
                total += static_cast<double>(a.row_loss[r]);
                zsum += static_cast<double>(a.lse[r]) * static_cast<double>(a.lse[r]);
            }
            loss_parts out;
            out.loss = total / static_cast<double>(n);
            out.aux = coef * zsum / static_cast<double>(n);
            out.ce = out.loss - out.aux;
            return out;
        }
    } // namespace detail

    /// Plain next-token cross-entropy (the null policy).
    struct cross_entropy
    {
        static constexpr std::string_view name = "cross_entropy";
        template <class T>
        static loss_parts forward(const loss_args<T>& a)
        {
            return detail::fused_cross_entropy(a, 0.0);
        }
    };

    /// Cross-entropy + coef·(log Z)² per token, coef = model_config::zloss_coef.
    struct z_loss
    {
        static constexpr std::string_view name = "z_loss";
        template <class T>
        static loss_parts forward(const loss_args<T>& a)
        {
            return detail::fused_cross_entropy(a, a.cfg.zloss_coef);
        }
    };

    static_assert(output_loss_policy<cross_entropy> && output_loss_policy<z_loss>);
} // namespace ballast::policies

#endif
