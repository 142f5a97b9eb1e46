// Regression tests for the inputs the libFuzzer targets (fuzz/) found, each on the same input as the crash
// (the inputs are also kept in fuzz/corpus/<target>/regression-*, so every fuzzing run replays them).
// docs/hardening.md lists the bugs.

#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include <ballast/study/predict.hpp>
#include <ballast/study/study.hpp>

#include "support/temp_dir.hpp"

namespace
{
    const std::filesystem::path corpus = std::filesystem::path(BALLAST_SOURCE_DIR) / "fuzz/corpus";

    std::string slurp(const std::filesystem::path& p)
    {
        std::ifstream in(p, std::ios::binary);
        return { std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>() };
    }
} // namespace

TEST_CASE("fuzz regression: parse_size accepts canonical labels only", "[fuzz][study]")
{
    using ballast::study::parse_size;
    // fuzz_study_size's first crash: "d1_L1_H1" followed by NUL bytes was accepted (sscanf stops at NUL).
    const std::string crash = slurp(corpus / "fuzz_study_size/regression-trailing-nul");
    REQUIRE(crash == std::string("d1_L1_H1\0\0\0\0", 12));
    CHECK_THROWS_WITH(parse_size(crash),
                      "ballast: study: model size 'd1_L1_H1\\x00\\x00\\x00\\x00' is not of the form "
                      "d<d_model>_L<layers>_H<heads>, e.g. d64_L2_H4");
    // The same class: what sscanf's %lu let through (a sign wraps, blanks are skipped, trailing text).
    for (const char* bad :
         { "d-5_L1_H2", "d+64_L2_H4", "d 64_L2_H4", "d064_L2_H4", "d64_L2_H4x", "d64_L2_H4 ", "d64_L-1_H4",
           "d0_L2_H4", "d64_L00_H4", "d64_L2_H0", "d64_L2", "D64_L2_H4", "d_L2_H4", "d64_L2_H" })
    {
        CAPTURE(bad);
        CHECK_THROWS_WITH(parse_size(bad), Catch::StartsWith("ballast: study: model size '"));
    }
    // Values beyond the cap (and beyond 64 bits) are refused, not wrapped.
    CHECK_THROWS_WITH(parse_size("d9223372036854775808_L1_H2"),
                      Catch::Contains("d_model '9223372036854775808' is too large (at most 1048576)"));
    CHECK_THROWS_WITH(parse_size("d64_L99999999999999999999999_H2"), Catch::Contains("n_layers"));
    const auto m = parse_size("d1048576_L24_H16");
    CHECK(m.d_model == 1048576u);
    CHECK(m.n_layers == 24u);
    CHECK(m.n_heads == 16u);
    // Zero layers is a size (the 0-layer bigram baseline); whether a model may have it is the model
    // config's decision, not the label parser's.
    CHECK(parse_size("d64_L0_H4").n_layers == 0u);
}

TEST_CASE("fuzz regression: load_runs reports wrongly typed fields as ballast::error naming the file",
          "[fuzz][study][predict]")
{
    ballast::test::temp_dir tmp("fuzzreg");
    // fuzz_jsonl's first crash: a line {"type":0} made nlohmann's value("type", "") throw a type_error that
    // named no file (and, uncaught, would terminate).
    const auto p = tmp / "results.jsonl";
    std::filesystem::copy_file(corpus / "fuzz_jsonl/regression-type-number", p);
    CHECK(ballast::study::load_runs(p).empty()); // not a run line, then a torn last line: nothing, no throw
    std::ofstream(p, std::ios::trunc) << "{\"type\":0}\n{\"type\":[1]}\n";
    CHECK(ballast::study::load_runs(p).empty());
    // A run line whose field has the wrong type: the error names the file, the line and the field's problem.
    std::ofstream(p, std::ios::trunc) << "{\"type\":\"run\",\"policy_set\":7}\n";
    std::string prefix = "ballast: load_runs: '";
    prefix.append(p.string()).append("' run line 1: ");
    CHECK_THROWS_WITH(ballast::study::load_runs(p),
                      Catch::StartsWith(prefix) && Catch::Contains("type must be string"));
}
