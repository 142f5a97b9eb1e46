#ifndef BALLAST_STUDY_GRID_HPP
#define BALLAST_STUDY_GRID_HPP

/// @file
/// Policy grids, enumerated at compile time with Boost.Hana.
///
/// A study compares *recipes*: a policy set (a type) trained with an optimizer policy (a type). The
/// policy sets of a study are usually variations of one base set along a few axes — qk-layernorm on or
/// off, z-loss on or off — so they are built, not hand-written:
///
///   using namespace ballast::study;
///   constexpr auto grid = policy_grid<paper_default>(
///       boost::hana::tuple_t<with_qk<"qk_ln", qk_norm<layer_norm>>, with_qk<"no_qk", no_qk_control>>,
///       boost::hana::tuple_t<with_output_loss<"zloss", z_loss>, with_output_loss<"ce", cross_entropy>>);
///   // = the cartesian product: 4 policy sets named "qk_ln+zloss", "qk_ln+ce", "no_qk+zloss", "no_qk+ce"
///   constexpr auto recipes = recipe_grid(grid, boost::hana::tuple_t<optim::adamw<>>);
///
/// Each element is a distinct, fully specialised type: the study's trainers have no runtime dispatch on
/// policies. A *setter* (`with_qk<Label, Policy>`, …) replaces one slot of a policy set and contributes a
/// label to the variant's name.

#include <algorithm>
#include <array>
#include <cstddef>
#include <string_view>

#include <boost/hana/cartesian_product.hpp>
#include <boost/hana/flatten.hpp>
#include <boost/hana/length.hpp>
#include <boost/hana/transform.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/type.hpp>
#include <boost/hana/unpack.hpp>

#include <ballast/policies/policy_set.hpp>
#include <ballast/train/optimizer.hpp>

namespace ballast::study
{
    /// A string usable as a template argument (labels of grid axes).
    template <std::size_t N>
    struct fixed_string
    {
        char data[N]{};
        constexpr fixed_string(const char (&s)[N]) { std::copy_n(s, N, data); }
        constexpr std::string_view view() const noexcept { return { data, N - 1 }; }
    };

    namespace detail
    {
        /// Static storage for the concatenation of string views with a separator.
        template <char Sep, const std::string_view&... Parts>
        struct joined
        {
            static constexpr std::size_t size = []
            {
                std::size_t n = 0;
                ((n += Parts.size()), ...);
                return n + (sizeof...(Parts) > 0 ? sizeof...(Parts) - 1 : 0);
            }();
            static constexpr std::array<char, size + 1> storage = []
            {
                std::array<char, size + 1> out{};
                std::size_t i = 0;
                bool first = true;
                const auto append = [&](std::string_view p)
                {
                    if (!first)
                    {
                        out[i++] = Sep;
                    }
                    first = false;
                    for (const char c : p)
                    {
                        out[i++] = c;
                    }
                };
                (append(Parts), ...);
                return out;
            }();
            static constexpr std::string_view value{ storage.data(), size };
        };
    } // namespace detail

    /// Setters: `with_<slot><Label, Policy>` replaces one slot of a policy set (Policy must model the
    /// slot's concept), contributing `Label` to the variant's name. One per slot of BALLAST_POLICY_SLOTS
    /// (policies/policy_set.hpp): with_norm, with_position, with_qk, with_attention_cap, with_output_loss,
    /// with_output_cap, with_parameterisation, with_bias, with_head, with_activation.
#define BALLAST_STUDY_SETTER(slot, concept_)                                                                 \
    template <fixed_string Label, class Policy>                                                              \
    struct with_##slot                                                                                       \
    {                                                                                                        \
        static_assert(policies::concept_<Policy>, "with_" #slot ": Policy is not a " #concept_);           \
        static constexpr std::string_view label = Label.view();                                              \
        template <class S>                                                                                   \
        struct apply : S                                                                                     \
        {                                                                                                    \
            using slot = Policy;                                                                             \
        };                                                                                                   \
    };
    BALLAST_POLICY_SLOTS(BALLAST_STUDY_SETTER)
#undef BALLAST_STUDY_SETTER

    namespace detail
    {
        template <class S, class... Setters>
        struct apply_all
        {
            using type = S;
        };
        template <class S, class First, class... Rest>
        struct apply_all<S, First, Rest...> : apply_all<typename First::template apply<S>, Rest...>
        {
        };
    } // namespace detail

    /// `Base` with every setter applied, named by the setters' labels joined with '+'.
    template <policy_set Base, class... Setters>
    struct policy_variant : detail::apply_all<Base, Setters...>::type
    {
        static constexpr std::string_view name = detail::joined<'+', Setters::label...>::value;
    };

    /// The cartesian product of setter axes (each a `hana::tuple_t<setter…>`) applied to `Base`: a Hana tuple
    /// of `hana::type<policy_variant<Base, …>>`, first axis varying slowest.
    template <policy_set Base, class... Axes>
    constexpr auto policy_grid(Axes... axes)
    {
        return boost::hana::transform(
          boost::hana::cartesian_product(boost::hana::make_tuple(axes...)),
          [](auto combo)
          {
              return boost::hana::unpack(
                combo, [](auto... setter)
                { return boost::hana::type_c<policy_variant<Base, typename decltype(setter)::type...>>; });
          });
    }

    /// A recipe: a policy set trained with an optimizer policy.
    template <policy_set P, optim::optimizer_policy O>
    struct recipe
    {
        using policies = P;
        using optimizer = O;
        static constexpr std::string_view name = P::name;
    };

    /// Every (policy set, optimizer) pair of two Hana type tuples, as `hana::type<recipe<P, O>>`.
    template <class PolicySets, class Optimizers>
    constexpr auto recipe_grid(PolicySets sets, Optimizers optimizers)
    {
        return boost::hana::transform(
          boost::hana::cartesian_product(boost::hana::make_tuple(sets, optimizers)),
          [](auto pair)
          {
              return boost::hana::unpack(
                pair,
                [](auto p, auto o) {
                    return boost::hana::type_c<
                      recipe<typename decltype(p)::type, typename decltype(o)::type>>;
                });
          });
    }
} // namespace ballast::study

#endif
