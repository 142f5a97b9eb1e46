#ifndef BALLAST_KERNELS_GELU_HPP
#define BALLAST_KERNELS_GELU_HPP

/// @file
/// GELU activation, forward and backward, in the tanh-approximation and exact erf forms (chosen at
/// compile time by `gelu_form`), vectorised with xsimd and threaded over fixed chunks of `gelu_grain`
/// elements. Scalar twins live in <ballast/kernels/ref/gelu.hpp> (which also defines `gelu_form` and
/// `gelu_constants`); with `BALLAST_FORCE_SCALAR` every kernel here forwards to its twin.
///
/// Dims legend: n = number of elements (any shape, flattened); y, x, dy, dx are [n].
///
/// Math (see ref/gelu.hpp for the cancellation-free evaluation both implementations share):
///   tanh form: GELU(x) = 0.5 x (1 + tanh(u)) = x sigma(2u),  u = sqrt(2/pi) (x + 0.044715 x^3)
///              GELU'(x) = sigma(2u) + 2 sqrt(2/pi) sigma(2u)(1 - sigma(2u)) x (1 + 3 * 0.044715 x^2)
///   erf form:  GELU(x) = 0.5 x (1 + erf(x / sqrt2)) = x Phi(x),  GELU'(x) = Phi(x) + x phi(x)
/// The tanh form costs one xsimd::exp (cheaper and, for x < 0, more accurate than 1 + xsimd::tanh);
/// the erf form one xsimd::erfc (plus one xsimd::exp in backward). Measured against std:: in long
/// double, xsimd 8.1 exp is within ~1 ulp; erfc within ~8 float ulp for arguments giving GELU
/// values above 1e-7, and within ~1e-14 absolute in double (see tests/kernels/gelu_test.cpp).
///
/// The ragged end of the array goes through a zero-padded register, so every element gets the same
/// SIMD approximation (no scalar fallback with different rounding). Chunk boundaries are fixed and each
/// chunk runs one out-of-line copy of the code, so results never depend on the thread count.

#include <array>
#include <cstddef>
#include <type_traits>
#include <utility>

#include <ballast/core/config.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/kernels/ref/gelu.hpp>

namespace ballast::kernels
{
    /// Elements per parallel chunk: 16 Ki (64 KiB of float per input stream) amortises the OpenMP
    /// fork/join (a few microseconds) against ~10 us of transcendental work, and is a multiple of every
    /// register width so only the last chunk has a ragged end.
    inline constexpr std::size_t gelu_grain = std::size_t(1) << 14;

    namespace detail
    {
        /// GELU on one register (see the file comment for the formulas).
        template <gelu_form Form, class B>
        inline B gelu_value_batch(const B& x)
        {
            using T = typename B::value_type;
            using c = gelu_constants<T>;
            const B one(T(1));
            if constexpr (Form == gelu_form::tanh)
            {
                const B u = B(c::sqrt_2_over_pi) * x * xsimd::fma(B(c::cubic) * x, x, one);
                const B a = xsimd::exp(B(T(-2)) * xsimd::abs(u)); // exp(-2|u|) in (0, 1]: never overflows
                const B s = xsimd::select(u >= B(T(0)), one, a) / (one + a);
                return x * s;
            }
            else
            {
                return x * (B(T(0.5)) * xsimd::erfc(-x * B(c::inv_sqrt2)));
            }
        }

        /// GELU'(x) on one register.
        template <gelu_form Form, class B>
        inline B gelu_derivative_batch(const B& x)
        {
            using T = typename B::value_type;
            using c = gelu_constants<T>;
            const B one(T(1));
            if constexpr (Form == gelu_form::tanh)
            {
                const B u = B(c::sqrt_2_over_pi) * x * xsimd::fma(B(c::cubic) * x, x, one);
                const B a = xsimd::exp(B(T(-2)) * xsimd::abs(u));
                const B inv = one / (one + a);
                const B s = xsimd::select(u >= B(T(0)), one, a) * inv;
                const B sp = a * inv * inv; // sigma (1 - sigma), no cancellation
                const B t = x * sp;         // ordered (x s') x x: s' = 0 never meets an overflowed x^2
                // d sigma(2u)/dx = 2 sigma' du/dx: the chain-rule factor 2 folds into the constant.
                return s + B(T(2) * c::sqrt_2_over_pi) * xsimd::fma(B(c::cubic_x3), (t * x) * x, t);
            }
            else
            {
                const B cdf = B(T(0.5)) * xsimd::erfc(-x * B(c::inv_sqrt2));
                const B pdf = B(c::inv_sqrt_2pi) * xsimd::exp(B(T(-0.5)) * x * x);
                return xsimd::fma(x, pdf, cdf);
            }
        }

        /// One chunk [b, e) of gelu_map. Not inlined: parallel_for calls its body from a serial and
        /// from an OpenMP path, and two inlined copies could be contracted (mul+add -> FMA) differently
        /// by the compiler; one out-of-line copy keeps every element's arithmetic identical whichever
        /// thread runs it.
        template <class T, std::size_t K, class F, std::size_t... I>
        [[gnu::noinline]] inline void gelu_map_chunk(T* out, const std::array<const T*, K>& in, std::size_t b,
                                                     std::size_t e, const F& f, std::index_sequence<I...>)
        {
            using batch = simd::batch<T>;
            constexpr std::size_t w = simd::lanes<T>;
            std::size_t i = b;
            for (; i + w <= e; i += w)
            {
                f(batch::load_unaligned(in[I] + i)...).store_unaligned(out + i);
            }
            if (i < e)
            {
                // Ragged end: the same SIMD code on a register padded with zeros (a finite filler).
                const std::size_t m = e - i;
                alignas(simd::arch::alignment()) T buf[K][w] = {};
                alignas(simd::arch::alignment()) T res[w];
                for (std::size_t k = 0; k < K; ++k)
                {
                    for (std::size_t t = 0; t < m; ++t)
                    {
                        buf[k][t] = in[k][i + t];
                    }
                }
                f(batch::load_aligned(buf[I])...).store_aligned(res);
                for (std::size_t t = 0; t < m; ++t)
                {
                    out[i + t] = res[t];
                }
            }
        }

        /// out[i] = f(in_0[i], ..., in_{K-1}[i]) register by register, threaded in `gelu_grain` chunks.
        /// Each element is loaded before it is stored, so out may alias any input exactly.
        template <class T, std::size_t K, class F>
        inline void gelu_map(T* out, const std::array<const T*, K>& in, std::size_t n, F f)
        {
            parallel_for(n, gelu_grain,
                         [&](std::size_t b, std::size_t e)
                         { gelu_map_chunk(out, in, b, e, f, std::make_index_sequence<K>{}); });
        }
    } // namespace detail

    /// y = GELU(x) elementwise. y may alias x exactly (in place).
    /// @throws ballast::error if a pointer is null while n > 0.
    template <gelu_form Form = gelu_form::tanh, class T>
    inline void gelu_forward(T* y, const T* x, std::size_t n)
    {
        static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                      "gelu_forward: T must be float or double");
        if constexpr (simd::force_scalar)
        {
            ref::gelu_forward<Form>(y, x, n);
        }
        else
        {
            detail::check_gelu_args("gelu_forward", n, y, x, x);
            detail::gelu_map<T, 1>(y, { x }, n,
                                   [](const auto& xb) { return detail::gelu_value_batch<Form>(xb); });
        }
    }

    /// dx = dy * GELU'(x) elementwise (dx OVERWRITTEN). dx may alias dy or x exactly.
    template <gelu_form Form = gelu_form::tanh, class T>
    inline void gelu_backward(T* dx, const T* dy, const T* x, std::size_t n)
    {
        static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                      "gelu_backward: T must be float or double");
        if constexpr (simd::force_scalar)
        {
            ref::gelu_backward<Form>(dx, dy, x, n);
        }
        else
        {
            detail::check_gelu_args("gelu_backward", n, dx, dy, x);
            detail::gelu_map<T, 2>(dx, { x, dy }, n,
                                   [](const auto& xb, const auto& dyb)
                                   { return dyb * detail::gelu_derivative_batch<Form>(xb); });
        }
    }

    /// dx += dy * GELU'(x) elementwise (dx ACCUMULATED), for an activation whose input feeds several
    /// consumers (residual branches).
    template <gelu_form Form = gelu_form::tanh, class T>
    inline void gelu_backward_accumulate(T* dx, const T* dy, const T* x, std::size_t n)
    {
        static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                      "gelu_backward_accumulate: T must be float or double");
        if constexpr (simd::force_scalar)
        {
            ref::gelu_backward_accumulate<Form>(dx, dy, x, n);
        }
        else
        {
            detail::check_gelu_args("gelu_backward_accumulate", n, dx, dy, x);
            detail::gelu_map<T, 3>(dx, { x, dy, dx }, n,
                                   [](const auto& xb, const auto& dyb, const auto& dxb)
                                   { return xsimd::fma(dyb, detail::gelu_derivative_batch<Form>(xb), dxb); });
        }
    }
} // namespace ballast::kernels

#endif
