#ifndef BALLAST_KERNELS_REF_REDUCE_HPP
#define BALLAST_KERNELS_REF_REDUCE_HPP

/// @file
/// Scalar reference twins of the reductions (`ballast/kernels/reduce.hpp`): serial loops that
/// accumulate in double (max compares in T) and round once to T.
///
/// Dims legend: n = number of elements.

#include <cmath>
#include <cstddef>
#include <limits>

namespace ballast::kernels::ref
{
    /// Σ x[i] (0 for n = 0).
    template <class T>
    inline T sum(const T* x, std::size_t n)
    {
        double s = 0;
        for (std::size_t i = 0; i < n; ++i)
        {
            s += static_cast<double>(x[i]);
        }
        return static_cast<T>(s);
    }

    /// Σ x[i]² (0 for n = 0).
    template <class T>
    inline T sum_squares(const T* x, std::size_t n)
    {
        double s = 0;
        for (std::size_t i = 0; i < n; ++i)
        {
            const double v = x[i];
            s += v * v;
        }
        return static_cast<T>(s);
    }

    /// Σ x[i]·y[i] (0 for n = 0).
    template <class T>
    inline T dot(const T* x, const T* y, std::size_t n)
    {
        double s = 0;
        for (std::size_t i = 0; i < n; ++i)
        {
            s += static_cast<double>(x[i]) * static_cast<double>(y[i]);
        }
        return static_cast<T>(s);
    }

    /// max_i x[i]; NaN if any element is NaN; −∞ for n = 0.
    template <class T>
    inline T max(const T* x, std::size_t n)
    {
        T m = -std::numeric_limits<T>::infinity();
        for (std::size_t i = 0; i < n; ++i)
        {
            if (std::isnan(x[i]))
            {
                return x[i];
            }
            m = x[i] > m ? x[i] : m;
        }
        return m;
    }
} // namespace ballast::kernels::ref

#endif
