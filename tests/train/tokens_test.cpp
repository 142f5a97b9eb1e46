#include <cstdint>
#include <filesystem>
#include <fstream>
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
