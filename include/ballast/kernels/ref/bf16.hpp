#ifndef BALLAST_KERNELS_REF_BF16_HPP
#define BALLAST_KERNELS_REF_BF16_HPP

/// @file
/// bfloat16 rounding, scalar: the exact fp32 → bf16 conversion (round to nearest, ties to even) that both
/// `ballast/kernels/bf16.hpp` (SIMD) and the bf16 GEMM (`ballast/kernels/gemm_bf16.hpp`) implement, and
/// the scalar twin `ref::round_to_bf16(x, n)` of the SIMD in-place kernel.
///
/// bf16 is the upper half of an fp32: sign, the same 8 exponent bits, 7 of the 23 mantissa bits. Rounding
/// an fp32 x to bf16 is therefore rounding its 32-bit pattern to a multiple of 2^16:
///   bits(x) + 0x7FFF + (bit 16 of bits(x)), then drop the low 16 bits.
/// The bias 0x7FFF rounds a remainder > 0x8000 up and < 0x8000 down; on a tie (remainder exactly 0x8000)
/// the extra bit 16 rounds up only when the kept part is odd, so ties go to the even neighbour. Because
/// the bit patterns of non-negative floats are ordered like their values and the mantissa carry runs into
/// the exponent, this one integer addition is exact RNE for every finite input:
///   - subnormals (exponent 0) round on the same 2^-133 grid as IEEE; nothing is flushed to zero;
///   - values at or above 0x7F7F8000 (max bf16 + half an ulp, tie, odd kept part) carry into exponent 255
///     with a zero mantissa: +Inf, exactly as IEEE RNE overflow demands; smaller values stay finite;
///   - ±0, ±Inf map to themselves (their low 16 bits are 0).
/// NaN is the one case the addition would get wrong (a payload only in the low bits would round to Inf,
/// or carry into the sign), so NaN keeps its sign and upper payload and gets the quiet bit (bit 6 of the
/// bf16, bit 22 of the fp32) set: NaN stays a quiet NaN, never Inf. This is the NaN rule of the x86
/// VCVTNEPS2BF16 instruction, whose rounding we do NOT use because it flushes subnormal inputs to ±0.
/// (PyTorch returns the canonical 0x7FC0 for every NaN; the tests only require NaN for NaN.)

#include <bit>
#include <cstddef>
#include <cstdint>

namespace ballast::kernels
{
    /// The bf16 bit pattern nearest to x (ties to even; NaN → quiet NaN with x's sign and top payload).
    constexpr std::uint16_t float_to_bf16_bits(float x) noexcept
    {
        const std::uint32_t u = std::bit_cast<std::uint32_t>(x);
        if ((u & 0x7FFFFFFFu) > 0x7F800000u)
        {
            return static_cast<std::uint16_t>((u >> 16) | 0x0040u);
        }
        return static_cast<std::uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    }

    /// The float whose upper half is `b` and lower half zero (exact: every bf16 is an fp32).
    constexpr float bf16_bits_to_float(std::uint16_t b) noexcept
    {
        return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
    }

    /// x rounded to the nearest bf16, returned as a float (its low 16 bits are zero).
    constexpr float round_to_bf16(float x) noexcept
    {
        return bf16_bits_to_float(float_to_bf16_bits(x));
    }
} // namespace ballast::kernels

namespace ballast::kernels::ref
{
    /// x[i] ← round_to_bf16(x[i]) for i < n, one element at a time.
    inline void round_to_bf16(float* x, std::size_t n) noexcept
    {
        for (std::size_t i = 0; i < n; ++i)
        {
            x[i] = ::ballast::kernels::round_to_bf16(x[i]);
        }
    }
} // namespace ballast::kernels::ref

#endif
