#ifndef BALLAST_KERNELS_SOFT_CAP_HPP
#define BALLAST_KERNELS_SOFT_CAP_HPP

/// @file
/// Tanh soft-capping of logits, y = c·tanh(z/c) (Gemma 2; attention and output logits), and its backward
/// dz = dy·(1 − (y/c)²), which needs only the capped value y. Dims: n elements, contiguous.

#include <cstddef>

#include <ballast/core/simd.hpp>
#include <ballast/kernels/ref/soft_cap.hpp>

namespace ballast::kernels
{
    /// z ← c·tanh(z/c) in place (c > 0). NaN stays NaN; ±Inf maps to ±c.
    template <class T>
    inline void soft_cap_forward(T* z, std::size_t n, double c)
    {
        if constexpr (simd::force_scalar)
        {
            ref::soft_cap_forward(z, n, c);
        }
        else
        {
            using B = simd::batch<T>;
            constexpr std::size_t w = simd::lanes<T>;
            const B cb(static_cast<T>(c)), inv(static_cast<T>(1.0 / c));
            std::size_t i = 0;
            for (; i + w <= n; i += w)
            {
                const B x = B::load_unaligned(z + i);
                (cb * xsimd::tanh(x * inv)).store_unaligned(z + i);
            }
            for (; i < n; ++i)
            {
                z[i] = static_cast<T>(c) * std::tanh(z[i] * static_cast<T>(1.0 / c));
            }
        }
    }

    /// dz ← dz·(1 − (y/c)²), y the capped values (OVERWRITES dz; dz may not alias y).
    template <class T>
    inline void soft_cap_backward(T* dz, const T* y, std::size_t n, double c)
    {
        if constexpr (simd::force_scalar)
        {
            ref::soft_cap_backward(dz, y, n, c);
        }
        else
        {
            using B = simd::batch<T>;
            constexpr std::size_t w = simd::lanes<T>;
            const B inv(static_cast<T>(1.0 / c)), one(T(1));
            std::size_t i = 0;
            for (; i + w <= n; i += w)
            {
                const B t = B::load_unaligned(y + i) * inv;
                (B::load_unaligned(dz + i) * xsimd::fnma(t, t, one)).store_unaligned(dz + i);
            }
            for (; i < n; ++i)
            {
                const T t = y[i] * static_cast<T>(1.0 / c);
                dz[i] *= T(1) - t * t;
            }
        }
    }
} // namespace ballast::kernels

#endif
