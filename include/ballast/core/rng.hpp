#ifndef BALLAST_CORE_RNG_HPP
#define BALLAST_CORE_RNG_HPP

/// @file
/// ballast's own random numbers, so results do not depend on a standard library's distribution
/// implementation: SplitMix64 (Steele, Lea, Flood 2014) for bits, Box–Muller for normals, and
/// rejection for the truncated normal. Every stream is a pure function of (seed, stream id).

#include <cmath>
#include <cstdint>
#include <numbers>

namespace ballast
{
    /// SplitMix64: a 64-bit generator with a 2^64 period that passes BigCrush; tiny and fast.
    class splitmix64
    {
    public:
        /// A stream for `seed`; `stream` separates independent streams derived from one seed.
        explicit splitmix64(std::uint64_t seed, std::uint64_t stream = 0) noexcept
          : m_state(seed ^
                    (stream * 0xD1342543DE82EF95ull)) // odd multiplier: distinct streams, distinct states
        {
            next(); // decorrelate nearby seeds
        }

        std::uint64_t next() noexcept
        {
            std::uint64_t z = (m_state += 0x9E3779B97F4A7C15ull); // golden-ratio increment
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            return z ^ (z >> 31);
        }

        /// Uniform double in [0, 1) with 53 random bits.
        double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

        /// Uniform integer in [0, n) (n > 0), by Lemire's multiply-shift (bias < n / 2^64, negligible).
        std::uint64_t below(std::uint64_t n) noexcept
        {
            __extension__ using u128 = unsigned __int128; // GCC/Clang extension; -Wpedantic-clean
            return static_cast<std::uint64_t>((static_cast<u128>(next()) * n) >> 64);
        }

        /// Standard normal by Box–Muller (one draw per call; the sine half is discarded for simplicity).
        double normal() noexcept
        {
            const double u1 = 1.0 - uniform(); // (0, 1]: log is finite
            const double u2 = uniform();
            return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
        }

        /// Standard normal truncated to [-2, 2] by rejection (acceptance ~95.4%).
        double truncated_normal() noexcept
        {
            for (;;)
            {
                const double z = normal();
                if (std::fabs(z) <= 2.0)
                {
                    return z;
                }
            }
        }

    private:
        std::uint64_t m_state;
    };

    /// Standard deviation of a standard normal truncated to [-2, 2]; dividing by it makes a truncated
    /// normal draw have unit variance (the JAX/Flax `truncated_normal` / `lecun_normal` convention).
    inline constexpr double truncated_normal_std = 0.87962566103423978;
} // namespace ballast

#endif
