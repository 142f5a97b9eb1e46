// Merging shard result files: grid order, refusal of mixed studies and builds, agreement of duplicates.
#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <ballast/core/file.hpp>
#include <ballast/study/merge.hpp>
#include <ballast/study/shard.hpp>

#include "support/temp_dir.hpp"

namespace
{
    namespace st = ballast::study;
    using Catch::Matchers::Contains;
    using nlohmann::json;

    const std::vector<std::string> grid = { "r0", "r1", "r2", "r3", "r4" };

    json study_line()
    {
        return { { "type", "study" },
                 { "name", "t" },
                 { "config",
                   { { "train", { { "steps", 10 }, { "seed", 1 } } },
                     { "data", { { "origin", "builtin" }, { "fnv1a64", "00000000deadbeef" } } } } } };
    }

    json run_line(std::size_t i, double wall = 1.0)
    {
        return { { "type", "run" },           { "key", grid[i] },
                 { "params", 100 * (i + 1) }, { "final_val_loss", 5.0 - 0.25 * double(i) },
                 { "diverged", i == 3 },      { "diagnostics", { { "max_attn_logit", 10.0 + double(i) } } },
                 { "wall_seconds", wall },    { "train_seconds", wall * 0.9 } };
    }

    st::results_lines shard_file(const st::shard_id& s, const std::vector<std::size_t>& runs,
                                 double wall = 2.0, json header = study_line())
    {
        st::results_lines f{ st::shard_results_name(s), { st::shard_study_line(std::move(header), s) } };
        for (const auto i : runs)
        {
            f.lines.push_back(run_line(i, wall));
        }
        return f;
    }

    st::merge_result merge(const std::vector<st::results_lines>& files)
    {
        return st::merge_results(std::span<const st::results_lines>(files),
                                 std::span<const std::string>(grid));
    }
} // namespace

TEST_CASE("shard result file names", "[study][merge]")
{
    CHECK(st::shard_results_name({ 2, 16 }) == "results.2-of-16.jsonl");
    CHECK(st::parse_shard_results_name("results.2-of-16.jsonl") == st::shard_id{ 2, 16 });
    for (const char* other :
         { "results.jsonl", "results.2-of-2.jsonl", "results.0-of-0.jsonl", "results.a-of-2.jsonl",
           "results.1of2.jsonl", "results.1-of-2.json", "summary.json", "results.-1-of-2.jsonl" })
    {
        INFO(other);
        CHECK_FALSE(st::parse_shard_results_name(other).has_value());
    }
}

TEST_CASE("merging the shards of a deal gives the one-process run lines in grid order", "[study][merge]")
{
    // The one-process study: every run in grid order (wall time 1 s each).
    std::vector<json> single;
    for (std::size_t i = 0; i < grid.size(); ++i)
    {
        single.push_back(run_line(i, 1.0));
    }
    const std::vector<double> costs = { 1, 5, 2, 4, 3 };
    const auto plan = st::deal_shards(std::span<const double>(costs), 2);
    // Each shard finishes its runs longest first (its file order), with other wall times.
    const auto merged =
      merge({ shard_file({ 1, 2 }, plan.runs[1], 3.0), shard_file({ 0, 2 }, plan.runs[0], 2.0) });
    REQUIRE(merged.runs.size() == grid.size());
    CHECK(merged.missing.empty());
    CHECK(merged.duplicates == 0);
    for (std::size_t i = 0; i < grid.size(); ++i)
    {
        INFO(grid[i]);
        CHECK(merged.runs[i]["key"] == grid[i]);
        // Identical apart from the timing fields, which are the shard's.
        CHECK(ballast::json_differences(
                st::detail::without(merged.runs[i], { "wall_seconds", "train_seconds" }),
                st::detail::without(single[i], { "wall_seconds", "train_seconds" })) == "");
        CHECK(merged.runs[i]["wall_seconds"] != single[i]["wall_seconds"]);
    }
    // The merged study line is the shards' without the shard field; the build is kept.
    CHECK_FALSE(merged.header.contains("shard"));
    CHECK(merged.header["build"] == st::build_identity());
    CHECK(merged.header["config"] == study_line()["config"]);
    // text(): the study line, then the runs in grid order.
    const auto text = merged.text();
    CHECK(text.starts_with(merged.header.dump() + "\n" + merged.runs[0].dump() + "\n"));
    CHECK(std::count(text.begin(), text.end(), '\n') == 6);
}

TEST_CASE("merging a partial study lists the missing runs; a relaunch with another N adds agreeing copies",
          "[study][merge]")
{
    // Shard 0/2 finished r1 and r3 before it was killed; shard 1/2 finished r0. Relaunched as 3 shards:
    // 2/3 redid nothing but r2 (it skips finished runs), 0/3 re-ran r1 in a race (same numbers, other timing).
    const auto partial = merge({ shard_file({ 0, 2 }, { 3, 1 }), shard_file({ 1, 2 }, { 0 }) });
    CHECK(partial.missing == std::vector<std::string>{ "r2", "r4" });
    const auto merged = merge({ shard_file({ 0, 2 }, { 3, 1 }), shard_file({ 1, 2 }, { 0 }),
                                shard_file({ 0, 3 }, { 1, 4 }, 9.0), shard_file({ 2, 3 }, { 2 }) });
    CHECK(merged.missing.empty());
    CHECK(merged.duplicates == 1);
    REQUIRE(merged.runs.size() == 5);
    CHECK(merged.runs[1]["wall_seconds"] == 2.0); // the first copy (in file order) is kept
}

TEST_CASE("merge refuses shards of different studies or builds, naming the field", "[study][merge]")
{
    auto other_lr = study_line();
    other_lr["config"]["train"]["steps"] = 20;
    CHECK_THROWS_WITH(
      merge({ shard_file({ 0, 2 }, { 0 }), shard_file({ 1, 2 }, { 1 }, 2.0, other_lr) }),
      Contains("'results.1-of-2.jsonl' and 'results.0-of-2.jsonl' are not shards of one study") &&
        Contains("config.train.steps: 10 vs 20"));

    auto other_corpus = study_line();
    other_corpus["config"]["data"]["fnv1a64"] = "0000000000000001";
    CHECK_THROWS_WITH(merge({ shard_file({ 0, 2 }, { 0 }), shard_file({ 1, 2 }, { 1 }, 2.0, other_corpus) }),
                      Contains("config.data.fnv1a64: \"00000000deadbeef\" vs \"0000000000000001\""));

    auto avx2 = shard_file({ 1, 2 }, { 1 });
    avx2.lines[0]["build"]["isa"] = "some_other_isa";
    CHECK_THROWS_WITH(merge({ shard_file({ 0, 2 }, { 0 }), avx2 }), Contains("build.isa: "));

    auto older = shard_file({ 1, 2 }, { 1 });
    older.lines[0]["build"]["version"] = "0.0.9";
    CHECK_THROWS_WITH(merge({ shard_file({ 0, 2 }, { 0 }), older }), Contains("build.version: "));

    auto no_build = shard_file({ 1, 2 }, { 1 });
    no_build.lines[0].erase("build");
    CHECK_THROWS_WITH(merge({ shard_file({ 0, 2 }, { 0 }), no_build }), Contains("build: "));
}

TEST_CASE("merge refuses a file written by a newer ballast", "[study][merge]")
{
    const auto ours = *st::detail::parse_version(ballast::version_string);
    for (const std::string& newer :
         { std::to_string(ours[0] + 1) + ".0.0",
           std::to_string(ours[0]) + "." + std::to_string(ours[1]) + "." + std::to_string(ours[2] + 1) })
    {
        auto f = shard_file({ 0, 1 }, { 0 });
        f.lines[0]["build"]["version"] = newer;
        CHECK_THROWS_WITH(merge({ f }), "ballast: merge: 'results.0-of-1.jsonl' was written by ballast " +
                                          newer + ", newer than this one (" + ballast::version_string +
                                          "); merge it with that version or newer");
    }
    auto bad = shard_file({ 0, 1 }, { 0 });
    bad.lines[0]["build"]["version"] = "1.x";
    CHECK_THROWS_WITH(merge({ bad }), Contains("malformed build.version \"1.x\""));
    // The same version merges.
    CHECK(merge({ shard_file({ 0, 1 }, { 0 }) }).runs.size() == 1);
}

TEST_CASE("a run finished twice must agree apart from timing and host", "[study][merge]")
{
    auto a = shard_file({ 0, 2 }, { 0, 2 });
    auto b = shard_file({ 0, 3 }, { 2 }, 7.0);
    b.lines[1]["host"] = "node17";
    CHECK(merge({ a, b }).duplicates == 1);

    b.lines[1]["final_val_loss"] = 1.25;
    CHECK_THROWS_WITH(
      merge({ a, b }),
      "ballast: merge: run 'r2' was finished twice with different results ('results.0-of-2.jsonl' "
      "vs 'results.0-of-3.jsonl': final_val_loss: 4.5 vs 1.25)");
    b.lines[1]["final_val_loss"] = 4.5;
    b.lines[1]["diagnostics"]["max_attn_logit"] = 13.0;
    CHECK_THROWS_WITH(merge({ a, b }), Contains("diagnostics.max_attn_logit: 12.0 vs 13.0"));
    // A duplicate inside one file is checked the same way.
    auto c = shard_file({ 0, 1 }, { 1, 1 });
    CHECK(merge({ c }).duplicates == 1);
    c.lines[2]["diverged"] = true;
    CHECK_THROWS_WITH(merge({ c }), Contains("run 'r1'") && Contains("diverged: false vs true"));
}

TEST_CASE("merge refuses foreign runs, files without a study line, and a shard claimed twice",
          "[study][merge]")
{
    auto f = shard_file({ 0, 1 }, { 0 });
    f.lines.push_back({ { "type", "run" }, { "key", "elsewhere" } });
    CHECK_THROWS_WITH(
      merge({ f }), "ballast: merge: run 'elsewhere' in 'results.0-of-1.jsonl' is not in this study's grid");
    auto keyless = shard_file({ 0, 1 }, { 0 });
    keyless.lines.push_back({ { "type", "run" } });
    CHECK_THROWS_WITH(merge({ keyless }), Contains("line 3 is a run line without a key"));
    st::results_lines headless{ "results.0-of-1.jsonl", { run_line(0) } };
    CHECK_THROWS_WITH(merge({ headless }),
                      "ballast: merge: 'results.0-of-1.jsonl' does not start with a study line");
    st::results_lines empty{ "results.0-of-1.jsonl", {} };
    CHECK_THROWS_WITH(merge({ empty }), Contains("does not start with a study line"));
    CHECK_THROWS_WITH(merge({}), "ballast: merge: no result files to merge");
    auto twin = shard_file({ 0, 2 }, { 1 });
    twin.name = "copy/results.0-of-2.jsonl";
    CHECK_THROWS_WITH(merge({ shard_file({ 0, 2 }, { 0 }), twin }), Contains("both claim shard"));
}

TEST_CASE("merge_results_dir: reads every shard file, drops a torn line, writes results.jsonl idempotently",
          "[study][merge]")
{
    ballast::test::temp_dir dir("merge");
    const auto write = [&](const st::results_lines& f)
    {
        for (const auto& l : f.lines)
        {
            ballast::append_line(dir / f.name, l.dump(), false);
        }
    };
    write(shard_file({ 0, 2 }, { 4, 2, 0 }));
    write(shard_file({ 1, 2 }, { 3, 1 }));
    ballast::append_line(dir / "unrelated.jsonl", "not json", false);
    {
        // shard 1 was killed mid-append: a torn last line without '\n'.
        const std::string torn = R"({"type":"run","key":"r)";
        std::FILE* fp = std::fopen((dir / "results.1-of-2.jsonl").c_str(), "ab");
        REQUIRE(fp != nullptr);
        std::fwrite(torn.data(), 1, torn.size(), fp);
        std::fclose(fp);
    }
    const auto first = st::merge_results_dir(dir.path(), std::span<const std::string>(grid));
    CHECK(first.missing.empty());
    const auto bytes = ballast::read_file(dir / "results.jsonl");
    const std::string text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    CHECK(text == first.text());
    // Merging again reads results.jsonl too: same file, every run now a checked duplicate.
    const auto second = st::merge_results_dir(dir.path(), std::span<const std::string>(grid));
    CHECK(second.text() == text);
    CHECK(second.duplicates == grid.size());

    ballast::test::temp_dir none("merge_empty");
    CHECK_THROWS_WITH(st::merge_results_dir(none.path(), std::span<const std::string>(grid)),
                      Contains("no results.jsonl or results.I-of-N.jsonl in"));
}

TEST_CASE("unfinished_runs: what a relaunch still has to run, refusing another study's files",
          "[study][merge]")
{
    ballast::test::temp_dir dir("unfinished");
    const auto me = st::shard_study_line(study_line(), { 1, 3 });
    // Nothing yet (no directory, then an empty one): every run, in grid order.
    CHECK(st::unfinished_runs(dir / "absent", std::span<const std::string>(grid), me) == grid);
    CHECK(st::unfinished_runs(dir.path(), std::span<const std::string>(grid), me) == grid);
    // A killed 2-shard launch finished r3 and r0; this process (shard 1 of 3) has its own file with r4.
    for (const auto& f :
         { shard_file({ 0, 2 }, { 3 }), shard_file({ 1, 2 }, { 0 }), shard_file({ 1, 3 }, { 4 }) })
    {
        for (const auto& l : f.lines)
        {
            ballast::append_line(dir / f.name, l.dump(), false);
        }
    }
    CHECK(st::unfinished_runs(dir.path(), std::span<const std::string>(grid), me) ==
          std::vector<std::string>{ "r1", "r2" });
    // A process of another study refuses the directory, naming the field against "this study".
    auto other = me;
    other["config"]["train"]["seed"] = 2;
    CHECK_THROWS_WITH(st::unfinished_runs(dir.path(), std::span<const std::string>(grid), other),
                      Contains("'results.0-of-2.jsonl' and 'this study' are not shards of one study") &&
                        Contains("config.train.seed: 2 vs 1"));
}
