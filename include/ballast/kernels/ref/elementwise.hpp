#ifndef BALLAST_KERNELS_REF_ELEMENTWISE_HPP
#define BALLAST_KERNELS_REF_ELEMENTWISE_HPP

/// @file
/// Scalar reference twins of the elementwise kernels (`ballast/kernels/elementwise.hpp`; the optimizer
/// updates' twins are in `ballast/kernels/ref/optimizer.hpp`). Each twin is a plain serial loop that
/// computes in double and rounds once to T; it is the oracle the SIMD kernels are tested against.
///
/// Dims legend: n = number of elements of every buffer passed to a call.

#include <cstddef>

#include <ballast/core/config.hpp>

namespace ballast::kernels::ref
{
    /// y[i] += a·x[i].
    template <class T>
    inline void axpy(T* y, const T* x, T a, std::size_t n)
    {
        for (std::size_t i = 0; i < n; ++i)
        {
            y[i] =
              static_cast<T>(static_cast<double>(y[i]) + static_cast<double>(a) * static_cast<double>(x[i]));
        }
    }

    /// x[i] *= a.
    template <class T>
    inline void scale(T* x, T a, std::size_t n)
    {
        for (std::size_t i = 0; i < n; ++i)
        {
            x[i] = static_cast<T>(static_cast<double>(a) * static_cast<double>(x[i]));
        }
    }

    /// out[i] = a[i] + b[i].
    template <class T>
    inline void add(T* out, const T* a, const T* b, std::size_t n)
    {
        for (std::size_t i = 0; i < n; ++i)
        {
            out[i] = static_cast<T>(static_cast<double>(a[i]) + static_cast<double>(b[i]));
        }
    }

    /// out[i] = in[i].
    template <class T>
    inline void copy(T* out, const T* in, std::size_t n)
    {
        for (std::size_t i = 0; i < n; ++i)
        {
            out[i] = in[i];
        }
    }

    /// out[i] = value.
    template <class T>
    inline void fill(T* out, T value, std::size_t n)
    {
        for (std::size_t i = 0; i < n; ++i)
        {
            out[i] = value;
        }
    }

} // namespace ballast::kernels::ref

#endif
