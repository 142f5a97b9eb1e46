#ifndef BALLAST_KERNELS_REF_SWIGLU_HPP
#define BALLAST_KERNELS_REF_SWIGLU_HPP

/// @file
/// Scalar reference twins of the SwiGLU kernels (kernels/swiglu.hpp): serial loops on std::exp.
///
/// SwiGLU (Shazeer 2020, "GLU Variants Improve Transformer"): for a row x = [a | b] of 2F elements (the
/// gate a = xW and the value b = xV side by side),
///   y_j = Swish(a_j)·b_j,  Swish(a) = a·σ(a),  σ(a) = 1 / (1 + exp(−a)),
///   ∂y_j/∂a_j = b_j·σ(a_j)·(1 + a_j·(1 − σ(a_j))),  ∂y_j/∂b_j = Swish(a_j).

#include <cmath>
#include <cstddef>

namespace ballast::kernels::ref
{
    /// y[r, j] = Swish(x[r, j])·x[r, F + j] for rows × F outputs; x is [rows, 2F], y [rows, F].
    template <class T>
    inline void swiglu_forward(T* y, const T* x, std::size_t rows, std::size_t f)
    {
        for (std::size_t r = 0; r < rows; ++r)
        {
            for (std::size_t j = 0; j < f; ++j)
            {
                const T a = x[r * 2 * f + j], b = x[r * 2 * f + f + j];
                const T s = T(1) / (T(1) + std::exp(-a));
                y[r * f + j] = a * s * b;
            }
        }
    }

    /// dx [rows, 2F] from dy (the first F columns of rows 2F apart; may alias dx) and x [rows, 2F].
    template <class T>
    inline void swiglu_backward(T* dx, const T* dy, const T* x, std::size_t rows, std::size_t f)
    {
        for (std::size_t r = 0; r < rows; ++r)
        {
            for (std::size_t j = 0; j < f; ++j)
            {
                const std::size_t i = r * 2 * f + j;
                const T g = dy[i], a = x[i], b = x[i + f];
                const T s = T(1) / (T(1) + std::exp(-a));
                dx[i] = g * b * s * (T(1) + a * (T(1) - s));
                dx[i + f] = g * a * s;
            }
        }
    }
} // namespace ballast::kernels::ref

#endif
