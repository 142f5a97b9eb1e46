#ifndef BALLAST_MODEL_MLP_HPP
#define BALLAST_MODEL_MLP_HPP

/// @file
/// The MLP sublayer of block l, as a forward/backward pair:
///
///     mid ─► norm ─► up GEMM (+ bias) ─► activation ─► down GEMM (+ bias) ─(+ mid)─► x[l+1]
///
/// The activation and the bias are policies with behaviour (policies/activation.hpp,
/// policies/structure.hpp). With F the hidden width and u = P::activation::up_factor, the up projection
/// is [u·F, d] (act::up and act::dup are [N, u·F]) and the activation maps it to [N, F] (act::mlp_act).

#include <cstddef>

#include <ballast/core/profile.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/kernels/gemm.hpp>
#include <ballast/model/layer.hpp>

namespace ballast::layers
{
    /// x[l+1] = mid + down(act(up(norm(mid)))) for block l (caches act::m, act::m_stats, act::up,
    /// act::mlp_act).
    template <policy_set P, class T, class Diag>
    void mlp_forward(pass_context<P, T, Diag>& c, std::size_t l, const block_tensors<const T*>& w)
    {
        using Act = typename P::activation;
        using Bias = typename P::bias;
        const std::size_t n = c.n, d = c.d, f = c.f, fu = Act::up_factor * c.f;
        const T* mid = c.act(act::mid, l);
        T* m = c.act(act::m, l);
        T* m_stats = c.act(act::m_stats, l);
        T* up = c.act(act::up, l);
        T* act_out = c.act(act::mlp_act, l);
        T* out = c.act(act::res, l + 1);
        BALLAST_PROFILE_MARK("norm");
        P::norm::forward(m, d, m_stats, m_stats + n, mid, d, w.mlp_scale, w.mlp_bias, n, d, c.eps);
        BALLAST_PROFILE_MARK("mlp.gemm");
        kernels::gemm(kernels::gemm_layout::nt, n, fu, d, m, d, w.up_w, d, T(0), up, fu);
        Bias::forward(up, w.up_b, n, fu);
        BALLAST_PROFILE_MARK("mlp.gelu"); // the activation (name kept for tools/compare_pytorch.py)
        Act::forward(act_out, up, n, f);
        BALLAST_PROFILE_MARK("mlp.gemm");
        kernels::copy(out, mid, n * d);
        kernels::gemm(kernels::gemm_layout::nt, n, d, f, act_out, f, w.down_w, f, T(1), out, d);
        Bias::forward(out, w.down_b, n, d);
    }

    /// Backward of mlp_forward: act::dres holds d loss / d x[l+1] on entry and d loss / d mid on exit.
    /// Overwrites the up and down weight gradients (beta-0 GEMMs); accumulates the biases' and the norm's.
    template <policy_set P, class T, class Diag>
    void mlp_backward(pass_context<P, T, Diag>& c, std::size_t l, const block_tensors<const T*>& w,
                      const block_tensors<T*>& g)
    {
        using Act = typename P::activation;
        using Bias = typename P::bias;
        const std::size_t n = c.n, d = c.d, f = c.f, fu = Act::up_factor * c.f;
        T* dres = c.act(act::dres);
        T* dtmp = c.act(act::dtmp);
        T* dup = c.act(act::dup);
        const T* mid = c.act(act::mid, l);
        const T* m = c.act(act::m, l);
        const T* m_stats = c.act(act::m_stats, l);
        const T* up = c.act(act::up, l);
        const T* act_out = c.act(act::mlp_act, l);
        BALLAST_PROFILE_MARK("mlp.gemm");
        // d loss / d activation output into the first F columns of each u·F-wide row of act::dup
        kernels::gemm(kernels::gemm_layout::nn, n, f, d, dres, d, w.down_w, f, T(0), dup, fu);
        kernels::gemm(kernels::gemm_layout::tn, d, f, n, dres, d, act_out, f, T(0), g.down_w, f);
        Bias::backward(g.down_b, dres, n, d);
        BALLAST_PROFILE_MARK("mlp.gelu"); // the activation (name kept for tools/compare_pytorch.py)
        Act::backward(dup, dup, up, n, f);
        BALLAST_PROFILE_MARK("mlp.gemm");
        kernels::gemm(kernels::gemm_layout::tn, fu, d, n, dup, fu, m, d, T(0), g.up_w, d);
        Bias::backward(g.up_b, dup, n, fu);
        kernels::gemm(kernels::gemm_layout::nn, n, d, fu, dup, fu, w.up_w, d, T(0), dtmp, d);
        BALLAST_PROFILE_MARK("norm");
        P::norm::backward(dtmp, d, g.mlp_scale, g.mlp_bias, dtmp, d, mid, d, w.mlp_scale, m_stats,
                          m_stats + n, n, d);
        BALLAST_PROFILE_MARK("residual");
        kernels::axpy(dres, dtmp, T(1), n * d); // dres = d loss / d mid
    }
} // namespace ballast::layers

#endif
