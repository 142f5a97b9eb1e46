#ifndef BALLAST_TESTS_SUPPORT_RANDOM_HPP
#define BALLAST_TESTS_SUPPORT_RANDOM_HPP

// Seeded randomness for tests: every randomised test draws from rng(), seeded from Catch's
// --rng-seed (printed by main.cpp), so a failure is reproducible.

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include <ballast/core/aligned.hpp>

namespace ballast::test
{
    inline constexpr unsigned default_seed = 20230919u;

    inline std::uint64_t& seed_storage()
    {
        static std::uint64_t s = default_seed;
        return s;
    }
    inline void set_seed(std::uint64_t s)
    {
        seed_storage() = s;
    }

    /// A generator seeded from the session seed and a per-test salt, so test order does not matter.
    inline std::mt19937_64 rng(std::uint64_t salt = 0)
    {
        std::seed_seq seq{ seed_storage(), salt };
        return std::mt19937_64(seq);
    }

    /// `n` values uniform in [lo, hi), converted to T, stored at an offset of `misalign` elements into
    /// an aligned buffer so kernels see deliberately misaligned pointers. Returns the buffer;
    /// the data starts at `buf.data() + misalign`.
    template <class T>
    inline aligned_vector<T> uniform(std::mt19937_64& g, std::size_t n, double lo = -1.0, double hi = 1.0,
                                     std::size_t misalign = 0)
    {
        std::uniform_real_distribution<double> d(lo, hi);
        aligned_vector<T> v(n + misalign);
        for (std::size_t i = 0; i < n; ++i)
        {
            v[misalign + i] = static_cast<T>(d(g));
        }
        return v;
    }
} // namespace ballast::test

#endif
