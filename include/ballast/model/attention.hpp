#ifndef BALLAST_MODEL_ATTENTION_HPP
#define BALLAST_MODEL_ATTENTION_HPP

/// @file
/// The attention sublayer of block l, as forward/backward pairs:
///
///     x[l] ─► norm ─► qkv GEMM ─► qk control (q, k) ─► RoPE ─► causal attention ─► out GEMM ─(+ x[l])─► mid
///
/// - qk_rope_forward / qk_rope_backward: the q/k control policy, then the position policy's rotation.
/// - causal_attention_forward / causal_attention_backward: per (batch, head) pair, z = s·q·kᵀ, the
///   attention cap, the attention probabilities (the set's `attention_probs` policy, default the causal
///   softmax; policies/attention.hpp) and P·v, computed in causal row panels.
/// - attention_forward / attention_backward: the whole sublayer (norm, projections, residual).

#include <algorithm>
#include <cstddef>


#include <ballast/core/parallel.hpp>
#include <ballast/core/profile.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/kernels/gemm.hpp>
#include <ballast/kernels/softmax.hpp>
#include <ballast/model/layer.hpp>
#include <ballast/policies/attention.hpp>

namespace ballast::layers
{
    /// Attention runs (batch, head) pairs in parallel only above this many multiply-adds per layer:
    /// below it, waking the thread team costs more than the work (tiny test models).
    inline constexpr std::size_t attention_parallel_work = 1u << 15;
    /// Attention computes only the causal part of each (batch, head) pair's T×T products, in row panels
    /// of this many queries: panel [i0, i1) needs keys [0, i1) only, so about half of the T×T work of
    /// the logits, P·V and the four backward products is skipped for long sequences. A multiple of the
    /// GEMM's micro-tile rows (6) and of the AVX2 tile width (16). The panel does not change any result
    /// (the skipped terms are exact zeros); 48 was the fastest of 24, 32, 48 and 64 on the AVX-512
    /// machine too (docs/performance.md).
    inline constexpr std::size_t attention_panel = 48;

    // ----------------------------------------------------------------------------------------------------
    // q/k control and RoPE

    /// q/k control, then RoPE, on the q and k blocks of layer l's qkv activations (rows N, row stride 3d):
    /// act::qkv_raw → act::qkv. The statistics go to act::qk_stats: [q mean | q rstd | k mean | k rstd],
    /// each [H][N] (only the backward reads them).
    ///
    /// One policy call over all N rows, not one per sequence. A per-sequence split keeps a sequence's
    /// rows in cache across heads (this whole pass is 1–8% of a step, docs/performance.md), but it sums
    /// the q/k-norm scale gradients in another order, which changes the bits of every qk-norm run
    /// against the published study numbers (docs/reproduction.md). Kept whole-block until the norm
    /// kernels can hand back their row-block partials, so a per-sequence form can make the same sums.
    template <policy_set P, class T, class Diag>
    void qk_rope_forward(pass_context<P, T, Diag>& c, std::size_t l, const block_tensors<const T*>& w)
    {
        using QK = typename P::qk;
        using Position = typename P::position;
        const std::size_t d = c.d, H = c.heads, dh = c.head_dim, ld = 3 * d, n = c.n, hn = H * n;
        T* qkv = c.act(act::qkv, l);
        T* qk_stats = c.act(act::qk_stats, l);
        const T* qkv_raw = c.act(act::qkv_raw, l);
        QK::forward(qkv, qk_stats, qk_stats + hn, qkv_raw, w.q_scale, ld, n, H, dh, c.qk);
        QK::forward(qkv + d, qk_stats + 2 * hn, qk_stats + 3 * hn, qkv_raw + d, w.k_scale, ld, n, H, dh,
                    c.qk);
        Position::rotate(qkv, ld, c.batch, c.seq, H, dh, c.rope, false);
        Position::rotate(qkv + d, ld, c.batch, c.seq, H, dh, c.rope, false);
    }

    /// Backward of qk_rope_forward: act::dqkv (q, k blocks, post-RoPE; rotated back in place) →
    /// act::dqkv_raw (q, k blocks). The q/k scale gradients accumulate in the policy's fixed order
    /// (independent of the thread count).
    template <policy_set P, class T, class Diag>
    void qk_rope_backward(pass_context<P, T, Diag>& c, std::size_t l, const block_tensors<const T*>& w,
                          const block_tensors<T*>& g)
    {
        using QK = typename P::qk;
        using Position = typename P::position;
        const std::size_t d = c.d, H = c.heads, dh = c.head_dim, ld = 3 * d, n = c.n, hn = H * n;
        T* dqkv = c.act(act::dqkv);
        T* dqkv_raw = c.act(act::dqkv_raw);
        const T* qkv_raw = c.act(act::qkv_raw, l);
        const T* qk_stats = c.act(act::qk_stats, l);
        Position::rotate(dqkv, ld, c.batch, c.seq, H, dh, c.rope, true);
        Position::rotate(dqkv + d, ld, c.batch, c.seq, H, dh, c.rope, true);
        QK::backward(dqkv_raw, g.q_scale, dqkv, qkv_raw, w.q_scale, qk_stats, qk_stats + hn, ld, n, H, dh,
                     c.qk);
        QK::backward(dqkv_raw + d, g.k_scale, dqkv + d, qkv_raw + d, w.k_scale, qk_stats + 2 * hn,
                     qk_stats + 3 * hn, ld, n, H, dh, c.qk);
    }

    // ----------------------------------------------------------------------------------------------------
    // Causal attention

    /// Causal multi-head attention of layer l, one (batch, head) pair per iteration: q, k from act::qkv,
    /// v from act::qkv_raw → act::att; caches act::probs (and act::capped with an attention cap).
    template <policy_set P, class T, class Diag>
    void causal_attention_forward(pass_context<P, T, Diag>& c, std::size_t l)
    {
        using AttnCap = typename P::attention_cap;
        using Probs = policies::attention_probs_t<P>;
        static_assert(policies::attention_probs_policy<Probs, T>,
                      "policy set: attention_probs must be an attention-probability policy");
        const std::size_t batch = c.batch, seq = c.seq, d = c.d, H = c.heads, dh = c.head_dim;
        const std::size_t ld = 3 * d, tt = seq * seq;
        const T s = static_cast<T>(P::parameterisation::attention_scale(c.cfg));
        const T* qkv = c.act(act::qkv, l);
        const T* qkv_raw = c.act(act::qkv_raw, l);
        T* probs = c.act(act::probs, l);
        T* capped = AttnCap::active ? c.act(act::capped, l) : nullptr;
        T* att = c.act(act::att, l);
        const double cap = c.cfg.attn_soft_cap;
        const std::ptrdiff_t pairs = static_cast<std::ptrdiff_t>(batch * H);
        if constexpr (Diag::enabled)
        {
            if (c.diag.recording)
            {
                c.diag.head_norms(qkv, ld, batch * seq, H, dh);
            }
        }
        // One chunk per (batch, head) pair, handed out dynamically; each pair writes only its own
        // outputs (and its worker's scratch), so any assignment of pairs to threads gives the same bits.
        const auto pair_body = [&](std::size_t pair, [[maybe_unused]] std::size_t worker)
        {
            const std::ptrdiff_t bh = static_cast<std::ptrdiff_t>(pair);
            const std::size_t bi = static_cast<std::size_t>(bh) / H, h = static_cast<std::size_t>(bh) % H;
            const T* q = qkv + bi * seq * ld + h * dh;
            const T* k = q + d;
            const T* vv = qkv_raw + bi * seq * ld + 2 * d + h * dh;
            T* z = probs + static_cast<std::size_t>(bh) * tt;
            for (std::size_t i0 = 0; i0 < seq; i0 += attention_panel)
            {
                // z[i0:i1, 0:i1] = s·q[i0:i1]·k[0:i1]ᵀ: keys from i1 on are masked for the whole panel.
                const std::size_t i1 = std::min(seq, i0 + attention_panel);
                kernels::gemm(kernels::gemm_layout::nt, i1 - i0, i1, dh, q + i0 * ld, ld, k, ld, T(0),
                              z + i0 * seq, seq);
                for (std::size_t i = i0; i < i1; ++i)
                {
                    kernels::scale(z + i * seq, s, i + 1);
                }
            }
            T* row_max = nullptr;
            T* row_entropy = nullptr;
            if constexpr (Diag::enabled)
            {
                if (c.diag.recording)
                {
                    auto& r = c.diag;
                    row_max = r.row_max.data() + static_cast<std::size_t>(bh) * seq;
                    row_entropy = r.row_entropy.data() + static_cast<std::size_t>(bh) * seq;
                    r.pair_cos[static_cast<std::size_t>(bh)] =
                      r.causal_cosine_sum(z, static_cast<double>(s), r.q_norm.data() + bi * seq * H + h,
                                          r.k_norm.data() + bi * seq * H + h, H, seq);
                }
            }
            if constexpr (AttnCap::active)
            {
                AttnCap::forward(z, tt, cap);
                kernels::copy(capped + static_cast<std::size_t>(bh) * tt, z, tt);
            }
            Probs::forward(z, seq, seq, row_max, row_entropy);
            for (std::size_t i0 = 0; i0 < seq; i0 += attention_panel)
            {
                // o[i0:i1] = P[i0:i1, 0:i1]·v[0:i1] (P is 0 right of the diagonal).
                const std::size_t i1 = std::min(seq, i0 + attention_panel);
                kernels::gemm(kernels::gemm_layout::nn, i1 - i0, dh, i1, z + i0 * seq, seq, vv, ld, T(0),
                              att + (bi * seq + i0) * d + h * dh, d);
            }
        };
        if (pairs > 1 && pairs * seq * seq * dh >= attention_parallel_work)
        {
            parallel_chunks(static_cast<std::size_t>(pairs), pair_body);
        }
        else
        {
            for (std::size_t pair = 0; pair < static_cast<std::size_t>(pairs); ++pair)
            {
                pair_body(pair, 0);
            }
        }
    }

    /// Backward of causal_attention_forward for layer l: act::datt → act::dqkv (q, k blocks, post-RoPE)
    /// and act::dqkv_raw (v block), both overwritten; act::dscratch holds one T×T gradient per thread.
    template <policy_set P, class T, class Diag>
    void causal_attention_backward(pass_context<P, T, Diag>& c, std::size_t l)
    {
        using AttnCap = typename P::attention_cap;
        using Probs = policies::attention_probs_t<P>;
        const std::size_t batch = c.batch, seq = c.seq, d = c.d, H = c.heads, dh = c.head_dim;
        const std::size_t ld = 3 * d, tt = seq * seq;
        const T s = static_cast<T>(P::parameterisation::attention_scale(c.cfg));
        const T* qkv = c.act(act::qkv, l);
        const T* qkv_raw = c.act(act::qkv_raw, l);
        const T* probs = c.act(act::probs, l);
        const T* capped = AttnCap::active ? c.act(act::capped, l) : nullptr;
        const T* datt = c.act(act::datt);
        T* dqkv = c.act(act::dqkv);
        T* dqkv_raw = c.act(act::dqkv_raw);
        T* scratch = c.act(act::dscratch);
        const double cap = c.cfg.attn_soft_cap;
        const std::ptrdiff_t pairs = static_cast<std::ptrdiff_t>(batch * H);
        // One chunk per (batch, head) pair, handed out dynamically; each pair writes only its own
        // outputs (and its worker's scratch), so any assignment of pairs to threads gives the same bits.
        const auto pair_body = [&](std::size_t pair, [[maybe_unused]] std::size_t worker)
        {
            const std::ptrdiff_t bh = static_cast<std::ptrdiff_t>(pair);
            const std::size_t bi = static_cast<std::size_t>(bh) / H, h = static_cast<std::size_t>(bh) % H;
            const std::size_t row0 = bi * seq;
            const T* q = qkv + row0 * ld + h * dh;
            const T* k = q + d;
            const T* vv = qkv_raw + row0 * ld + 2 * d + h * dh;
            const T* prob = probs + static_cast<std::size_t>(bh) * tt;
            const T* dout = datt + row0 * d + h * dh;
            T* dz = scratch + static_cast<std::size_t>(worker) * tt;
            T* dq = dqkv + row0 * ld + h * dh;
            T* dk = dq + d;
            T* dv = dqkv_raw + row0 * ld + 2 * d + h * dh;
            // Only the causal part is computed: row panels [i0, i1) of dP, dQ (columns/keys < i1) and of
            // dV, dK (rows/keys j0 ≤ j < j1 receive from queries i ≥ j0 only).
            for (std::size_t i0 = 0; i0 < seq; i0 += attention_panel)
            {
                const std::size_t i1 = std::min(seq, i0 + attention_panel);
                kernels::gemm(kernels::gemm_layout::nt, i1 - i0, i1, dh, dout + i0 * d, d, vv, ld, T(0),
                              dz + i0 * seq, seq); // dP = dO·Vᵀ
                kernels::gemm(kernels::gemm_layout::tn, i1 - i0, dh, seq - i0, prob + i0 * seq + i0, seq,
                              dout + i0 * d, d, T(0), dv + i0 * ld, ld); // dV = Pᵀ·dO, keys [i0, i1)
            }
            Probs::backward(dz, prob, dz, seq, seq); // zero right of the diagonal
            if constexpr (AttnCap::active)
            {
                AttnCap::backward(dz, capped + static_cast<std::size_t>(bh) * tt, tt, cap);
            }
            for (std::size_t i = 0; i < seq; ++i)
            {
                kernels::scale(dz + i * seq, s, i + 1);
            }
            for (std::size_t i0 = 0; i0 < seq; i0 += attention_panel)
            {
                const std::size_t i1 = std::min(seq, i0 + attention_panel);
                kernels::gemm(kernels::gemm_layout::nn, i1 - i0, dh, i1, dz + i0 * seq, seq, k, ld, T(0),
                              dq + i0 * ld, ld); // dQ = dZ·K
                kernels::gemm(kernels::gemm_layout::tn, i1 - i0, dh, seq - i0, dz + i0 * seq + i0, seq,
                              q + i0 * ld, ld, T(0), dk + i0 * ld, ld); // dK = dZᵀ·Q, keys [i0, i1)
            }
        };
        if (pairs > 1 && pairs * seq * seq * dh >= attention_parallel_work)
        {
            parallel_chunks(static_cast<std::size_t>(pairs), pair_body);
        }
        else
        {
            for (std::size_t pair = 0; pair < static_cast<std::size_t>(pairs); ++pair)
            {
                pair_body(pair, 0);
            }
        }
    }

    // ----------------------------------------------------------------------------------------------------
    // The sublayer

    /// mid = x[l] + attention(norm(x[l])) for block l (caches act::a, act::a_stats, act::qkv_raw, act::qkv,
    /// act::qk_stats, act::probs, act::capped, act::att).
    template <policy_set P, class T, class Diag>
    void attention_forward(pass_context<P, T, Diag>& c, std::size_t l, const block_tensors<const T*>& w)
    {
        constexpr bool bias = P::bias::enabled;
        const std::size_t n = c.n, d = c.d;
        const T* x = c.act(act::res, l);
        T* a = c.act(act::a, l);
        T* a_stats = c.act(act::a_stats, l);
        T* qkv_raw = c.act(act::qkv_raw, l);
        T* mid = c.act(act::mid, l);
        BALLAST_PROFILE_MARK("norm");
        P::norm::forward(a, d, a_stats, a_stats + n, x, d, w.attn_scale, w.attn_bias, n, d, c.eps);
        BALLAST_PROFILE_MARK("attn.proj");
        kernels::gemm(kernels::gemm_layout::nt, n, 3 * d, d, a, d, w.qkv_w, d, T(0), qkv_raw, 3 * d);
        if constexpr (bias)
        {
            add_bias(qkv_raw, w.qkv_b, n, 3 * d);
        }
        BALLAST_PROFILE_MARK("attn.qk_rope");
        qk_rope_forward(c, l, w);
        BALLAST_PROFILE_MARK("attn.core");
        causal_attention_forward(c, l);
        BALLAST_PROFILE_MARK("attn.proj");
        kernels::copy(mid, x, n * d);
        kernels::gemm(kernels::gemm_layout::nt, n, d, d, c.act(act::att, l), d, w.out_w, d, T(1), mid, d);
        if constexpr (bias)
        {
            add_bias(mid, w.out_b, n, d);
        }
    }

    /// Backward of attention_forward: act::dres holds d loss / d mid on entry and d loss / d x[l] on exit.
    /// Overwrites the qkv and out weight gradients (beta-0 GEMMs); accumulates the biases, the norm's and
    /// the q/k scales' gradients.
    template <policy_set P, class T, class Diag>
    void attention_backward(pass_context<P, T, Diag>& c, std::size_t l, const block_tensors<const T*>& w,
                            const block_tensors<T*>& g)
    {
        constexpr bool bias = P::bias::enabled;
        const std::size_t n = c.n, d = c.d;
        T* dres = c.act(act::dres);
        T* dtmp = c.act(act::dtmp);
        T* datt = c.act(act::datt);
        T* dqkv_raw = c.act(act::dqkv_raw);
        const T* x = c.act(act::res, l);
        const T* a = c.act(act::a, l);
        const T* a_stats = c.act(act::a_stats, l);
        BALLAST_PROFILE_MARK("attn.proj");
        kernels::gemm(kernels::gemm_layout::nn, n, d, d, dres, d, w.out_w, d, T(0), datt, d);
        kernels::gemm(kernels::gemm_layout::tn, d, d, n, dres, d, c.act(act::att, l), d, T(0), g.out_w, d);
        if constexpr (bias)
        {
            accumulate_column_sums(g.out_b, dres, n, d);
        }
        BALLAST_PROFILE_MARK("attn.core");
        causal_attention_backward(c, l); // fills dqkv (q, k parts) and dqkv_raw (v part)
        BALLAST_PROFILE_MARK("attn.qk_rope");
        qk_rope_backward(c, l, w, g);
        BALLAST_PROFILE_MARK("attn.proj");
        kernels::gemm(kernels::gemm_layout::tn, 3 * d, d, n, dqkv_raw, 3 * d, a, d, T(0), g.qkv_w, d);
        if constexpr (bias)
        {
            accumulate_column_sums(g.qkv_b, dqkv_raw, n, 3 * d);
        }
        kernels::gemm(kernels::gemm_layout::nn, n, d, 3 * d, dqkv_raw, 3 * d, w.qkv_w, d, T(0), dtmp, d);
        BALLAST_PROFILE_MARK("norm");
        P::norm::backward(dtmp, d, g.attn_scale, g.attn_bias, dtmp, d, x, d, w.attn_scale, a_stats,
                          a_stats + n, n, d);
        BALLAST_PROFILE_MARK("residual");
        kernels::axpy(dres, dtmp, T(1), n * d); // dres = d loss / d x[l]
    }
} // namespace ballast::layers

#endif
