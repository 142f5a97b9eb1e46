// A run's progress survives a checkpoint: progress_json and restore_progress round-trip through the
// manifest's text, and a manifest without a field is refused.
#include <limits>
#include <stdexcept>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <ballast/train/run_result.hpp>

TEST_CASE("the progress object round-trips through text, bit for bit", "[train][run_result]")
{
    ballast::run_result r;
    r.l0 = 5.545177444479562;
    r.best_val_loss = 2.0 / 3.0;
    r.final_val_loss = 0.7000000000000001;
    r.evals = { { 0, 5.545177444479562 }, { 4, 3.25 }, { 8, 2.0 / 3.0 } };
    r.train_seconds = 1.25;
    r.steps_done = 8;
    const auto text = ballast::progress_json(r).dump();

    ballast::run_result fresh;
    fresh.policy_set = "kept";
    fresh.diverged_reason = "also kept";
    const auto back = ballast::restore_progress(fresh, nlohmann::json::parse(text), 8);
    CHECK(back.l0 == r.l0);
    CHECK(back.best_val_loss == r.best_val_loss);
    CHECK(back.final_val_loss == r.final_val_loss);
    CHECK(back.evals == r.evals);
    CHECK(back.train_seconds == r.train_seconds);
    CHECK(back.steps_done == 8);
    // Everything else is left as it was.
    CHECK(back.policy_set == "kept");
    CHECK(back.diverged_reason == "also kept");
    CHECK_FALSE(back.interrupted);
}

TEST_CASE("progress_json writes exactly the documented fields", "[train][run_result]")
{
    const auto j = ballast::progress_json({});
    CHECK(j.size() == 5);
    for (const char* k : { "l0", "best_val_loss", "final_val_loss", "evals", "train_seconds" })
    {
        CHECK(j.contains(k));
    }
}

TEST_CASE("a progress object without a field is refused", "[train][run_result]")
{
    auto j = ballast::progress_json({});
    j.erase("evals");
    CHECK_THROWS_AS(ballast::restore_progress({}, j, 3), nlohmann::json::out_of_range);
}
