// Tests for ballast/core/file.hpp: atomic writes replace regular files only (symlinks, directories and
// FIFOs are refused and left intact), failures carry the errno of the call that failed, the stale temp
// files of interrupted writes are cleaned, and append_line appends whole lines.

#include <csignal>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <ballast/core/file.hpp>

#include "support/temp_dir.hpp"

namespace
{
    std::string slurp(const std::filesystem::path& p)
    {
        std::ifstream in(p, std::ios::binary);
        return { std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>() };
    }
    void write(const std::filesystem::path& p, const std::string& s)
    {
        ballast::write_file_atomic(p, std::as_bytes(std::span(s.data(), s.size())));
    }
    /// Exit status of a child process running `f` (0 when it returns true).
    template <class F>
    int in_child(F f)
    {
        const pid_t c = ::fork();
        if (c == 0)
        {
            ::_exit(f() ? 0 : 1);
        }
        int status = 0;
        ::waitpid(c, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
} // namespace

TEST_CASE("write_file_atomic writes and replaces regular files, leaving no temp file", "[core][file]")
{
    ballast::test::temp_dir tmp("file");
    write(tmp / "a.bin", "first");
    write(tmp / "a.bin", "second, longer");
    CHECK(slurp(tmp / "a.bin") == "second, longer");
    CHECK(std::distance(std::filesystem::directory_iterator(tmp.path()), {}) == 1);
    CHECK(ballast::read_file(tmp / "a.bin").size() == 14);
}

TEST_CASE("write_file_atomic replaces a stale temp file that has this process's name", "[core][file]")
{
    // A crashed earlier process with the same pid (common in containers) left the temp name we would use.
    ballast::test::temp_dir tmp("file");
    const unsigned next = ballast::detail::temp_counter().load();
    for (unsigned n = next; n < next + 4; ++n)
    {
        std::string name = ".a.bin.tmp.";
        name.append(std::to_string(::getpid())).append(".").append(std::to_string(n));
        std::ofstream(tmp / name) << "stale";
    }
    for (int n = 0; n < 4; ++n)
    {
        write(tmp / "a.bin", "fresh" + std::to_string(n));
    }
    CHECK(slurp(tmp / "a.bin") == "fresh3");
    CHECK(std::distance(std::filesystem::directory_iterator(tmp.path()), {}) == 1); // all four reused
}

TEST_CASE("write_file_atomic refuses symlinks and non-regular targets", "[core][file][errors]")
{
    ballast::test::temp_dir tmp("file");
    write(tmp / "target", "keep");
    std::filesystem::create_symlink(tmp / "target", tmp / "link");
    CHECK_THROWS_WITH(write(tmp / "link", "x"),
                      Catch::Contains("refusing to replace") && Catch::Contains("is a symbolic link"));
    CHECK(std::filesystem::is_symlink(tmp / "link"));
    CHECK(slurp(tmp / "target") == "keep");
    std::filesystem::create_symlink(tmp / "missing", tmp / "dangling");
    CHECK_THROWS_WITH(write(tmp / "dangling", "x"), Catch::Contains("is a symbolic link"));
    CHECK_FALSE(std::filesystem::exists(tmp / "missing"));

    std::filesystem::create_directory(tmp / "dir");
    CHECK_THROWS_WITH(write(tmp / "dir", "x"), Catch::Contains("is not a regular file"));
    REQUIRE(::mkfifo((tmp / "fifo").c_str(), 0600) == 0);
    CHECK_THROWS_WITH(write(tmp / "fifo", "x"), Catch::Contains("is not a regular file"));
    struct stat st
    {
    };
    REQUIRE(::lstat((tmp / "fifo").c_str(), &st) == 0);
    CHECK(S_ISFIFO(st.st_mode)); // not replaced
    // /dev/null is a character device: never replaced (matters when running as root).
    CHECK_THROWS_WITH(write("/dev/null", "x"), Catch::Contains("is not a regular file"));
    // Only the targets remain, no temp files.
    CHECK(std::distance(std::filesystem::directory_iterator(tmp.path()), {}) == 5);
}

TEST_CASE("write and append failures carry the errno of the call that failed", "[core][file][errors]")
{
    ballast::test::temp_dir tmp("file");
    // A file-size limit makes write(2) fail with EFBIG: the message names write and "File too large".
    const auto limited = [&](auto body)
    {
        return in_child(
          [&]
          {
              std::signal(SIGXFSZ, SIG_IGN);
              const rlimit lim{ 16, 16 };
              ::setrlimit(RLIMIT_FSIZE, &lim);
              try
              {
                  body();
              }
              catch (const ballast::error& e)
              {
                  const std::string m = e.what();
                  return m.find("(write): File too large") != std::string::npos;
              }
              return false;
          });
    };
    CHECK(limited([&] { write(tmp / "big.bin", std::string(100, 'x')); }) == 0);
    CHECK_FALSE(std::filesystem::exists(tmp / "big.bin"));
    CHECK(std::distance(std::filesystem::directory_iterator(tmp.path()), {}) == 0); // temp removed
    CHECK(limited([&] { ballast::append_line(tmp / "m.jsonl", std::string(100, 'x')); }) == 0);
    // A missing directory: the open fails with ENOENT.
    CHECK_THROWS_WITH(write(tmp / "no" / "a.bin", "x"), Catch::Contains("No such file or directory"));
    CHECK_THROWS_WITH(ballast::detail::fsync_directory(tmp / "no", tmp / "no" / "a"),
                      Catch::Contains("cannot open directory") && Catch::Contains("No such file"));
}

TEST_CASE("remove_stale_temp_files removes dead writers' temps only", "[core][file]")
{
    ballast::test::temp_dir tmp("file");
    const pid_t dead = ::fork();
    if (dead == 0)
    {
        ::_exit(0);
    }
    ::waitpid(dead, nullptr, 0);
    const auto touch = [&](const std::string& n) { std::ofstream(tmp / n) << "x"; };
    const std::string d = std::to_string(dead), me = std::to_string(::getpid());
    touch(".ckpt.safetensors.tmp." + d + ".0"); // dead writer: removed
    touch(".results.json.tmp." + d);            // older naming, no counter: removed
    touch(".a.bin.tmp." + me + ".3");           // this process: a write in flight, kept
    touch(".b.bin.tmp.1.0");                    // pid 1 is alive: kept
    touch("a.tmp.5");                           // not ours (no leading dot): kept
    touch(".c.tmp.xyz");                        // not a pid: kept
    touch("weights.safetensors");
    auto removed = ballast::remove_stale_temp_files(tmp.path());
    std::ranges::sort(removed);
    CHECK(removed ==
          std::vector<std::string>{ ".ckpt.safetensors.tmp." + d + ".0", ".results.json.tmp." + d });
    CHECK(std::distance(std::filesystem::directory_iterator(tmp.path()), {}) == 5);
    CHECK(ballast::remove_stale_temp_files(tmp.path()).empty());
    CHECK(ballast::remove_stale_temp_files(tmp / "missing").empty());
}

TEST_CASE("append_line appends whole lines", "[core][file]")
{
    ballast::test::temp_dir tmp("file");
    ballast::append_line(tmp / "m.jsonl", "{\"a\":1}");
    ballast::append_line(tmp / "m.jsonl", "{\"b\":2}", false);
    CHECK(slurp(tmp / "m.jsonl") == "{\"a\":1}\n{\"b\":2}\n");
}
