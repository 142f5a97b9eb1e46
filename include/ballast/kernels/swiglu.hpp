#ifndef BALLAST_KERNELS_SWIGLU_HPP
#define BALLAST_KERNELS_SWIGLU_HPP

/// @file
/// SwiGLU forward and backward (formulas in kernels/ref/swiglu.hpp, the scalar twins), vectorised with
/// xsimd (one xsimd::exp per register) and threaded over fixed chunks of rows. Each output element
/// depends only on its own inputs, so the result does not depend on the thread count.

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include <ballast/core/config.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/kernels/ref/swiglu.hpp>

namespace ballast::kernels
{
    namespace detail
    {
        inline std::size_t swiglu_rows_per_chunk(std::size_t f) noexcept
        {
            return std::max<std::size_t>(1, (std::size_t(1) << 14) / std::max<std::size_t>(f, 1));
        }
    } // namespace detail

    /// y[r, j] = Swish(x[r, j])·x[r, F + j]; x is [rows, 2F], y [rows, F] (must not alias x).
    template <class T>
    inline void swiglu_forward(T* y, const T* x, std::size_t rows, std::size_t f)
    {
        static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                      "swiglu_forward: T must be float or double");
        if constexpr (simd::force_scalar)
        {
            ref::swiglu_forward(y, x, rows, f);
        }
        else
        {
            using B = simd::batch<T>;
            BALLAST_CHECK(rows * f == 0 || (y && x), "swiglu_forward", "pointers must be non-null");
            parallel_for(rows, detail::swiglu_rows_per_chunk(f),
                         [&](std::size_t r0, std::size_t r1)
                         {
                             for (std::size_t r = r0; r < r1; ++r)
                             {
                                 const T* xr = x + r * 2 * f;
                                 T* yr = y + r * f;
                                 detail::for_each_batch<T>(
                                   0, f,
                                   [&](std::size_t i, std::size_t c)
                                   {
                                       const B a = detail::load_n(xr + i, c), b = detail::load_n(xr + f + i, c);
                                       const B s = B(T(1)) / (B(T(1)) + xsimd::exp(-a));
                                       detail::store_n(yr + i, c, a * s * b);
                                   });
                             }
                         });
        }
    }

    /// dx [rows, 2F] = d loss / d x from dy (the first F columns of rows 2F apart; may alias dx) and x.
    template <class T>
    inline void swiglu_backward(T* dx, const T* dy, const T* x, std::size_t rows, std::size_t f)
    {
        static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                      "swiglu_backward: T must be float or double");
        if constexpr (simd::force_scalar)
        {
            ref::swiglu_backward(dx, dy, x, rows, f);
        }
        else
        {
            using B = simd::batch<T>;
            BALLAST_CHECK(rows * f == 0 || (dx && dy && x), "swiglu_backward", "pointers must be non-null");
            parallel_for(rows, detail::swiglu_rows_per_chunk(f),
                         [&](std::size_t r0, std::size_t r1)
                         {
                             for (std::size_t r = r0; r < r1; ++r)
                             {
                                 const std::size_t o = r * 2 * f;
                                 detail::for_each_batch<T>(
                                   0, f,
                                   [&](std::size_t i, std::size_t c)
                                   {
                                       const B g = detail::load_n(dy + o + i, c);
                                       const B a = detail::load_n(x + o + i, c);
                                       const B b = detail::load_n(x + o + f + i, c);
                                       const B one(T(1));
                                       const B s = one / (one + xsimd::exp(-a));
                                       detail::store_n(dx + o + i, c, g * b * s * (one + a * (one - s)));
                                       detail::store_n(dx + o + f + i, c, g * a * s);
                                   });
                             }
                         });
        }
    }
} // namespace ballast::kernels

#endif
