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

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include <ballast/core/config.hpp>
#include <ballast/core/file.hpp>
#include <ballast/io/safetensors.hpp>

namespace ballast
{
    inline constexpr const char* checkpoint_format = "ballast-checkpoint";
    inline constexpr int checkpoint_version = 1;
    inline constexpr const char* checkpoint_manifest = "checkpoint.json";

    namespace detail
    {
        inline std::string hex64(std::uint64_t v)
        {
            char buf[17];
            std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
            return buf;
        }
    } // namespace detail

    /// Does `dir` hold a checkpoint manifest?
    inline bool has_checkpoint(const std::filesystem::path& dir)
    {
        std::error_code ec;
        return std::filesystem::is_regular_file(dir / checkpoint_manifest, ec);
    }

    /// Write a checkpoint: `tensors` to a fresh tensor file, then `manifest` (augmented with format,
    /// version, step and the tensor file's name, size and fingerprint) atomically, then remove stale
    /// tensor files.
    inline void write_checkpoint(const std::filesystem::path& dir, std::uint64_t step,
                                 nlohmann::json manifest, const io::safetensors_writer& tensors)
    {
        std::filesystem::create_directories(dir);
        char name[64];
        std::snprintf(name, sizeof name, "tensors-%09llu.safetensors", static_cast<unsigned long long>(step));
        const auto bytes = tensors.serialize();
        write_file_atomic(dir / name, bytes);
        manifest["format"] = checkpoint_format;
        manifest["version"] = checkpoint_version;
        manifest["step"] = step;
        manifest["tensors"] = { { "file", name },
                                { "bytes", bytes.size() },
                                { "fnv1a64", detail::hex64(fnv1a64(bytes)) } };
        const std::string text = manifest.dump(2) + "\n";
        write_file_atomic(dir / checkpoint_manifest, std::as_bytes(std::span(text)));
        for (const auto& e : std::filesystem::directory_iterator(dir))
        {
            const auto f = e.path().filename().string();
            if (f != name && f.starts_with("tensors-") && f.ends_with(".safetensors"))
            {
                std::error_code ec;
                std::filesystem::remove(e.path(), ec); // best effort: a stale file is harmless
            }
        }
    }

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
        BALLAST_CHECK(m.value("format", "") == checkpoint_format, where, "'", mpath.string(),
                      "' is not a ballast checkpoint manifest");
        BALLAST_CHECK(m.value("version", -1) == checkpoint_version, where, "'", mpath.string(),
                      "' has version ", m.value("version", -1), ", this build reads version ",
                      checkpoint_version);
        BALLAST_CHECK(m.contains("tensors") && m["tensors"].is_object() && m["tensors"].contains("file") &&
                        m["tensors"].contains("bytes") && m["tensors"].contains("fnv1a64") &&
                        m.contains("step") && m["step"].is_number_unsigned(),
                      where, "'", mpath.string(), "' lacks the step or the tensors entry");
        const auto& t = m["tensors"];
        const auto tpath = dir / t["file"].get<std::string>();
        auto bytes = read_file(tpath);
        BALLAST_CHECK(bytes.size() == t["bytes"].get<std::size_t>(), where, "'", tpath.string(), "' has ",
                      bytes.size(), " bytes, the manifest says ", t["bytes"].get<std::size_t>(),
                      " (truncated or replaced)");
        const auto h = detail::hex64(fnv1a64(bytes));
        BALLAST_CHECK(h == t["fnv1a64"].get<std::string>(), where, "'", tpath.string(),
                      "' does not match its fingerprint in the manifest (corrupt)");
        return { std::move(m), io::safetensors_file(std::move(bytes), tpath.string()) };
    }
} // namespace ballast

#endif
