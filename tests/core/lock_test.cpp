// Tests for ballast::directory_lock: one holder at a time across descriptors and processes, the holder's
// pid in the message, release on destruction, and no stale lock after the holder dies.

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <ballast/core/lock.hpp>

#include "support/temp_dir.hpp"

namespace
{
    /// In a child process, try to lock `dir`; exit 0 if refused naming `pid`, 1 if it got the lock, 3 if
    /// refused with another message.
    int child_tries_lock(const std::filesystem::path& dir, pid_t holder)
    {
        const pid_t c = ::fork();
        if (c == 0)
        {
            int code = 1;
            try
            {
                ballast::directory_lock l(dir);
            }
            catch (const ballast::error& e)
            {
                const std::string m = e.what();
                code = m.find("is in use by pid " + std::to_string(holder)) != std::string::npos ? 0 : 3;
            }
            ::_exit(code);
        }
        int status = 0;
        ::waitpid(c, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
} // namespace

TEST_CASE("directory_lock refuses a second holder and releases on destruction", "[core][lock]")
{
    ballast::test::temp_dir tmp("lock");
    const auto dir = tmp / "out"; // created by the lock
    {
        ballast::directory_lock a(dir);
        CHECK(a.held());
        std::ifstream in(dir / ".lock");
        std::string pid;
        in >> pid;
        CHECK(pid == std::to_string(::getpid()));
        // A second descriptor in this process is refused too (flock is per open file description).
        CHECK_THROWS_WITH(ballast::directory_lock(dir),
                          Catch::Contains("is in use by pid " + std::to_string(::getpid())));
        // And another process.
        CHECK(child_tries_lock(dir, ::getpid()) == 0);
    }
    // Released: another process gets it (exit 1 = locked successfully), then we do.
    CHECK(child_tries_lock(dir, ::getpid()) == 1);
    ballast::directory_lock b(dir);
    CHECK(b.held());
    b.release();
    CHECK_FALSE(b.held());
    ballast::directory_lock c(dir); // released explicitly
    ballast::directory_lock moved(std::move(c));
    CHECK(moved.held());
    CHECK_FALSE(c.held()); // NOLINT: moved-from state is specified
}

TEST_CASE("a lock held by a killed process is free again", "[core][lock]")
{
    ballast::test::temp_dir tmp("lock");
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    const pid_t holder = ::fork();
    if (holder == 0)
    {
        ballast::directory_lock l(tmp.path());
        char x = 1;
        [[maybe_unused]] auto w = ::write(ready[1], &x, 1);
        ::pause(); // hold until killed
        ::_exit(0);
    }
    char x = 0;
    REQUIRE(::read(ready[0], &x, 1) == 1);
    CHECK_THROWS_WITH(ballast::directory_lock(tmp.path()),
                      Catch::Contains("in use by pid " + std::to_string(holder)));
    ::kill(holder, SIGKILL);
    int status = 0;
    ::waitpid(holder, &status, 0);
    ::close(ready[0]);
    ::close(ready[1]);
    CHECK_NOTHROW(ballast::directory_lock(tmp.path()));
}

TEST_CASE("directory_lock refuses a symlinked lock file", "[core][lock]")
{
    ballast::test::temp_dir tmp("lock");
    std::filesystem::create_symlink(tmp / "elsewhere", tmp / ".lock");
    CHECK_THROWS_WITH(ballast::directory_lock(tmp.path()), Catch::Contains("cannot open"));
    CHECK_FALSE(std::filesystem::exists(tmp / "elsewhere"));
}

TEST_CASE("shared holders coexist with each other and exclude an exclusive one", "[core][lock]")
{
    using ballast::directory_lock;
    using ballast::lock_mode;
    ballast::test::temp_dir tmp("lock");
    {
        directory_lock a(tmp.path(), lock_mode::shared);
        directory_lock b(tmp.path(), lock_mode::shared); // a second shard
        CHECK(a.held());
        CHECK(b.held());
        // No pid is named (several holders), and the exclusive taker says why it is refused.
        CHECK_THROWS_WITH(directory_lock(tmp.path()), Catch::Contains("is in use by another process"));
        // Locks of other names are independent: a shard's own lock file.
        directory_lock own(tmp.path(), lock_mode::exclusive, ".lock.0-of-2");
        CHECK(own.path() == tmp / ".lock.0-of-2");
        CHECK_THROWS_WITH(directory_lock(tmp.path(), lock_mode::exclusive, ".lock.0-of-2"),
                          Catch::Contains("is in use by pid " + std::to_string(::getpid())));
        CHECK_NOTHROW(directory_lock(tmp.path(), lock_mode::exclusive, ".lock.1-of-2"));
    }
    {
        // An exclusive holder refuses shared takers, naming its pid.
        directory_lock x(tmp.path());
        CHECK_THROWS_WITH(directory_lock(tmp.path(), lock_mode::shared),
                          Catch::Contains("is in use by pid " + std::to_string(::getpid())));
    }
    CHECK_NOTHROW(directory_lock(tmp.path(), lock_mode::shared)); // released
}
