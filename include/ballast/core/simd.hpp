#ifndef BALLAST_CORE_SIMD_HPP
#define BALLAST_CORE_SIMD_HPP

/// @file
/// The one place ballast includes xsimd. It fixes the architecture at compile time
/// (`xsimd::default_arch`: the best instruction set the compiler was told it may use, e.g. AVX2+FMA
/// under `ballast::native`, SSE2 otherwise) and bridges xsimd 8 (`hadd`) and xsimd >= 9 (`reduce_add`).
/// Kernels are written once over `batch<float, Arch>`; there is no runtime dispatch.

#include <cmath>
#include <cstddef>
#include <cstdint>

#include <ballast/core/config.hpp>
#include <ballast/core/xsimd.hpp>

namespace ballast::simd
{
    /// The instruction set every kernel is compiled for.
    using arch = xsimd::default_arch;

    /// A register of `T` on `Arch`.
    template <class T, class Arch = arch>
    using batch = xsimd::batch<T, Arch>;

    /// Lanes of `T` per register on `Arch` (8 floats under AVX2).
    template <class T, class Arch = arch>
    inline constexpr std::size_t lanes = batch<T, Arch>::size;

    /// Name of the compiled instruction set, for test and benchmark banners.
    inline const char* arch_name() noexcept
    {
#if defined(BALLAST_FORCE_SCALAR)
        return "scalar (BALLAST_FORCE_SCALAR)";
#else
        return arch::name();
#endif
    }

    /// True when the public kernels are routed to their scalar twins (`-DBALLAST_FORCE_SCALAR`).
    inline constexpr bool force_scalar =
#if defined(BALLAST_FORCE_SCALAR)
      true;
#else
      false;
#endif

    /// Horizontal sum of a register (xsimd 8 calls it `hadd`, xsimd 9+ `reduce_add`).
    template <class T, class Arch>
    inline T reduce_add(const batch<T, Arch>& x) noexcept
    {
#if XSIMD_VERSION_MAJOR >= 9
        return xsimd::reduce_add(x);
#else
        return xsimd::hadd(x);
#endif
    }

    /// Horizontal maximum, lane order fixed (0..N-1), NaN-propagating: a NaN lane yields NaN.
    template <class T, class Arch>
    inline T reduce_max(const batch<T, Arch>& x) noexcept
    {
        alignas(Arch::alignment()) T buf[batch<T, Arch>::size];
        x.store_aligned(buf);
        T m = buf[0];
        for (std::size_t i = 1; i < batch<T, Arch>::size; ++i)
        {
            m = (buf[i] > m || std::isnan(buf[i])) && !std::isnan(m) ? buf[i] : m;
        }
        return m;
    }

    /// Lane-wise max that propagates NaN from either side (plain max_ps drops a NaN in one operand).
    template <class T, class Arch>
    inline batch<T, Arch> max_nan(const batch<T, Arch>& a, const batch<T, Arch>& b) noexcept
    {
        const auto m = xsimd::max(a, b);
        return xsimd::select(xsimd::isnan(a) || xsimd::isnan(b), a + b, m);
    }

    /// True when `p` is aligned for aligned loads of `T` on `Arch`.
    template <class T, class Arch = arch>
    inline bool is_aligned(const T* p) noexcept
    {
        return reinterpret_cast<std::uintptr_t>(p) % Arch::alignment() == 0;
    }
} // namespace ballast::simd

#endif
