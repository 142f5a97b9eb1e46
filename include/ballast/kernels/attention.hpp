#ifndef BALLAST_KERNELS_ATTENTION_HPP
#define BALLAST_KERNELS_ATTENTION_HPP

/// @file
/// Fused causal attention for one (batch, head) pair at short contexts (SIMD): the logits, the optional
/// tanh soft cap, the causal softmax (with the per-row max-logit and entropy diagnostics) and P·V in one
/// kernel, and its backward. The T × T probabilities are kept (backward and diagnostics need them); no
/// flash-style running max.
///
/// Dims legend: T = shape.t_len (queries = keys), d = shape.head_dim. q, k, v, dq, dk, dv: T × d, row
/// stride shape.ld_qkv (they sit inside the model's [N, 3·d_model] qkv buffers); out, dout: T × d, row
/// stride shape.ld_o; probs: T × T, contiguous (row stride T). L = SIMD lanes of T. Pointers need no
/// alignment. Calling convention (docs/architecture.md): outputs, caches, workspace, inputs, scalars, dims.
///
/// Forward, per query row i:  z_ij = s·(q_i·k_j) for j <= i;  y = c·tanh(z·(1/c)) if c > 0, else z;
/// P_i = softmax(y_i[0..i]) (the arithmetic of kernels/softmax.hpp's detail::softmax_row);
/// out_i = Σ_{j<=i} P_ij·v_j.
/// Backward: dv_j = Σ_{i>=j} P_ij·dout_i;  dP_ij = dout_i·v_j;  dy_i = P_i ⊙ (dP_i − Σ_j dP_ij·P_ij)
/// (detail::softmax_backward_row's arithmetic);  dz = dy ⊙ (1 − (y/c)²) with y recomputed from q, k
/// exactly as in the forward (c > 0);  dz ← s·dz;  dq_i = Σ_{j<=i} dz_ij·k_j;  dk_j = Σ_{i>=j} dz_ij·q_i.
/// Gradients dq, dk, dv are OVERWRITTEN (activation gradients, like the rest of the attention block).
///
/// Order of operations (fixed; nothing depends on the thread count, alignment or position in a tile):
///   - every dot product over the head dimension (z_ij, dP_ij) is one FMA chain over c = 0..d−1 in
///     increasing order starting from +0 in T; z is then rounded once more by ·s, and by the cap
///     (t = z·(1/c) rounded, tanh = xsimd::tanh, then c·tanh rounded);
///   - every sum over keys (out_i, dq_i) is one FMA chain over j = 0..i in increasing order from +0 in T;
///   - every sum over queries (dv_j, dk_j) is one FMA chain over i = j..T−1 in increasing order from +0;
///   - the softmax's Σ exp and entropy, and the backward's Σ dP·P, are the row reductions of softmax.hpp
///     (4 SIMD accumulators round-robin over consecutive registers of the row, reduce_add, promoted to
///     double; reduce.hpp), over the i + 1 causal entries of the row; the row max is exact (any order;
///     NaN if the row has a NaN);
///   - backward elementwise: dy = P·(dP − σ) (σ rounded to T), then dy·fnma(t, t, 1) with t = y·(1/c),
///     then ·s, each rounded in T.
/// Masked (future) entries are never read: a NaN or Inf in k_j or v_j changes rows i >= j only. A NaN
/// anywhere in row i's logits makes P_i, out_i and the diagnostics of row i NaN.
///
/// Relation to the composed path (GEMM + scale + soft_cap_forward + softmax_causal_forward + GEMM, as in
/// model/attention.hpp): the GEMM computes every element as one FMA chain over k in increasing order
/// starting from 0 per K block of gemm_blocking::kc = 256, and the terms the composed path adds beyond the
/// causal diagonal are exact zeros. So for finite inputs, T <= 256 and (with a cap) T·T a multiple of L
/// (soft_cap_forward/backward then take no scalar tail), both paths give bit-identical results; the tests
/// check it. For T > 256 each chain here is one chain where the GEMM rounds once per 256 terms.
///
/// Blocking: the keys of a pair are transposed once into the workspace (kᵀ: d × T_pad, zero-padded to a
/// whole key block), so the logits are a register-blocked micro-kernel (attention_z_rows query rows ×
/// attention_z_regs registers of keys, broadcasting q) with no per-panel packing; rows are processed in
/// blocks of attention_row_block queries whose logits, softmax and P·V stay in L1. P·V and dQ broadcast P
/// (dZ) and load rows of v (k) over d; dV and dK broadcast a row segment of Pᵀ (dZᵀ). Nothing is threaded
/// inside a call (the model runs pairs in parallel), so results are the same for any thread count.
///
/// With `BALLAST_FORCE_SCALAR` every public kernel forwards to its twin in `ballast::kernels::ref`.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>

#include <ballast/core/config.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/core/xsimd.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/kernels/attention_tiles.hpp>
#include <ballast/kernels/ref/attention.hpp>
#include <ballast/kernels/softmax.hpp>

namespace ballast::kernels
{
    namespace detail
    {
        template <class T, bool Cap>
        inline void attention_forward_impl(T* out, T* probs, const attention_diagnostics<T>& diag, T* scratch,
                                           const T* q, const T* k, const T* v, T scale, double soft_cap,
                                           const attention_shape& sh)
        {
            using B = simd::batch<T>;
            const std::size_t n = sh.t_len, d = sh.head_dim, ld = sh.ld_qkv;
            const std::size_t tp = attention_padded_len<T>(n);
            T* kt = scratch;
            attention_transpose(kt, tp, k, ld, n, d);
            const attention_logit_epilogue<T, Cap> epi{ B(scale), B(static_cast<T>(soft_cap)),
                                                        B(static_cast<T>(Cap ? 1.0 / soft_cap : 1.0)) };
            for (std::size_t i0 = 0; i0 < n; i0 += attention_row_block)
            {
                const std::size_t i1 = std::min(n, i0 + attention_row_block);
                if (diag.logits)
                {
                    // Pre-cap logits requested: store s·q·kᵀ there, then cap them into P (the same
                    // roundings as the fused epilogue, so P does not depend on whether logits are kept).
                    attention_z_rows_block(diag.logits + i0 * n, n, q, ld, i0, i1, kt, tp, d, n,
                                           attention_logit_epilogue<T, false>{ epi.s, epi.c, epi.inv });
                    for (std::size_t i = i0; i < i1; ++i)
                    {
                        T* z = diag.logits + i * n;
                        T* p = probs + i * n;
                        for_each_batch<T>(0, i + 1,
                                          [&](std::size_t j, std::size_t cnt)
                                          {
                                              const B x = attention_load(z + j, cnt);
                                              attention_store(p + j, cnt,
                                                              Cap ? epi.c * xsimd::tanh(x * epi.inv) : x);
                                          });
                        std::fill(z + i + 1, z + n, T(0));
                    }
                }
                else
                {
                    attention_z_rows_block(probs + i0 * n, n, q, ld, i0, i1, kt, tp, d, n, epi);
                }
                for (std::size_t i = i0; i < i1; ++i)
                {
                    T* p = probs + i * n;
                    attention_softmax_row(p, i + 1, diag.row_max ? diag.row_max + i : nullptr,
                                          diag.row_entropy ? diag.row_entropy + i : nullptr);
                    std::fill(p + i + 1, p + n, T(0));
                }
                attention_tri<T, false>(out, sh.ld_o, probs, n, v, ld, i0, i1, n, d);
            }
        }

        template <class T, bool Cap>
        inline void attention_backward_impl(T* dq, T* dk, T* dv, T* scratch, const T* dout, const T* probs,
                                            const T* q, const T* k, const T* v, T scale, double soft_cap,
                                            const attention_shape& sh)
        {
            using B = simd::batch<T>;
            const std::size_t n = sh.t_len, d = sh.head_dim, ld = sh.ld_qkv, ldo = sh.ld_o;
            const std::size_t tp = attention_padded_len<T>(n);
            T* dz = scratch;     // T × T
            T* vt = dz + n * n;  // d × tp
            T* kt = vt + d * tp; // d × tp (cap only)
            T* yb = kt + d * tp; // attention_row_block × T (cap only)
            attention_transpose(vt, tp, v, ld, n, d);
            if constexpr (Cap)
            {
                attention_transpose(kt, tp, k, ld, n, d);
            }
            const attention_logit_epilogue<T, Cap> epi{ B(scale), B(static_cast<T>(soft_cap)),
                                                        B(static_cast<T>(Cap ? 1.0 / soft_cap : 1.0)) };
            const B sb(scale), one(T(1));
            for (std::size_t i0 = 0; i0 < n; i0 += attention_row_block)
            {
                const std::size_t i1 = std::min(n, i0 + attention_row_block);
                attention_z_rows_block(dz + i0 * n, n, dout, ldo, i0, i1, vt, tp, d, n,
                                       attention_no_epilogue<T>{}); // dP = dO·Vᵀ
                if constexpr (Cap)
                {
                    attention_z_rows_block(yb, n, q, ld, i0, i1, kt, tp, d, n, epi); // y, as in the forward
                }
                for (std::size_t i = i0; i < i1; ++i)
                {
                    // softmax backward (detail::softmax_backward_row's arithmetic: σ = blocked_sum of
                    // dP·P, rounded to T; dy = P·(dP − σ)), then the cap factor and the scale, one pass.
                    T* g = dz + i * n;
                    const T* pr = probs + i * n;
                    const T* y = yb + (i - i0) * n;
                    const B sigma(static_cast<T>(blocked_sum<T, false>(
                      i + 1, [&](std::size_t j, std::size_t cnt)
                      { return attention_load(g + j, cnt) * attention_load(pr + j, cnt); })));
                    for_each_batch<T>(0, i + 1,
                                      [&](std::size_t j, std::size_t cnt)
                                      {
                                          B x = attention_load(pr + j, cnt) *
                                                (attention_load(g + j, cnt) - sigma);
                                          if constexpr (Cap)
                                          {
                                              const B t = attention_load(y + j, cnt) * epi.inv;
                                              x = x * xsimd::fnma(t, t, one);
                                          }
                                          attention_store(g + j, cnt, sb * x);
                                      });
                }
                attention_tri<T, false>(dq, ld, dz, n, k, ld, i0, i1, n, d); // dQ = dZ·K
            }
            attention_tri<T, true>(dv, ld, probs, n, dout, ldo, 0, n, n, d); // dV = Pᵀ·dO
            attention_tri<T, true>(dk, ld, dz, n, q, ld, 0, n, n, d);        // dK = dZᵀ·Q
        }
    } // namespace detail

    /// Workspace (elements of T) attention_forward needs for `shape`: kᵀ, d × T rounded up to a key block.
    template <class T>
    inline std::size_t attention_forward_scratch(const attention_shape& sh) noexcept
    {
        return sh.head_dim * detail::attention_padded_len<T>(sh.t_len);
    }

    /// Workspace (elements of T) attention_backward needs for `shape`: dZ (T × T), vᵀ and kᵀ
    /// (d × T rounded up each) and the recomputed capped logits of one row block (attention_row_block × T).
    template <class T>
    inline std::size_t attention_backward_scratch(const attention_shape& sh) noexcept
    {
        return sh.t_len * sh.t_len + 2 * attention_forward_scratch<T>(sh) + attention_row_block * sh.t_len;
    }

    /// Fused causal attention forward of one (batch, head) pair.
    /// Outputs: out (T × d, stride ld_o, OVERWRITTEN) = softmax(cap(s·q·kᵀ))·v over the causal part.
    /// Caches: probs (T × T contiguous, OVERWRITTEN): the probabilities, exact zeros right of the diagonal,
    /// for attention_backward. Diagnostics (attention_diagnostics, each pointer nullptr to skip): row_max,
    /// row_entropy per query, and the pre-cap logits (T × T, zero right of the diagonal); keeping the logits
    /// costs one extra pass over them and changes no other output. Workspace: scratch,
    /// attention_forward_scratch elements, clobbered. Inputs: q, k, v (T × d, stride ld_qkv). Scalars:
    /// scale s (T), soft_cap c (0: no cap; else y = c·tanh(z/c)). No buffer may overlap another. Serial.
    template <class T>
    inline void attention_forward(T* out, T* probs,
                                  const attention_diagnostics<std::type_identity_t<T>>& diag,
                                  std::type_identity_t<T>* scratch, const T* q, const T* k, const T* v,
                                  T scale, double soft_cap, const attention_shape& shape)
    {
        static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                      "attention supports float and double");
        if constexpr (simd::force_scalar)
        {
            ref::attention_forward(out, probs, diag, scratch, q, k, v, scale, soft_cap, shape);
        }
        else
        {
            detail::attention_check("attention_forward", shape, soft_cap);
            if (shape.t_len == 0)
            {
                return;
            }
            BALLAST_CHECK(scratch != nullptr, "attention_forward", "scratch is null (needs ",
                          attention_forward_scratch<T>(shape), " elements)");
            if (soft_cap > 0)
            {
                detail::attention_forward_impl<T, true>(out, probs, diag, scratch, q, k, v, scale, soft_cap,
                                                        shape);
            }
            else
            {
                detail::attention_forward_impl<T, false>(out, probs, diag, scratch, q, k, v, scale, soft_cap,
                                                         shape);
            }
        }
    }

    /// Backward of attention_forward for one pair: dq, dk, dv (T × d, stride ld_qkv, OVERWRITTEN) from
    /// dout (T × d, stride ld_o), the forward's probs cache and its inputs q, k, v, scale and soft_cap (the
    /// capped logits are recomputed from q and k, bit-identical to the forward's). Workspace: scratch,
    /// attention_backward_scratch elements (per thread), clobbered. No buffer may overlap another. Serial.
    template <class T>
    inline void attention_backward(T* dq, T* dk, T* dv, std::type_identity_t<T>* scratch, const T* dout,
                                   const T* probs, const T* q, const T* k, const T* v, T scale,
                                   double soft_cap, const attention_shape& shape)
    {
        static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                      "attention supports float and double");
        if constexpr (simd::force_scalar)
        {
            ref::attention_backward(dq, dk, dv, scratch, dout, probs, q, k, v, scale, soft_cap, shape);
        }
        else
        {
            detail::attention_check("attention_backward", shape, soft_cap);
            if (shape.t_len == 0)
            {
                return;
            }
            BALLAST_CHECK(scratch != nullptr, "attention_backward", "scratch is null (needs ",
                          attention_backward_scratch<T>(shape), " elements)");
            if (soft_cap > 0)
            {
                detail::attention_backward_impl<T, true>(dq, dk, dv, scratch, dout, probs, q, k, v, scale,
                                                         soft_cap, shape);
            }
            else
            {
                detail::attention_backward_impl<T, false>(dq, dk, dv, scratch, dout, probs, q, k, v, scale,
                                                          soft_cap, shape);
            }
        }
    }
} // namespace ballast::kernels

#endif
