#ifndef BALLAST_CORE_FILE_HPP
#define BALLAST_CORE_FILE_HPP

/// @file
/// Whole-file reads and atomic writes. Every file ballast writes (weights, checkpoints, results) goes
/// through `write_file_atomic`: the bytes go to a temporary file in the same directory, are flushed to
/// disk, and the temporary is renamed over the target, so a crash leaves either the old file or the new
/// one, never a torn one. docs/hardening.md describes the guarantees (symlinks and other non-regular targets
/// are refused, the directory is synced after the rename, stale temp files are removed on start-up).

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <sys/stat.h>
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

    namespace detail
    {
        /// "<name>" of a temp file ".<name>.tmp.<pid>.<n>" (empty if `file` is not one), and its pid.
        inline std::string temp_target(const std::string& file, long& pid)
        {
            pid = -1;
            const auto at = file.rfind(".tmp.");
            if (file.size() < 2 || file[0] != '.' || at == std::string::npos || at < 2)
            {
                return {};
            }
            const std::string rest = file.substr(at + 5); // "<pid>" or "<pid>.<n>"
            const auto dot = rest.find('.');
            const std::string p = rest.substr(0, dot);
            const std::string n = dot == std::string::npos ? std::string("0") : rest.substr(dot + 1);
            const auto digits = [](const std::string& x)
            { return !x.empty() && x.size() < 10 && x.find_first_not_of("0123456789") == std::string::npos; };
            if (!digits(p) || !digits(n))
            {
                return {};
            }
            pid = std::stol(p);
            return file.substr(1, at - 1);
        }

        /// The per-process counter that makes temp names unique across threads.
        inline std::atomic<unsigned>& temp_counter() noexcept
        {
            static std::atomic<unsigned> counter{ 0 };
            return counter;
        }

        /// fsync a directory so a rename in it survives a power loss. Filesystems that cannot sync a
        /// directory (EINVAL, ENOTSUP) are not an error; other failures are, with their own errno.
        inline void fsync_directory(const std::filesystem::path& dir, const std::filesystem::path& for_file)
        {
            const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            BALLAST_CHECK(dfd >= 0, "write_file_atomic", "cannot open directory '", dir.string(),
                          "' to sync '", for_file.string(), "': ", std::strerror(errno));
            const int rc = ::fsync(dfd);
            const int err = errno;
            ::close(dfd);
            BALLAST_CHECK(rc == 0 || err == EINVAL || err == ENOTSUP, "write_file_atomic",
                          "cannot sync directory '", dir.string(), "' after writing '", for_file.string(),
                          "': ", std::strerror(err));
        }
    } // namespace detail

    /// Remove the temporary files that interrupted `write_file_atomic` calls left in `dir`
    /// (".<name>.tmp.<pid>[.<n>]" whose process <pid> no longer runs; a live writer's temp is kept).
    /// Returns the names removed. Call it on start-up, under the directory's lock (core/lock.hpp).
    inline std::vector<std::string> remove_stale_temp_files(const std::filesystem::path& dir)
    {
        std::vector<std::string> removed;
        std::error_code ec;
        for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
        {
            long pid = -1;
            const std::string name = entry.path().filename().string();
            if (detail::temp_target(name, pid).empty() || !entry.is_regular_file(ec) || entry.is_symlink(ec))
            {
                continue;
            }
            if (pid == ::getpid())
            {
                continue; // ours: a write in flight on another thread
            }
            const bool alive = pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
            if (!alive && std::filesystem::remove(entry.path(), ec))
            {
                removed.push_back(name);
            }
        }
        return removed;
    }

    /// Write `parts` (concatenated) to `path` atomically: temp file in the same directory, fsync, rename,
    /// fsync of the directory. Only regular files are replaced: a symlink, directory, device or FIFO at
    /// `path` is refused (renaming over a symlink would replace the link, not its target, and renaming
    /// over a device node would replace the device with a file; both are surprises, never intended).
    /// Every failure names the path and the errno of the call that failed.
    inline void write_file_atomic(const std::filesystem::path& path,
                                  std::span<const std::span<const std::byte>> parts)
    {
        const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
        struct stat st
        {
        };
        if (::lstat(path.c_str(), &st) == 0)
        {
            BALLAST_CHECK(!S_ISLNK(st.st_mode), "write_file_atomic", "refusing to replace '", path.string(),
                          "': it is a symbolic link (write to its target directly)");
            BALLAST_CHECK(S_ISREG(st.st_mode), "write_file_atomic", "refusing to replace '", path.string(),
                          "': it is not a regular file");
        }
        std::string tmp_name = path.filename().string();
        tmp_name.insert(0, 1, '.');
        tmp_name += ".tmp.";
        tmp_name += std::to_string(::getpid());
        tmp_name += '.';
        tmp_name += std::to_string(detail::temp_counter().fetch_add(1) % 1000000u);
        const std::string tmp = (dir / tmp_name).string();
        constexpr int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW;
        int fd = ::open(tmp.c_str(), flags, 0644);
        if (fd < 0 && errno == EEXIST)
        {
            // A leftover of a crashed process that had our pid (pids repeat, e.g. in containers): the name
            // is unique within this process, so nothing live owns it.
            ::unlink(tmp.c_str());
            fd = ::open(tmp.c_str(), flags, 0644);
        }
        BALLAST_CHECK(fd >= 0, "write_file_atomic", "cannot create '", tmp, "': ", std::strerror(errno));
        const char* failed = nullptr; // the call that failed, with its errno in `err`
        int err = 0;
        for (const auto part : parts)
        {
            const std::byte* p = part.data();
            std::size_t left = part.size();
            while (failed == nullptr && left > 0)
            {
                const ssize_t w = ::write(fd, p, left);
                if (w < 0 && errno == EINTR)
                {
                    continue;
                }
                if (w <= 0)
                {
                    failed = "write";
                    err = w < 0 ? errno : EIO;
                    break;
                }
                p += w;
                left -= static_cast<std::size_t>(w);
            }
        }
        if (failed == nullptr && ::fsync(fd) != 0)
        {
            failed = "fsync";
            err = errno;
        }
        if (::close(fd) != 0 && failed == nullptr)
        {
            failed = "close";
            err = errno;
        }
        if (failed == nullptr && std::rename(tmp.c_str(), path.c_str()) != 0)
        {
            failed = "rename";
            err = errno;
        }
        if (failed != nullptr)
        {
            std::remove(tmp.c_str());
            detail::throw_error("write_file_atomic", "cannot write '", path.string(), "' (", failed,
                                "): ", std::strerror(err));
        }
        detail::fsync_directory(dir, path);
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
        // One write(2) for the whole line; only after a short write (disk full or a size limit mid-line)
        // is the rest written, which then fails with the errno that explains it.
        const char* failed = nullptr;
        int err = 0;
        std::size_t done = 0;
        while (done < buf.size())
        {
            const ssize_t n = ::write(fd, buf.data() + done, buf.size() - done);
            if (n < 0 && errno == EINTR)
            {
                continue;
            }
            if (n <= 0)
            {
                failed = "write";
                err = n < 0 ? errno : EIO;
                break;
            }
            done += static_cast<std::size_t>(n);
        }
        if (failed == nullptr && sync && ::fsync(fd) != 0)
        {
            failed = "fsync";
            err = errno;
        }
        if (::close(fd) != 0 && failed == nullptr)
        {
            failed = "close";
            err = errno;
        }
        BALLAST_CHECK(failed == nullptr, "append_line", "cannot append to '", path.string(), "' (", failed,
                      "): ", std::strerror(err));
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
