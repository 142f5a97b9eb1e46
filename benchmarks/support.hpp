#ifndef BALLAST_BENCHMARKS_SUPPORT_HPP
#define BALLAST_BENCHMARKS_SUPPORT_HPP

// Shared by the benchmark files: the implementation tags that pair every SIMD kernel with its scalar twin
// (BM_x<simd> / BM_x<ref>), and seeded random buffers.

#include <cstddef>
#include <random>

#include <ballast/core/aligned.hpp>

namespace ballast::bench
{
    struct simd
    {
    };
    struct ref
    {
    };

    /// n floats uniform in [lo, hi), reproducible from `seed`.
    inline aligned_vector<float> random_buffer(std::size_t n, unsigned seed, float lo = -1.f, float hi = 1.f)
    {
        std::mt19937 g(seed);
        std::uniform_real_distribution<float> d(lo, hi);
        aligned_vector<float> v(n);
        for (auto& x : v)
        {
            x = d(g);
        }
        return v;
    }
} // namespace ballast::bench

#endif
