#ifndef BALLAST_CORE_LOCK_HPP
#define BALLAST_CORE_LOCK_HPP

/// @file
/// An advisory lock on an output directory, so that two writers (two `study` runs, or two `train` runs
/// into one directory) cannot interleave their files: `directory_lock` takes `flock(LOCK_EX | LOCK_NB)`
/// on `<dir>/.lock` for its lifetime and writes the holder's pid into it; a second taker, in this or
/// another process, gets ballast::error "... is in use by pid N".
///
/// The lock is released by the kernel when the descriptor closes, so a crashed or SIGKILLed holder never
/// leaves a stale lock behind (the `.lock` file stays, empty of meaning, and is reused). The file is not
/// removed on release: removing it would let a third process lock a new inode while a second still waits
/// on the old one.
///
/// NFS: on Linux since 2.6.12, flock() on NFS is emulated with whole-file POSIX (fcntl) locks through the
/// NFS lock manager, so it works across clients when lockd/NFSv4 locking is available; with `nolock`
/// mounts it is local to one client only. docs/hardening.md has the details.

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
    /// An exclusive advisory lock on a directory (see the file comment). Movable, not copyable.
    class directory_lock
    {
    public:
        /// Lock `dir` (created if missing). Throws ballast::error when another holder has it, naming
        /// the holder's pid when it is known.
        explicit directory_lock(const std::filesystem::path& dir)
          : m_path(dir / ".lock")
        {
            std::error_code ec;
            std::filesystem::create_directories(dir, ec);
            m_fd = ::open(m_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
            BALLAST_CHECK(m_fd >= 0, "directory_lock", "cannot open '", m_path.string(),
                          "': ", std::strerror(errno));
            int rc = 0;
            while ((rc = ::flock(m_fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR)
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
                    ::ballast::detail::throw_error("directory_lock", "'", dir.string(), "' is in use by ",
                                                   holder.empty() ? std::string("another process")
                                                                  : "pid " + holder,
                                                   " (lock file '", m_path.string(), "')");
                }
                ::ballast::detail::throw_error("directory_lock", "cannot lock '", m_path.string(),
                                               "': ", std::strerror(err));
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
        }
        ~directory_lock() { release(); }
        directory_lock(const directory_lock&) = delete;
        directory_lock& operator=(const directory_lock&) = delete;
        directory_lock(directory_lock&& o) noexcept
          : m_path(std::move(o.m_path))
          , m_fd(o.m_fd)
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
                [[maybe_unused]] const int rc = ::ftruncate(m_fd, 0);
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
    };
} // namespace ballast

#endif
