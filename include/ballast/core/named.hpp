#ifndef BALLAST_CORE_NAMED_HPP
#define BALLAST_CORE_NAMED_HPP

/// @file
/// Compile-time lists of named types (Boost.Hana tuples of types with a `static name`), and the one place a
/// *name* chosen at run time becomes a *type*: `with_named(list, name, what, f)` calls
/// `f(hana::type_c<X>)` for the type called `name`. Tools do this once at the top; everything below it is
/// fully specialised, so the hot path has no runtime dispatch.

#include <string>
#include <string_view>
#include <vector>

#include <boost/hana/for_each.hpp>
#include <boost/hana/type.hpp>

#include <ballast/core/config.hpp>

namespace ballast
{
    /// The `name`s of a Hana tuple of types, in order.
    template <class Types>
    std::vector<std::string> type_names(Types types)
    {
        std::vector<std::string> names;
        boost::hana::for_each(types,
                              [&](auto t)
                              {
                                  using X = typename decltype(t)::type;
                                  names.emplace_back(X::name);
                              });
        return names;
    }

    /// Call `f(boost::hana::type_c<X>)` for the type in `types` named `name`; throws ballast::error
    /// ("<what>: unknown name '…' (known: …)") otherwise.
    template <class Types, class F>
    void with_named(Types types, std::string_view name, const char* what, F&& f)
    {
        bool found = false;
        boost::hana::for_each(types,
                              [&](auto t)
                              {
                                  using X = typename decltype(t)::type;
                                  if (!found && X::name == name)
                                  {
                                      found = true;
                                      f(t);
                                  }
                              });
        if (!found)
        {
            std::string known;
            for (const auto& n : type_names(types))
            {
                known += known.empty() ? "" : ", ";
                known += n;
            }
            detail::throw_error(what, "unknown name '", name, "' (known: ", known, ")");
        }
    }
} // namespace ballast

#endif
