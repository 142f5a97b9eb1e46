#ifndef BALLAST_EXAMPLES_SUPPORT_CLI_HPP
#define BALLAST_EXAMPLES_SUPPORT_CLI_HPP

// Shared plumbing of ballast's command-line programs (not part of the library): config aggregates become
// flags by reflection (every Hana-adapted field `x_y` is the flag `--x-y`), and every error ends the
// program with exit code 2 and one line on stderr. Integers are parsed strictly (digits, and a '-' for signed
// ones), a scalar flag given twice takes the last value, and thread counts are capped at the machine's
// hardware threads with a note (docs/hardening.md).

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <concepts>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

#include <boost/hana/accessors.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/second.hpp>
#include <boost/hana/string.hpp>

#include <ballast/core/checked.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/reflect.hpp>

namespace ballast::cli
{
    /// Reflected fields that are thread counts: capped at the machine's hardware threads (see cap_threads).
    inline bool is_thread_count(std::string_view field) noexcept
    {
        return field == "threads" || field == "jobs" || field == "threads_per_run";
    }

    /// Cap a thread count `n` given as `what` at the machine's hardware threads, with one note on stderr
    /// ("<program>: note: --threads 100000 is more than the 2 hardware threads; using 2"). More threads
    /// than cores never helps a run (results do not depend on the count) and 100000 threads can exhaust
    /// the process limits; 0 and negative values are left to the config's own validation.
    inline int cap_threads(int n, const std::string& what, const std::string& program)
    {
        const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        if (n > hw)
        {
            std::fprintf(stderr, "%s: note: %s %d is more than the %d hardware threads; using %d\n",
                         program.c_str(), what.c_str(), n, hw, hw);
            return hw;
        }
        return n;
    }

    /// Strictly parse a signed decimal integer of type T: an optional '-' and digits, nothing else (no
    /// '+', blanks, "0x" or octal; CLI11 would read "010" as 8), in range of T.
    template <std::signed_integral T>
    T parse_signed(const std::string& text, const std::string& flag)
    {
        const std::string_view digits =
          std::string_view(text).substr(!text.empty() && text[0] == '-' ? 1 : 0);
        BALLAST_CHECK(!digits.empty() && digits.find_first_not_of("0123456789") == std::string_view::npos,
                      "cli", flag, " '", text, "' is not an integer");
        T v{};
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        BALLAST_CHECK(ec == std::errc{} && end == text.data() + text.size(), "cli", flag, " '", text,
                      "' is out of range [", std::numeric_limits<T>::min(), ", ",
                      std::numeric_limits<T>::max(), "]");
        return v;
    }

    /// One value of type V from text: unsigned integers strictly (digits only, ballast::parse_unsigned),
    /// signed integers strictly (parse_signed); other types are not handled here.
    template <class V>
    V parse_integer(const std::string& text, const std::string& flag)
    {
        if constexpr (std::is_unsigned_v<V>)
        {
            return ballast::parse_unsigned<V>(text, "cli", flag);
        }
        else
        {
            return parse_signed<V>(text, flag);
        }
    }

    template <class V>
    struct is_integer_value : std::bool_constant<std::is_integral_v<V> && !std::is_same_v<V, bool>>
    {
    };
    template <class V>
    struct is_integer_vector : std::false_type
    {
    };
    template <class E, class A>
    struct is_integer_vector<std::vector<E, A>> : is_integer_value<E>
    {
    };

    /// `app.add_option(flag, member, help)`, except that integers are parsed strictly (`--steps -5`, `--seed
    /// 0x10` and `--batch 1e3` are refused with one clear line instead of wrapping or being read in another
    /// base) and lists of integers likewise element by element. A scalar option given twice takes the last
    /// value (see `parse`).
    template <class V>
    CLI::Option* add_option(CLI::App& app, const std::string& flag, V& member, const std::string& help)
    {
        if constexpr (is_integer_value<V>::value)
        {
            return app
              .add_option_function<std::string>(
                flag, [&member, flag](const std::string& s) { member = parse_integer<V>(s, flag); }, help)
              ->type_name(std::is_unsigned_v<V> ? "UINT" : "INT")
              ->default_str(std::to_string(member));
        }
        else if constexpr (is_integer_vector<V>::value)
        {
            using E = typename V::value_type;
            std::string def;
            for (const auto& e : member)
            {
                def += (def.empty() ? "" : ",") + std::to_string(e);
            }
            return app
              .add_option_function<std::vector<std::string>>(
                flag,
                [&member, flag](const std::vector<std::string>& items)
                {
                    member.clear();
                    for (const auto& s : items)
                    {
                        member.push_back(parse_integer<E>(s, flag));
                    }
                },
                help)
              ->delimiter(',')
              ->type_name(std::is_unsigned_v<E> ? "UINT" : "INT") // CLI11 adds " ..."
              ->default_str(def.empty() ? std::string() : "[" + def + "]");
        }
        else if constexpr (ballast::detail::is_vector<V>::value)
        {
            return app.add_option(flag, member, help)->delimiter(',')->capture_default_str();
        }
        else
        {
            return app.add_option(flag, member, help)->capture_default_str();
        }
    }

    /// `--field-name` for every reflected member of `cfg`, described by its `field_docs`; defaults shown
    /// in --help. Integers are parsed strictly (see add_option); thread counts are capped at the hardware
    /// threads (see cap_threads).
    template <class Config>
    void add_reflected_options(CLI::App& app, Config& cfg, const std::string& group)
    {
        static_assert(ballast::documented<Config>, "every reflected field needs a field_docs entry");
        boost::hana::for_each(
          boost::hana::accessors<Config>(),
          [&](auto pair)
          {
              const std::string field = boost::hana::to<const char*>(boost::hana::first(pair));
              std::string flag = field;
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
              else if constexpr (std::is_same_v<V, int>)
              {
                  if (is_thread_count(field))
                  {
                      const std::string program = app.get_name();
                      app
                        .add_option_function<std::string>(
                          "--" + flag,
                          [&member, flag, program](const std::string& s)
                          { member = cap_threads(parse_signed<int>(s, "--" + flag), "--" + flag, program); },
                          text + " (at most the hardware threads)")
                        ->type_name("INT")
                        ->default_str(std::to_string(member))
                        ->group(group);
                  }
                  else
                  {
                      add_option(app, "--" + flag, member, text)->group(group);
                  }
              }
              else
              {
                  add_option(app, "--" + flag, member, text)->group(group);
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
                type = type.empty() ? "flag" : opt->get_expected_max() > 1 ? type + " ..." : type;
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
        // A scalar option given twice: the last one wins (`train $COMMON --lr 0.1` overrides $COMMON's
        // --lr, as with most Unix tools); list options collect the values of every occurrence.
        for (CLI::Option* opt : app.get_options())
        {
            if (opt->get_items_expected_max() == 1 && opt->get_expected_max() == 1)
            {
                opt->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
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
