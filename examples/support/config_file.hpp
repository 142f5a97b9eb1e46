#ifndef BALLAST_EXAMPLES_SUPPORT_CONFIG_FILE_HPP
#define BALLAST_EXAMPLES_SUPPORT_CONFIG_FILE_HPP

// TOML config files for the command-line tools (not part of the library). A file has one table per config
// aggregate plus top-level keys for the tool's own options:
//
//   policy = "paper_default"        # top-level: the tool's options (by their flag names, '-' or '_')
//   [model]                         # ballast::model_config fields
//   d_model = 128
//   [train]                         # ballast::train_config fields
//   lr = 0.01
//   [optimizer]                     # ballast::optimizer_config fields
//   beta2 = 0.95
//
// Values go through the same reflection as the flags and the metrics header (ballast/core/reflect.hpp), so
// an unknown key or a wrong type is an error naming the table and key; integers are range-checked against
// their field's type before narrowing, and an unknown table is reported as an unknown key. Flags given on the
// command line override the file. TOML support needs Debian's libtomlplusplus-dev (optional: without it,
// --config reports that it is unavailable).

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

#include <boost/hana/accessors.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/second.hpp>
#include <boost/hana/string.hpp>
#include <nlohmann/json.hpp>

#include <ballast/core/checked.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/reflect.hpp>

#include "cli.hpp"

#if __has_include(<toml++/toml.h>)
#define BALLAST_HAVE_TOML 1
#include <toml++/toml.h>
#else
#define BALLAST_HAVE_TOML 0
#endif

namespace ballast::cli
{
#if BALLAST_HAVE_TOML
    namespace detail
    {
        inline nlohmann::json to_json(const toml::node& n, const std::string& where)
        {
            if (const auto* t = n.as_table())
            {
                nlohmann::json j = nlohmann::json::object();
                for (const auto& [k, v] : *t)
                {
                    j[std::string(k.str())] = to_json(v, where + "." + std::string(k.str()));
                }
                return j;
            }
            if (const auto* a = n.as_array())
            {
                nlohmann::json j = nlohmann::json::array();
                for (const auto& v : *a)
                {
                    j.push_back(to_json(v, where));
                }
                return j;
            }
            if (const auto* v = n.as_integer())
            {
                return v->get();
            }
            if (const auto* v = n.as_floating_point())
            {
                return v->get();
            }
            if (const auto* v = n.as_boolean())
            {
                return v->get();
            }
            if (const auto* v = n.as_string())
            {
                return v->get();
            }
            ballast::detail::throw_error("config file", where, ": dates and times are not config values");
        }
    } // namespace detail
#endif

    /// A TOML file as a JSON object (tables become objects). Throws ballast::error with the file, line and
    /// parser message on a syntax error.
    /// TOML `text` as a JSON object; `origin` names it in errors (the in-memory half of read_config_file).
    inline nlohmann::json parse_config_text(std::string_view text, const std::string& origin)
    {
#if BALLAST_HAVE_TOML
        try
        {
            const toml::table t = toml::parse(text, origin);
            return detail::to_json(t, origin);
        }
        catch (const toml::parse_error& e)
        {
            ballast::detail::throw_error("config file", origin, ":", e.source().begin.line, ": ",
                                         e.description());
        }
#else
        (void)text;
        ballast::detail::throw_error(
          "config file", "cannot read '", origin,
          "': built without TOML support (install libtomlplusplus-dev and rebuild)");
#endif
    }

    inline nlohmann::json read_config_file(const std::filesystem::path& path)
    {
#if BALLAST_HAVE_TOML
        BALLAST_CHECK(std::filesystem::exists(path), "config file", "cannot open '", path.string(), "'");
        try
        {
            const toml::table t = toml::parse_file(path.string());
            return detail::to_json(t, path.filename().string());
        }
        catch (const toml::parse_error& e)
        {
            ballast::detail::throw_error("config file", path.string(), ":", e.source().begin.line, ": ",
                                         e.description());
        }
#else
        ballast::detail::throw_error(
          "config file", "cannot read '", path.string(),
          "': built without TOML support (install libtomlplusplus-dev and rebuild)");
#endif
    }

    /// Remove and return table `name` (an empty object when absent).
    inline nlohmann::json take_table(nlohmann::json& j, const std::string& name)
    {
        if (!j.contains(name))
        {
            return nlohmann::json::object();
        }
        nlohmann::json t = j[name];
        j.erase(name);
        return t;
    }

    namespace detail
    {
        /// Refuse an integer `v` (from TOML: always 64-bit) that does not fit the field's type V, before
        /// anything narrows it: "[train].steps = -5 is out of range [0, 18446744073709551615]".
        template <class V>
        void check_integer_range(const nlohmann::json& v, const std::string& what)
        {
            if constexpr (std::is_integral_v<V> && !std::is_same_v<V, bool>)
            {
                if (v.is_number_unsigned())
                {
                    ballast::checked_narrow<V>(v.get<std::uint64_t>(), "config file", what);
                }
                else if (v.is_number_integer())
                {
                    ballast::checked_narrow<V>(v.get<std::int64_t>(), "config file", what);
                }
            }
            else if constexpr (ballast::detail::is_vector<V>::value)
            {
                if (v.is_array())
                {
                    for (const auto& e : v)
                    {
                        check_integer_range<typename V::value_type>(e, what);
                    }
                }
            }
        }
    } // namespace detail

    /// Take table `name` out of `file` and apply it to `cfg` (ballast::from_json: unknown keys and wrong
    /// types are errors), after range-checking every integer against its field's C++ type, and capping
    /// thread counts at the hardware threads (cli::cap_threads) as the flags do.
    template <class Config>
    void apply_table(nlohmann::json& file, const std::string& name, Config& cfg, const std::string& program)
    {
        const std::string where = "[" + name + "]";
        nlohmann::json t = take_table(file, name);
        BALLAST_CHECK(t.is_object(), "config file", "'", name, "' must be a table ", where, ", got ",
                      t.dump());
        boost::hana::for_each(boost::hana::accessors<Config>(),
                              [&](auto pair)
                              {
                                  const std::string key =
                                    boost::hana::to<const char*>(boost::hana::first(pair));
                                  using V = std::remove_cvref_t<decltype(boost::hana::second(pair)(cfg))>;
                                  if (t.contains(key))
                                  {
                                      detail::check_integer_range<V>(t[key], where + "." + key);
                                  }
                              });
        ballast::from_json(t, cfg, where);
        boost::hana::for_each(boost::hana::accessors<Config>(),
                              [&](auto pair)
                              {
                                  const std::string key =
                                    boost::hana::to<const char*>(boost::hana::first(pair));
                                  auto& member = boost::hana::second(pair)(cfg);
                                  if constexpr (std::is_same_v<std::remove_cvref_t<decltype(member)>, int>)
                                  {
                                      if (t.contains(key) && is_thread_count(key))
                                      {
                                          member = cap_threads(member, where + "." + key, program);
                                      }
                                  }
                              });
    }

    /// After the known tables are taken: any table left is unknown, reported as an unknown key (not as a
    /// type error of a top-level value): "unknown table [trian] (known: [model], [train], [optimizer])".
    inline void reject_unknown_tables(const nlohmann::json& file,
                                      std::initializer_list<std::string_view> known)
    {
        for (const auto& [k, v] : file.items())
        {
            if (v.is_object())
            {
                std::string list;
                for (const auto n : known)
                {
                    list += (list.empty() ? "[" : ", [") + std::string(n) + "]";
                }
                ballast::detail::throw_error("config file", "unknown key '", k, "': unknown table [", k,
                                             "] (known: ", list, ")");
            }
        }
    }

    /// The value of `--name VALUE` or `--name=VALUE` in argv, or empty (read before CLI11 parses, so that
    /// the file's values can be overridden by the other flags).
    inline std::string find_flag(int argc, char** argv, const std::string& name)
    {
        const std::string flag = "--" + name;
        for (int i = 1; i < argc; ++i)
        {
            const std::string a = argv[i];
            if (a == flag && i + 1 < argc)
            {
                return argv[i + 1];
            }
            if (a.rfind(flag + "=", 0) == 0)
            {
                return a.substr(flag.size() + 1);
            }
        }
        return {};
    }
} // namespace ballast::cli

#endif
