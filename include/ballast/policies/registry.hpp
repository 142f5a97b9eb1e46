#ifndef BALLAST_POLICIES_REGISTRY_HPP
#define BALLAST_POLICIES_REGISTRY_HPP

/// @file
/// The shipped policy sets as a compile-time list (Boost.Hana), and the one place a policy-set *name*
/// becomes a *type*: `with_policy_set(name, f)` calls `f(hana::type_c<S>)` for the set called `name`.
/// This is the only runtime dispatch on policies, done once at the top of a tool; everything below it
/// is fully specialised.

#include <string>
#include <string_view>
#include <vector>

#include <boost/hana/for_each.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/type.hpp>

#include <ballast/core/config.hpp>
#include <ballast/core/named.hpp>
#include <ballast/policies/policy_set.hpp>

namespace ballast
{
    /// Every named policy set ballast ships.
    inline constexpr auto shipped_policy_sets =
      boost::hana::tuple_t<paper_default, paper_baseline, no_zloss, gpt2_like, mup_recipe, mup_full_recipe,
                           soft_capped, forced_scale, swiglu_recipe>;

    /// Names of the shipped policy sets, in registry order.
    inline std::vector<std::string> policy_set_names()
    {
        return type_names(shipped_policy_sets);
    }

    /// Call `f(boost::hana::type_c<S>)` for the shipped set named `name`; throws ballast::error listing the
    /// known names otherwise.
    template <class F>
    void with_policy_set(std::string_view name, F&& f)
    {
        with_named(shipped_policy_sets, name, "policy set", static_cast<F&&>(f));
    }
} // namespace ballast

#endif
