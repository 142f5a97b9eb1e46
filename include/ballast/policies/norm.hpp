#ifndef BALLAST_POLICIES_NORM_HPP
#define BALLAST_POLICIES_NORM_HPP

/// @file
/// Normalisation family: the block norms, the final norm, and the norm inside qk-norm.
///
/// A norm policy normalises `rows` vectors of length `cols` (rows `ld` apart) and provides its exact
/// backward. Laws (tested): backward matches central finite differences; `no_norm` is the identity.
///
/// | policy            | y                                   | parameters      |
/// |-------------------|-------------------------------------|-----------------|
/// | `layer_norm`      | (x − mean)/√(var + ε) · g           | scale g         |
/// | `layer_norm_bias` | (x − mean)/√(var + ε) · g + b       | scale g, bias b |
/// | `rms_norm`        | x/√(mean(x²) + ε) · g               | scale g         |
/// | `no_norm`         | x                                   | none            |
///
/// LayerNorm: Ba, Kiros, Hinton 2016 (arXiv:1607.06450); RMSNorm: Zhang, Sennrich 2019 (arXiv:1910.07467).

#include <concepts>
#include <cstddef>
#include <string_view>
#include <type_traits>

#include <ballast/kernels/elementwise.hpp>
#include <ballast/kernels/norm.hpp>

namespace ballast::policies
{
    /// What every norm policy provides. `mean` may be unused (RMSNorm, none); `scale`/`bias` are
    /// nullptr when the policy has none. Backward OVERWRITES dx (dx may alias dy) and ACCUMULATES into
    /// dscale/dbias.
    template <class P, class T = float>
    concept norm_policy = requires(T* p, const T* c, std::size_t n, T eps)
    {
        {
            P::name
            } -> std::convertible_to<std::string_view>;
        {
            P::has_scale
            } -> std::convertible_to<bool>;
        {
            P::has_bias
            } -> std::convertible_to<bool>;
        P::forward(p, n, p, p, c, n, c, c, n, n, eps);
        P::backward(p, n, p, p, c, n, c, n, c, c, c, n, n);
    };

    namespace detail
    {
        template <bool Bias>
        struct layer_norm_impl
        {
            static constexpr bool has_scale = true;
            static constexpr bool has_bias = Bias;

            template <class T>
            static void forward(T* y, std::size_t ld_y, std::type_identity_t<T>* mean,
                                std::type_identity_t<T>* rstd, const std::type_identity_t<T>* x,
                                std::size_t ld_x, const std::type_identity_t<T>* scale,
                                const std::type_identity_t<T>* bias, std::size_t rows, std::size_t cols,
                                std::type_identity_t<T> eps)
            {
                kernels::layer_norm_forward(y, ld_y, mean, rstd, x, ld_x, scale, Bias ? bias : nullptr, rows,
                                            cols, eps);
            }

            template <class T>
            static void backward(T* dx, std::size_t ld_dx, std::type_identity_t<T>* dscale,
                                 std::type_identity_t<T>* dbias, const std::type_identity_t<T>* dy,
                                 std::size_t ld_dy, const std::type_identity_t<T>* x, std::size_t ld_x,
                                 const std::type_identity_t<T>* scale, const std::type_identity_t<T>* mean,
                                 const std::type_identity_t<T>* rstd, std::size_t rows, std::size_t cols)
            {
                kernels::layer_norm_backward(dx, ld_dx, dscale, Bias ? dbias : nullptr, dy, ld_dy, x, ld_x,
                                             scale, mean, rstd, rows, cols);
            }
        };
    } // namespace detail

    /// LayerNorm with a scale and no bias (the paper's default: no biases anywhere).
    struct layer_norm : detail::layer_norm_impl<false>
    {
        static constexpr std::string_view name = "layer_norm";
    };

    /// LayerNorm with scale and bias (GPT-2).
    struct layer_norm_bias : detail::layer_norm_impl<true>
    {
        static constexpr std::string_view name = "layer_norm_bias";
    };

    /// RMSNorm with a scale.
    struct rms_norm
    {
        static constexpr std::string_view name = "rms_norm";
        static constexpr bool has_scale = true;
        static constexpr bool has_bias = false;

        template <class T>
        static void forward(T* y, std::size_t ld_y, std::type_identity_t<T>* /*mean*/,
                            std::type_identity_t<T>* rstd, const std::type_identity_t<T>* x, std::size_t ld_x,
                            const std::type_identity_t<T>* scale, const std::type_identity_t<T>* /*bias*/,
                            std::size_t rows, std::size_t cols, std::type_identity_t<T> eps)
        {
            kernels::rms_norm_forward(y, ld_y, rstd, x, ld_x, scale, rows, cols, eps);
        }

        template <class T>
        static void backward(T* dx, std::size_t ld_dx, std::type_identity_t<T>* dscale,
                             std::type_identity_t<T>* /*dbias*/, const std::type_identity_t<T>* dy,
                             std::size_t ld_dy, const std::type_identity_t<T>* x, std::size_t ld_x,
                             const std::type_identity_t<T>* scale, const std::type_identity_t<T>* /*mean*/,
                             const std::type_identity_t<T>* rstd, std::size_t rows, std::size_t cols)
        {
            kernels::rms_norm_backward(dx, ld_dx, dscale, dy, ld_dy, x, ld_x, scale, rstd, rows, cols);
        }
    };

    /// The null norm: y = x, dx = dy.
    struct no_norm
    {
        static constexpr std::string_view name = "no_norm";
        static constexpr bool has_scale = false;
        static constexpr bool has_bias = false;

        template <class T>
        static void forward(T* y, std::size_t ld_y, std::type_identity_t<T>*, std::type_identity_t<T>*,
                            const std::type_identity_t<T>* x, std::size_t ld_x,
                            const std::type_identity_t<T>*, const std::type_identity_t<T>*, std::size_t rows,
                            std::size_t cols, std::type_identity_t<T>)
        {
            for (std::size_t r = 0; r < rows; ++r)
            {
                if (y + r * ld_y != x + r * ld_x)
                {
                    kernels::copy(y + r * ld_y, x + r * ld_x, cols);
                }
            }
        }

        template <class T>
        static void backward(T* dx, std::size_t ld_dx, std::type_identity_t<T>*, std::type_identity_t<T>*,
                             const std::type_identity_t<T>* dy, std::size_t ld_dy,
                             const std::type_identity_t<T>*, std::size_t, const std::type_identity_t<T>*,
                             const std::type_identity_t<T>*, const std::type_identity_t<T>*, std::size_t rows,
                             std::size_t cols)
        {
            for (std::size_t r = 0; r < rows; ++r)
            {
                if (dx + r * ld_dx != dy + r * ld_dy)
                {
                    kernels::copy(dx + r * ld_dx, dy + r * ld_dy, cols);
                }
            }
        }
    };

    static_assert(norm_policy<layer_norm> && norm_policy<layer_norm, double>);
    static_assert(norm_policy<layer_norm_bias> && norm_policy<rms_norm> && norm_policy<no_norm>);
} // namespace ballast::policies

#endif
