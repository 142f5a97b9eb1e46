#ifndef BALLAST_KERNELS_REDUCE_HPP
#define BALLAST_KERNELS_REDUCE_HPP

/// @file
/// Deterministic SIMD reductions over a flat buffer: sum, sum of squares, dot product and a
/// NaN-propagating max.
///
/// Dims legend: n = number of elements.
///
/// Summation order (fixed, independent of the thread count):
///   1. `[0, n)` is cut into blocks of `reduce_block` elements (the last may be shorter).
///   2. Inside a block, `reduce_accumulators` = 4 registers a0..a3 take consecutive registers of
///      input round-robin (a0 gets x[0..L), a1 x[L..2L), ...; the final partial register is padded
///      with the neutral element); then the block value is reduce_add((a0 + a1) + (a2 + a3)) in T.
///   3. Block values are converted to double and added in block order; the result is rounded to T.
/// Threads compute whole blocks (`ballast::parallel_for` over blocks, `reduce_blocks_per_task` per
/// chunk) into a per-block array, combined serially in step 3, so 1 and N threads give bit-identical
/// results. Error: each accumulator lane sums at most reduce_block / (4·L) = 128 (float) terms in T,
/// the ≤ n/reduce_block block values are summed in double.
///
/// With `BALLAST_FORCE_SCALAR` every public kernel forwards to its twin in `ballast::kernels::ref`.

#include <algorithm>
#include <cstddef>
#include <limits>
#include <type_traits>
#include <vector>

#include <ballast/core/config.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/kernels/ref/reduce.hpp>

namespace ballast::kernels
{
    /// Elements per reduction block: 16 KiB of floats (fits L1), and short enough that a float
    /// accumulator lane adds at most 128 terms before the block value is promoted to double.
    inline constexpr std::size_t reduce_block = 4096;

    /// Blocks per parallel chunk: 64 Ki elements per task, so the OpenMP fork (~ microseconds) is paid
    /// only when a thread gets tens of microseconds of streaming work.
    inline constexpr std::size_t reduce_blocks_per_task = 16;

    /// Independent SIMD accumulators inside a block: hides the 3-4 cycle add/FMA latency.
    inline constexpr std::size_t reduce_accumulators = 4;

    namespace detail
    {
        /// Σ over `[begin, end)` of `map(i, count)` (a register; lanes past `count` must be neutral,
        /// i.e. 0), with the fixed 4-accumulator order described in the file comment. Serial.
        /// `map` is called exactly once per register in increasing `i`, so it may have side effects.
        template <class T, class Map>
        inline T block_sum(std::size_t begin, std::size_t end, Map&& map)
        {
            static_assert(reduce_accumulators == 4, "the unrolled body below assumes 4 accumulators");
            using B = simd::batch<T>;
            constexpr std::size_t L = simd::lanes<T>;
            B a0(T(0)), a1(T(0)), a2(T(0)), a3(T(0));
            std::size_t i = begin;
            for (; i + reduce_accumulators * L <= end; i += reduce_accumulators * L)
            {
                a0 += map(i, L);
                a1 += map(i + L, L);
                a2 += map(i + 2 * L, L);
                a3 += map(i + 3 * L, L);
            }
            // At most 3 full registers and a partial one remain: continue the round-robin (unrolled so the
            // accumulators stay in registers).
            if (i < end)
            {
                a0 += map(i, std::min(L, end - i));
                i += L;
            }
            if (i < end)
            {
                a1 += map(i, std::min(L, end - i));
                i += L;
            }
            if (i < end)
            {
                a2 += map(i, std::min(L, end - i));
                i += L;
            }
            if (i < end)
            {
                a3 += map(i, end - i);
            }
            return simd::reduce_add((a0 + a1) + (a2 + a3));
        }

        /// Apply `block(begin, end) -> R` to every `reduce_block` block of `[0, n)` and fold the results
        /// in block order with `combine(acc, r)` starting from `init`. With `Threaded`, blocks are
        /// computed in parallel (`reduce_blocks_per_task` per chunk) into a buffer folded afterwards;
        /// the result is identical to the serial fold.
        template <bool Threaded, class R, class Block, class Combine>
        inline R blocked_reduce(std::size_t n, R init, Block&& block, Combine&& combine)
        {
            const std::size_t nblocks = (n + reduce_block - 1) / reduce_block;
            if (!Threaded || nblocks <= reduce_blocks_per_task)
            {
                R acc = init;
                for (std::size_t b = 0; b < nblocks; ++b)
                {
                    acc = combine(acc, block(b * reduce_block, std::min(n, (b + 1) * reduce_block)));
                }
                return acc;
            }
            std::vector<R> partial(nblocks);
            parallel_for(nblocks, reduce_blocks_per_task,
                         [&](std::size_t b0, std::size_t b1)
                         {
                             for (std::size_t b = b0; b < b1; ++b)
                             {
                                 partial[b] = block(b * reduce_block, std::min(n, (b + 1) * reduce_block));
                             }
                         });
            R acc = init;
            for (std::size_t b = 0; b < nblocks; ++b)
            {
                acc = combine(acc, partial[b]);
            }
            return acc;
        }

        /// Σ map over `[0, n)` in the documented block order; block values added in double.
        template <class T, bool Threaded, class Map>
        inline double blocked_sum(std::size_t n, Map&& map)
        {
            return blocked_reduce<Threaded>(
              n, 0.0,
              [&](std::size_t begin, std::size_t end)
              { return static_cast<double>(block_sum<T>(begin, end, map)); },
              [](double a, double b) { return a + b; });
        }

        /// NaN-propagating max of `x[begin, end)` (non-empty), 4 accumulators. The running maxima use the
        /// plain (NaN-dropping) `xsimd::max`; NaNs are tracked separately in one unordered-compare mask,
        /// half the instructions of `simd::max_nan` per register. Any NaN yields a quiet NaN.
        template <class T>
        inline T block_max(const T* x, std::size_t begin, std::size_t end)
        {
            using B = simd::batch<T>;
            constexpr std::size_t L = simd::lanes<T>;
            const T first = x[begin]; // padding with a real element keeps a partial register neutral
            B a0(first), a1(first), a2(first), a3(first);
            auto nan = xsimd::isnan(a0);
            std::size_t i = begin;
            for (; i + reduce_accumulators * L <= end; i += reduce_accumulators * L)
            {
                const B v0 = load_n(x + i, L), v1 = load_n(x + i + L, L);
                const B v2 = load_n(x + i + 2 * L, L), v3 = load_n(x + i + 3 * L, L);
                a0 = xsimd::max(a0, v0);
                a1 = xsimd::max(a1, v1);
                a2 = xsimd::max(a2, v2);
                a3 = xsimd::max(a3, v3);
                nan = nan || (xsimd::isnan(v0) || xsimd::isnan(v1)) || (xsimd::isnan(v2) || xsimd::isnan(v3));
            }
            for (; i < end; i += L)
            {
                const B v = load_n(x + i, std::min(L, end - i), first);
                a0 = xsimd::max(a0, v);
                nan = nan || xsimd::isnan(v);
            }
            if (xsimd::any(nan))
            {
                return std::numeric_limits<T>::quiet_NaN();
            }
            return simd::reduce_max(xsimd::max(xsimd::max(a0, a1), xsimd::max(a2, a3)));
        }

        /// max(a, b), NaN if either is NaN.
        template <class T>
        inline T max_nan(T a, T b) noexcept
        {
            return (a != a || b != b) ? a + b : (b > a ? b : a);
        }

        /// NaN-propagating max of `x[0, n)`, −∞ for n = 0.
        template <class T, bool Threaded>
        inline T row_max(const T* x, std::size_t n)
        {
            return blocked_reduce<Threaded>(
              n, -std::numeric_limits<T>::infinity(),
              [&](std::size_t begin, std::size_t end) { return block_max(x, begin, end); },
              [](T a, T b) { return max_nan(a, b); });
        }
    } // namespace detail

    /// Σ x[i]; 0 for n = 0. Fixed summation order (file comment); threaded for long inputs.
    template <class T>
    inline T sum(const T* x, std::size_t n)
    {
        static_assert(std::is_floating_point_v<T>);
        if constexpr (simd::force_scalar)
        {
            return ref::sum(x, n);
        }
        else
        {
            return static_cast<T>(detail::blocked_sum<T, true>(n, [x](std::size_t i, std::size_t k)
                                                               { return detail::load_n(x + i, k); }));
        }
    }

    /// Σ x[i]² (e.g. a squared gradient norm); 0 for n = 0. Same order as `sum`.
    template <class T>
    inline T sum_squares(const T* x, std::size_t n)
    {
        static_assert(std::is_floating_point_v<T>);
        if constexpr (simd::force_scalar)
        {
            return ref::sum_squares(x, n);
        }
        else
        {
            return static_cast<T>(detail::blocked_sum<T, true>(n,
                                                               [x](std::size_t i, std::size_t k)
                                                               {
                                                                   const auto v = detail::load_n(x + i, k);
                                                                   return v * v;
                                                               }));
        }
    }

    /// Σ x[i]·y[i]; 0 for n = 0. Same order as `sum`.
    template <class T>
    inline T dot(const T* x, const T* y, std::size_t n)
    {
        static_assert(std::is_floating_point_v<T>);
        if constexpr (simd::force_scalar)
        {
            return ref::dot(x, y, n);
        }
        else
        {
            return static_cast<T>(
              detail::blocked_sum<T, true>(n, [x, y](std::size_t i, std::size_t k)
                                           { return detail::load_n(x + i, k) * detail::load_n(y + i, k); }));
        }
    }

    /// max_i x[i]; NaN if any element is NaN (NaN-propagating, unlike std::max_element); −∞ for n = 0.
    /// The sign of a zero maximum (+0 vs −0) is unspecified.
    template <class T>
    inline T max(const T* x, std::size_t n)
    {
        static_assert(std::is_floating_point_v<T>);
        if constexpr (simd::force_scalar)
        {
            return ref::max(x, n);
        }
        else
        {
            return detail::row_max<T, true>(x, n);
        }
    }
} // namespace ballast::kernels

#endif
