#ifndef BALLAST_CORE_ALIGNED_HPP
#define BALLAST_CORE_ALIGNED_HPP

/// @file
/// Aligned storage for kernels and flat parameter buffers.

#include <cstddef>
#include <vector>

#include <ballast/core/xsimd.hpp>

namespace ballast
{
    /// Alignment of every ballast buffer: a cache line, which also satisfies AVX-512 loads.
    inline constexpr std::size_t buffer_alignment = 64;

    /// A std::vector whose data is aligned to `buffer_alignment` bytes.
    template <class T>
    using aligned_vector = std::vector<T, xsimd::aligned_allocator<T, buffer_alignment>>;
} // namespace ballast

#endif
