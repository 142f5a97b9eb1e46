#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/io/safetensors.hpp>

#include "support/temp_dir.hpp"

namespace
{
    const std::filesystem::path fixture =
      std::filesystem::path(BALLAST_SOURCE_DIR) / "tests/fixtures/io/sample.safetensors";

    std::vector<std::byte> sample_bytes()
    {
        ballast::io::safetensors_writer w;
        const float a[] = { 1.5f, -2.0f, 3.25f, 0.0f };
        const double b[] = { 0.1, 0.2, 0.3 };
        w.add("a", { 2, 2 }, a);
        w.add("b", { 3 }, b);
        return w.serialize();
    }

    std::vector<std::byte> with_header(const std::string& json, std::size_t data_bytes)
    {
        std::vector<std::byte> out(8 + json.size() + data_bytes);
        const std::uint64_t n = json.size();
        std::memcpy(out.data(), &n, 8);
        std::memcpy(out.data() + 8, json.data(), json.size());
        return out;
    }
} // namespace

TEST_CASE("safetensors reads a file written independently by the Python fixture script", "[io][safetensors]")
{
    const auto f = ballast::io::safetensors_file::load(fixture);
    CHECK(f.tensors().size() == 3);
    CHECK(f.metadata().at("format") == "pt");

    std::vector<float> a(6);
    const std::size_t a_shape[] = { 2, 3 };
    f.read<float>("a", a_shape, a.data());
    for (std::size_t i = 0; i < 6; ++i)
    {
        CHECK(a[i] == 0.25f * static_cast<float>(i) - 0.5f); // exact in binary
    }
    std::vector<double> b(4);
    const std::size_t b_shape[] = { 4 };
    f.read<double>("b", b_shape, b.data());
    for (std::size_t i = 0; i < 4; ++i)
    {
        CHECK(b[i] == static_cast<double>(i) / 3.0); // Python wrote the same IEEE double
    }
    std::vector<std::uint16_t> tokens(5);
    const std::size_t t_shape[] = { 5 };
    f.read<std::uint16_t>("tokens", t_shape, tokens.data());
    for (std::size_t i = 0; i < 5; ++i)
    {
        CHECK(tokens[i] == 1000 * i + 7);
    }
}

TEST_CASE("safetensors round-trips tensors, shapes and metadata, converting F32 and F64", "[io][safetensors]")
{
    ballast::io::safetensors_writer w;
    const float a[] = { 1.5f, -2.0f, 3.25f, 1e-30f, -0.0f, 7.0f };
    const double d[] = { 0.1, -1e300 };
    w.add("layer.0.w", { 2, 3 }, a);
    w.add("d", { 2 }, d);
    w.add("empty", { 0, 4 }, static_cast<const float*>(nullptr));
    w.set_metadata("policy_set", "paper_default");
    const ballast::io::safetensors_file f(w.serialize());
    CHECK(f.metadata().at("policy_set") == "paper_default");

    std::vector<float> a2(6);
    const std::size_t a_shape[] = { 2, 3 };
    f.read<float>("layer.0.w", a_shape, a2.data());
    CHECK(std::memcmp(a, a2.data(), sizeof(a)) == 0);

    std::vector<double> a3(6); // F32 read as double: exact widening
    f.read<double>("layer.0.w", a_shape, a3.data());
    for (std::size_t i = 0; i < 6; ++i)
    {
        CHECK(a3[i] == static_cast<double>(a[i]));
    }
    std::vector<float> d2(2); // F64 read as float: rounding conversion
    const std::size_t d_shape[] = { 2 };
    f.read<float>("d", d_shape, d2.data());
    CHECK(d2[0] == 0.1f);
    CHECK(d2[1] == static_cast<float>(-1e300)); // -inf, as a C++ conversion gives
    CHECK(f.info("empty").numel() == 0);

    const std::string names[] = { "layer.0.w", "d", "empty" };
    CHECK_NOTHROW(f.require_exactly(names));
}

TEST_CASE("safetensors refuses bad files with a clear message", "[io][safetensors][errors]")
{
    using ballast::io::safetensors_file;
    const auto good = sample_bytes();

    SECTION("too short for the length prefix")
    {
        CHECK_THROWS_WITH(safetensors_file(std::vector<std::byte>(good.begin(), good.begin() + 5)),
                          Catch::Contains("too short"));
    }
    SECTION("truncated data")
    {
        CHECK_THROWS_WITH(safetensors_file(std::vector<std::byte>(good.begin(), good.end() - 1)),
                          Catch::Contains("truncated"));
    }
    SECTION("trailing garbage")
    {
        auto bytes = good;
        bytes.push_back(std::byte{ 0 });
        CHECK_THROWS_WITH(safetensors_file(bytes), Catch::Contains("data buffer holds"));
    }
    SECTION("header length beyond the file")
    {
        auto bytes = good;
        const std::uint64_t huge = 1u << 30;
        std::memcpy(bytes.data(), &huge, 8);
        CHECK_THROWS_WITH(safetensors_file(bytes), Catch::Contains("exceeds the file size"));
    }
    SECTION("invalid JSON")
    {
        CHECK_THROWS_WITH(safetensors_file(with_header("{not json", 0)), Catch::Contains("not valid JSON"));
    }
    SECTION("unsupported dtype")
    {
        CHECK_THROWS_WITH(
          safetensors_file(with_header(R"({"x":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})", 8)),
          Catch::Contains("unsupported dtype 'C64'"));
    }
    SECTION("offsets that do not match the shape")
    {
        CHECK_THROWS_WITH(
          safetensors_file(with_header(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
          Catch::Contains("do not hold shape [3]"));
    }
    SECTION("a shape whose element count wraps size_t")
    {
        // 2^62 x 4 F32 elements is 2^66 bytes; wrapped, it is 0 and used to match an empty [0, 0] range.
        CHECK_THROWS_WITH(
          safetensors_file(
            with_header(R"({"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}})", 0)),
          Catch::Contains("overflows the address space"));
        // 2^32 x 2^32 x 1 U8 wraps to 0 as well.
        CHECK_THROWS_WITH(
          safetensors_file(
            with_header(R"({"x":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0)),
          Catch::Contains("overflows the address space"));
        // A zero dimension is an honest empty tensor.
        CHECK(
          safetensors_file(
            with_header(R"({"x":{"dtype":"F32","shape":[4611686018427387904,0],"data_offsets":[0,0]}})", 0))
            .tensors()
            .size() == 1);
    }
    SECTION("overlapping tensors")
    {
        CHECK_THROWS_WITH(safetensors_file(with_header(
                            R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                                  "y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                            8)),
                          Catch::Contains("overlapping"));
    }
    SECTION("missing file")
    {
        CHECK_THROWS_WITH(safetensors_file::load("/nonexistent/ballast.safetensors"),
                          Catch::Contains("cannot open"));
    }
    SECTION("wrong shape, wrong dtype, missing and extra tensors on read")
    {
        const safetensors_file f(good);
        std::vector<float> buf(8);
        const std::size_t wrong[] = { 4 };
        CHECK_THROWS_WITH(f.read<float>("a", wrong, buf.data()),
                          Catch::Contains("has shape [2, 2], expected [4]"));
        std::vector<std::int32_t> ibuf(4);
        const std::size_t a_shape[] = { 2, 2 };
        CHECK_THROWS_WITH(f.read<std::int32_t>("a", a_shape, ibuf.data()),
                          Catch::Contains("cannot read it as I32"));
        CHECK_THROWS_WITH(f.info("zzz"), Catch::Contains("no tensor named 'zzz'"));
        const std::string expected[] = { "a", "c" };
        CHECK_THROWS_WITH(f.require_exactly(expected),
                          Catch::Contains("missing tensors: c") && Catch::Contains("unexpected tensors: b"));
    }
}

TEST_CASE("safetensors_writer rejects duplicate names", "[io][safetensors][errors]")
{
    ballast::io::safetensors_writer w;
    const float x = 1;
    w.add("x", { 1 }, &x);
    CHECK_THROWS_WITH(w.add("x", { 1 }, &x), Catch::Contains("duplicate tensor name 'x'"));
    CHECK_THROWS_WITH(w.add("y", { 1ULL << 62, 4 }, &x), Catch::Contains("tensor size overflows"));
}

TEST_CASE("safetensors write is atomic and leaves no temporary behind", "[io][safetensors]")
{
    const ballast::test::temp_dir tmp("safetensors");
    const auto& dir = tmp.path();
    const auto path = dir / "w.safetensors";
    ballast::io::safetensors_writer w;
    const float x[] = { 1, 2, 3 };
    w.add("x", { 3 }, x);
    w.write(path);
    w.write(path); // overwrite in place
    const auto f = ballast::io::safetensors_file::load(path);
    CHECK(f.info("x").numel() == 3);
    std::size_t files = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir))
    {
        ++files;
    }
    CHECK(files == 1);
}
