// Summaries: runs grouped by everything but the LR, each group's LR sensitivity against the closed form
// E[min(ℓ(η), ℓ0) − ℓ*] worked out by hand, and the CSV/JSON files written from them.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <ballast/study/summary.hpp>

#include "support/temp_dir.hpp"

namespace
{
    namespace st = ballast::study;

    st::run_record run(const std::string& recipe, double lr, double loss, bool diverged, double l0 = 5.0)
    {
        st::run_record r;
        r.spec.recipe_name = recipe;
        r.spec.optimizer = "adamw";
        r.spec.size = { 16, 1, 2 };
        r.spec.lr = lr;
        r.spec.warmup = 2;
        r.spec.steps = 8;
        r.spec.weight_decay = 0;
        r.spec.eps = 1e-8;
        r.params = 100;
        r.result.l0 = l0;
        r.result.final_val_loss = diverged ? l0 : loss;
        r.result.best_val_loss = loss;
        r.result.diverged = diverged;
        r.result.diverged_step = diverged ? 3 : 0;
        r.wall_seconds = 1.25;
        return r;
    }

    /// Group A: losses 4 (1e-3), 3 (1e-2) and a divergence (1e-1), listed out of LR order; group B: 6 (worse
    /// than ℓ0, capped at it) and 4.5.
    std::vector<st::run_record> two_groups()
    {
        return { run("A", 1e-1, 9.0, true), run("B", 1e-2, 6.0, false), run("A", 1e-3, 4.0, false),
                 run("A", 1e-2, 3.0, false), run("B", 1e-3, 4.5, false) };
    }
} // namespace

TEST_CASE("summarise groups the runs and gives each group its LR sensitivity", "[study][summary]")
{
    const auto groups = st::summarise(two_groups());
    REQUIRE(groups.size() == 2);
    const auto& a = groups[0]; // in order of first appearance
    CHECK(a.recipe == "A");
    CHECK(a.size == "d16_L1_H2");
    CHECK(a.params == 100);
    CHECK(a.runs == 3);
    CHECK(a.diverged == 1);
    CHECK(a.l0 == 5.0);
    REQUIRE(a.points.size() == 3);
    CHECK(a.points[0].lr == 1e-3); // sorted by LR
    CHECK(a.points[2].lr == 1e-1);
    // Capped losses 4, 3, 5 (diverged: ℓ0); ℓ* = 3; LRsens = ((4−3) + (3−3) + (5−3)) / 3 = 1.
    CHECK(a.best_loss == 3.0);
    CHECK(a.best_lr == 1e-2);
    CHECK(a.lr_sensitivity == 1.0);
    const auto& b = groups[1];
    CHECK(b.recipe == "B");
    CHECK(b.diverged == 0);
    // Capped losses 4.5 (1e-3) and min(6, 5) = 5 (1e-2); ℓ* = 4.5; LRsens = (0 + 0.5) / 2 = 0.25.
    CHECK(b.best_loss == 4.5);
    CHECK(b.best_lr == 1e-3);
    CHECK(b.lr_sensitivity == 0.25);
}

TEST_CASE("with a window, each group reports its best window of consecutive LRs", "[study][summary]")
{
    const auto groups = st::summarise(two_groups(), 2);
    // A: windows {1e-3, 1e-2} → ((4−3) + 0) / 2 = 0.5 and {1e-2, 1e-1} → (0 + (5−3)) / 2 = 1; min 0.5.
    CHECK(groups[0].lr_sensitivity == 0.5);
    // B has only 2 LRs: a window of 2 is the whole grid, the plain metric.
    CHECK(groups[1].lr_sensitivity == 0.25);
}

TEST_CASE("runs that differ in any axis but the LR are separate groups", "[study][summary]")
{
    auto runs = two_groups();
    auto other = run("A", 1e-2, 3.5, false);
    other.spec.warmup = 4;
    runs.push_back(other);
    other.spec.warmup = 2;
    other.spec.eps = 1e-6;
    runs.push_back(other);
    const auto groups = st::summarise(runs);
    REQUIRE(groups.size() == 4);
    CHECK(groups[2].warmup == 4);
    CHECK(groups[3].eps == 1e-6);
    CHECK(groups[2].lr_sensitivity == 0.0); // a single LR
}

TEST_CASE("summary.csv, results.csv and summary.json hold the groups and runs", "[study][summary]")
{
    const auto runs = two_groups();
    const auto groups = st::summarise(runs);
    const auto csv = st::summary_csv(groups);
    CHECK(csv ==
          "recipe,optimizer,size,params,warmup,weight_decay,eps,steps,runs,diverged,l0,best_loss,best_lr,"
          "lr_sensitivity\n"
          "A,adamw,d16_L1_H2,100,2,0,1e-08,8,3,1,5.000000,3.000000,0.01,1.000000\n"
          "B,adamw,d16_L1_H2,100,2,0,1e-08,8,2,0,5.000000,4.500000,0.001,0.250000\n");
    const auto rows = st::results_csv(runs);
    CHECK(rows.starts_with("key,recipe,optimizer,size,params,lr,warmup,weight_decay,eps,steps,l0,"
                           "final_val_loss,best_val_loss,diverged,diverged_step,wall_seconds\n" +
                           runs[0].spec.key() +
                           ",A,adamw,d16_L1_H2,100,0.1,2,0,1e-08,8,5.000000,5.000000,9.000000,1,3,1.25\n"));
    CHECK(std::count(rows.begin(), rows.end(), '\n') == 6);

    ballast::test::temp_dir dir("summary");
    st::write_summaries(dir.path(), "tiny", runs);
    std::ifstream in(dir / "summary.json");
    const auto j = nlohmann::json::parse(in);
    CHECK(j == st::summary_json("tiny", groups));
    CHECK(j["study"] == "tiny");
    REQUIRE(j["groups"].size() == 2);
    CHECK(j["groups"][0]["policy_set"] == "A");
    CHECK(j["groups"][0]["lr_sensitivity"] == 1.0);
    CHECK(j["groups"][1]["best_lr"] == 1e-3);
    std::ifstream c(dir / "summary.csv");
    CHECK(std::string(std::istreambuf_iterator<char>(c), {}) == csv);
    CHECK(std::filesystem::exists(dir / "results.csv"));
}
