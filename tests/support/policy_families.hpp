#ifndef BALLAST_TESTS_SUPPORT_POLICY_FAMILIES_HPP
#define BALLAST_TESTS_SUPPORT_POLICY_FAMILIES_HPP

// Every policy of every family, in one place. Each list drives its family's law suite
// (TEMPLATE_LIST_TEST_CASE in tests/policies/<header>_test.cpp), so a new policy is put under every law
// of its family by adding ONE line here. tests/policies/registry_test.cpp checks that every policy a
// shipped policy set uses appears in its family's list, so a shipped policy cannot escape the laws.

#include <cstddef>
#include <tuple>
#include <type_traits>

#include <ballast/policies/attention.hpp>
#include <ballast/policies/norm.hpp>
#include <ballast/policies/output.hpp>
#include <ballast/policies/parameterisation.hpp>
#include <ballast/policies/position.hpp>
#include <ballast/policies/structure.hpp>
#include <ballast/policies/swiglu.hpp>

namespace ballast::test
{
    /// What a norm's forward is invariant to, as its family table says (tests/policies/norm_test.cpp checks
    /// both directions: invariant where declared, and visibly not invariant where not).
    enum invariance : unsigned
    {
        invariant_to_nothing = 0,
        invariant_to_shift = 1, ///< y(x + c·1) = y(x)
        invariant_to_scale = 2  ///< y(a·x) = y(x) for a > 0
    };

    /// A norm policy with its declared invariances.
    template <class Policy, unsigned Invariance>
    struct norm_case
    {
        using policy = Policy;
        static constexpr bool shift_invariant = (Invariance & invariant_to_shift) != 0;
        static constexpr bool scale_invariant = (Invariance & invariant_to_scale) != 0;
    };

    // clang-format off
    using norm_cases = std::tuple<
        norm_case<policies::layer_norm,      invariant_to_shift | invariant_to_scale>,
        norm_case<policies::layer_norm_bias, invariant_to_shift | invariant_to_scale>,
        norm_case<policies::rms_norm,        invariant_to_scale>,
        norm_case<policies::no_norm,         invariant_to_nothing>>;

    using qk_policies = std::tuple<
        policies::no_qk_control,
        policies::qk_norm<policies::layer_norm, policies::qk_scope::per_head>,
        policies::qk_norm<policies::rms_norm, policies::qk_scope::per_head>,
        policies::qk_norm<policies::layer_norm, policies::qk_scope::full_width>,
        policies::qk_norm<policies::rms_norm, policies::qk_scope::full_width>,
        policies::forced_logit_scale>;

    using soft_cap_policies = std::tuple<
        policies::no_soft_cap,
        policies::tanh_soft_cap>;

    using output_loss_policies = std::tuple<
        policies::cross_entropy,
        policies::z_loss>;

    using position_policies = std::tuple<
        policies::rope,
        policies::learned_position,
        policies::no_position>;

    using param_policies = std::tuple<
        policies::standard_param,
        policies::mup_simple,
        policies::mup_full>;

    using activation_policies = std::tuple<
        policies::gelu_tanh,
        policies::gelu_erf,
        policies::swiglu>;

    using bias_policies = std::tuple<
        policies::no_bias,
        policies::with_bias>;

    using head_policies = std::tuple<
        policies::untied_head,
        policies::tied_head>;
    // clang-format on

    /// The policies of a norm_cases list.
    template <class Cases>
    struct policies_of;
    template <class... Cases>
    struct policies_of<std::tuple<Cases...>>
    {
        using type = std::tuple<typename Cases::policy...>;
    };

    /// Whether `P` is one of the types of the tuple `List`.
    template <class List, class P>
    inline constexpr bool listed = false;
    template <class... Ps, class P>
    inline constexpr bool listed<std::tuple<Ps...>, P> = (std::is_same_v<Ps, P> || ...);
} // namespace ballast::test

#endif
