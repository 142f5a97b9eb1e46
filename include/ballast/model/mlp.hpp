#ifndef BALLAST_MODEL_MLP_HPP
#define BALLAST_MODEL_MLP_HPP

/// @file
/// The MLP sublayer of block l, as a forward/backward pair:
///
///     mid ─► norm ─► up GEMM ─► GELU ─► down GEMM ─(+ mid)─► x[l+1]

#include <cstddef>

#include <ballast/core/profile.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/kernels/gelu.hpp>
#include <ballast/kernels/gemm.hpp>
#include <ballast/model/layer.hpp>

namespace ballast::layers
{
    /// x[l+1] = mid + down(GELU(up(norm(mid)))) for block l (caches act::m, act::m_stats, act::up,
    /// act::mlp_act).
    template <policy_set P, class T, class Diag>
    void mlp_forward(pass_context<P, T, Diag>& c, std::size_t l, const block_tensors<const T*>& w)
    {
        constexpr bool bias = P::bias::enabled;
        constexpr kernels::gelu_form gelu = P::activation::form;
        const std::size_t n = c.n, d = c.d, f = c.f;
        const T* mid = c.act(act::mid, l);
        T* m = c.act(act::m, l);
        T* m_stats = c.act(act::m_stats, l);
        T* up = c.act(act::up, l);
        T* act_out = c.act(act::mlp_act, l);
        T* out = c.act(act::res, l + 1);
        BALLAST_PROFILE_MARK("norm");
        P::norm::forward(m, d, m_stats, m_stats + n, mid, d, w.mlp_scale, w.mlp_bias, n, d, c.eps);
        BALLAST_PROFILE_MARK("mlp.gemm");
        kernels::gemm(kernels::gemm_layout::nt, n, f, d, m, d, w.up_w, d, T(0), up, f);
        if constexpr (bias)
        {
            add_bias(up, w.up_b, n, f);
        }
        BALLAST_PROFILE_MARK("mlp.gelu");
        kernels::gelu_forward<gelu>(act_out, up, n * f);
        BALLAST_PROFILE_MARK("mlp.gemm");
        kernels::copy(out, mid, n * d);
        kernels::gemm(kernels::gemm_layout::nt, n, d, f, act_out, f, w.down_w, f, T(1), out, d);
        if constexpr (bias)
        {
            add_bias(out, w.down_b, n, d);
        }
    }

    /// Backward of mlp_forward: act::dres holds d loss / d x[l+1] on entry and d loss / d mid on exit.
    /// Overwrites the up and down weight gradients (beta-0 GEMMs); accumulates the biases' and the norm's.
    template <policy_set P, class T, class Diag>
    void mlp_backward(pass_context<P, T, Diag>& c, std::size_t l, const block_tensors<const T*>& w,
                      const block_tensors<T*>& g)
    {
        constexpr bool bias = P::bias::enabled;
        constexpr kernels::gelu_form gelu = P::activation::form;
        const std::size_t n = c.n, d = c.d, f = c.f;
        T* dres = c.act(act::dres);
        T* dtmp = c.act(act::dtmp);
        T* dup = c.act(act::dup);
        const T* mid = c.act(act::mid, l);
        const T* m = c.act(act::m, l);
        const T* m_stats = c.act(act::m_stats, l);
        const T* up = c.act(act::up, l);
        const T* act_out = c.act(act::mlp_act, l);
        BALLAST_PROFILE_MARK("mlp.gemm");
        kernels::gemm(kernels::gemm_layout::nn, n, f, d, dres, d, w.down_w, f, T(0), dup, f);
        kernels::gemm(kernels::gemm_layout::tn, d, f, n, dres, d, act_out, f, T(0), g.down_w, f);
        if constexpr (bias)
        {
            accumulate_column_sums(g.down_b, dres, n, d);
        }
        BALLAST_PROFILE_MARK("mlp.gelu");
        kernels::gelu_backward<gelu>(dup, dup, up, n * f);
        BALLAST_PROFILE_MARK("mlp.gemm");
        kernels::gemm(kernels::gemm_layout::tn, f, d, n, dup, f, m, d, T(0), g.up_w, d);
        if constexpr (bias)
        {
            accumulate_column_sums(g.up_b, dup, n, f);
        }
        kernels::gemm(kernels::gemm_layout::nn, n, d, f, dup, f, w.up_w, d, T(0), dtmp, d);
        BALLAST_PROFILE_MARK("norm");
        P::norm::backward(dtmp, d, g.mlp_scale, g.mlp_bias, dtmp, d, mid, d, w.mlp_scale, m_stats,
                          m_stats + n, n, d);
        BALLAST_PROFILE_MARK("residual");
        kernels::axpy(dres, dtmp, T(1), n * d); // dres = d loss / d mid
    }
} // namespace ballast::layers

#endif
