#ifndef BALLAST_EXAMPLES_SUPPORT_PROGRESS_HPP
#define BALLAST_EXAMPLES_SUPPORT_PROGRESS_HPP

// A progress display for the command-line tools (not part of the library): on a terminal, one line
// redrawn in place with a bar, the count, the ETA and a status text; otherwise plain lines at most every
// `plain_every` seconds, so logs stay readable when output goes to a file or CI.

#include <chrono>
#include <cstdio>
#include <string>
#include <unistd.h>

namespace ballast::cli
{
    inline std::string format_duration(double seconds)
    {
        if (!(seconds >= 0) || seconds > 1e7)
        {
            return "--:--";
        }
        const auto s = static_cast<long>(seconds + 0.5);
        char buf[32];
        if (s >= 3600)
        {
            std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
        }
        else
        {
            std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
        }
        return buf;
    }

    class progress
    {
    public:
        progress(std::string label, std::size_t total, double plain_every = 10.0)
          : m_label(std::move(label))
          , m_total(total)
          , m_plain_every(plain_every)
          , m_tty(::isatty(::fileno(stderr)) != 0)
          , m_start(std::chrono::steady_clock::now())
        {
        }

        /// `done` of `total` finished (`done_before` of them before this process started, for the ETA).
        void update(std::size_t done, const std::string& status, std::size_t done_before = 0)
        {
            const double elapsed = seconds();
            const double rate = done > done_before ? static_cast<double>(done - done_before) / elapsed : 0.0;
            const double eta = rate > 0 ? static_cast<double>(m_total - done) / rate : -1.0;
            if (m_tty)
            {
                constexpr int width = 24;
                const int filled = m_total ? static_cast<int>(width * done / m_total) : width;
                std::string bar(static_cast<std::size_t>(filled), '#');
                bar.resize(width, '.');
                std::fprintf(stderr, "\r\033[K%s [%s] %zu/%zu  ETA %s  %s", m_label.c_str(), bar.c_str(),
                             done, m_total, format_duration(eta).c_str(), status.c_str());
                std::fflush(stderr);
            }
            else if (done == m_total || elapsed - m_last_plain >= m_plain_every)
            {
                m_last_plain = elapsed;
                std::fprintf(stderr, "%s %zu/%zu  elapsed %s  ETA %s  %s\n", m_label.c_str(), done, m_total,
                             format_duration(elapsed).c_str(), format_duration(eta).c_str(), status.c_str());
            }
        }

        /// End the in-place line (terminal only).
        void finish()
        {
            if (m_tty)
            {
                std::fprintf(stderr, "\n");
            }
        }

        double seconds() const
        {
            return std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
        }

    private:
        std::string m_label;
        std::size_t m_total;
        double m_plain_every, m_last_plain = -1e9;
        bool m_tty;
        std::chrono::steady_clock::time_point m_start;
    };
} // namespace ballast::cli

#endif
