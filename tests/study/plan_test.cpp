// The grid of a study (study/plan.hpp): every (recipe, size, LR) once, in grid order, with unique keys;
// costs that grow with the size; results files named per shard; and a shard deal that covers the grid.
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <boost/hana/tuple.hpp>
#include <catch2/catch.hpp>

#include <ballast/policies/policy_set.hpp>
#include <ballast/study/grid.hpp>
#include <ballast/study/plan.hpp>
#include <ballast/train/optimizer.hpp>

namespace st = ballast::study;

TEST_CASE("a study plan enumerates its grid once, in order, with costs and file names", "[study][plan]")
{
    constexpr auto recipes =
      st::recipe_grid(boost::hana::tuple_t<ballast::paper_default, ballast::paper_baseline>,
                      boost::hana::tuple_t<ballast::optim::adamw<>>);
    st::study_spec spec;
    spec.study.sizes = { "d16_L1_H2", "d32_L2_H2" };
    spec.study.lrs = { 1e-3, 1e-2, 1e-1 };
    spec.model.context = 16;
    spec.train.seq = 16;
    spec.train.steps = 10;
    spec.train.warmup = 1;
    spec.out = "runs/plan_test";
    const ballast::token_splits data(std::vector<std::uint16_t>(4096, 1), 256, 0.1, 16);
    const st::study_plan plan(recipes, spec, data);
    REQUIRE(plan.runs().size() == 2 * 2 * 3);
    const auto keys = plan.keys();
    CHECK(std::set<std::string>(keys.begin(), keys.end()).size() == keys.size());
    // Grid order: recipes outermost, then sizes, then LRs.
    CHECK(plan.runs()[0].lr == 1e-3);
    CHECK(plan.runs()[2].lr == 1e-1);
    CHECK(plan.runs()[0].size.d_model == 16);
    CHECK(plan.runs()[3].size.d_model == 32);
    CHECK(plan.runs()[6].recipe_name != plan.runs()[0].recipe_name);
    // The larger size costs more; the same size costs the same at every LR.
    const auto cost = plan.costs();
    CHECK(cost[3] > cost[0]);
    CHECK(cost[0] == cost[1]);
    // File names: results.jsonl, and results.I-of-N.jsonl per shard.
    CHECK(plan.results_path() == spec.out / "results.jsonl");
    CHECK(plan.results_path(st::shard_id{ 1, 3 }).filename() == "results.1-of-3.jsonl");
    // Three shards deal every run exactly once.
    std::multiset<std::size_t> dealt;
    for (std::size_t s = 0; s < 3; ++s)
    {
        for (const auto i : plan.shard_runs(st::shard_id{ s, 3 }))
        {
            dealt.insert(i);
        }
    }
    CHECK(dealt.size() == plan.runs().size());
    CHECK(std::set<std::size_t>(dealt.begin(), dealt.end()).size() == plan.runs().size());
    // The study line records the identity and the build.
    const auto header = plan.results_header();
    CHECK(header["type"] == "study");
    CHECK(header["config"] == plan.identity());
    CHECK(header.contains("build"));
    // Bad grids are refused.
    auto bad = spec;
    bad.study.lrs.clear();
    CHECK_THROWS_WITH(st::study_plan(recipes, bad, data), Catch::Contains("no learning rates"));
}
