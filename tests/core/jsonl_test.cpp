// Tests for ballast::read_jsonl: whole lines parse, a torn last line is dropped, corruption elsewhere is an
// error naming the line.

#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include <ballast/core/jsonl.hpp>

#include "support/temp_dir.hpp"

namespace
{
    void write_text(const std::filesystem::path& p, const std::string& text)
    {
        std::ofstream(p, std::ios::binary) << text;
    }
} // namespace

TEST_CASE("read_jsonl reads every object line and skips blank lines", "[core][jsonl]")
{
    ballast::test::temp_dir dir("jsonl");
    write_text(dir / "a.jsonl", "{\"a\":1}\n\n{\"b\":[1,2]}\n");
    const auto lines = ballast::read_jsonl(dir / "a.jsonl");
    REQUIRE(lines.size() == 2);
    CHECK(lines[0]["a"] == 1);
    CHECK(lines[1]["b"][1] == 2);
    // The last line needs no '\n' when it is whole.
    write_text(dir / "b.jsonl", "{\"a\":1}\n{\"b\":2}");
    CHECK(ballast::read_jsonl(dir / "b.jsonl").size() == 2);
}

TEST_CASE("read_jsonl drops a torn last line and refuses corruption elsewhere", "[core][jsonl]")
{
    ballast::test::temp_dir dir("jsonl");
    write_text(dir / "torn.jsonl", "{\"a\":1}\n{\"b\":2}\n{\"c\":[1,");
    const auto lines = ballast::read_jsonl(dir / "torn.jsonl");
    REQUIRE(lines.size() == 2);
    CHECK(lines[1]["b"] == 2);

    write_text(dir / "mid.jsonl", "{\"a\":1}\n{\"b\":2\n{\"c\":3}\n");
    CHECK_THROWS_WITH(ballast::read_jsonl(dir / "mid.jsonl"),
                      Catch::Contains("line 2") && Catch::Contains("not a JSON object"));
    // A terminated last line is whole: if it does not parse, the file is corrupt.
    write_text(dir / "end.jsonl", "{\"a\":1}\ngarbage\n");
    CHECK_THROWS_WITH(ballast::read_jsonl(dir / "end.jsonl"), Catch::Contains("line 2"));
    // Valid JSON that is not an object is corruption too.
    write_text(dir / "arr.jsonl", "[1,2]\n{\"a\":1}\n");
    CHECK_THROWS_WITH(ballast::read_jsonl(dir / "arr.jsonl"), Catch::Contains("line 1"));
}

TEST_CASE("read_jsonl on a missing file", "[core][jsonl]")
{
    ballast::test::temp_dir dir("jsonl");
    CHECK(ballast::read_jsonl(dir / "none.jsonl").empty());
    CHECK_THROWS_WITH(ballast::read_jsonl(dir / "none.jsonl", false), Catch::Contains("cannot open"));
}

TEST_CASE("parse_jsonl reads text with the file rules and names its origin", "[core][jsonl]")
{
    const auto lines = ballast::parse_jsonl("{\"a\":1}\n\n{\"b\":2}\n{\"c\":", "mem.jsonl");
    REQUIRE(lines.size() == 2); // the torn last line is dropped
    CHECK(lines[1]["b"] == 2);
    CHECK(ballast::parse_jsonl("", "mem.jsonl").empty());
    CHECK_THROWS_WITH(ballast::parse_jsonl("{\"a\":1}\n[1,2]\n", "mem.jsonl"),
                      "ballast: read_jsonl: 'mem.jsonl' line 2 is not a JSON object (corrupt file?)");
}

TEST_CASE("string_field never throws a type error for a field of another type", "[core][jsonl]")
{
    const auto j = nlohmann::json::parse(R"({"type":3,"name":"x"})");
    CHECK_THROWS_AS(j.value("type", std::string()), nlohmann::json::type_error); // the trap it avoids
    CHECK(ballast::string_field(j, "type").empty());
    CHECK(ballast::string_field(j, "type", "?") == "?");
    CHECK(ballast::string_field(j, "name") == "x");
    CHECK(ballast::string_field(j, "missing").empty());
}

TEST_CASE("typed_field reads a field of the expected kind and names a wrongly typed one", "[core][jsonl]")
{
    const auto j = nlohmann::json::parse(R"({"n": 7, "neg": -3, "x": 1.5, "s": "a", "b": true, "o": {"k": 1}})");
    CHECK(ballast::typed_field<std::size_t>(j, "n", 0, "w") == 7);
    CHECK(ballast::typed_field<std::size_t>(j, "absent", 42, "w") == 42);
    CHECK(ballast::typed_field<long>(j, "neg", 0, "w") == -3);
    CHECK(ballast::typed_field<double>(j, "x", 0.0, "w") == 1.5);
    CHECK(ballast::typed_field<double>(j, "n", 0.0, "w") == 7.0); // an integer is a number
    CHECK(ballast::typed_field<std::string>(j, "s", "", "w") == "a");
    CHECK(ballast::typed_field<bool>(j, "b", false, "w"));
    CHECK(ballast::typed_field<nlohmann::json>(j, "o", nullptr, "w")["k"] == 1);
    CHECK_THROWS_WITH(ballast::typed_field<std::size_t>(j, "s", 0, "run line"),
                      "ballast: run line: field 's' is string, expected an unsigned integer");
    CHECK_THROWS_WITH(ballast::typed_field<std::size_t>(j, "neg", 0, "w"),
                      Catch::Contains("field 'neg' is number, expected an unsigned integer"));
    CHECK_THROWS_WITH(ballast::typed_field<bool>(j, "n", false, "w"), Catch::Contains("expected a boolean"));
    CHECK_THROWS_WITH(ballast::typed_field<std::string>(j, "o", "", "w"),
                      Catch::Contains("field 'o' is object, expected a string"));
    // Not an object (a JSON line "[1,2]" or "5"): the fallback, as for a missing field.
    CHECK(ballast::typed_field<std::size_t>(nlohmann::json::array({ 1, 2 }), "n", 9, "w") == 9);
    CHECK(ballast::typed_field<std::size_t>(nlohmann::json(5), "n", 9, "w") == 9);
}
