// Stop requests from signals: an enabled scope records SIGINT/SIGTERM instead of dying, reports it, and
// restores the previous handlers; a second signal ends the process at once; a disabled scope installs
// nothing and reports nothing.
#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <ballast/core/signals.hpp>

namespace
{
    volatile std::sig_atomic_t g_seen = 0;
    extern "C" void test_handler(int sig)
    {
        g_seen = sig;
    }
} // namespace

TEST_CASE("a raised SIGINT or SIGTERM sets the stop request of an enabled scope", "[core][signals]")
{
    for (const int sig : { SIGINT, SIGTERM })
    {
        ballast::stop_signal_scope scope(true);
        CHECK(scope.enabled());
        CHECK(scope.pending() == 0);
        CHECK_FALSE(scope.stop_requested());
        std::raise(sig); // would end the process without the scope's handler
        CHECK(scope.pending() == sig);
        CHECK(scope.stop_requested());
    }
}

TEST_CASE("a scope restores the previous handlers and a new scope starts without a request",
          "[core][signals]")
{
    g_seen = 0;
    const auto old_int = std::signal(SIGINT, test_handler);
    const auto old_term = std::signal(SIGTERM, test_handler);
    {
        ballast::stop_signal_scope scope(true);
        std::raise(SIGTERM);
        CHECK(scope.pending() == SIGTERM);
        CHECK(g_seen == 0); // the scope's handler ran, not the previous one
    }
    {
        ballast::stop_signal_scope fresh(true);
        CHECK(fresh.pending() == 0); // the earlier signal is not carried over
    }
    // The previous handlers are back: a raise reaches them.
    std::raise(SIGINT);
    CHECK(g_seen == SIGINT);
    CHECK(std::signal(SIGINT, old_int) == test_handler);
    CHECK(std::signal(SIGTERM, old_term) == test_handler);
}

TEST_CASE("a disabled scope installs nothing and never reports a signal", "[core][signals]")
{
    const auto old_int = std::signal(SIGINT, test_handler);
    g_seen = 0;
    {
        ballast::stop_signal_scope enabled(true);
        ballast::stop_signal_scope disabled(false);
        CHECK_FALSE(disabled.enabled());
        std::raise(SIGINT);
        CHECK(enabled.pending() == SIGINT); // the enabled scope's handler is still the one installed
        CHECK(disabled.pending() == 0);
        CHECK_FALSE(disabled.stop_requested());
    }
    CHECK(g_seen == 0);
    CHECK(std::signal(SIGINT, old_int) == test_handler);
}

TEST_CASE("a second signal while the first is pending ends the process with that signal", "[core][signals]")
{
    for (const int sig : { SIGINT, SIGTERM })
    {
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0)
        {
            ::close(fds[0]);
            ballast::stop_signal_scope scope(true);
            std::raise(sig);
            const char first = scope.pending() == sig ? 'y' : 'n';
            [[maybe_unused]] const auto w1 = ::write(fds[1], &first, 1); // the first one was only recorded
            std::raise(sig);                                             // the second one ends the process
            [[maybe_unused]] const auto w2 = ::write(fds[1], "z", 1);    // not reached
            ::_exit(0);
        }
        ::close(fds[1]);
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        char buf[4] = {};
        const auto n = ::read(fds[0], buf, sizeof buf);
        ::close(fds[0]);
        CHECK(n == 1);
        CHECK(buf[0] == 'y');
        REQUIRE(WIFSIGNALED(status));
        CHECK(WTERMSIG(status) == sig);
    }
}
