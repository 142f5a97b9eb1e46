#ifndef BALLAST_EXAMPLES_SUPPORT_CLI_HPP
#define BALLAST_EXAMPLES_SUPPORT_CLI_HPP

// Shared plumbing of ballast's command-line programs (not part of the library): config aggregates become
// flags by reflection (every Hana-adapted field `x_y` is the flag `--x-y`), and every error ends the
// program with exit code 2 and one line on stderr.

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <type_traits>

#include <boost/hana/accessors.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/second.hpp>
#include <boost/hana/string.hpp>

#include <ballast/core/reflect.hpp>

namespace ballast::cli
{
    /// `--field-name` for every reflected member of `cfg`; defaults shown in --help.
    template <class Config>
    void add_reflected_options(CLI::App& app, Config& cfg, const std::string& group)
    {
        boost::hana::for_each(
          boost::hana::accessors<Config>(),
          [&](auto pair)
          {
              std::string flag = boost::hana::to<const char*>(boost::hana::first(pair));
              for (auto& c : flag)
              {
                  c = c == '_' ? '-' : c;
              }
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
                      names + " (default " + std::string(ballast::enum_name(member)) + ")")
                    ->group(group);
              }
              else if constexpr (ballast::detail::is_vector<V>::value)
              {
                  app.add_option("--" + flag, member)->group(group)->delimiter(',')->capture_default_str();
              }
              else
              {
                  app.add_option("--" + flag, member)->group(group)->capture_default_str();
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

    /// Parse argv; on a usage error print one line and return 2 (help and version return 0).
    inline int parse(CLI::App& app, int argc, char** argv)
    {
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
