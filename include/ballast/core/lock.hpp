#ifndef BALLAST_CORE_LOCK_HPP
#define BALLAST_CORE_LOCK_HPP

/// @file
/// An advisory lock on an output directory, so that two writers (two `study` runs, or two `train` runs
/// into one directory) cannot interleave their files: `directory_lock` takes `flock(LOCK_NB)` on
/// `<dir>/<name>` (default `.lock`) for its lifetime. An exclusive holder writes its pid into the file; a
/// second taker, in this or another process, gets ballast::error "... is in use by pid N".
///
/// Shared holders (`lock_mode::shared`) coexist with each other and exclude an exclusive holder: study
/// shards take `.lock` shared and their own `.lock.I-of-N` exclusive, so the shards of one array run
/// side by side while a whole-directory writer (an unsharded study, a merge) is refused, and the same
/// shard cannot run twice.
///
/// The lock is released by the kernel when the descriptor closes, so a crashed or SIGKILLed holder never
/// leaves a stale lock behind (the lock file stays, empty of meaning, and is reused). The file is not
/// removed on release: removing it would let a third process lock a new inode while a second still waits
/// on the old one.
///
/// NFS: on Linux since 2.6.12, flock() on NFS is emulated with whole-file POSIX (fcntl) locks through the
/// NFS lock manager, so it works across clients when lockd/NFSv4 locking is available; with `nolock`
/// mounts it is local to one client only. (The emulation also makes a shared lock an exclusive one on
/// some kernels, so shards on NFS should write to one directory only from hosts that do lock.)
/// docs/hardening.md has the details.

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <string>
#include <sys/file.h>
#include <unistd.h>
#include <utility>

#include <ballast/core/config.hpp>

namespace ballast
{
    /// How a lock is held: alone, or together with other shared holders.
    enum class lock_mode
    {
        exclusive,
        shared
    };

    /// An advisory lock on a directory (see the file comment). Movable, not copyable.
    class directory_lock
    {
    public:
        /// Lock `dir` (created if missing) through `<dir>/<name>`. Throws ballast::error when another
        /// holder has it, naming the exclusive holder's pid when it is known.
        explicit directory_lock(const std::filesystem::path& dir, lock_mode mode = lock_mode::exclusive,
                                const std::string& name = ".lock")
          : m_path(dir / name)
        {
            std::error_code ec;
            std::filesystem::create_directories(dir, ec);
            m_fd = ::open(m_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
            BALLAST_CHECK(m_fd >= 0, "directory_lock", "cannot open '", m_path.string(),
                          "': ", std::strerror(errno));
            const int op = (mode == lock_mode::exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB;
            int rc = 0;
            while ((rc = ::flock(m_fd, op)) != 0 && errno == EINTR)
            {
            }
            if (rc != 0)
            {
                const int err = errno;
                const std::string holder = read_holder();
                ::close(m_fd);
                m_fd = -1;
                if (err == EWOULDBLOCK)
                {
                    ::ballast::detail::throw_error(
                      "directory_lock", "'", dir.string(), "' is in use by ",
                      holder.empty() ? std::string(mode == lock_mode::exclusive
                                                     ? "another process (e.g. a running study shard)"
                                                     : "another process")
                                     : "pid " + holder,
                      " (lock file '", m_path.string(), "')");
                }
                ::ballast::detail::throw_error("directory_lock", "cannot lock '", m_path.string(),
                                               "': ", std::strerror(err));
            }
            if (mode == lock_mode::shared)
            {
                // Several holders, none of them named; clear the pid a killed exclusive holder left.
                [[maybe_unused]] const int rc2 = ::ftruncate(m_fd, 0);
                return;
            }
            // Record the holder: truncate first, so a shorter pid leaves no digits of an older one.
            const std::string pid = std::to_string(::getpid()) + "\n";
            if (::ftruncate(m_fd, 0) != 0 || ::pwrite(m_fd, pid.data(), pid.size(), 0) != ssize_t(pid.size()))
            {
                const int err = errno;
                ::close(m_fd);
                m_fd = -1;
                ::ballast::detail::throw_error("directory_lock", "cannot write '", m_path.string(),
                                               "': ", std::strerror(err));
            }
            m_exclusive = true;
        }
        ~directory_lock() { release(); }
        directory_lock(const directory_lock&) = delete;
        directory_lock& operator=(const directory_lock&) = delete;
        directory_lock(directory_lock&& o) noexcept
          : m_path(std::move(o.m_path))
          , m_fd(o.m_fd)
          , m_exclusive(o.m_exclusive)
        {
            o.m_fd = -1;
        }
        directory_lock& operator=(directory_lock&& o) noexcept
        {
            if (this != &o)
            {
                release();
                m_path = std::move(o.m_path);
                m_fd = o.m_fd;
                m_exclusive = o.m_exclusive;
                o.m_fd = -1;
            }
            return *this;
        }

        /// The lock file.
        const std::filesystem::path& path() const noexcept { return m_path; }
        /// Whether this object still holds the lock.
        bool held() const noexcept { return m_fd >= 0; }

        /// Give the lock up now (idempotent). The pid is cleared first so a reader never names us.
        void release() noexcept
        {
            if (m_fd >= 0)
            {
                if (m_exclusive)
                {
                    [[maybe_unused]] const int rc = ::ftruncate(m_fd, 0);
                }
                ::close(m_fd); // closing the last descriptor releases the flock
                m_fd = -1;
            }
        }

    private:
        std::string read_holder() const
        {
            char buf[32] = {};
            const ssize_t n = ::pread(m_fd, buf, sizeof(buf) - 1, 0);
            std::string s = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
            while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
            {
                s.pop_back();
            }
            return s.find_first_not_of("0123456789") == std::string::npos ? s : std::string();
        }

        std::filesystem::path m_path;
        int m_fd = -1;
        bool m_exclusive = false;
    };
} // namespace ballast

#endif
