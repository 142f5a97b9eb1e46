// Tests for ballast/core/memory.hpp: MemAvailable parsing from /proc/meminfo text, byte formatting, and
// the fits check's message.

#include <cstdint>
#include <optional>

#include <catch2/catch.hpp>

#include <ballast/core/memory.hpp>

TEST_CASE("MemAvailable is parsed from meminfo text in KiB", "[core][memory]")
{
    const char* text = "MemTotal:       32768000 kB\nMemFree:         1000 kB\nMemAvailable:   24011984 kB\n";
    CHECK(ballast::detail::parse_meminfo_available(text) == std::optional<std::uint64_t>(24011984ULL * 1024));
    CHECK(ballast::detail::parse_meminfo_available("MemTotal: 5 kB\n") == std::nullopt);
    CHECK(ballast::detail::parse_meminfo_available("MemAvailable: kB\n") == std::nullopt);
    CHECK(ballast::detail::parse_meminfo_available("MemAvailable: 99999999999999999999999 kB\n") ==
          std::nullopt);
}

TEST_CASE("available_memory_bytes reads this machine's meminfo", "[core][memory]")
{
    const auto avail = ballast::available_memory_bytes();
    REQUIRE(avail.has_value()); // the tests run on Linux with /proc
    CHECK(*avail > 0);
}

TEST_CASE("format_bytes and check_fits give the documented message", "[core][memory]")
{
    CHECK(ballast::format_bytes(512) == "512 bytes");
    CHECK(ballast::format_bytes(1536) == "1.5 KiB");
    CHECK(ballast::format_bytes(3ULL << 20) == "3.0 MiB");
    const auto gib = [](double g) { return static_cast<std::uint64_t>(g * double(1ULL << 30)); };
    CHECK(ballast::format_bytes(gib(31.2)) == "31.2 GiB");
    CHECK_THROWS_WITH(ballast::check_fits(gib(31.2), "the model", gib(22.9)),
                      "ballast: memory: the model needs 31.2 GiB, 22.9 GiB available");
    CHECK_NOTHROW(ballast::check_fits(gib(1), "the model", gib(22.9)));
    CHECK_NOTHROW(ballast::check_fits(gib(22.9), "the model", gib(22.9))); // exactly fits
    CHECK_NOTHROW(ballast::check_fits(~0ULL, "the model", std::nullopt));  // unknown: never refuse
    // Against the real machine: more than 2^63 bytes never fits.
    CHECK_THROWS_WITH(ballast::check_fits(1ULL << 63, "x"), Catch::Contains("available"));
}
