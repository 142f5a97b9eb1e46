#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/train/tokens.hpp>

#include "support/temp_dir.hpp"

TEST_CASE("token files round-trip and text is tokenised byte by byte", "[train][tokens]")
{
    const ballast::test::temp_dir tmp("tokens");
    const auto& dir = tmp.path();
    const std::vector<std::uint16_t> tokens = { 0, 1, 255, 256, 65535, 7 };
    ballast::write_token_file(dir / "t.bin", tokens);
    const ballast::token_file f(dir / "t.bin");
    CHECK(std::ranges::equal(f.tokens(), tokens));
    CHECK(std::filesystem::file_size(dir / "t.bin") == 1024 + 2 * tokens.size()); // llm.c layout
    CHECK(ballast::load_tokens(dir / "t.bin") == tokens);

    std::ofstream(dir / "t.txt") << "h\xc3\xa9!"; // UTF-8 é is two bytes
    CHECK(ballast::load_tokens(dir / "t.txt") == std::vector<std::uint16_t>{ 'h', 0xc3, 0xa9, '!' });
}

TEST_CASE("corrupt or truncated token files are refused with a clear message", "[train][tokens][errors]")
{
    const ballast::test::temp_dir tmp("tokens");
    const auto& dir = tmp.path();
    const std::vector<std::uint16_t> tokens(100, 3);
    ballast::write_token_file(dir / "t.bin", tokens);
    std::filesystem::resize_file(dir / "t.bin", 1024 + 150);
    CHECK_THROWS_WITH(ballast::token_file(dir / "t.bin"), Catch::Contains("truncated or corrupt"));
    std::filesystem::resize_file(dir / "t.bin", 100);
    CHECK_THROWS_WITH(ballast::token_file(dir / "t.bin"),
                      Catch::Contains("shorter than the 1024-byte header"));
    std::ofstream(dir / "bad.bin") << std::string(2000, 'x');
    CHECK_THROWS_WITH(ballast::token_file(dir / "bad.bin"), Catch::Contains("not a token file"));
    CHECK_THROWS_WITH(ballast::token_file(dir / "missing.bin"), Catch::Contains("cannot open"));
}

TEST_CASE("a binary file with a slightly wrong token-file header is refused, not read as text",
          "[train][tokens][errors]")
{
    const ballast::test::temp_dir tmp("tokens");
    const std::vector<std::uint16_t> tokens(10, 42);
    ballast::write_token_file(tmp / "good.bin", tokens);
    const auto good = ballast::read_file(tmp / "good.bin");
    // Patch one int32 header word of a copy of the good file and load it.
    const auto patched = [&](std::size_t word, std::uint32_t value)
    {
        auto b = good;
        std::memcpy(b.data() + 4 * word, &value, 4);
        static int n = 0;
        const auto p = tmp.path() / (std::to_string(n++) + ".bin");
        std::ofstream(p, std::ios::binary)
          .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
        return p;
    };
    CHECK(ballast::load_tokens(tmp / "good.bin") == tokens);
    // A magic one bit off: refused as a damaged header (it used to be tokenised as text).
    CHECK_THROWS_WITH(ballast::load_tokens(patched(0, 20240520u ^ 1u)),
                      Catch::Contains("has magic 20240521") && Catch::Contains("damaged header"));
    CHECK_THROWS_WITH(ballast::load_tokens(patched(0, 0)), Catch::Contains("has magic 0"));
    CHECK_THROWS_WITH(ballast::load_tokens(patched(0, __builtin_bswap32(20240520u))),
                      Catch::Contains("byte-swapped magic"));
    CHECK_THROWS_WITH(ballast::load_tokens(patched(1, 2)), Catch::Contains("has version 2, expected 1"));
    CHECK_THROWS_WITH(ballast::load_tokens(patched(2, 11)), Catch::Contains("declares 11 tokens"));
    CHECK_THROWS_WITH(ballast::load_tokens(patched(2, 0x80000000u)), Catch::Contains("negative token count"));
    CHECK_THROWS_WITH(ballast::load_tokens(patched(200, 7)),
                      Catch::Contains("non-zero reserved header word 200"));
    CHECK_THROWS_WITH(ballast::token_file(patched(3, 1)), Catch::Contains("non-zero reserved header word 3"));
    // Short binary files (a NUL in the first 1024 bytes) are refused too; text without NUL is text.
    std::ofstream(tmp / "short.bin", std::ios::binary) << std::string("\xd8\xd2\x34\x01\x01\x00\x00\x00", 8);
    CHECK_THROWS_WITH(ballast::load_tokens(tmp / "short.bin"),
                      Catch::Contains("shorter than the 1024-byte header"));
    std::ofstream(tmp / "nul.txt", std::ios::binary) << std::string("text\0more", 9);
    CHECK_THROWS_WITH(ballast::load_tokens(tmp / "nul.txt"),
                      Catch::Contains("shorter than the 1024-byte header"));
    std::ofstream(tmp / "plain.txt", std::ios::binary) << std::string(3000, 'a');
    CHECK(ballast::load_tokens(tmp / "plain.txt") == std::vector<std::uint16_t>(3000, 'a'));
    // In-memory entry point agrees with the file one.
    CHECK(ballast::tokens_of_bytes(good, "mem") == tokens);
    CHECK(ballast::looks_binary(good));
    CHECK_FALSE(ballast::looks_binary(std::as_bytes(std::span("abc", 3))));
}
