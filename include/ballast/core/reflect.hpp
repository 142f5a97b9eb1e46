#ifndef BALLAST_CORE_REFLECT_HPP
#define BALLAST_CORE_REFLECT_HPP

/// @file
/// Config aggregates as JSON, by reflection. Every config struct is adapted with
/// `BOOST_HANA_ADAPT_STRUCT`, so its fields are listed once, next to their definitions, and never again:
/// the metrics header, checkpoints, study result lines, TOML files and command-line flags all walk the same
/// list. Enumerations take part through `enum_names<E>`, a table of (name, value) pairs. Every adapted
/// struct also specialises `field_docs<S>` next to its adaptation: one sentence per field (what it does,
/// its unit, its allowed values), the text of the programs' `--help` and of docs/flags.md. `documented<S>`
/// checks at compile time that the docs list every reflected field, in order, each with a non-empty text.
///
///   nlohmann::json j = ballast::to_json(cfg);     // {"vocab": 256, "d_model": 128, ...}
///   ballast::from_json(j, cfg, "model");          // unknown keys and wrong types are errors

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/hana/accessors.hpp>
#include <boost/hana/concept/struct.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/second.hpp>
#include <boost/hana/string.hpp>
#include <boost/hana/unpack.hpp>
#include <nlohmann/json.hpp>

#include <ballast/core/config.hpp>

namespace ballast
{
    /// Specialise with `static constexpr std::array<std::pair<std::string_view, E>, N> values` to make
    /// an enumeration reflectable (its JSON, TOML and command-line form is the name).
    template <class E>
    struct enum_names;

    template <class E>
    concept named_enum = std::is_enum_v<E> && requires
    {
        enum_names<E>::values;
    };

    template <named_enum E>
    constexpr std::string_view enum_name(E e) noexcept
    {
        for (const auto& [name, value] : enum_names<E>::values)
        {
            if (value == e)
            {
                return name;
            }
        }
        return "?";
    }

    /// The value named `name`; throws ballast::error listing the valid names.
    template <named_enum E>
    E parse_enum(std::string_view name, std::string_view what)
    {
        std::string known;
        for (const auto& [n, value] : enum_names<E>::values)
        {
            if (n == name)
            {
                return value;
            }
            known += known.empty() ? "" : ", ";
            known += n;
        }
        detail::throw_error(std::string(what).c_str(), "unknown value '", name, "' (known: ", known, ")");
    }

    namespace detail
    {
        template <class V>
        struct is_vector : std::false_type
        {
        };
        template <class V, class A>
        struct is_vector<std::vector<V, A>> : std::true_type
        {
        };
    } // namespace detail

    /// A Hana-adapted aggregate.
    template <class S>
    concept reflected = boost::hana::Struct<S>::value;

    /// Call f(name, member&) for every reflected field, in declaration order.
    template <class S, class F>
    requires reflected<std::remove_const_t<S>>
    void for_each_field(S& s, F&& f)
    {
        boost::hana::for_each(boost::hana::accessors<std::remove_const_t<S>>(),
                              [&](auto pair)
                              {
                                  f(std::string_view(boost::hana::to<const char*>(boost::hana::first(pair))),
                                    boost::hana::second(pair)(s));
                              });
    }

    /// One reflected field's documentation: its reflected name and what it means (unit, allowed values;
    /// the default is the field's initialiser, which the programs print next to it).
    struct field_doc
    {
        std::string_view name;
        std::string_view text;
    };

    /// Specialise next to every `BOOST_HANA_ADAPT_STRUCT` with
    /// `static constexpr std::array<field_doc, N> fields`, one entry per reflected field, in the order of
    /// the adaptation, and follow it with `static_assert(ballast::documented<S>)`.
    template <class S>
    struct field_docs;

    namespace detail
    {
        /// True when field_docs<S> names every reflected field of S, in order, each with a text.
        template <class S>
        consteval bool docs_match()
        {
            if constexpr (requires { field_docs<S>::fields; })
            {
                return boost::hana::unpack(
                  boost::hana::accessors<S>(),
                  [](auto... pairs)
                  {
                      constexpr auto& docs = field_docs<S>::fields;
                      if (sizeof...(pairs) != docs.size())
                      {
                          return false;
                      }
                      const std::string_view names[] = { std::string_view(
                        std::remove_cvref_t<decltype(boost::hana::first(pairs))>::c_str())... };
                      for (std::size_t i = 0; i < docs.size(); ++i)
                      {
                          if (names[i] != docs[i].name || docs[i].text.empty())
                          {
                              return false;
                          }
                      }
                      return true;
                  });
            }
            else
            {
                return false;
            }
        }
    } // namespace detail

    /// A reflected aggregate whose every field is documented by `field_docs<S>`.
    template <class S>
    concept documented = reflected<S> && detail::docs_match<S>();

    /// The description of field `name` of S ("" if S has no such field).
    template <documented S>
    constexpr std::string_view field_description(std::string_view name) noexcept
    {
        for (const auto& d : field_docs<S>::fields)
        {
            if (d.name == name)
            {
                return d.text;
            }
        }
        return {};
    }

    /// Every reflected field as a JSON object (enums by name).
    template <reflected S>
    nlohmann::json to_json(const S& s)
    {
        nlohmann::json j = nlohmann::json::object();
        for_each_field(s,
                       [&](std::string_view name, const auto& v)
                       {
                           using V = std::remove_cvref_t<decltype(v)>;
                           if constexpr (named_enum<V>)
                           {
                               j[std::string(name)] = std::string(enum_name(v));
                           }
                           else if constexpr (detail::is_vector<V>::value)
                           {
                               if constexpr (named_enum<typename V::value_type>)
                               {
                                   auto& arr = j[std::string(name)] = nlohmann::json::array();
                                   for (const auto& e : v)
                                   {
                                       arr.push_back(std::string(enum_name(e)));
                                   }
                               }
                               else
                               {
                                   j[std::string(name)] = v;
                               }
                           }
                           else
                           {
                               j[std::string(name)] = v;
                           }
                       });
        return j;
    }

    namespace detail
    {
        /// One scalar field from JSON; `what` names it in errors ("model.d_model").
        template <class V>
        void scalar_from_json(const nlohmann::json& value, V& member, const std::string& what)
        {
            const auto bad = [&](const char* expected)
            { detail::throw_error(what.c_str(), "must be ", expected, ", got ", value.dump()); };
            if constexpr (named_enum<V>)
            {
                if (!value.is_string())
                {
                    bad("a name");
                }
                member = parse_enum<V>(value.get<std::string>(), what);
            }
            else if constexpr (std::is_same_v<V, bool>)
            {
                if (!value.is_boolean())
                {
                    bad("true or false");
                }
                member = value.get<bool>();
            }
            else if constexpr (std::is_integral_v<V>)
            {
                const bool negative =
                  value.is_number_integer() && !value.is_number_unsigned() && value.get<std::int64_t>() < 0;
                if (!value.is_number_integer() || (std::is_unsigned_v<V> && negative))
                {
                    bad(std::is_signed_v<V> ? "an integer" : "a non-negative integer");
                }
                member = value.get<V>();
            }
            else if constexpr (std::is_floating_point_v<V>)
            {
                if (!value.is_number())
                {
                    bad("a number");
                }
                member = value.get<V>();
            }
            else if constexpr (std::is_same_v<V, std::string>)
            {
                if (!value.is_string())
                {
                    bad("a string");
                }
                member = value.get<std::string>();
            }
            else
            {
                static_assert(!sizeof(V), "from_json: unsupported field type");
            }
        }
    } // namespace detail

    /// Set the fields named in `j` (a JSON object); fields not named keep their values. Scalars, enums (by
    /// name), strings and std::vectors of those are supported. An unknown key, a wrong type, a negative or
    /// fractional value for an unsigned field, or an unknown enum name throws ballast::error naming
    /// `what.key`.
    template <reflected S>
    void from_json(const nlohmann::json& j, S& s, std::string_view what)
    {
        const std::string where(what);
        BALLAST_CHECK(j.is_object(), where.c_str(), "expected a table/object, got ", j.type_name());
        for (const auto& item : j.items())
        {
            const std::string& key = item.key();
            const nlohmann::json& value = item.value();
            bool found = false;
            for_each_field(
              s,
              [&](std::string_view name, auto& member)
              {
                  if (name != key)
                  {
                      return;
                  }
                  found = true;
                  using V = std::remove_cvref_t<decltype(member)>;
                  const std::string field = where + "." + key;
                  if constexpr (detail::is_vector<V>::value)
                  {
                      BALLAST_CHECK(value.is_array(), field.c_str(), "must be a list, got ", value.dump());
                      V out(value.size());
                      for (std::size_t i = 0; i < value.size(); ++i)
                      {
                          typename V::value_type v{};
                          detail::scalar_from_json(value[i], v, field + "[" + std::to_string(i) + "]");
                          out[i] = v;
                      }
                      member = std::move(out);
                  }
                  else
                  {
                      detail::scalar_from_json(value, member, field);
                  }
              });
            BALLAST_CHECK(found, where.c_str(), "unknown key '", key, "'");
        }
    }

    /// The keys whose values differ between two configs ("a: 1 vs 2, b: ..."), empty when equal.
    inline std::string json_differences(const nlohmann::json& a, const nlohmann::json& b)
    {
        std::string out;
        const auto add = [&](const std::string& key, const std::string& va, const std::string& vb)
        {
            out += out.empty() ? "" : ", ";
            out += key + ": " + va + " vs " + vb;
        };
        if (!a.is_object() || !b.is_object())
        {
            if (a != b)
            {
                add("value", a.dump(), b.dump());
            }
            return out;
        }
        for (const auto& [k, v] : a.items())
        {
            if (!b.contains(k))
            {
                add(k, v.dump(), "(absent)");
            }
            else if (v.is_object() && b[k].is_object())
            {
                const auto inner = json_differences(v, b[k]);
                if (!inner.empty())
                {
                    out += out.empty() ? "" : ", ";
                    out += k + "." + inner;
                }
            }
            else if (v != b[k])
            {
                add(k, v.dump(), b[k].dump());
            }
        }
        for (const auto& [k, v] : b.items())
        {
            if (!a.contains(k))
            {
                add(k, "(absent)", v.dump());
            }
        }
        return out;
    }
} // namespace ballast

#endif
