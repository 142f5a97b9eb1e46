#ifndef BALLAST_CORE_FILE_HPP
#define BALLAST_CORE_FILE_HPP

/// @file
/// Whole-file reads and atomic writes. Every file ballast writes (weights, checkpoints, results) goes
/// through `write_file_atomic`: the bytes go to a temporary file in the same directory, are flushed to
/// disk, and the temporary is renamed over the target, so a crash leaves either the old file or the new
/// one, never a torn one.

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

#include <ballast/core/config.hpp>

namespace ballast
{
    /// Read a whole file; throws ballast::error naming the path if it cannot be opened or read.
    inline std::vector<std::byte> read_file(const std::filesystem::path& path)
    {
        std::FILE* f = std::fopen(path.c_str(), "rb");
        BALLAST_CHECK(f != nullptr, "read_file", "cannot open '", path.string(), "': ", std::strerror(errno));
        std::vector<std::byte> bytes;
        std::byte buf[1 << 16];
        std::size_t got = 0;
        while ((got = std::fread(buf, 1, sizeof(buf), f)) > 0)
        {
            bytes.insert(bytes.end(), buf, buf + got);
        }
        const bool failed = std::ferror(f) != 0;
        std::fclose(f);
        BALLAST_CHECK(!failed, "read_file", "error while reading '", path.string(), "'");
        return bytes;
    }

    /// Write `parts` (concatenated) to `path` atomically: temp file in the same directory, fsync, rename.
    inline void write_file_atomic(const std::filesystem::path& path,
                                  std::span<const std::span<const std::byte>> parts)
    {
        const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
        std::string tmp_name = path.filename().string();
        tmp_name.insert(0, 1, '.');
        tmp_name += ".tmp.";
        tmp_name += std::to_string(::getpid());
        const std::string tmp = (dir / tmp_name).string();
        const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        BALLAST_CHECK(fd >= 0, "write_file_atomic", "cannot create '", tmp, "': ", std::strerror(errno));
        bool ok = true;
        for (const auto part : parts)
        {
            const std::byte* p = part.data();
            std::size_t left = part.size();
            while (ok && left > 0)
            {
                const ssize_t w = ::write(fd, p, left);
                if (w < 0 && errno == EINTR)
                {
                    continue;
                }
                ok = w > 0;
                if (ok)
                {
                    p += w;
                    left -= static_cast<std::size_t>(w);
                }
            }
        }
        const int saved_errno = errno;
        ok = ok && ::fsync(fd) == 0;
        ::close(fd);
        if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0)
        {
            const int e = ok ? errno : saved_errno;
            std::remove(tmp.c_str());
            detail::throw_error("write_file_atomic", "cannot write '", path.string(),
                                "': ", std::strerror(e));
        }
    }

    /// Convenience overload for a single buffer.
    inline void write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> bytes)
    {
        const std::span<const std::byte> parts[] = { bytes };
        write_file_atomic(path, std::span<const std::span<const std::byte>>(parts));
    }

    /// Append one line (a '\n' is added) with a single write(2) on an O_APPEND descriptor (and fsync it
    /// when `sync`), so concurrent or interrupted appenders never interleave or tear a line. Throws on
    /// failure.
    inline void append_line(const std::filesystem::path& path, std::string_view line, bool sync = true)
    {
        std::string buf(line);
        buf.push_back('\n');
        const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        BALLAST_CHECK(fd >= 0, "append_line", "cannot open '", path.string(), "': ", std::strerror(errno));
        const ssize_t n = ::write(fd, buf.data(), buf.size());
        const bool ok = n == static_cast<ssize_t>(buf.size()) && (!sync || ::fsync(fd) == 0);
        const int err = errno;
        ::close(fd);
        BALLAST_CHECK(ok, "append_line", "cannot append to '", path.string(), "': ", std::strerror(err));
    }

    /// 64-bit FNV-1a of a byte range (a fingerprint for checkpoint and corpus identity, not a MAC).
    inline std::uint64_t fnv1a64(std::span<const std::byte> bytes,
                                 std::uint64_t h = 0xcbf29ce484222325ULL) noexcept
    {
        for (const auto b : bytes)
        {
            h = (h ^ std::to_integer<std::uint64_t>(b)) * 0x100000001b3ULL;
        }
        return h;
    }
} // namespace ballast

#endif
