#ifndef BALLAST_KERNELS_ATTENTION_TILES_HPP
#define BALLAST_KERNELS_ATTENTION_TILES_HPP

/// @file
/// The building blocks of the fused attention kernel (kernels/attention.hpp, which documents the
/// arithmetic and the blocking): the tile sizes, partial loads and stores, the causal softmax of one row,
/// the key transpose, the register-blocked logit micro-tile and its row blocks, the two triangular
/// products (P·V and dQ; dV and dK) and the logit epilogues. All in `detail`: the public kernels and
/// their scalar twins are in attention.hpp and ref/attention.hpp.

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

    } // namespace detail
} // namespace ballast::kernels

#endif
