#ifndef BALLAST_CORE_SIGNALS_HPP
#define BALLAST_CORE_SIGNALS_HPP

/// @file
/// Stop requests from SIGINT/SIGTERM, usable by any layer.
///
/// A `stop_signal_scope` installs handlers for SIGINT and SIGTERM that only record the signal (a store to
/// a lock-free `std::atomic<int>`, which is both async-signal-safe and free of data races between the
/// threads that read it: a `volatile sig_atomic_t` is only the former); the code that owns the scope polls `pending()` at safe
/// points (the trainer after each step and between validation batches, the study between runs) and stops
/// cleanly. The destructor restores the handlers that were installed before, so a later scope, or none,
/// sees the process as it was.
///
/// A second signal while the first is still pending is not recorded: the handler restores the default
/// action and re-raises it, so a second Ctrl-C ends the process at once (exit status 128 + signal, as if
/// no handler were installed). Nothing finished is lost by that: every file ballast writes is replaced
/// atomically or appended line by line (a torn last line is dropped on the next start), so the state on
/// disk is that of the last checkpoint or finished run.
///
///   ballast::stop_signal_scope signals(true);
///   while (work_left() && !signals.pending()) { do_some_work(); }
///
/// One scope at a time should be enabled: a nested enabled scope resets the recorded signal. A disabled
/// scope (`stop_signal_scope(false)`) installs nothing and never reports a signal, which is how a run
/// inside a study leaves signal handling to the study.

#include <atomic>
#include <csignal>

namespace ballast
{
    namespace detail
    {
        inline std::atomic<int> g_stop_signal{ 0 };
        static_assert(std::atomic<int>::is_always_lock_free,
                      "a signal handler may only use lock-free atomics");

        /// Record the first signal; on a second one, act as if no handler were installed. Only
        /// async-signal-safe calls (signal, raise).
        extern "C" inline void ballast_on_stop_signal(int sig)
        {
            int none = 0;
            if (!g_stop_signal.compare_exchange_strong(none, sig))
            {
                std::signal(sig, SIG_DFL); // a second signal: act as if no handler were installed
                std::raise(sig);
            }
        }
    } // namespace detail

    /// Installs SIGINT/SIGTERM handlers that only record the signal; restores the previous ones on exit.
    class stop_signal_scope
    {
    public:
        /// `enable` false: install nothing, `pending()` is always 0.
        explicit stop_signal_scope(bool enable)
          : m_enabled(enable)
        {
            if (m_enabled)
            {
                detail::g_stop_signal.store(0);
                m_int = std::signal(SIGINT, detail::ballast_on_stop_signal);
                m_term = std::signal(SIGTERM, detail::ballast_on_stop_signal);
            }
        }
        ~stop_signal_scope()
        {
            if (m_enabled)
            {
                std::signal(SIGINT, m_int);
                std::signal(SIGTERM, m_term);
            }
        }
        stop_signal_scope(const stop_signal_scope&) = delete;
        stop_signal_scope& operator=(const stop_signal_scope&) = delete;

        /// Does this scope handle the signals?
        bool enabled() const noexcept { return m_enabled; }
        /// The signal received since this scope began (SIGINT or SIGTERM; 0: none, or signals not handled).
        int pending() const noexcept { return m_enabled ? detail::g_stop_signal.load() : 0; }
        /// True once a stop was requested.
        bool stop_requested() const noexcept { return pending() != 0; }

    private:
        bool m_enabled;
        void (*m_int)(int) = SIG_DFL;
        void (*m_term)(int) = SIG_DFL;
    };
} // namespace ballast

#endif
