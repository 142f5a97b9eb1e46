#ifndef BALLAST_MODEL_OUTPUT_HPP
#define BALLAST_MODEL_OUTPUT_HPP

/// @file
/// The output layer, as a forward/backward pair:
///
///     x[L] ─► final norm ─► head (P::head) ─► output cap ─► loss (P::output_loss) ─► loss
///
/// The head and the loss are policies with behaviour (policies/structure.hpp, policies/output.hpp): this
/// file only wires their buffers.

#include <cstddef>
#include <cstdint>
#include <span>

#include <ballast/core/profile.hpp>
#include <ballast/kernels/gemm.hpp>
#include <ballast/model/layer.hpp>
#include <ballast/policies/output.hpp>

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
        BALLAST_PROFILE_MARK("norm");
        P::norm::forward(fo, d, f_stats, f_stats + n, c.act(act::res, c.layers), d, w.final_scale,
                         w.final_bias, n, d, c.eps);
        BALLAST_PROFILE_MARK("head");
        P::head::forward(logits, fo, w.head, n, v, d);
        BALLAST_PROFILE_MARK("loss");
        P::output_cap::forward(logits, n * v, c.cfg.output_soft_cap);
        const loss_parts out = P::output_loss::forward(policies::loss_args<T>{ .cfg = c.cfg,
                                                                               .logits = logits,
                                                                               .targets = targets.data(),
                                                                               .rows = n,
                                                                               .vocab = v,
                                                                               .lse = c.act(act::lse),
                                                                               .row_loss = c.act(act::row_loss),
                                                                               .dlogits = want_grad
                                                                                            ? c.act(act::dlogits)
                                                                                            : nullptr });
        if constexpr (Diag::enabled)
        {
            if (c.diag.recording)
            {
                BALLAST_PROFILE_MARK("diagnostics");
                c.diag.record_output(lse, logits, n, v);
            }
        }
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
        P::head::backward(g.head, dtmp, dlogits, c.act(act::f), w.head, n, v, d);
        BALLAST_PROFILE_MARK("norm");
        P::norm::backward(c.act(act::dres), d, g.final_scale, g.final_bias, dtmp, d,
                          c.act(act::res, c.layers), d, w.final_scale, f_stats, f_stats + n, n, d);
    }
} // namespace ballast::layers

#endif
