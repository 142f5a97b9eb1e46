#ifndef BALLAST_POLICIES_STRUCTURE_HPP
#define BALLAST_POLICIES_STRUCTURE_HPP

/// @file
/// Structural choices that are not stability interventions but change the parameter set: biases,
/// head tying, and the GELU form.

#include <concepts>
#include <string_view>

#include <ballast/kernels/gelu.hpp>

namespace ballast::policies
{
    /// Bias family: `no_bias` (PaLM and the paper: no biases anywhere) or `with_bias` (GPT-2: biases on
    /// the qkv, attention-out, MLP-up and MLP-down layers).
    template <class P>
    concept bias_policy = requires
    {
        {
            P::name
            } -> std::convertible_to<std::string_view>;
        {
            P::enabled
            } -> std::convertible_to<bool>;
    };
    struct no_bias
    {
        static constexpr std::string_view name = "no_bias";
        static constexpr bool enabled = false;
    };
    struct with_bias
    {
        static constexpr std::string_view name = "with_bias";
        static constexpr bool enabled = true;
    };

    /// Head family: `untied_head` (the paper: a separate [V, d] head) or `tied_head` (logits = f·embedᵀ).
    template <class P>
    concept head_policy = requires
    {
        {
            P::name
            } -> std::convertible_to<std::string_view>;
        {
            P::tied
            } -> std::convertible_to<bool>;
    };
    struct untied_head
    {
        static constexpr std::string_view name = "untied_head";
        static constexpr bool tied = false;
    };
    struct tied_head
    {
        static constexpr std::string_view name = "tied_head";
        static constexpr bool tied = true;
    };

    /// Activation family for the MLP: GELU in the tanh form (GPT-2, Flax's default `nn.gelu`) or erf form.
    template <class P>
    concept activation_policy = requires
    {
        {
            P::name
            } -> std::convertible_to<std::string_view>;
        {
            P::form
            } -> std::convertible_to<kernels::gelu_form>;
    };
    struct gelu_tanh
    {
        static constexpr std::string_view name = "gelu_tanh";
        static constexpr kernels::gelu_form form = kernels::gelu_form::tanh;
    };
    struct gelu_erf
    {
        static constexpr std::string_view name = "gelu_erf";
        static constexpr kernels::gelu_form form = kernels::gelu_form::erf;
    };

    static_assert(bias_policy<no_bias> && bias_policy<with_bias> && head_policy<untied_head> &&
                  head_policy<tied_head> && activation_policy<gelu_tanh> && activation_policy<gelu_erf>);
} // namespace ballast::policies

#endif
