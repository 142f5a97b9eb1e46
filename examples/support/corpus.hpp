#ifndef BALLAST_EXAMPLES_SUPPORT_CORPUS_HPP
#define BALLAST_EXAMPLES_SUPPORT_CORPUS_HPP

// The default corpus of the command-line tools (not part of the library): the English text of Debian's
// `fortunes` package (/usr/share/games/fortunes, installed by `tools/setup.sh study`), tokenised once
// into a token file in the user's cache, `${XDG_CACHE_HOME:-~/.cache}/ballast/fortunes.tok`. See
// docs/training.md for its size and license.

#include <cstdlib>
#include <filesystem>
#include <string>

#include <ballast/core/config.hpp>
#include <ballast/train/data.hpp>
#include <ballast/train/tokens.hpp>

namespace ballast::cli
{
    inline constexpr const char* default_corpus_source = "/usr/share/games/fortunes";

    inline std::filesystem::path cache_dir()
    {
        if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
        {
            return std::filesystem::path(x) / "ballast";
        }
        if (const char* h = std::getenv("HOME"); h && *h)
        {
            return std::filesystem::path(h) / ".cache" / "ballast";
        }
        return std::filesystem::temp_directory_path() / "ballast-cache";
    }

    /// `spec` is "default" (the fortunes corpus, built into the cache on first use), a token file, a text
    /// file or a directory of text files. Returns the tokens and a description for logs.
    inline std::vector<std::uint16_t> resolve_corpus(const std::string& spec, std::string& description)
    {
        if (spec != "default")
        {
            description = spec;
            return load_corpus(spec);
        }
        const auto cached = cache_dir() / "fortunes.tok";
        if (!std::filesystem::exists(cached))
        {
            BALLAST_CHECK(std::filesystem::is_directory(default_corpus_source), "corpus",
                          "the default corpus needs Debian's 'fortunes' package (", default_corpus_source,
                          " is missing; run tools/setup.sh study, or pass --corpus FILE)");
            const auto tokens = load_corpus(default_corpus_source);
            std::filesystem::create_directories(cached.parent_path());
            write_token_file(cached, tokens);
        }
        description = "default corpus (fortunes, " + cached.string() + ")";
        return load_corpus(cached);
    }
} // namespace ballast::cli

#endif
