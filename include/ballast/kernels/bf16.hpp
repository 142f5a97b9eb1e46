#ifndef BALLAST_KERNELS_BF16_HPP
#define BALLAST_KERNELS_BF16_HPP

/// @file
/// bfloat16 emulation on any CPU: `round_to_bf16(x, n)` rounds a float buffer in place to the nearest
/// bf16 values (round to nearest, ties to even), keeping them stored as floats. The scalar conversions
/// (`float_to_bf16_bits`, `bf16_bits_to_float`, `round_to_bf16(float)`) and the rounding rule with its
/// proof sketch (exact RNE for every finite input, subnormals included; overflow to ±Inf; NaN stays a
/// quiet NaN) are in `ballast/kernels/ref/bf16.hpp`.
///
/// Dims legend: n = number of elements.
///
/// The SIMD kernel is the same integer addition on 32-bit lanes over `xsimd::batch<std::uint32_t>`:
///   r = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000, and for NaN lanes r = (u & 0xFFFF0000) | 0x00400000,
/// so it agrees bit for bit with the scalar rule on all 2^32 inputs (tested exhaustively, see
/// tests/kernels/bf16_test.cpp). Tails are padded into a full register; threads split [0, n) in
/// `elementwise_grain` chunks; every element is independent, so the result never depends on the thread
/// count. With `BALLAST_FORCE_SCALAR` it forwards to `ref::round_to_bf16`.

#include <cstddef>
#include <cstdint>

#include <ballast/core/simd.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/kernels/ref/bf16.hpp>

namespace ballast::kernels
{
    namespace detail
    {
        /// One register of floats rounded to bf16 (values stay floats with zero low halves).
        template <class Arch>
        inline xsimd::batch<float, Arch> round_to_bf16_batch(const xsimd::batch<float, Arch>& x) noexcept
        {
            using U = xsimd::batch<std::uint32_t, Arch>;
            const U u = xsimd::bitwise_cast<U>(x);
            const U one(1u), bias(0x7FFFu), high(0xFFFF0000u), quiet(0x00400000u);
            const U rounded = (u + bias + ((u >> 16) & one)) & high;
            const U nan_bits = (u & high) | quiet;
            // xsimd::isnan (an unordered compare): `x != x` is an ordered compare on AVX-512 and never
            // selects a NaN lane.
            return xsimd::select(xsimd::isnan(x), xsimd::bitwise_cast<xsimd::batch<float, Arch>>(nan_bits),
                                 xsimd::bitwise_cast<xsimd::batch<float, Arch>>(rounded));
        }
    } // namespace detail

    /// x[i] ← round_to_bf16(x[i]) for i < n (in place; x may be unaligned).
    inline void round_to_bf16(float* x, std::size_t n)
    {
        if constexpr (simd::force_scalar)
        {
            ref::round_to_bf16(x, n);
        }
        else
        {
            detail::parallel_for_each_batch<float>(
              n, [&](std::size_t i, std::size_t k)
              { detail::store_n(x + i, k, detail::round_to_bf16_batch(detail::load_n(x + i, k))); });
        }
    }
} // namespace ballast::kernels

#endif
