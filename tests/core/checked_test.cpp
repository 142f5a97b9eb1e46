// Tests for ballast/core/checked.hpp: overflow-checked products and sums against a 128-bit reference,
// range-checked narrowing, and strict unsigned parsing (no sign, no blanks, no overflow).

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include <catch2/catch.hpp>

#include <ballast/core/checked.hpp>

namespace
{
    __extension__ typedef unsigned __int128 u128; // the independent reference: exact 128-bit arithmetic
} // namespace

TEST_CASE("checked_mul and checked_add agree with 128-bit arithmetic and refuse overflow", "[core][checked]")
{
    constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
    const std::uint64_t values[] = {
        0,          1,       2,  3, 255, 65536, 4294967295ULL, 4294967296ULL, 1ULL << 62, (1ULL << 63) - 1,
        1ULL << 63, max - 1, max
    };
    for (const auto a : values)
    {
        for (const auto b : values)
        {
            const u128 p = static_cast<u128>(a) * b;
            const u128 s = static_cast<u128>(a) + b;
            if (p <= max)
            {
                CHECK(ballast::checked_mul(a, b, "t") == static_cast<std::uint64_t>(p));
            }
            else
            {
                CHECK_THROWS_WITH(ballast::checked_mul(a, b, "t", "batch * seq"),
                                  "ballast: t: batch * seq overflows (" + std::to_string(a) + " * " +
                                    std::to_string(b) + ")");
            }
            if (s <= max)
            {
                CHECK(ballast::checked_add(a, b, "t") == static_cast<std::uint64_t>(s));
            }
            else
            {
                CHECK_THROWS_WITH(ballast::checked_add(a, b, "t"), Catch::Contains("size overflows"));
            }
        }
    }
    // 32-bit: the width of the type decides.
    CHECK(ballast::checked_mul<std::uint32_t>(65535u, 65537u, "t") == 4294967295u);
    CHECK_THROWS(ballast::checked_mul<std::uint32_t>(65536u, 65536u, "t"));
}

TEST_CASE("checked_product multiplies a list and names what overflowed", "[core][checked]")
{
    CHECK(ballast::checked_product<std::size_t>({}, "t") == 1);
    CHECK(ballast::checked_product<std::size_t>({ 4, 1024, 768 }, "t") == 4u * 1024u * 768u);
    CHECK_THROWS_WITH(
      ballast::checked_product<std::size_t>({ 1ULL << 32, 1ULL << 16, 1ULL << 16 }, "model", "activations"),
      Catch::StartsWith("ballast: model: activations overflows"));
}

TEST_CASE("checked_narrow keeps representable values and refuses the rest", "[core][checked]")
{
    CHECK(ballast::checked_narrow<int>(std::int64_t{ -7 }, "t", "x") == -7);
    CHECK(ballast::checked_narrow<std::size_t>(std::int64_t{ 12 }, "t", "x") == 12u);
    CHECK_THROWS_WITH(ballast::checked_narrow<std::size_t>(std::int64_t{ -5 }, "config", "steps"),
                      "ballast: config: steps = -5 is out of range [0, 18446744073709551615]");
    CHECK_THROWS_WITH(ballast::checked_narrow<int>(std::int64_t{ 1 } << 40, "config", "jobs"),
                      Catch::Contains("out of range [-2147483648, 2147483647]"));
    CHECK_THROWS(ballast::checked_narrow<std::uint8_t>(256, "t", "x"));
}

TEST_CASE("parse_unsigned accepts digits only", "[core][checked]")
{
    CHECK(ballast::parse_unsigned("0", "t", "n") == 0u);
    CHECK(ballast::parse_unsigned("007", "t", "n") == 7u);
    CHECK(ballast::parse_unsigned("18446744073709551615", "t", "n") ==
          std::numeric_limits<std::size_t>::max());
    CHECK(ballast::parse_unsigned<std::uint32_t>("4294967295", "t", "n") == 4294967295u);
    for (const char* bad : { "", "-5", "+5", " 5", "5 ", "0x10", "5k", "1e3", "1.0", "\xd9\xa3" })
    {
        CAPTURE(bad);
        CHECK_THROWS_WITH(ballast::parse_unsigned(bad, "cli", "--steps"),
                          "ballast: cli: --steps '" + std::string(bad) +
                            "' is not an unsigned integer (digits only)");
    }
    CHECK_THROWS_WITH(ballast::parse_unsigned("18446744073709551616", "cli", "--steps"),
                      Catch::Contains("is too large (at most 18446744073709551615)"));
    CHECK_THROWS_WITH(ballast::parse_unsigned<std::uint32_t>("4294967296", "cli", "n"),
                      Catch::Contains("too large"));
    CHECK_THROWS_WITH(ballast::parse_unsigned<std::size_t>("101", "cli", "n", 100),
                      Catch::Contains("at most 100"));
}
