#ifndef BALLAST_TRAIN_CHECKPOINT_HPP
#define BALLAST_TRAIN_CHECKPOINT_HPP

/// @file
/// Checkpoint files: one safetensors file with the tensors (weights and optimizer moments) and a small
/// JSON manifest, `checkpoint.json`, naming it.
///
///   <dir>/checkpoint.json                    {"format": "ballast-checkpoint", "version": 1, "step": …,
///                                             "tensors": {"file": "…", "bytes": …, "fnv1a64": "…"}, …}
///   <dir>/tensors-<step, 9 digits>.safetensors
///
/// Writing is crash-safe: the tensors go to a new file (atomic write), then the manifest is replaced
/// atomically, then older tensor files are removed. A crash at any point leaves a manifest that names a
/// complete tensor file. Reading checks the manifest's format, the tensor file's size and FNV-1a
/// fingerprint, and refuses anything corrupt, truncated or mismatched with a message naming the problem.
///
/// A training run's checkpoint (what `trainer::save_checkpoint` writes) holds, for every parameter tensor
/// of the model's layout, the tensor under its own name followed by its optimizer state tensors
/// "optimizer.<state>.<name>" (`run_checkpoint_tensors`, `read_run_checkpoint_tensors`), and its manifest
/// holds the run's identity, which a resume must match (`check_run_checkpoint`).

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <ballast/core/config.hpp>
#include <ballast/core/file.hpp>
#include <ballast/core/json.hpp>
#include <ballast/core/jsonl.hpp>
#include <ballast/core/reflect.hpp>
#include <ballast/io/safetensors.hpp>
#include <ballast/model/parameters.hpp>

namespace ballast
{
    inline constexpr const char* checkpoint_format = "ballast-checkpoint";
    inline constexpr int checkpoint_version = 2; ///< 2: the manifest fingerprints itself, tensors carry their step
    inline constexpr const char* checkpoint_manifest = "checkpoint.json";

    /// Does `dir` hold a checkpoint manifest?
    inline bool has_checkpoint(const std::filesystem::path& dir)
    {
        std::error_code ec;
        return std::filesystem::is_regular_file(dir / checkpoint_manifest, ec);
    }

    /// The tensor file name of the checkpoint at `step`: "tensors-<step, 9 digits>.safetensors".
    inline std::string checkpoint_tensor_file(std::uint64_t step)
    {
        char name[64];
        std::snprintf(name, sizeof name, "tensors-%09llu.safetensors", static_cast<unsigned long long>(step));
        return name;
    }

    /// The fingerprint a manifest carries of itself ("manifest_fnv1a64"): FNV-1a of its compact JSON
    /// without that key, so an edited manifest (a changed step, say) is refused instead of resuming
    /// tensors of another step.
    inline std::string manifest_fingerprint(nlohmann::json manifest)
    {
        manifest.erase("manifest_fnv1a64");
        const std::string text = manifest.dump();
        return hex64(fnv1a64(std::as_bytes(std::span(text))));
    }

    /// Write a checkpoint: `tensors` (with the step in their metadata) to a fresh tensor file, then
    /// `manifest` (augmented with format, version, step, the tensor file's name, size and fingerprint and
    /// the manifest's own fingerprint) atomically, then remove the tensor file the previous manifest named.
    /// Tensor files no manifest names (a directory whose manifest was lost, say) are never deleted:
    /// they are returned, for the caller to report. Temporary files of interrupted writes by processes
    /// that no longer run are removed first.
    inline std::vector<std::filesystem::path> write_checkpoint(const std::filesystem::path& dir,
                                                               std::uint64_t step, nlohmann::json manifest,
                                                               io::safetensors_writer tensors)
    {
        std::filesystem::create_directories(dir);
        remove_stale_temp_files(dir);
        // The tensor file the current manifest names, if it can be read: the only one this write
        // replaces.
        std::string previous;
        {
            std::error_code ec;
            if (std::filesystem::is_regular_file(dir / checkpoint_manifest, ec))
            {
                const auto mbytes = read_file(dir / checkpoint_manifest);
                const auto old = nlohmann::json::parse(reinterpret_cast<const char*>(mbytes.data()),
                                                       reinterpret_cast<const char*>(mbytes.data()) + mbytes.size(),
                                                       nullptr, false);
                if (old.is_object() && old.contains("tensors") && old["tensors"].is_object() &&
                    old["tensors"].contains("file") && old["tensors"]["file"].is_string())
                {
                    previous = old["tensors"]["file"].get<std::string>();
                }
            }
        }
        const std::string name = checkpoint_tensor_file(step);
        tensors.set_metadata("ballast_checkpoint_step", std::to_string(step));
        const auto bytes = tensors.serialize();
        write_file_atomic(dir / name, bytes);
        manifest["format"] = checkpoint_format;
        manifest["version"] = checkpoint_version;
        manifest["step"] = step;
        manifest["tensors"] = { { "file", name },
                                { "bytes", bytes.size() },
                                { "fnv1a64", hex64(fnv1a64(bytes)) } };
        manifest["manifest_fnv1a64"] = manifest_fingerprint(manifest);
        const std::string text = manifest.dump(2) + "\n";
        write_file_atomic(dir / checkpoint_manifest, std::as_bytes(std::span(text)));
        std::vector<std::filesystem::path> orphans;
        for (const auto& e : std::filesystem::directory_iterator(dir))
        {
            const auto f = e.path().filename().string();
            if (f == name || !f.starts_with("tensors-") || !f.ends_with(".safetensors"))
            {
                continue;
            }
            if (f == previous)
            {
                std::error_code ec;
                std::filesystem::remove(e.path(), ec); // best effort: a stale file is harmless
            }
            else
            {
                orphans.push_back(e.path());
            }
        }
        std::sort(orphans.begin(), orphans.end());
        return orphans;
    }

    /// When a run's interval checkpoints are due: every `every_steps` steps (0: never by steps), and once
    /// `every_seconds` of wall time (0: never by time) have passed since the last write, the wait stretched
    /// to 100× that write's duration, so that writing takes at most 1% of the run whatever the model size
    /// or the disk. Checkpoints never change a run, so the clock cannot change results.
    class checkpoint_clock
    {
    public:
        checkpoint_clock(std::size_t every_steps, double every_seconds)
          : m_steps(every_steps)
          , m_seconds(every_seconds)
        {
        }

        /// Start timing (the beginning of a run, or of a resumed one).
        void start() { m_last = std::chrono::steady_clock::now(); }

        /// Is a checkpoint due after `step` steps?
        bool due(std::size_t step) const
        {
            if (m_steps != 0 && step % m_steps == 0)
            {
                return true;
            }
            if (m_seconds <= 0)
            {
                return false;
            }
            const double since = std::chrono::duration<double>(std::chrono::steady_clock::now() - m_last).count();
            return since >= std::max(m_seconds, 100.0 * m_write_seconds);
        }

        /// Run `write` (the checkpoint write), timing it for `due`.
        template <class Write>
        void write(Write&& w)
        {
            const auto t0 = std::chrono::steady_clock::now();
            std::forward<Write>(w)();
            m_last = std::chrono::steady_clock::now();
            m_write_seconds = std::chrono::duration<double>(m_last - t0).count();
            ++m_written;
        }

        /// Checkpoints written through `write`, and the duration of the last one.
        std::size_t written() const noexcept { return m_written; }
        double last_write_seconds() const noexcept { return m_write_seconds; }

    private:
        std::size_t m_steps;
        double m_seconds;
        std::chrono::steady_clock::time_point m_last = std::chrono::steady_clock::now();
        double m_write_seconds = 0;
        std::size_t m_written = 0;
    };

    /// A checkpoint read back and verified.
    struct loaded_checkpoint
    {
        nlohmann::json manifest;
        io::safetensors_file tensors;
    };

    /// Read and verify the checkpoint in `dir`. Throws ballast::error when the manifest is missing,
    /// unparsable or of another format/version, or the tensor file is missing, truncated or altered.
    inline loaded_checkpoint read_checkpoint(const std::filesystem::path& dir)
    {
        constexpr const char* where = "checkpoint";
        const auto mpath = dir / checkpoint_manifest;
        const auto mbytes = read_file(mpath);
        nlohmann::json m =
          nlohmann::json::parse(reinterpret_cast<const char*>(mbytes.data()),
                                reinterpret_cast<const char*>(mbytes.data()) + mbytes.size(), nullptr, false);
        BALLAST_CHECK(!m.is_discarded() && m.is_object(), where, "'", mpath.string(),
                      "' is not valid JSON (corrupt or truncated manifest)");
        BALLAST_CHECK(string_field(m, "format") == checkpoint_format, where, "'", mpath.string(),
                      "' is not a ballast checkpoint manifest");
        const auto version = m.contains("version") && m["version"].is_number_integer()
                               ? m["version"].get<std::int64_t>()
                               : std::int64_t{ -1 };
        BALLAST_CHECK(version == checkpoint_version, where, "'", mpath.string(), "' has version ",
                      m.contains("version") ? m["version"].dump() : std::string("(none)"), ", this build reads version ",
                      checkpoint_version);
        BALLAST_CHECK(m.contains("tensors") && m["tensors"].is_object() && m["tensors"].contains("file") &&
                        m["tensors"].contains("bytes") && m["tensors"].contains("fnv1a64") &&
                        m.contains("step") && m["step"].is_number_unsigned(),
                      where, "'", mpath.string(), "' lacks the step or the tensors entry");
        BALLAST_CHECK(m.contains("manifest_fnv1a64") && m["manifest_fnv1a64"].is_string() &&
                        m["manifest_fnv1a64"].get<std::string>() == manifest_fingerprint(m),
                      where, "'", mpath.string(),
                      "' does not match its own fingerprint (the manifest was edited or damaged)");
        const auto& t = m["tensors"];
        BALLAST_CHECK(t["file"].is_string() && t["bytes"].is_number_unsigned() && t["fnv1a64"].is_string(),
                      where, "'", mpath.string(), "' has a malformed tensors entry");
        const std::uint64_t step = m["step"].get<std::uint64_t>();
        BALLAST_CHECK(t["file"].get<std::string>() == checkpoint_tensor_file(step), where, "'", mpath.string(),
                      "' names tensor file '", t["file"].get<std::string>(), "' for step ", step,
                      " (expected '", checkpoint_tensor_file(step), "')");
        const auto tpath = dir / t["file"].get<std::string>();
        auto bytes = read_file(tpath);
        BALLAST_CHECK(bytes.size() == t["bytes"].get<std::size_t>(), where, "'", tpath.string(), "' has ",
                      bytes.size(), " bytes, the manifest says ", t["bytes"].get<std::size_t>(),
                      " (truncated or replaced)");
        const auto h = hex64(fnv1a64(bytes));
        BALLAST_CHECK(h == t["fnv1a64"].get<std::string>(), where, "'", tpath.string(),
                      "' does not match its fingerprint in the manifest (corrupt)");
        io::safetensors_file file(std::move(bytes), tpath.string());
        const auto& meta = file.metadata();
        const auto it = meta.find("ballast_checkpoint_step");
        BALLAST_CHECK(it != meta.end() && it->second == std::to_string(step), where, "'", tpath.string(),
                      "' holds the tensors of step ", it == meta.end() ? std::string("?") : it->second,
                      ", the manifest says step ", step);
        return { std::move(m), std::move(file) };
    }

    /// The checkpoint name of optimizer state `state` of parameter tensor `param`: "optimizer.<state>.<param>".
    inline std::string state_tensor_name(std::string_view state, std::string_view param)
    {
        return "optimizer." + std::string(state) + "." + std::string(param);
    }

    /// Every tensor name of a run checkpoint, in order: each parameter of `layout`, then its state tensors.
    template <std::size_t S>
    std::vector<std::string> run_checkpoint_names(const param_layout& layout,
                                                  const std::array<std::string_view, S>& state_names)
    {
        std::vector<std::string> names;
        for (const auto& e : layout.entries())
        {
            names.push_back(e.name);
            for (const auto s : state_names)
            {
                names.push_back(state_tensor_name(s, e.name));
            }
        }
        return names;
    }

    /// The tensors of a run checkpoint: for each tensor of `layout`, the parameters (from the flat buffer
    /// `params`) and then its optimizer state `state[s]` named `state_names[s]` (flat buffers laid out
    /// like `params`).
    template <class T, std::size_t S>
    io::safetensors_writer run_checkpoint_tensors(const param_layout& layout, std::span<const T> params,
                                                  const std::array<std::string_view, S>& state_names,
                                                  const std::array<std::span<const T>, S>& state)
    {
        io::safetensors_writer w;
        for (const auto& e : layout.entries())
        {
            w.add<T>(e.name, std::span<const std::size_t>(e.shape), params.data() + e.offset);
            for (std::size_t s = 0; s < S; ++s)
            {
                w.add<T>(state_tensor_name(state_names[s], e.name), std::span<const std::size_t>(e.shape),
                         state[s].data() + e.offset);
            }
        }
        return w;
    }

    /// Read the tensors `run_checkpoint_tensors` wrote into `params` and `state`. Throws ballast::error
    /// when a tensor is missing, extra or of the wrong shape; the buffers may then be partly written, so
    /// read into copies when the originals must survive a failure.
    template <class T, std::size_t S>
    void read_run_checkpoint_tensors(const io::safetensors_file& f, const param_layout& layout,
                                     const std::array<std::string_view, S>& state_names, std::span<T> params,
                                     const std::array<std::span<T>, S>& state)
    {
        f.require_exactly(run_checkpoint_names(layout, state_names));
        for (const auto& e : layout.entries())
        {
            f.read<T>(e.name, std::span<const std::size_t>(e.shape), params.data() + e.offset);
            for (std::size_t s = 0; s < S; ++s)
            {
                f.read<T>(state_tensor_name(state_names[s], e.name), std::span<const std::size_t>(e.shape),
                          state[s].data() + e.offset);
            }
        }
    }

    /// The manifest keys that are bookkeeping (written by `write_checkpoint` or the progress so far), not
    /// part of the run's identity.
    inline constexpr std::array<const char*, 7> checkpoint_bookkeeping_keys{
        "format", "version", "step", "tensors", "rng", "progress", "manifest_fnv1a64"
    };

    /// Check that `ck` (read from `dir`) belongs to the run `identity` (its manifest, without the
    /// bookkeeping keys, equals it) and is not past the run's `steps`; returns the checkpoint's step.
    /// Throws ballast::error listing the differing settings.
    inline std::size_t check_run_checkpoint(const loaded_checkpoint& ck, const nlohmann::json& identity,
                                            const std::filesystem::path& dir, std::size_t steps)
    {
        auto got = ck.manifest;
        for (const char* k : checkpoint_bookkeeping_keys)
        {
            got.erase(k);
        }
        const auto diff = json_differences(got, identity);
        BALLAST_CHECK(diff.empty(), "checkpoint", "'", dir.string(),
                      "' belongs to a different run (checkpoint vs this run: ", diff, ")");
        const std::size_t step = ck.manifest["step"].get<std::size_t>();
        BALLAST_CHECK(step <= steps, "checkpoint", "step ", step, " is past the run's ", steps, " steps");
        return step;
    }
} // namespace ballast

#endif
