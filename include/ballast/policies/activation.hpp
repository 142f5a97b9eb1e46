#ifndef BALLAST_POLICIES_ACTIVATION_HPP
#define BALLAST_POLICIES_ACTIVATION_HPP

/// @file
/// Activation family: the hidden nonlinearity of the MLP, as behaviour the model calls
/// (model/mlp.hpp), so a new activation, gated or not, is one policy header (plus its kernels) and
/// never an edit of the model.
///
/// An activation policy declares
/// - `up_factor`: up-projection rows per hidden unit (1 for GELU; 2 for a gated unit, whose up
///   projection yields the gate and the value side by side), so `mlp.up.weight` is [up_factor·F, d];
/// - `hidden_width(w)`: the hidden width F for the config's w = mlp_ratio·d (w itself for GELU; a gated
///   unit may shrink it to keep the parameter count, see policies/swiglu.hpp);
/// - `forward(y, x, rows, f)`: y [rows, F] from the up projection x [rows, up_factor·F];
/// - `backward(dx, dy, x, rows, f)`: dx [rows, up_factor·F] = d loss / d x from dy = d loss / d y, whose
///   rows are up_factor·F apart (dy fills the first F columns of each row) and which may alias dx.
/// Laws (tests/policies/activation_test.cpp, every policy of the family): backward equals central finite
/// differences in double; the output is finite and has the declared shape; each policy's own closed form.

#include <concepts>
#include <cstddef>
#include <string_view>

#include <ballast/kernels/gelu.hpp>

namespace ballast::policies
{
    template <class P>
    concept activation_policy = requires(float* pf, const float* cf, double* pd, const double* cd, std::size_t n)
    {
        {
            P::name
            } -> std::convertible_to<std::string_view>;
        {
            P::up_factor
            } -> std::convertible_to<std::size_t>;
        {
            P::hidden_width(n)
            } -> std::convertible_to<std::size_t>;
        P::forward(pf, cf, n, n);
        P::backward(pf, cf, cf, n, n);
        P::forward(pd, cd, n, n);
        P::backward(pd, cd, cd, n, n);
    } && (P::up_factor >= 1);

    /// GELU, elementwise (up_factor 1), in the form `Form` (kernels/gelu.hpp).
    template <kernels::gelu_form Form>
    struct gelu
    {
        static constexpr kernels::gelu_form form = Form;
        static constexpr std::size_t up_factor = 1;
        static constexpr std::size_t hidden_width(std::size_t mlp_width) noexcept { return mlp_width; }
        template <class T>
        static void forward(T* y, const T* x, std::size_t rows, std::size_t f)
        {
            kernels::gelu_forward<Form>(y, x, rows * f);
        }
        template <class T>
        static void backward(T* dx, const T* dy, const T* x, std::size_t rows, std::size_t f)
        {
            kernels::gelu_backward<Form>(dx, dy, x, rows * f);
        }
    };

    /// GELU in the tanh form (GPT-2, Flax's default `nn.gelu`).
    struct gelu_tanh : gelu<kernels::gelu_form::tanh>
    {
        static constexpr std::string_view name = "gelu_tanh";
    };
    /// GELU in the exact erf form.
    struct gelu_erf : gelu<kernels::gelu_form::erf>
    {
        static constexpr std::string_view name = "gelu_erf";
    };

    static_assert(activation_policy<gelu_tanh> && activation_policy<gelu_erf>);
} // namespace ballast::policies

#endif
