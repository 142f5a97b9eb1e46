#ifndef BALLAST_KERNELS_REF_SOFT_CAP_HPP
#define BALLAST_KERNELS_REF_SOFT_CAP_HPP

/// @file
/// Scalar twin of kernels/soft_cap.hpp, computed in double.

#include <cmath>
#include <cstddef>

namespace ballast::kernels::ref
{
    /// z ← c·tanh(z/c), in place.
    template <class T>
    inline void soft_cap_forward(T* z, std::size_t n, double c)
    {
        for (std::size_t i = 0; i < n; ++i)
        {
            z[i] = static_cast<T>(c * std::tanh(static_cast<double>(z[i]) / c));
        }
    }

    /// dz ← dz·(1 − (y/c)²) with y = c·tanh(z/c) the capped value (OVERWRITES dz).
    template <class T>
    inline void soft_cap_backward(T* dz, const T* y, std::size_t n, double c)
    {
        for (std::size_t i = 0; i < n; ++i)
        {
            const double t = static_cast<double>(y[i]) / c;
            dz[i] = static_cast<T>(static_cast<double>(dz[i]) * (1.0 - t * t));
        }
    }
} // namespace ballast::kernels::ref

#endif
