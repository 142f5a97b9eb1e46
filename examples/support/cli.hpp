#ifndef BALLAST_EXAMPLES_SUPPORT_CLI_HPP
#define BALLAST_EXAMPLES_SUPPORT_CLI_HPP

// Shared plumbing of ballast's command-line programs (not part of the library): config aggregates become
// flags by reflection (every Hana-adapted field `x_y` is the flag `--x-y`), and every error ends the
// program with exit code 2 and one line on stderr.

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <boost/hana/accessors.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/second.hpp>
#include <boost/hana/string.hpp>

#include <ballast/core/reflect.hpp>

namespace ballast::cli
{
    /// `--field-name` for every reflected member of `cfg`, described by its `field_docs`; defaults shown
    /// in --help.
    template <class Config>
    void add_reflected_options(CLI::App& app, Config& cfg, const std::string& group)
    {
        static_assert(ballast::documented<Config>, "every reflected field needs a field_docs entry");
        boost::hana::for_each(
          boost::hana::accessors<Config>(),
          [&](auto pair)
          {
              std::string flag = boost::hana::to<const char*>(boost::hana::first(pair));
              for (auto& c : flag)
              {
                  c = c == '_' ? '-' : c;
              }
              const std::string text(
                ballast::field_description<Config>(boost::hana::to<const char*>(boost::hana::first(pair))));
              auto& member = boost::hana::second(pair)(cfg);
              using V = std::remove_cvref_t<decltype(member)>;
              if constexpr (ballast::named_enum<V>)
              {
                  std::string names;
                  for (const auto& [n, v] : ballast::enum_names<V>::values)
                  {
                      names += names.empty() ? "" : "|";
                      names += n;
                  }
                  app
                    .add_option_function<std::string>(
                      "--" + flag,
                      [&member, flag](const std::string& s)
                      { member = ballast::parse_enum<V>(s, "--" + flag); },
                      text)
                    ->type_name(names)
                    ->default_str(std::string(ballast::enum_name(member)))
                    ->group(group);
              }
              else if constexpr (ballast::detail::is_vector<V>::value)
              {
                  app.add_option("--" + flag, member, text)
                    ->group(group)
                    ->delimiter(',')
                    ->capture_default_str();
              }
              else
              {
                  app.add_option("--" + flag, member, text)->group(group)->capture_default_str();
              }
          });
    }

    /// Run `body`; turn any exception into "<program>: error: <message>" and exit code 2.
    template <class F>
    int run_main(const char* program, F&& body)
    {
        try
        {
            return body();
        }
        catch (const CLI::ParseError&)
        {
            throw; // handled by the caller's app.exit
        }
        catch (const std::exception& e)
        {
            std::fprintf(stderr, "%s: error: %s\n", program, e.what());
            return 2;
        }
    }

    /// Every option of `app` as Markdown tables, one per group (the source of docs/flags.md).
    inline std::string markdown_flags(const CLI::App& app)
    {
        const auto cell = [](std::string s)
        {
            std::string out;
            for (const char c : s)
            {
                out += c == '|'    ? std::string("\\|")
                       : c == '<'  ? std::string("&lt;")
                       : c == '>'  ? std::string("&gt;")
                       : c == '\n' ? std::string("<br>")
                                   : std::string(1, c);
            }
            return out;
        };
        std::string out = "## `" + app.get_name() + "`\n\n" + cell(app.get_description()) + "\n";
        std::vector<std::string> groups;
        for (const CLI::Option* opt : app.get_options())
        {
            if (std::find(groups.begin(), groups.end(), opt->get_group()) == groups.end())
            {
                groups.push_back(opt->get_group());
            }
        }
        for (const auto& group : groups)
        {
            out += "\n### " + group + "\n\n| flag | values | default | meaning |\n|---|---|---|---|\n";
            for (const CLI::Option* opt : app.get_options())
            {
                if (opt->get_group() != group)
                {
                    continue;
                }
                std::string name = opt->get_name(false, true);
                std::string type = opt->get_type_name();
                type = type.empty() ? "flag" : opt->get_expected_max() > 1 ? type + ",..." : type;
                out += "| `" + cell(name) + "` | " + (type.empty() ? "" : "`" + cell(type) + "`") + " | " +
                       (opt->get_default_str().empty() ? "" : "`" + cell(opt->get_default_str()) + "`") +
                       " | " + cell(opt->get_description()) + " |\n";
            }
        }
        return out;
    }

    /// Parse argv; on a usage error print one line and return 2 (help and version return 0).
    /// `--help-markdown` prints every flag as Markdown (markdown_flags) and returns 0.
    inline int parse(CLI::App& app, int argc, char** argv)
    {
        static bool help_markdown = false; // handled below, before parsing (required options may be absent)
        app.add_flag("--help-markdown", help_markdown,
                     "print every flag as Markdown tables (docs/flags.md) and exit");
        for (int i = 1; i < argc; ++i)
        {
            if (std::string_view(argv[i]) == "--help-markdown")
            {
                std::fputs(markdown_flags(app).c_str(), stdout);
                return 0;
            }
        }
        try
        {
            app.parse(argc, argv);
            return -1;
        }
        catch (const CLI::CallForHelp& e)
        {
            return app.exit(e);
        }
        catch (const CLI::ParseError& e)
        {
            std::fprintf(stderr, "%s: error: %s\n", app.get_name().c_str(), e.what());
            return 2;
        }
        catch (const std::exception& e) // e.g. an unknown enum name, from an option's callback
        {
            std::fprintf(stderr, "%s: error: %s\n", app.get_name().c_str(), e.what());
            return 2;
        }
    }
} // namespace ballast::cli

#endif
