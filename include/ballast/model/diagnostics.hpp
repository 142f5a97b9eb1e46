#ifndef BALLAST_MODEL_DIAGNOSTICS_HPP
#define BALLAST_MODEL_DIAGNOSTICS_HPP

/// @file
/// Forward-pass stability diagnostics (Wortsman et al. 2023 §3.1, §3.4, Figs 2, 4, E.1, C.1): what predicts
/// attention-logit growth and output-logit divergence before the loss shows it.
///
/// Diagnostics are a compile-time policy of the model, `transformer<P, T, Diag>`:
/// - `diagnostics::none` (the default): no code, no memory, no branch.
/// - `diagnostics::forward`: the model records, on the forward passes where `set_recording(true)`,
///   per layer the max attention logit (overall and per head), the min and mean attention entropy, the mean
///   ‖q‖ and ‖k‖ and the mean cosine between queries and the keys they attend to (the paper's split of logit
///   growth into norm and alignment, Fig E.1), and the block output's RMS; and for the output, the mean,
///   std and min of log Z per token and the mean output logit.
///
/// Where the numbers come from: the max logit and the entropy per query row are produced by the causal
/// softmax kernel in the pass it already makes (`kernels::softmax_causal_forward`'s row outputs); q/k norms,
/// the cosine and the residual RMS are short extra loops over data the forward pass has just written, run
/// only on recording passes. "Attention logit" means the softmax input: q·k scaled by the attention scale,
/// after the attention soft-cap when the policy set has one.

#include <cstddef>
#include <vector>

namespace ballast::diagnostics
{
    /// No diagnostics: the model compiles exactly as without them.
    struct none
    {
        static constexpr bool enabled = false;
    };

    /// Forward-pass diagnostics on recording passes (see the file comment).
    struct forward
    {
        static constexpr bool enabled = true;
    };

    template <class D>
    concept diagnostics_policy = requires
    {
        {
            D::enabled
            } -> std::convertible_to<bool>;
    };

    /// One layer's attention and residual statistics of a recorded forward pass.
    struct layer_stats
    {
        double max_logit = 0;               ///< max over batch, heads, causal pairs
        std::vector<double> max_logit_head; ///< per head
        double entropy_min = 0;             ///< min over query rows of the attention entropy (nats)
        double entropy_mean = 0;            ///< mean over query rows
        double q_norm_mean = 0, k_norm_mean = 0; ///< mean ‖q‖, ‖k‖ per token and head (as used in the logits)
        double qk_cos_mean = 0;                  ///< mean over causal pairs of cos(q_t, k_s)
        double residual_rms = 0;                 ///< RMS of the block's output (residual stream)
    };

    /// Everything a recorded forward pass measured.
    struct forward_stats
    {
        bool valid = false; ///< false until a recorded forward pass ran
        std::vector<layer_stats> layers;
        double log_z_mean = 0, log_z_std = 0, log_z_min = 0; ///< log Z per token
        double logit_mean = 0;                               ///< mean output logit
    };
} // namespace ballast::diagnostics

#endif
