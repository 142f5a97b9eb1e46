#ifndef BALLAST_POLICIES_SWIGLU_HPP
#define BALLAST_POLICIES_SWIGLU_HPP

/// @file
/// SwiGLU, the gated MLP activation of Shazeer 2020 ("GLU Variants Improve Transformer"; PaLM, LLaMA):
///
///     FFN(x) = (Swish(x·W) ⊙ x·V)·W2,   Swish(a) = a·σ(a)
///
/// As an activation policy (policies/activation.hpp): the up projection `mlp.up.weight` is [2F, d],
/// rows [0, F) are W (the gate) and rows [F, 2F) are V (the value), so up_factor = 2; W2 is
/// `mlp.down.weight` [d, F].
///
/// Hidden width convention: F = round(2/3 · mlp_ratio·d) (round half up), so the MLP keeps the
/// parameter count of a GELU MLP of width mlp_ratio·d up to rounding: 3·F·d ≈ 2·(mlp_ratio·d)·d (Shazeer
/// 2020 §2 shrinks d_ff by 2/3 for the same reason; with mlp_ratio 4 it is the 8/3·d of LLaMA before its
/// rounding to a multiple of 256, which ballast does not apply).

#include <cstddef>
#include <string_view>

#include <ballast/kernels/swiglu.hpp>
#include <ballast/policies/activation.hpp>

namespace ballast::policies
{
    struct swiglu
    {
        static constexpr std::string_view name = "swiglu";
        static constexpr std::size_t up_factor = 2;
        /// round(2/3 · w), at least 1.
        static constexpr std::size_t hidden_width(std::size_t mlp_width) noexcept
        {
            const std::size_t f = (2 * mlp_width + 1) / 3;
            return f > 0 ? f : 1;
        }
        template <class T>
        static void forward(T* y, const T* x, std::size_t rows, std::size_t f)
        {
            kernels::swiglu_forward(y, x, rows, f);
        }
        template <class T>
        static void backward(T* dx, const T* dy, const T* x, std::size_t rows, std::size_t f)
        {
            kernels::swiglu_backward(dx, dy, x, rows, f);
        }
    };

    static_assert(activation_policy<swiglu>);
} // namespace ballast::policies

#endif
