#ifndef BALLAST_MODEL_OUTPUT_HPP
#define BALLAST_MODEL_OUTPUT_HPP

/// @file
/// The output layer, as a forward/backward pair:
///
///     x[L] ─► final norm ─► head GEMM ─► output cap ─► cross-entropy (+ z-loss) ─► loss

#include <cstddef>
#include <cstdint>
#include <span>

#include <ballast/core/profile.hpp>
#include <ballast/kernels/cross_entropy.hpp>
#include <ballast/kernels/gemm.hpp>
#include <ballast/model/layer.hpp>

namespace ballast
{
    /// The loss of one forward pass, averaged over tokens. `loss = ce + aux`; `aux` is the z-loss part
    /// (0 when the policy set has none).
    struct loss_parts
    {
        double loss = 0;
        double ce = 0;
        double aux = 0;
    };
} // namespace ballast

namespace ballast::layers
{
    /// Final norm, head, output cap and loss from x[L]: fills act::f, act::f_stats, act::logits, act::lse,
    /// act::row_loss, and act::dlogits (d loss / d capped logits) when `want_grad`.
    template <policy_set P, class T, class Diag>
    loss_parts output_forward(pass_context<P, T, Diag>& c, const outer_tensors<const T*>& w,
                              std::span<const std::int32_t> targets, bool want_grad)
    {
        const std::size_t n = c.n, d = c.d, v = c.v;
        T* fo = c.act(act::f);
        T* f_stats = c.act(act::f_stats);
        T* logits = c.act(act::logits);
        const T* lse = c.act(act::lse);
        const T* row_loss = c.act(act::row_loss);
        BALLAST_PROFILE_MARK("norm");
        P::norm::forward(fo, d, f_stats, f_stats + n, c.act(act::res, c.layers), d, w.final_scale,
                         w.final_bias, n, d, c.eps);
        BALLAST_PROFILE_MARK("head");
        kernels::gemm(kernels::gemm_layout::nt, n, v, d, fo, d, w.head, d, T(0), logits, v);
        BALLAST_PROFILE_MARK("loss");
        P::output_cap::forward(logits, n * v, c.cfg.output_soft_cap);

        const double coef = P::output_loss::zloss_coef(c.cfg);
        kernels::cross_entropy_rows(
          c.act(act::row_loss), c.act(act::lse), want_grad ? c.act(act::dlogits) : nullptr, logits,
          targets.data(), static_cast<T>(1.0 / static_cast<double>(n)), static_cast<T>(coef), n, v, v);
        double total = 0, zsum = 0;
        for (std::size_t r = 0; r < n; ++r) // fixed order: deterministic
        {
            total += static_cast<double>(row_loss[r]);
            zsum += static_cast<double>(lse[r]) * static_cast<double>(lse[r]);
        }
        if constexpr (Diag::enabled)
        {
            if (c.diag.recording)
            {
                BALLAST_PROFILE_MARK("diagnostics");
                c.diag.record_output(lse, logits, n, v);
            }
        }
        loss_parts out;
        out.loss = total / static_cast<double>(n);
        out.aux = coef * zsum / static_cast<double>(n);
        out.ce = out.loss - out.aux;
        return out;
    }

    /// Backward of output_forward from act::dlogits (rescaled in place by the output cap's backward):
    /// writes d loss / d x[L] to act::dres (uses act::dtmp). The head gradient is overwritten, or, for a
    /// tied head, added to the embedding gradient (which must be zeroed before); the final norm's
    /// gradients accumulate.
    template <policy_set P, class T, class Diag>
    void output_backward(pass_context<P, T, Diag>& c, const outer_tensors<const T*>& w,
                         const outer_tensors<T*>& g)
    {
        const std::size_t n = c.n, d = c.d, v = c.v;
        T* dlogits = c.act(act::dlogits);
        T* dtmp = c.act(act::dtmp);
        const T* f_stats = c.act(act::f_stats);
        BALLAST_PROFILE_MARK("loss");
        P::output_cap::backward(dlogits, c.act(act::logits), n * v, c.cfg.output_soft_cap);
        BALLAST_PROFILE_MARK("head");
        kernels::gemm(kernels::gemm_layout::tn, v, d, n, dlogits, v, c.act(act::f), d,
                      P::head::tied ? T(1) : T(0), g.head, d); // a tied head adds to the embedding gradient
        kernels::gemm(kernels::gemm_layout::nn, n, d, v, dlogits, v, w.head, d, T(0), dtmp, d);
        BALLAST_PROFILE_MARK("norm");
        P::norm::backward(c.act(act::dres), d, g.final_scale, g.final_bias, dtmp, d,
                          c.act(act::res, c.layers), d, w.final_scale, f_stats, f_stats + n, n, d);
    }
} // namespace ballast::layers

#endif
