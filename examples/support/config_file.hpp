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
// an unknown key or a wrong type is an error naming the table and key. Flags given on the command line
// override the file. TOML support needs Debian's libtomlplusplus-dev (optional: without it, --config
// reports that it is unavailable).

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include <ballast/core/config.hpp>

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
