// The study engine: a grid runs to completion with results, summaries and per-run logs; an interrupted
// study resumes without losing or duplicating runs and ends with the same numbers as an uninterrupted one;
// a torn last line is redone; a changed configuration is refused, never mixed.
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/hana/tuple.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <ballast/core/comm.hpp>
#include <ballast/study/study.hpp>

#include "support/temp_dir.hpp"

namespace
{
    namespace hana = boost::hana;
    namespace st = ballast::study;

    constexpr auto recipes = st::recipe_grid(hana::tuple_t<ballast::paper_default, ballast::paper_baseline>,
                                             hana::tuple_t<ballast::optim::adamw<>>);

    const ballast::token_splits& readme()
    {
        static const ballast::token_splits s(
          ballast::load_corpus(std::filesystem::path(BALLAST_SOURCE_DIR) / "README.md"), 256, 0.1, 16,
          "README.md");
        return s;
    }

    st::study_spec tiny(const std::filesystem::path& out)
    {
        st::study_spec s;
        s.study.name = "tiny";
        s.study.sizes = { "d16_L1_H2" };
        s.study.lrs = { 1e-3, 1e-2, 1e-1 };
        s.study.jobs = 1;
        s.model.context = 16;
        s.train.steps = 8;
        s.train.warmup = 2;
        s.train.batch = 4;
        s.train.seq = 16;
        s.train.eval_batches = 2;
        s.train.diag_interval = 4;
        s.out = out;
        return s;
    }

    std::vector<nlohmann::json> run_lines(const std::filesystem::path& results)
    {
        std::vector<nlohmann::json> out;
        std::ifstream in(results);
        for (std::string line; std::getline(in, line);)
        {
            const auto j = nlohmann::json::parse(line, nullptr, false);
            if (!j.is_discarded() && j.value("type", "") == "run")
            {
                out.push_back(j);
            }
        }
        return out;
    }

    nlohmann::json read_json_line(const std::filesystem::path& p)
    {
        std::ifstream in(p);
        std::string line;
        std::getline(in, line);
        return nlohmann::json::parse(line);
    }

    std::map<std::string, double> losses_by_key(const std::vector<nlohmann::json>& lines)
    {
        std::map<std::string, double> m;
        for (const auto& j : lines)
        {
            m[j["key"].get<std::string>()] = j["final_val_loss"].get<double>();
        }
        return m;
    }
} // namespace

TEST_CASE("a study runs its grid and writes results, summaries and per-run metrics", "[study]")
{
    ballast::test::temp_dir dir("study");
    st::study_runner runner(recipes, tiny(dir.path()), readme());
    REQUIRE(runner.runs().size() == 6);
    const auto finished = runner.run();
    CHECK(finished.size() == 6);
    const auto lines = run_lines(runner.results_path());
    REQUIRE(lines.size() == 6);
    std::set<std::string> keys;
    for (const auto& j : lines)
    {
        keys.insert(j["key"].get<std::string>());
        CHECK(std::filesystem::exists(dir.path() / j["metrics"].get<std::string>()));
        CHECK(j["diagnostics"]["max_attn_logit"].is_number());
        CHECK(j["config"]["train"]["lr"] == j["lr"]);
    }
    CHECK(keys.size() == 6);
    // summary.json agrees with the metric recomputed from the run lines.
    std::ifstream in(dir.path() / "summary.json");
    const auto summary = nlohmann::json::parse(in);
    REQUIRE(summary["groups"].size() == 2);
    for (const auto& g : summary["groups"])
    {
        std::vector<st::lr_point> pts;
        double l0 = 0;
        for (const auto& j : lines)
        {
            if (j["policy_set"] == g["policy_set"])
            {
                pts.push_back(
                  { j["lr"].get<double>(), j["final_val_loss"].get<double>(), j["diverged"].get<bool>() });
                l0 = j["l0"].get<double>();
            }
        }
        REQUIRE(pts.size() == 3);
        CHECK(g["lr_sensitivity"].get<double>() == Approx(st::lr_sensitivity(pts, l0)).epsilon(1e-12));
    }
    CHECK(std::filesystem::exists(dir.path() / "results.csv"));
    CHECK(std::filesystem::exists(dir.path() / "summary.csv"));
    // Running it again does nothing new.
    st::study_runner again(recipes, tiny(dir.path()), readme());
    again.run();
    CHECK(run_lines(runner.results_path()).size() == 6);
}

TEST_CASE("an interrupted study resumes: no run lost or duplicated, same numbers as straight through",
          "[study]")
{
    ballast::test::temp_dir straight_dir("study_straight"), dir("study_interrupted");
    st::study_runner straight(recipes, tiny(straight_dir.path()), readme());
    straight.run();
    {
        st::study_runner first(recipes, tiny(dir.path()), readme());
        st::study_observer obs;
        obs.on_run_done = [](const st::run_record&, std::size_t done, std::size_t)
        {
            if (done == 2)
            {
                std::raise(SIGINT); // as Ctrl-C: the study's handler sets a flag
            }
        };
        const auto finished = first.run(obs);
        CHECK(first.interrupted());
        CHECK(finished.size() == 2);
        CHECK(run_lines(first.results_path()).size() == 2);
    }
    st::study_runner second(recipes, tiny(dir.path()), readme());
    std::size_t fresh = 0;
    st::study_observer count;
    count.on_run_done = [&](const st::run_record&, std::size_t, std::size_t) { ++fresh; };
    second.run(count);
    CHECK(fresh == 4);
    CHECK_FALSE(second.interrupted());
    const auto lines = run_lines(second.results_path());
    CHECK(lines.size() == 6);
    CHECK(losses_by_key(lines) == losses_by_key(run_lines(straight.results_path()))); // bit-identical
}

TEST_CASE("a torn last line is redone and a changed configuration is refused", "[study]")
{
    ballast::test::temp_dir dir("study_torn");
    st::study_runner runner(recipes, tiny(dir.path()), readme());
    runner.run();
    // Simulate a crash mid-append: drop the last run line and leave half of it.
    std::vector<std::string> text;
    {
        std::ifstream in(runner.results_path());
        for (std::string line; std::getline(in, line);)
        {
            text.push_back(line);
        }
    }
    const std::string lost_key = nlohmann::json::parse(text.back())["key"];
    {
        std::ofstream out(runner.results_path(), std::ios::trunc);
        for (std::size_t i = 0; i + 1 < text.size(); ++i)
        {
            out << text[i] << "\n";
        }
        out << text.back().substr(0, text.back().size() / 2);
    }
    st::study_runner resumed(recipes, tiny(dir.path()), readme());
    std::vector<std::string> redone;
    st::study_observer obs;
    obs.on_run_done = [&](const st::run_record& r, std::size_t, std::size_t)
    { redone.push_back(r.spec.key()); };
    resumed.run(obs);
    CHECK(redone == std::vector<std::string>{ lost_key });
    CHECK(run_lines(runner.results_path()).size() == 6);

    auto changed = tiny(dir.path());
    changed.train.steps = 9;
    st::study_runner other(recipes, changed, readme());
    CHECK_THROWS_WITH(other.run(),
                      Catch::Contains("different study configuration") && Catch::Contains("steps"));
}

TEST_CASE("a bad grid is refused before any run starts", "[study]")
{
    ballast::test::temp_dir dir("study_bad");
    auto s = tiny(dir.path());
    s.study.sizes = { "d16_L1" };
    CHECK_THROWS_WITH(st::study_runner(recipes, s, readme()),
                      Catch::Contains("d<d_model>_L<layers>_H<heads>"));
    s = tiny(dir.path());
    s.study.sizes = { "d18_L1_H4" };
    CHECK_THROWS_WITH(st::study_runner(recipes, s, readme()), Catch::Contains("divisible"));
    s = tiny(dir.path());
    s.study.lrs = { 1e-3, 1e-3 };
    CHECK_THROWS_WITH(st::study_runner(recipes, s, readme()), Catch::Contains("duplicate run"));
}

namespace
{
    /// Run lines by key without the fields that may differ between processes (timing, host, shard).
    std::map<std::string, nlohmann::json> comparable(const std::vector<nlohmann::json>& lines)
    {
        std::map<std::string, nlohmann::json> m;
        for (auto j : lines)
        {
            for (const char* k : { "wall_seconds", "train_seconds", "host", "shard" })
            {
                j.erase(k);
            }
            CHECK(m.emplace(j["key"].get<std::string>(), j).second); // each run once
        }
        return m;
    }

    std::vector<std::string> keys_of(const std::vector<nlohmann::json>& lines)
    {
        std::vector<std::string> k;
        for (const auto& j : lines)
        {
            k.push_back(j["key"].get<std::string>());
        }
        return k;
    }

    nlohmann::json read_json(const std::filesystem::path& p)
    {
        std::ifstream in(p);
        return nlohmann::json::parse(in);
    }
} // namespace

TEST_CASE("static shards + merge equal the one-process study; a relaunch with another N runs nothing",
          "[study][shard]")
{
    ballast::test::temp_dir straight_dir("study_ref"), dir("study_shards");
    st::study_runner straight(recipes, tiny(straight_dir.path()), readme());
    straight.run();
    const auto ref = comparable(run_lines(straight.results_path()));
    REQUIRE(ref.size() == 6);

    std::size_t ran = 0;
    st::study_observer count;
    count.on_run_done = [&](const st::run_record&, std::size_t, std::size_t) { ++ran; };
    for (std::size_t i = 0; i < 2; ++i)
    {
        st::study_runner shard(recipes, tiny(dir.path()), readme());
        shard.run_shard({ i, 2 }, count);
        const auto lines = run_lines(shard.results_path({ i, 2 }));
        CHECK_FALSE(lines.empty());
        const auto header = read_json_line(shard.results_path({ i, 2 }));
        CHECK(header["shard"]["index"] == i);
        CHECK(header["build"]["isa"] == ballast::simd::arch_name());
    }
    CHECK(ran == 6);
    CHECK(run_lines(dir.path() / "results.0-of-2.jsonl").size() +
            run_lines(dir.path() / "results.1-of-2.jsonl").size() ==
          6);
    // Relaunched as 3 shards: every run is finished in some file, so nothing runs twice.
    for (std::size_t i = 0; i < 3; ++i)
    {
        st::study_runner shard(recipes, tiny(dir.path()), readme());
        shard.run_shard({ i, 3 }, count);
    }
    CHECK(ran == 6);

    st::study_runner merger(recipes, tiny(dir.path()), readme());
    const auto merged = merger.merge();
    CHECK(merged.size() == 6);
    CHECK(merger.missing().empty());
    const auto lines = run_lines(merger.results_path());
    CHECK(keys_of(lines) == merger.keys()); // grid order
    CHECK(comparable(lines) == ref);
    CHECK(read_json(dir.path() / "summary.json") == read_json(straight_dir.path() / "summary.json"));

    // Another study's flags are refused by merge, naming the difference.
    auto changed = tiny(dir.path());
    changed.train.steps = 9;
    st::study_runner other(recipes, changed, readme());
    CHECK_THROWS_WITH(other.merge(), Catch::Contains("another study") && Catch::Contains("steps: 8 vs 9"));
}

TEST_CASE("the work queue over 3 in-process ranks equals the one-process study; rank 0 writes grid order",
          "[study][work_queue]")
{
    ballast::test::temp_dir straight_dir("study_ref_q"), dir("study_queue");
    st::study_runner straight(recipes, tiny(straight_dir.path()), readme());
    straight.run();
    const auto ref = comparable(run_lines(straight.results_path()));

    ballast::local_world world(3);
    std::vector<std::thread> workers;
    std::vector<std::string> errors(3);
    for (int r = 1; r < 3; ++r)
    {
        workers.emplace_back(
          [&, r]
          {
              try
              {
                  st::study_runner w(recipes, tiny(dir.path()), readme());
                  CHECK(w.run_queue(world.at(r)).empty());
              }
              catch (const std::exception& e)
              {
                  errors[static_cast<std::size_t>(r)] = e.what();
              }
          });
    }
    st::study_runner rank0(recipes, tiny(dir.path()), readme());
    const auto finished = rank0.run_queue(world.at(0));
    for (auto& t : workers)
    {
        t.join();
    }
    CHECK(errors == std::vector<std::string>(3));
    CHECK(finished.size() == 6);
    const auto lines = run_lines(rank0.results_path());
    CHECK(keys_of(lines) == rank0.keys());
    CHECK(comparable(lines) == ref);
    CHECK(read_json(dir.path() / "summary.json") == read_json(straight_dir.path() / "summary.json"));
}

TEST_CASE("a rank of another study is refused at the start (fingerprint)", "[study][work_queue]")
{
    ballast::test::temp_dir dir("study_queue_fp");
    ballast::local_world world(2);
    std::string worker_error;
    std::thread worker(
      [&]
      {
          auto changed = tiny(dir.path());
          changed.train.steps = 9;
          st::study_runner w(recipes, changed, readme());
          try
          {
              w.run_queue(world.at(1));
          }
          catch (const std::exception& e)
          {
              worker_error = e.what();
          }
      });
    st::study_runner rank0(recipes, tiny(dir.path()), readme());
    CHECK_THROWS_WITH(rank0.run_queue(world.at(0)), Catch::Contains("another fingerprint"));
    worker.join();
    CHECK_THAT(worker_error, Catch::Contains("stopped by rank 0"));
    CHECK(run_lines(rank0.results_path()).empty()); // nothing ran
}
