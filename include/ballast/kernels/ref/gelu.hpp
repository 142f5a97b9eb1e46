#ifndef BALLAST_KERNELS_REF_GELU_HPP
#define BALLAST_KERNELS_REF_GELU_HPP

/// @file
/// GELU forms and constants, and the scalar reference twins of the kernels in
/// <ballast/kernels/gelu.hpp>: plain serial loops computing in double, same signatures and conventions.
///
/// Dims legend: n = number of elements (any shape, flattened); y, x, dy, dx are [n].
///
/// Both forms are evaluated without cancellation for negative x (where GELU(x) -> 0 and the textbook
/// `1 + tanh(.)` / `1 + erf(.)` lose all their digits):
///   tanh form:  0.5 * (1 + tanh(u)) = sigma(2u) = 1 / (1 + exp(-2u)),  u = sqrt(2/pi) * (x + c * x^3)
///               evaluated through a = exp(-2|u|) in (0, 1] so nothing overflows:
///               sigma(2u) = 1/(1+a) for u >= 0, a/(1+a) for u < 0;  sigma(1 - sigma) = a / (1+a)^2
///   erf form:   0.5 * (1 + erf(x/sqrt2)) = Phi(x) = 0.5 * erfc(-x/sqrt2)
/// Special values (same in the SIMD kernels): GELU(NaN) = NaN, GELU(+inf) = +inf, GELU(-inf) = NaN
/// (-inf * 0, as the textbook formula gives), gelu'(+-inf) = NaN. NaN and Inf never stay hidden.

#include <cmath>
#include <cstddef>
#include <numbers>

#include <ballast/core/config.hpp>

namespace ballast::kernels
{
    /// Which GELU: the tanh approximation (GPT-2, PyTorch `approximate='tanh'`) or the exact erf form.
    enum class gelu_form
    {
        tanh,
        erf
    };

    /// Constants of both forms, derived from std::numbers (computed in double, rounded once to T).
    template <class T>
    struct gelu_constants
    {
        /// sqrt(2/pi) = sqrt2 / sqrt(pi): the scale inside tanh (a matched slope at 0: Phi'(0) =
        /// 1/sqrt(2pi)).
        static constexpr T sqrt_2_over_pi = static_cast<T>(std::numbers::sqrt2 * std::numbers::inv_sqrtpi);
        /// 0.044715: the cubic coefficient of the tanh approximation as published (Hendrycks & Gimpel 2016,
        /// "Gaussian Error Linear Units", sec. 2) and used by GPT-2/PyTorch; a fit, not a derived number.
        static constexpr T cubic = static_cast<T>(0.044715);
        /// 3 * cubic: d/dx (x + c x^3) = 1 + 3c x^2.
        static constexpr T cubic_x3 = static_cast<T>(3 * 0.044715);
        /// 1/sqrt(2) = sqrt2 / 2, for Phi(x) = 0.5 erfc(-x/sqrt2).
        static constexpr T inv_sqrt2 = static_cast<T>(std::numbers::sqrt2 / 2);
        /// 1/sqrt(2 pi) = inv_sqrtpi / sqrt2: the standard normal density at 0.
        static constexpr T inv_sqrt_2pi = static_cast<T>(std::numbers::inv_sqrtpi / std::numbers::sqrt2);
    };

    namespace detail
    {
        inline void check_gelu_args(const char* where, std::size_t n, const void* out, const void* in1,
                                    const void* in2)
        {
            BALLAST_CHECK(n == 0 || (out && in1 && in2), where,
                          "pointers must be non-null when n > 0 (n = ", n, ")");
        }
    } // namespace detail

    namespace ref
    {
        /// GELU(x) in double: tanh form x * sigma(2u), erf form x * Phi(x) (see file comment).
        template <gelu_form Form>
        inline double gelu_value(double x)
        {
            using c = gelu_constants<double>;
            if constexpr (Form == gelu_form::tanh)
            {
                const double u = c::sqrt_2_over_pi * x * (1.0 + c::cubic * x * x);
                const double a = std::exp(-2.0 * std::fabs(u));
                const double s = (u >= 0 ? 1.0 : a) / (1.0 + a);
                return x * s;
            }
            else
            {
                return x * (0.5 * std::erfc(-x * c::inv_sqrt2));
            }
        }

        /// d GELU / dx in double.
        ///   tanh form: sigma + 2 sqrt(2/pi) * sigma(1 - sigma) * x * (1 + 3c x^2), sigma = sigma(2u)
        ///              (the product is ordered (x * s') * x * x so s' = 0 never meets an overflowed x^2)
        ///   erf form:  Phi(x) + x * phi(x),  phi(x) = exp(-x^2/2) / sqrt(2 pi)
        template <gelu_form Form>
        inline double gelu_derivative(double x)
        {
            using c = gelu_constants<double>;
            if constexpr (Form == gelu_form::tanh)
            {
                const double u = c::sqrt_2_over_pi * x * (1.0 + c::cubic * x * x);
                const double a = std::exp(-2.0 * std::fabs(u));
                const double inv = 1.0 / (1.0 + a);
                const double s = (u >= 0 ? 1.0 : a) * inv;
                const double sp = a * inv * inv; // sigma (1 - sigma)
                const double t = x * sp;
                return s + 2.0 * c::sqrt_2_over_pi * (t + c::cubic_x3 * ((t * x) * x));
            }
            else
            {
                const double phi_cdf = 0.5 * std::erfc(-x * c::inv_sqrt2);
                const double pdf = c::inv_sqrt_2pi * std::exp(-0.5 * x * x);
                return phi_cdf + x * pdf;
            }
        }

        /// y = GELU(x), reference. y may alias x exactly.
        template <gelu_form Form, class T>
        inline void gelu_forward(T* y, const T* x, std::size_t n)
        {
            detail::check_gelu_args("ref::gelu_forward", n, y, x, x);
            for (std::size_t i = 0; i < n; ++i)
            {
                y[i] = static_cast<T>(gelu_value<Form>(static_cast<double>(x[i])));
            }
        }

        /// dx = dy * GELU'(x) (OVERWRITTEN), reference. dx may alias dy or x exactly.
        template <gelu_form Form, class T>
        inline void gelu_backward(T* dx, const T* dy, const T* x, std::size_t n)
        {
            detail::check_gelu_args("ref::gelu_backward", n, dx, dy, x);
            for (std::size_t i = 0; i < n; ++i)
            {
                dx[i] = static_cast<T>(static_cast<double>(dy[i]) *
                                       gelu_derivative<Form>(static_cast<double>(x[i])));
            }
        }

        /// dx += dy * GELU'(x) (ACCUMULATED), reference.
        template <gelu_form Form, class T>
        inline void gelu_backward_accumulate(T* dx, const T* dy, const T* x, std::size_t n)
        {
            detail::check_gelu_args("ref::gelu_backward_accumulate", n, dx, dy, x);
            for (std::size_t i = 0; i < n; ++i)
            {
                dx[i] = static_cast<T>(static_cast<double>(dx[i]) +
                                       static_cast<double>(dy[i]) *
                                         gelu_derivative<Form>(static_cast<double>(x[i])));
            }
        }
    } // namespace ref
} // namespace ballast::kernels

#endif
