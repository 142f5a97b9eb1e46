#ifndef BALLAST_STUDY_MERGE_HPP
#define BALLAST_STUDY_MERGE_HPP

/// @file
/// Merging the result files of a study's shards into one results.jsonl in grid order.
///
/// Every process writes only its own file (appends are not atomic on NFS, so hosts never share an append
/// target): shard I of N writes `results.I-of-N.jsonl` (`shard_results_name`), an MPI study's rank 0 and a
/// one-process study write `results.jsonl`. Each file starts with a study line
/// `{"type":"study","name":…,"config":…,"build":{"version":…,"isa":…},"shard":{"index":I,"count":N}}`
/// followed by one "run" line per finished run.
///
/// `merge_results` takes the lines of every file and the grid's keys in grid order and
/// - refuses files whose study lines differ anywhere but in the shard (and host) fields — configuration,
///   corpus fingerprint (`config.data`), build (`build.isa`, `build.version`) — naming the field;
/// - refuses a file written by a newer ballast than this one;
/// - refuses a run whose key is not in the grid;
/// - keeps a run found in several files (a shard relaunched with another N) once, after checking that the
///   copies agree field by field apart from timing and host fields, else names the run and the field;
/// - returns the runs in grid order and the keys still missing (a partial study merges too).
/// It works on parsed lines (nlohmann::json), so the study engine can feed it from any source.

#include <algorithm>
#include <array>
#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <ballast/core/config.hpp>
#include <ballast/core/file.hpp>
#include <ballast/core/jsonl.hpp>
#include <ballast/core/reflect.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/study/shard.hpp>
#include <ballast/version.hpp>

namespace ballast::study
{
    /// The name of shard `s`'s result file: "results.I-of-N.jsonl".
    inline std::string shard_results_name(const shard_id& s)
    {
        return "results." + s.file_tag() + ".jsonl";
    }

    /// The shard a result file name belongs to, or nullopt for any other name (results.jsonl included).
    inline std::optional<shard_id> parse_shard_results_name(std::string_view name)
    {
        constexpr std::string_view prefix = "results.", suffix = ".jsonl", of = "-of-";
        if (!name.starts_with(prefix) || !name.ends_with(suffix) ||
            name.size() <= prefix.size() + suffix.size())
        {
            return std::nullopt;
        }
        const auto tag = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
        const auto at = tag.find(of);
        if (at == std::string_view::npos)
        {
            return std::nullopt;
        }
        const auto i = detail::strict_uint(tag.substr(0, at));
        const auto n = detail::strict_uint(tag.substr(at + of.size()));
        if (!i || !n || *n == 0 || *i >= *n)
        {
            return std::nullopt;
        }
        return shard_id{ *i, *n };
    }

    /// What a results file records about the build that wrote it: results are bit-identical only within
    /// one instruction set (docs/architecture.md), and a file is read only by a version at least as new.
    inline nlohmann::json build_identity()
    {
        return { { "version", version_string }, { "isa", simd::arch_name() } };
    }

    /// A study line for shard `s`: `study_line` (type, name, config) plus the build and the shard.
    inline nlohmann::json shard_study_line(nlohmann::json study_line, const shard_id& s,
                                           const nlohmann::json& build = build_identity())
    {
        study_line["build"] = build;
        study_line["shard"] = { { "index", s.index }, { "count", s.count } };
        return study_line;
    }

    /// The lines of one results file (the first is its study line) and a name for messages.
    struct results_lines
    {
        std::string name;
        std::vector<nlohmann::json> lines;
    };

    /// Fields that may differ between files or copies of a run without making them different results.
    struct merge_options
    {
        std::set<std::string> header_ignored = { "shard", "host" };
        std::set<std::string> run_ignored = { "wall_seconds", "train_seconds", "host", "shard" };
    };

    /// The merged study.
    struct merge_result
    {
        nlohmann::json header;            ///< the common study line, without the ignored fields
        std::vector<nlohmann::json> runs; ///< one line per finished run, in grid order
        std::vector<std::string> missing; ///< grid keys no file has finished, in grid order
        std::size_t duplicates = 0;       ///< extra copies of runs (all checked to agree)

        /// The text of the merged results.jsonl: the study line, then the runs.
        std::string text() const
        {
            std::string out = header.dump() + "\n";
            for (const auto& r : runs)
            {
                out += r.dump() + "\n";
            }
            return out;
        }
    };

    namespace detail
    {
        inline nlohmann::json without(nlohmann::json j, const std::set<std::string>& keys)
        {
            for (const auto& k : keys)
            {
                j.erase(k);
            }
            return j;
        }

        /// "a.b.c" → {a, b, c}; nullopt unless three decimal parts.
        inline std::optional<std::array<std::size_t, 3>> parse_version(std::string_view v)
        {
            std::array<std::size_t, 3> out{};
            for (std::size_t part = 0; part < 3; ++part)
            {
                const auto dot = part < 2 ? v.find('.') : v.size();
                if (dot == std::string_view::npos)
                {
                    return std::nullopt;
                }
                const auto n = strict_uint(v.substr(0, dot));
                if (!n)
                {
                    return std::nullopt;
                }
                out[part] = *n;
                v = part < 2 ? v.substr(dot + 1) : std::string_view{};
            }
            return out;
        }
    } // namespace detail

    /// Merge the files of one study (see the file comment). `grid_keys` is the grid in grid order.
    /// Throws ballast::error naming the file, run and field for every refusal.
    inline merge_result merge_results(std::span<const results_lines> files,
                                      std::span<const std::string> grid_keys,
                                      const merge_options& options = {})
    {
        BALLAST_CHECK(!files.empty(), "merge", "no result files to merge");
        std::map<std::string, std::size_t> grid;
        for (std::size_t i = 0; i < grid_keys.size(); ++i)
        {
            BALLAST_CHECK(grid.emplace(grid_keys[i], i).second, "merge", "duplicate grid key '", grid_keys[i],
                          "'");
        }
        const auto ours = *detail::parse_version(version_string);

        merge_result out;
        std::map<std::string, const results_lines*> shard_files; // shard tag -> file, to refuse a repeat
        std::vector<const nlohmann::json*> by_index(grid_keys.size(), nullptr);
        std::vector<const results_lines*> source(grid_keys.size(), nullptr);
        const results_lines* first = nullptr;
        for (const auto& f : files)
        {
            BALLAST_CHECK(!f.lines.empty() && string_field(f.lines.front(), "type") == "study" &&
                            f.lines.front().contains("config"),
                          "merge", "'", f.name, "' does not start with a study line");
            const auto& h = f.lines.front();
            if (h.contains("build") && h["build"].is_object() && h["build"].contains("version"))
            {
                const auto& v = h["build"]["version"];
                const auto theirs =
                  v.is_string() ? detail::parse_version(v.get<std::string>()) : std::nullopt;
                BALLAST_CHECK(theirs.has_value(), "merge", "'", f.name, "' has a malformed build.version ",
                              v.dump());
                BALLAST_CHECK(*theirs <= ours, "merge", "'", f.name, "' was written by ballast ",
                              v.get<std::string>(), ", newer than this one (", version_string,
                              "); merge it with that version or newer");
            }
            const auto header = detail::without(h, options.header_ignored);
            if (first == nullptr)
            {
                first = &f;
                out.header = header;
            }
            else
            {
                const auto diff = json_differences(out.header, header);
                BALLAST_CHECK(diff.empty(), "merge", "'", f.name, "' and '", first->name,
                              "' are not shards of one study: their study lines differ (", first->name,
                              " vs ", f.name, ": ", diff,
                              "); config, corpus fingerprint and build must all agree");
            }
            if (h.contains("shard") && h["shard"].is_object())
            {
                const auto tag = h["shard"].dump();
                const auto [it, fresh] = shard_files.emplace(tag, &f);
                BALLAST_CHECK(fresh, "merge", "'", f.name, "' and '", it->second->name, "' both claim shard ",
                              tag);
            }
            for (std::size_t l = 1; l < f.lines.size(); ++l)
            {
                const auto& j = f.lines[l];
                if (string_field(j, "type") != "run")
                {
                    continue;
                }
                BALLAST_CHECK(j.contains("key") && j["key"].is_string(), "merge", "'", f.name, "' line ",
                              l + 1, " is a run line without a key");
                const auto key = j["key"].get<std::string>();
                const auto g = grid.find(key);
                BALLAST_CHECK(g != grid.end(), "merge", "run '", key, "' in '", f.name,
                              "' is not in this study's grid");
                const auto*& slot = by_index[g->second];
                if (slot == nullptr)
                {
                    slot = &j;
                    source[g->second] = &f;
                    continue;
                }
                ++out.duplicates;
                const auto diff = json_differences(detail::without(*slot, options.run_ignored),
                                                   detail::without(j, options.run_ignored));
                BALLAST_CHECK(diff.empty(), "merge", "run '", key,
                              "' was finished twice with different results ('", source[g->second]->name,
                              "' vs '", f.name, "': ", diff, ")");
            }
        }
        for (std::size_t i = 0; i < grid_keys.size(); ++i)
        {
            if (by_index[i] != nullptr)
            {
                out.runs.push_back(*by_index[i]);
            }
            else
            {
                out.missing.push_back(grid_keys[i]);
            }
        }
        return out;
    }

    /// The result files in `dir`: results.jsonl (if present) first, then every results.I-of-N.jsonl by
    /// (N, I). A torn last line (a crash mid-append) is dropped, as the study engine does.
    inline std::vector<results_lines> read_results_dir(const std::filesystem::path& dir)
    {
        std::vector<std::pair<shard_id, std::filesystem::path>> shards;
        std::vector<results_lines> out;
        std::error_code ec;
        BALLAST_CHECK(std::filesystem::is_directory(dir, ec), "merge", "'", dir.string(),
                      "' is not a directory");
        for (const auto& e : std::filesystem::directory_iterator(dir))
        {
            if (const auto s = parse_shard_results_name(e.path().filename().string());
                s && e.is_regular_file())
            {
                shards.emplace_back(*s, e.path());
            }
        }
        std::ranges::sort(
          shards, [](const auto& a, const auto& b)
          { return std::pair(a.first.count, a.first.index) < std::pair(b.first.count, b.first.index); });
        if (std::filesystem::exists(dir / "results.jsonl", ec))
        {
            out.push_back({ "results.jsonl", read_jsonl(dir / "results.jsonl") });
        }
        for (const auto& [s, p] : shards)
        {
            out.push_back({ p.filename().string(), read_jsonl(p) });
        }
        return out;
    }

    /// Merge every result file in `dir` and write the merged results.jsonl there (atomically; the shard
    /// files stay, so merging again, or after more shards finish, gives the same file).
    inline merge_result merge_results_dir(const std::filesystem::path& dir,
                                          std::span<const std::string> grid_keys,
                                          const merge_options& options = {})
    {
        const auto files = read_results_dir(dir);
        BALLAST_CHECK(!files.empty(), "merge", "no results.jsonl or results.I-of-N.jsonl in '", dir.string(),
                      "'");
        auto merged = merge_results(std::span<const results_lines>(files), grid_keys, options);
        const auto text = merged.text();
        write_file_atomic(dir / "results.jsonl", std::as_bytes(std::span(text)));
        return merged;
    }

    /// For a (re)launch: the grid keys no result file in `dir` has finished yet, in grid order (every key
    /// when `dir` is absent or holds no result file). `study_line` is this process's own study line: every
    /// file must match it as merge requires (named "this study" in errors), so a process never resumes
    /// from, or adds to, another study's files.
    inline std::vector<std::string> unfinished_runs(const std::filesystem::path& dir,
                                                    std::span<const std::string> grid_keys,
                                                    const nlohmann::json& study_line,
                                                    const merge_options& options = {})
    {
        std::vector<results_lines> files = { { "this study", { study_line } } };
        std::error_code ec;
        if (std::filesystem::is_directory(dir, ec))
        {
            for (auto& f : read_results_dir(dir))
            {
                files.push_back(std::move(f));
            }
        }
        // This process's own shard may already have a file: compare without claiming the shard twice.
        files.front().lines.front().erase("shard");
        return merge_results(std::span<const results_lines>(files), grid_keys, options).missing;
    }
} // namespace ballast::study

#endif
