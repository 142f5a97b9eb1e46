#ifndef BALLAST_KERNELS_NORM_ROWS_HPP
#define BALLAST_KERNELS_NORM_ROWS_HPP

/// @file
/// The row kernels behind kernels/norm.hpp (which documents the arithmetic): the SIMD forward and
/// backward of LayerNorm and RMSNorm over one block of rows, and the row block size. All in `detail`;
/// the public kernels and their scalar twins are in norm.hpp and ref/norm.hpp.

#include <cmath>
#include <cstddef>
#include <type_traits>

#include <ballast/core/aligned.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/kernels/ref/norm.hpp>

namespace ballast::kernels
{
    /// Rows per parallel chunk and per parameter-gradient partial. Small enough that 2048 rows give 64
    /// chunks to balance, large enough that a chunk of 128-wide rows (16 KiB of float) outweighs the
    /// scheduling cost. Part of the numerical contract: changing it changes dgain/dbias rounding.
    inline constexpr std::size_t norm_row_block = 32;

    namespace detail
    {
        /// Rejects element types the SIMD kernels are not written for.
        template <class T>
        inline constexpr bool norm_is_simd_real = std::is_same_v<T, float> || std::is_same_v<T, double>;

        /// Calls f(std::bool_constant<a>, std::bool_constant<b>): hoists nullptr tests out of inner loops.
        template <class F>
        inline void norm_dispatch_flags(bool a, bool b, F&& f)
        {
            if (a)
            {
                if (b)
                {
                    f(std::true_type{}, std::true_type{});
                }
                else
                {
                    f(std::true_type{}, std::false_type{});
                }
            }
            else
            {
                if (b)
                {
                    f(std::false_type{}, std::true_type{});
                }
                else
                {
                    f(std::false_type{}, std::false_type{});
                }
            }
        }

        /// Number of independent accumulators in row reductions: the FP add latency (3 cycles on Zen3)
        /// times the 2 add ports is ~6 registers in flight; 4 gets most of it with little tail overhead.
        inline constexpr std::size_t norm_row_unroll = 4;

        /// sum_{j < n} term(j), where `vterm(j)` returns the batch of terms j..j+lanes-1 and `sterm(j)` one
        /// term. Fixed order: `norm_row_unroll` lane accumulators over whole groups, then one over the
        /// remaining whole batches, summed pairwise, reduced across lanes, then the scalar tail.
        template <class T, class VTerm, class STerm>
        inline T norm_row_reduce(std::size_t n, VTerm&& vterm, STerm&& sterm)
        {
            using batch = simd::batch<T>;
            constexpr std::size_t w = simd::lanes<T>;
            batch acc[norm_row_unroll];
            for (auto& a : acc)
            {
                a = batch(T(0));
            }
            std::size_t j = 0;
            for (; j + norm_row_unroll * w <= n; j += norm_row_unroll * w)
            {
                for (std::size_t u = 0; u < norm_row_unroll; ++u)
                {
                    acc[u] += vterm(j + u * w);
                }
            }
            for (; j + w <= n; j += w)
            {
                acc[0] += vterm(j);
            }
            T s = simd::reduce_add((acc[0] + acc[1]) + (acc[2] + acc[3]));
            T tail = T(0);
            for (; j < n; ++j)
            {
                tail += sterm(j);
            }
            return s + tail;
        }
        static_assert(norm_row_unroll == 4, "norm_row_reduce sums exactly four accumulators");

        /// Elementwise loop j in [0, n): `vbody(j)` on whole batches, `sbody(j)` on the scalar tail.
        template <class T, class VBody, class SBody>
        inline void norm_row_for(std::size_t n, VBody&& vbody, SBody&& sbody)
        {
            constexpr std::size_t w = simd::lanes<T>;
            std::size_t j = 0;
            for (; j + w <= n; j += w)
            {
                vbody(j);
            }
            for (; j < n; ++j)
            {
                sbody(j);
            }
        }

        /// Parameter-gradient partials of one row block: [2][stride] (dgain part, then dbias part),
        /// stride = cols rounded up to whole registers so every partial row starts aligned.
        template <class T>
        inline std::size_t norm_partial_stride(std::size_t cols)
        {
            constexpr std::size_t w = simd::lanes<T>;
            return (cols + w - 1) / w * w;
        }

        /// dparam[j] += sum over blocks b (in block order) of partial[b*block_stride + j].
        template <class T>
        inline void norm_combine_partials(T* dparam, const T* partial, std::size_t blocks,
                                          std::size_t block_stride, std::size_t cols)
        {
            using batch = simd::batch<T>;
            norm_row_for<T>(
              cols,
              [&](std::size_t j)
              {
                  batch acc = batch::load_aligned(partial + j);
                  for (std::size_t b = 1; b < blocks; ++b)
                  {
                      acc += batch::load_aligned(partial + b * block_stride + j);
                  }
                  (batch::load_unaligned(dparam + j) + acc).store_unaligned(dparam + j);
              },
              [&](std::size_t j)
              {
                  T acc = partial[j];
                  for (std::size_t b = 1; b < blocks; ++b)
                  {
                      acc += partial[b * block_stride + j];
                  }
                  dparam[j] += acc;
              });
        }

        // The per-row functions are deliberately not inlined: parallel_for calls its body from a serial
        // and from an OpenMP path, and two inlined copies could be contracted (mul+add -> FMA) differently
        // by the compiler. One out-of-line copy per instantiation makes every row's arithmetic identical
        // whichever thread runs it. The call costs nanoseconds against a row's hundreds.

        /// One row of LayerNorm forward.
        template <class T, bool HasGain, bool HasBias>
        [[gnu::noinline]] inline void layer_norm_forward_row(T* y, T* mean, T* rstd, const T* x,
                                                             const T* gain, const T* bias, std::size_t cols,
                                                             T eps)
        {
            using batch = simd::batch<T>;
            const T n = static_cast<T>(cols);
            const T mu = norm_row_reduce<T>(
                           cols, [&](std::size_t j) { return batch::load_unaligned(x + j); },
                           [&](std::size_t j) { return x[j]; }) /
                         n;
            const batch vmu(mu);
            const T ss = norm_row_reduce<T>(
              cols,
              [&](std::size_t j)
              {
                  const batch d = batch::load_unaligned(x + j) - vmu;
                  return d * d;
              },
              [&](std::size_t j)
              {
                  const T d = x[j] - mu;
                  return d * d;
              });
            const T rs = T(1) / std::sqrt(ss / n + eps);
            const batch vrs(rs);
            norm_row_for<T>(
              cols,
              [&](std::size_t j)
              {
                  batch o = (batch::load_unaligned(x + j) - vmu) * vrs;
                  if constexpr (HasGain && HasBias)
                  {
                      o = xsimd::fma(o, batch::load_unaligned(gain + j), batch::load_unaligned(bias + j));
                  }
                  else if constexpr (HasGain)
                  {
                      o *= batch::load_unaligned(gain + j);
                  }
                  else if constexpr (HasBias)
                  {
                      o += batch::load_unaligned(bias + j);
                  }
                  o.store_unaligned(y + j);
              },
              [&](std::size_t j)
              {
                  T o = (x[j] - mu) * rs;
                  if constexpr (HasGain)
                  {
                      o *= gain[j];
                  }
                  if constexpr (HasBias)
                  {
                      o += bias[j];
                  }
                  y[j] = o;
              });
            if (mean)
            {
                *mean = mu;
            }
            if (rstd)
            {
                *rstd = rs;
            }
        }

        /// One row of LayerNorm backward; pg/pb (nullable) are this block's dgain/dbias partials.
        template <class T, bool HasGain>
        [[gnu::noinline]] inline void layer_norm_backward_row(T* dx, T* pg, T* pb, const T* dy, const T* x,
                                                              const T* gain, T mu, T rs, std::size_t cols)
        {
            using batch = simd::batch<T>;
            constexpr std::size_t w = simd::lanes<T>;
            const batch vmu(mu), vrs(rs);
            // Pass 1: s1 = sum dyg, s2 = sum dyg*xhat, and the parameter partials.
            batch a1(T(0)), a2(T(0)), b1(T(0)), b2(T(0));
            std::size_t j = 0;
            const auto vstep = [&](std::size_t k, batch& acc1, batch& acc2)
            {
                const batch xh = (batch::load_unaligned(x + k) - vmu) * vrs;
                const batch d = batch::load_unaligned(dy + k);
                const batch dg = HasGain ? d * batch::load_unaligned(gain + k) : d;
                acc1 += dg;
                acc2 = xsimd::fma(dg, xh, acc2);
                if (pg)
                {
                    xsimd::fma(d, xh, batch::load_aligned(pg + k)).store_aligned(pg + k);
                }
                if (pb)
                {
                    (batch::load_aligned(pb + k) + d).store_aligned(pb + k);
                }
            };
            for (; j + 2 * w <= cols; j += 2 * w)
            {
                vstep(j, a1, a2);
                vstep(j + w, b1, b2);
            }
            for (; j + w <= cols; j += w)
            {
                vstep(j, a1, a2);
            }
            T s1 = simd::reduce_add(a1 + b1), s2 = simd::reduce_add(a2 + b2);
            T t1 = T(0), t2 = T(0);
            for (; j < cols; ++j)
            {
                const T xh = (x[j] - mu) * rs;
                const T d = dy[j];
                const T dg = HasGain ? d * gain[j] : d;
                t1 += dg;
                t2 += dg * xh;
                if (pg)
                {
                    pg[j] += d * xh;
                }
                if (pb)
                {
                    pb[j] += d;
                }
            }
            const T n = static_cast<T>(cols);
            const T m1 = (s1 + t1) / n, m2 = (s2 + t2) / n;
            const batch vm1(m1), vm2(m2);
            // Pass 2: dx = rstd * (dyg - m1 - xhat * m2).
            norm_row_for<T>(
              cols,
              [&](std::size_t k)
              {
                  const batch xh = (batch::load_unaligned(x + k) - vmu) * vrs;
                  const batch d = batch::load_unaligned(dy + k);
                  const batch dg = HasGain ? d * batch::load_unaligned(gain + k) : d;
                  (vrs * xsimd::fnma(xh, vm2, dg - vm1)).store_unaligned(dx + k);
              },
              [&](std::size_t k)
              {
                  const T xh = (x[k] - mu) * rs;
                  const T dg = HasGain ? dy[k] * gain[k] : dy[k];
                  dx[k] = rs * ((dg - m1) - xh * m2);
              });
        }

        /// One row of RMSNorm forward.
        template <class T, bool HasGain>
        [[gnu::noinline]] inline void rms_norm_forward_row(T* y, T* rstd, const T* x, const T* gain,
                                                           std::size_t cols, T eps)
        {
            using batch = simd::batch<T>;
            const T ss = norm_row_reduce<T>(
              cols,
              [&](std::size_t j)
              {
                  const batch v = batch::load_unaligned(x + j);
                  return v * v;
              },
              [&](std::size_t j) { return x[j] * x[j]; });
            const T rs = T(1) / std::sqrt(ss / static_cast<T>(cols) + eps);
            const batch vrs(rs);
            norm_row_for<T>(
              cols,
              [&](std::size_t j)
              {
                  batch o = batch::load_unaligned(x + j) * vrs;
                  if constexpr (HasGain)
                  {
                      o *= batch::load_unaligned(gain + j);
                  }
                  o.store_unaligned(y + j);
              },
              [&](std::size_t j)
              {
                  T o = x[j] * rs;
                  if constexpr (HasGain)
                  {
                      o *= gain[j];
                  }
                  y[j] = o;
              });
            if (rstd)
            {
                *rstd = rs;
            }
        }

        /// One row of RMSNorm backward; pg (nullable) is this block's dgain partial.
        template <class T, bool HasGain>
        [[gnu::noinline]] inline void rms_norm_backward_row(T* dx, T* pg, const T* dy, const T* x,
                                                            const T* gain, T rs, std::size_t cols)
        {
            using batch = simd::batch<T>;
            constexpr std::size_t w = simd::lanes<T>;
            const batch vrs(rs);
            // Pass 1: s2 = sum dyg*xhat (two accumulators, explicit FMAs) and the dgain partial.
            batch a2(T(0)), b2(T(0));
            const auto vstep = [&](std::size_t k, batch& acc2)
            {
                const batch xh = batch::load_unaligned(x + k) * vrs;
                const batch d = batch::load_unaligned(dy + k);
                const batch dg = HasGain ? d * batch::load_unaligned(gain + k) : d;
                acc2 = xsimd::fma(dg, xh, acc2);
                if (pg)
                {
                    xsimd::fma(d, xh, batch::load_aligned(pg + k)).store_aligned(pg + k);
                }
            };
            std::size_t j = 0;
            for (; j + 2 * w <= cols; j += 2 * w)
            {
                vstep(j, a2);
                vstep(j + w, b2);
            }
            for (; j + w <= cols; j += w)
            {
                vstep(j, a2);
            }
            T s2 = simd::reduce_add(a2 + b2);
            T t2 = T(0);
            for (; j < cols; ++j)
            {
                const T xh = x[j] * rs;
                const T dg = HasGain ? dy[j] * gain[j] : dy[j];
                t2 += dg * xh;
                if (pg)
                {
                    pg[j] += dy[j] * xh;
                }
            }
            s2 += t2;
            const T m2 = s2 / static_cast<T>(cols);
            const batch vm2(m2);
            // Pass 2: dx = rstd * (dyg - xhat * m2).
            norm_row_for<T>(
              cols,
              [&](std::size_t k)
              {
                  const batch xh = batch::load_unaligned(x + k) * vrs;
                  const batch d = batch::load_unaligned(dy + k);
                  const batch dg = HasGain ? d * batch::load_unaligned(gain + k) : d;
                  (vrs * xsimd::fnma(xh, vm2, dg)).store_unaligned(dx + k);
              },
              [&](std::size_t k)
              {
                  const T xh = x[k] * rs;
                  const T dg = HasGain ? dy[k] * gain[k] : dy[k];
                  dx[k] = rs * (dg - xh * m2);
              });
        }
    } // namespace detail
} // namespace ballast::kernels

#endif
