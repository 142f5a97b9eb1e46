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
#include <ballast/kernels/ref/attention.hpp>
#include <ballast/kernels/softmax.hpp>

namespace ballast::kernels
{
    /// Query rows per logit micro-tile (divides attention_row_block).
    inline constexpr std::size_t attention_z_rows = 6;

    /// Key registers per logit micro-tile: attention_z_rows × 2 accumulators (12) + 2 key registers + one
    /// broadcast fit the 16 vector registers of AVX2; AVX-512 has room to spare.
    inline constexpr std::size_t attention_z_regs = 2;

    /// Query rows whose logits, softmax and P·V are computed together (24 rows of T = 256 floats: 24 KiB,
    /// in L1); a multiple of every micro-tile row count used here (12, 8, 6, 4, 3).
    inline constexpr std::size_t attention_row_block = 24;

    namespace detail
    {
        /// Width of a key block of the logit micro-tile, and T rounded up to whole blocks.
        template <class T>
        inline constexpr std::size_t attention_key_block = attention_z_regs* simd::lanes<T>;

        template <class T>
        inline std::size_t attention_padded_len(std::size_t t_len) noexcept
        {
            constexpr std::size_t w = attention_key_block<T>;
            return (t_len + w - 1) / w * w;
        }

        /// Load `count` (1..L) elements; lanes past count are `fill` and memory past p + count is not read.
        /// (load_n's AVX-512 partial path goes through a scalar buffer; this one is one masked load.)
        template <class T>
        inline simd::batch<T> attention_load_part(const T* p, std::size_t count, T fill = T(0)) noexcept
        {
#if defined(__AVX512F__)
            if constexpr (simd::lanes<T> * sizeof(T) == 64)
            {
                if constexpr (sizeof(T) == 4)
                {
                    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill),
                                                static_cast<__mmask16>((1u << count) - 1u), p);
                }
                else
                {
                    return _mm512_mask_loadu_pd(_mm512_set1_pd(fill),
                                                static_cast<__mmask8>((1u << count) - 1u), p);
                }
            }
            else
#endif
            {
                return load_n(p, count, fill);
            }
        }

        /// attention_load_part for a count that is usually a full register.
        template <class T>
        inline simd::batch<T> attention_load(const T* p, std::size_t count, T fill = T(0)) noexcept
        {
            return count == simd::lanes<T> ? simd::batch<T>::load_unaligned(p)
                                           : attention_load_part(p, count, fill);
        }

        /// Store the first `count` (1..L) lanes; memory past p + count is untouched.
        template <class T>
        inline void attention_store_part(T* p, std::size_t count, const simd::batch<T>& x) noexcept
        {
#if defined(__AVX512F__)
            if constexpr (simd::lanes<T> * sizeof(T) == 64)
            {
                if constexpr (sizeof(T) == 4)
                {
                    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << count) - 1u), x);
                }
                else
                {
                    _mm512_mask_storeu_pd(p, static_cast<__mmask8>((1u << count) - 1u), x);
                }
            }
            else
#endif
            {
                store_n(p, count, x);
            }
        }

        /// attention_store_part for a count that is usually a full register.
        template <class T>
        inline void attention_store(T* p, std::size_t count, const simd::batch<T>& x) noexcept
        {
            if (count == simd::lanes<T>)
            {
                x.store_unaligned(p);
            }
            else
            {
                attention_store_part(p, count, x);
            }
        }

        /// Causal softmax of one row in place (cols = i + 1 entries), with the optional diagnostics: the
        /// arithmetic of softmax.hpp's detail::softmax_row operation for operation (the same max, the same
        /// blocked_sum order of the exp sum, the same entropy accumulation and 1/Σ normalisation; padding
        /// lanes load −∞), with masked partial registers. The composed-path test pins the bits.
        template <class T>
        inline void attention_softmax_row(T* row, std::size_t cols, T* max_out, T* entropy_out)
        {
            using B = simd::batch<T>;
            constexpr T ninf = -std::numeric_limits<T>::infinity();
            B mxv(ninf);
            auto nan = xsimd::isnan(mxv);
            for_each_batch<T>(0, cols,
                              [&](std::size_t i, std::size_t k)
                              {
                                  const B x = attention_load(row + i, k, ninf);
                                  mxv = xsimd::max(mxv, x);
                                  nan = nan || xsimd::isnan(x);
                              });
            const T m = xsimd::any(nan) ? std::numeric_limits<T>::quiet_NaN() : simd::reduce_max(mxv);
            const B mx(m);
            B ez(T(0));
            const double sum = blocked_sum<T, false>(cols,
                                                     [&](std::size_t i, std::size_t k)
                                                     {
                                                         const B z = attention_load(row + i, k, ninf) - mx;
                                                         const B e = xsimd::exp(z);
                                                         if (entropy_out)
                                                         {
                                                             ez += xsimd::select(e > B(T(0)), e * z, B(T(0)));
                                                         }
                                                         attention_store(row + i, k, e);
                                                         return e;
                                                     });
            if (max_out)
            {
                *max_out = m;
            }
            if (entropy_out)
            {
                *entropy_out =
                  static_cast<T>(std::log(sum) - static_cast<double>(simd::reduce_add(ez)) / sum);
            }
            const B inv(static_cast<T>(1.0 / sum));
            for_each_batch<T>(0, cols,
                              [&](std::size_t i, std::size_t k)
                              { attention_store(row + i, k, attention_load(row + i, k) * inv); });
        }

        /// kt[c·ldt + j] = k[j·ld + c] for j < t_len, 0 for t_len <= j < ldt (c < d). In blocks of 16 rows
        /// of k (a few KiB, in L1) written as 16-element runs of kt: a plain column-by-column gather walks
        /// all T strided rows once per c and took ~40% of the T = 256, d = 64 forward.
        template <class T>
        inline void attention_transpose(T* kt, std::size_t ldt, const T* k, std::size_t ld, std::size_t t_len,
                                        std::size_t d)
        {
            constexpr std::size_t J = 16;
            for (std::size_t j0 = 0; j0 < t_len; j0 += J)
            {
                const std::size_t jn = std::min(J, t_len - j0);
                const T* src = k + j0 * ld;
                for (std::size_t c = 0; c < d; ++c)
                {
                    T* dst = kt + c * ldt + j0;
                    for (std::size_t jj = 0; jj < jn; ++jj)
                    {
                        dst[jj] = src[jj * ld + c];
                    }
                }
            }
            for (std::size_t c = 0; c < d; ++c)
            {
                std::fill(kt + c * ldt + t_len, kt + (c + 1) * ldt, T(0));
            }
        }

        /// Logit-type micro-tile: for rows r < m (m <= R) and columns [j, j + min(ncols, NB·L)):
        /// out[r·ldo + j + x] = epi(Σ_c a[r·lda + c]·bt[c·ldb + j + x]) (one FMA chain over c from 0).
        /// bt must hold NB·L readable columns from j (zero-padded); rows r >= m are computed from row 0
        /// and discarded.
        template <class T, std::size_t R, std::size_t NB, class Epi>
        inline void attention_z_tile(T* out, std::size_t ldo, const T* a, std::size_t lda, std::size_t m,
                                     const T* bt, std::size_t ldb, std::size_t d, std::size_t ncols,
                                     const Epi& epi)
        {
            using B = simd::batch<T>;
            constexpr std::size_t L = simd::lanes<T>;
            const T* ar[R];
#pragma GCC unroll 12
            for (std::size_t r = 0; r < R; ++r)
            {
                ar[r] = a + (r < m ? r : 0) * lda;
            }
            B acc[R][NB];
#pragma GCC unroll 12
            for (std::size_t r = 0; r < R; ++r)
            {
#pragma GCC unroll 4
                for (std::size_t b = 0; b < NB; ++b)
                {
                    acc[r][b] = B(T(0));
                }
            }
#pragma GCC unroll 2
            for (std::size_t c = 0; c < d; ++c)
            {
                B bv[NB];
#pragma GCC unroll 4
                for (std::size_t b = 0; b < NB; ++b)
                {
                    bv[b] = B::load_unaligned(bt + c * ldb + b * L);
                }
#pragma GCC unroll 12
                for (std::size_t r = 0; r < R; ++r)
                {
                    const B av(ar[r][c]);
#pragma GCC unroll 4
                    for (std::size_t b = 0; b < NB; ++b)
                    {
                        acc[r][b] = xsimd::fma(av, bv[b], acc[r][b]);
                    }
                }
            }
#pragma GCC unroll 12
            for (std::size_t r = 0; r < R; ++r)
            {
                if (r < m)
                {
#pragma GCC unroll 4
                    for (std::size_t b = 0; b < NB; ++b)
                    {
                        const std::size_t col = b * L;
                        if (col + L <= ncols)
                        {
                            epi(acc[r][b]).store_unaligned(out + r * ldo + col);
                        }
                        else if (col < ncols)
                        {
                            attention_store_part(out + r * ldo + col, ncols - col, epi(acc[r][b]));
                        }
                    }
                }
            }
        }

        /// Logits (or dP) of query rows [i0, i1) against keys [0, i_end) of each row tile, i_end the tile's
        /// last row + 1 rounded up to a key block and clipped to t_len: out rows (stride ldo) get
        /// epi(a_i · bt_j). Entries right of a row's diagonal are computed too (for the caller to ignore).
        template <class T, class Epi>
        inline void attention_z_rows_block(T* out, std::size_t ldo, const T* a, std::size_t lda,
                                           std::size_t i0, std::size_t i1, const T* bt, std::size_t ldb,
                                           std::size_t d, std::size_t t_len, const Epi& epi)
        {
            constexpr std::size_t R = attention_z_rows;
            constexpr std::size_t W = attention_key_block<T>;
            for (std::size_t r0 = i0; r0 < i1; r0 += R)
            {
                const std::size_t m = std::min(R, i1 - r0);
                const std::size_t keys = r0 + m; // keys 0..r0+m−1 are causal for some row of the tile
                for (std::size_t j = 0; j < keys; j += W)
                {
                    attention_z_tile<T, R, attention_z_regs>(out + (r0 - i0) * ldo + j, ldo, a + r0 * lda,
                                                             lda, m, bt + j, ldb, d, std::min(W, t_len - j),
                                                             epi);
                }
            }
        }

        /// Rows per triangle micro-kernel for CV registers of the head dimension: about 12 (16 vector
        /// registers) or 24 (32, AVX-512) accumulators, at most 12 rows, dividing attention_row_block.
        template <class T>
        inline constexpr std::size_t attention_tri_rows(std::size_t cv) noexcept
        {
            constexpr bool wide = simd::lanes<T> * sizeof(T) == 64;
            switch (cv)
            {
                case 1:
                    return 12;
                case 2:
                    return wide ? 12 : 6;
                case 3:
                    return wide ? 8 : 4;
                default:
                    return wide ? 6 : 3;
            }
        }

        /// The two triangular products, over CV registers [col, col + CV·L) of the head dimension
        /// (the last one `last` lanes wide when Part):
        ///   Lower (P·V, dZ·K): rows i = i0 + r (r < m): out_i = Σ_{j=0..i} a[i·lda + j]·b_j
        ///   Upper (Pᵀ·dO, dZᵀ·Q): keys j = i0 + r (r < m): out_j = Σ_{i=j..n−1} a[i·lda + j]·b_i
        /// one FMA chain per output in increasing summation index from +0; b_x = b + x·ldb + col.
        template <class T, std::size_t R, std::size_t CV, bool Part, bool Upper>
        inline void attention_tri_tile(T* out, std::size_t ldo, const T* a, std::size_t lda, const T* b,
                                       std::size_t ldb, std::size_t i0, std::size_t m, std::size_t n,
                                       std::size_t last)
        {
            using B = simd::batch<T>;
            constexpr std::size_t L = simd::lanes<T>;
            B acc[R][CV];
#pragma GCC unroll 12
            for (std::size_t r = 0; r < R; ++r)
            {
#pragma GCC unroll 4
                for (std::size_t v = 0; v < CV; ++v)
                {
                    acc[r][v] = B(T(0));
                }
            }
            const auto load_b = [&](const T* p, B* bv)
            {
#pragma GCC unroll 4
                for (std::size_t v = 0; v < CV; ++v)
                {
                    if constexpr (Part)
                    {
                        bv[v] =
                          v + 1 == CV ? attention_load_part(p + v * L, last) : B::load_unaligned(p + v * L);
                    }
                    else
                    {
                        bv[v] = B::load_unaligned(p + v * L);
                    }
                }
            };
            const auto fma_row = [&](std::size_t r, T x, const B* bv)
            {
                const B av(x);
#pragma GCC unroll 4
                for (std::size_t v = 0; v < CV; ++v)
                {
                    acc[r][v] = xsimd::fma(av, bv[v], acc[r][v]);
                }
            };
            const std::size_t diag_end = std::min(i0 + R, n);
            if constexpr (!Upper)
            {
                const T* ar[R]; // rows past m repeat row i0 (computed, discarded)
#pragma GCC unroll 12
                for (std::size_t r = 0; r < R; ++r)
                {
                    ar[r] = a + (i0 + (r < m ? r : 0)) * lda;
                }
                for (std::size_t j = 0; j < i0; ++j)
                {
                    B bv[CV];
                    load_b(b + j * ldb, bv);
#pragma GCC unroll 12
                    for (std::size_t r = 0; r < R; ++r)
                    {
                        fma_row(r, ar[r][j], bv);
                    }
                }
                for (std::size_t j = i0; j < diag_end; ++j) // diagonal block: row r takes j <= i0 + r
                {
                    B bv[CV];
                    load_b(b + j * ldb, bv);
#pragma GCC unroll 12
                    for (std::size_t r = 0; r < R; ++r)
                    {
                        if (i0 + r >= j)
                        {
                            fma_row(r, ar[r][j], bv);
                        }
                    }
                }
            }
            else
            {
                for (std::size_t i = i0; i < diag_end; ++i) // diagonal block: key r takes i >= i0 + r
                {
                    B bv[CV];
                    load_b(b + i * ldb, bv);
                    const T* ai = a + i * lda + i0;
#pragma GCC unroll 12
                    for (std::size_t r = 0; r < R; ++r)
                    {
                        if (i0 + r <= i)
                        {
                            fma_row(r, ai[r], bv);
                        }
                    }
                }
                for (std::size_t i = diag_end; i < n; ++i) // here m = R (the tile ends before n)
                {
                    B bv[CV];
                    load_b(b + i * ldb, bv);
                    const T* ai = a + i * lda + i0;
#pragma GCC unroll 12
                    for (std::size_t r = 0; r < R; ++r)
                    {
                        fma_row(r, ai[r], bv);
                    }
                }
            }
#pragma GCC unroll 12
            for (std::size_t r = 0; r < R; ++r)
            {
                if (r < m)
                {
                    T* o = out + (i0 + r) * ldo;
#pragma GCC unroll 4
                    for (std::size_t v = 0; v < CV; ++v)
                    {
                        if (Part && v + 1 == CV)
                        {
                            attention_store_part(o + v * L, last, acc[r][v]);
                        }
                        else
                        {
                            acc[r][v].store_unaligned(o + v * L);
                        }
                    }
                }
            }
        }

        /// Rows (Lower) or keys (Upper) [i0, i1) of a triangular product over the whole head dimension d,
        /// in column groups of up to 4 registers (one micro-kernel shape per group).
        template <class T, bool Upper>
        inline void attention_tri(T* out, std::size_t ldo, const T* a, std::size_t lda, const T* b,
                                  std::size_t ldb, std::size_t i0, std::size_t i1, std::size_t n,
                                  std::size_t d)
        {
            constexpr std::size_t L = simd::lanes<T>;
            const std::size_t regs = (d + L - 1) / L;
            const std::size_t tail = d - (regs - 1) * L; // lanes of the last register, 1..L
            for (std::size_t g = 0; g < regs; g += 4)
            {
                const std::size_t cv = std::min<std::size_t>(4, regs - g);
                const bool part = g + cv == regs && tail != L;
                const std::size_t col = g * L;
                const auto run = [&]<std::size_t CV, bool Part>()
                {
                    constexpr std::size_t R = attention_tri_rows<T>(CV);
                    for (std::size_t r0 = i0; r0 < i1; r0 += R)
                    {
                        attention_tri_tile<T, R, CV, Part, Upper>(out + col, ldo, a, lda, b + col, ldb, r0,
                                                                  std::min(R, i1 - r0), n, tail);
                    }
                };
                const auto pick = [&]<std::size_t CV>()
                {
                    if (part)
                    {
                        run.template operator()<CV, true>();
                    }
                    else
                    {
                        run.template operator()<CV, false>();
                    }
                };
                switch (cv)
                {
                    case 1:
                        pick.template operator()<1>();
                        break;
                    case 2:
                        pick.template operator()<2>();
                        break;
                    case 3:
                        pick.template operator()<3>();
                        break;
                    default:
                        pick.template operator()<4>();
                        break;
                }
            }
        }

        /// The scale-and-cap epilogue of the logits: z·s, then c·tanh(z·(1/c)) when capped (the exact
        /// operations of kernels::scale and soft_cap_forward).
        template <class T, bool Cap>
        struct attention_logit_epilogue
        {
            simd::batch<T> s, c, inv;
            simd::batch<T> operator()(const simd::batch<T>& acc) const
            {
                const simd::batch<T> z = s * acc;
                if constexpr (Cap)
                {
                    return c * xsimd::tanh(z * inv);
                }
                else
                {
                    return z;
                }
            }
        };

        /// Identity epilogue (dP).
        template <class T>
        struct attention_no_epilogue
        {
            const simd::batch<T>& operator()(const simd::batch<T>& acc) const { return acc; }
        };

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
