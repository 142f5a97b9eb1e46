// Tests for ballast/study/predict.hpp: least squares against closed forms, the logit and gradient-RMS fits
// against synthetic runs drawn from known laws, the threshold calibration on hand-made readings, and the
// results-file reader's error contract.

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <ballast/study/predict.hpp>

#include "support/temp_dir.hpp"

namespace st = ballast::study;

namespace
{
    /// A run with a block-0 max-logit series recorded every 10 steps: `logit` at every step from 10 on,
    /// or no readings from `diverged_at` on.
    st::run_observation make_run(double n, double lr, double logit, bool diverged = false,
                                 std::size_t diverged_at = 1000)
    {
        st::run_observation r;
        r.policy_set = "no_qk";
        r.params = n * 2;
        r.params_non_embedding = n;
        r.lr = lr;
        r.steps = 100;
        r.diverged = diverged;
        r.diverged_step = diverged ? diverged_at : 0;
        for (std::size_t s = 10; s <= 100 && (!diverged || s < diverged_at); s += 10)
        {
            r.series_step.push_back(s);
            r.max_logit_l0.push_back(logit * double(s) / 100.0); // grows over training; read at a step
            r.probe_grad_rms.push_back(0);
        }
        return r;
    }
} // namespace

TEST_CASE("predict_max_logit extrapolates a known law and reports the measured target", "[study][predict]")
{
    // log10(logit at step 100) = c0 + c1·x + c2·x², x = log10 N, one law per LR.
    const auto law = [](double n, double lr)
    {
        const double x = std::log10(n);
        return std::pow(10.0, -6.0 + 1.2 * x + 0.08 * x * x + std::log10(lr) + 2.0);
    };
    const std::vector<double> sizes = { 2e4, 4e4, 8e4, 1.6e5 };
    const double target = 3.2e5;
    std::vector<st::run_observation> runs;
    for (const double lr : { 1e-2, 1e-1 })
    {
        for (const double n : sizes)
        {
            runs.push_back(make_run(n, lr, law(n, lr)));
        }
        // The target size: measured 1.5x the law; at LR 0.1 it diverged at step 60 (still read at 50).
        runs.push_back(make_run(target, lr, 1.5 * law(target, lr), lr > 0.05, 60));
    }
    st::logit_fit_options opt;
    opt.step = 100;
    opt.degree = 2;
    opt.threshold = law(target, 1e-1) * 0.9; // between the two LRs' predictions
    const auto preds = st::predict_max_logit(runs, opt, target);
    REQUIRE(preds.size() == 2);
    CHECK(preds[0].lr == 1e-2);
    CHECK(preds[1].lr == 1e-1);
    for (const auto& p : preds)
    {
        CAPTURE(p.lr);
        REQUIRE(p.fit.has_value());
        CHECK(p.sizes.size() == 4);
        CHECK(p.predicted == Approx(law(target, p.lr)).epsilon(1e-9));
        CHECK(p.fit->rms_residual < 1e-12);
        REQUIRE(p.measured_diverged.has_value());
    }
    CHECK_FALSE(preds[0].predicted_crosses);
    CHECK(preds[1].predicted_crosses);
    REQUIRE(preds[0].measured.has_value());
    CHECK(*preds[0].measured == Approx(1.5 * law(target, 1e-2)));
    CHECK_FALSE(*preds[0].measured_diverged);
    CHECK_FALSE(preds[1].measured.has_value()); // diverged before step 100: no reading
    CHECK(*preds[1].measured_diverged);

    // Read at step 50 instead: the target at LR 0.1 has a reading (half the law, from the series shape).
    opt.step = 50;
    const auto early = st::predict_max_logit(runs, opt, target);
    REQUIRE(early[1].measured.has_value());
    CHECK(*early[1].measured == Approx(1.5 * law(target, 1e-1) * 0.5));
    CHECK(early[1].predicted == Approx(law(target, 1e-1) * 0.5).epsilon(1e-9));

    // A linear fit of a quadratic law misses, and says so through its residual.
    opt.step = 100;
    opt.degree = 1;
    const auto lin = st::predict_max_logit(runs, opt, target);
    CHECK(lin[0].fit->rms_residual > 1e-4);
    CHECK(lin[0].predicted < law(target, 1e-2)); // a line under-predicts an upward-bending curve
}

TEST_CASE("predict_max_logit leaves out runs without a reading and says when too few remain",
          "[study][predict]")
{
    std::vector<st::run_observation> runs = {
        make_run(1e4, 0.3, 10.0), make_run(2e4, 0.3, 20.0, true, 30), // diverged at 30: no reading at 50
        make_run(4e4, 0.3, 40.0), make_run(8e4, 0.3, 80.0)
    };
    st::logit_fit_options opt;
    opt.step = 50;
    opt.degree = 2;
    auto p = st::predict_max_logit(runs, opt, 8e4);
    REQUIRE(p.size() == 1);
    CHECK_FALSE(p[0].fit.has_value());
    CHECK_THAT(p[0].skipped, Catch::Contains("only 2 smaller size(s)"));
    CHECK(std::isnan(p[0].predicted));
    opt.degree = 1;
    p = st::predict_max_logit(runs, opt, 8e4);
    REQUIRE(p[0].fit.has_value());
    CHECK(p[0].predicted == Approx(80.0 * 0.5).epsilon(1e-9)); // logit ∝ N: a line in log-log is exact
    CHECK_THROWS_WITH(st::predict_max_logit(runs, opt, 0), Catch::Contains("target size"));
}

TEST_CASE("calibrate_threshold finds the gap between surviving and diverging readings", "[study][predict]")
{
    std::vector<st::run_observation> runs = {
        make_run(1, 1, 10),        make_run(1, 1, 50),         make_run(1, 1, 200),
        make_run(1, 1, 800, true), make_run(1, 1, 3000, true), make_run(1, 1, 1e6, true, 20)
    }; // no reading at 100
    auto c = st::calibrate_threshold(runs, 100);
    CHECK(c.survived == 3);
    CHECK(c.diverged == 2);
    CHECK(c.diverged_before == 1);
    CHECK(c.max_survived == Approx(200));
    CHECK(c.min_diverged == Approx(800));
    CHECK(c.separable);
    CHECK(c.threshold == Approx(400));    // sqrt(200 · 800)
    runs.push_back(make_run(1, 1, 1000)); // a survivor above a diverged run: overlap
    c = st::calibrate_threshold(runs, 100);
    CHECK_FALSE(c.separable);
    CHECK(std::isnan(c.threshold));
}

TEST_CASE("fit_grad_rms recovers a power law in N and LR and solves for the size reaching eps",
          "[study][predict]")
{
    std::vector<st::run_observation> runs;
    for (const double n : { 1e4, 3e4, 1e5 })
    {
        for (const double lr : { 1e-3, 1e-2, 1e-1 })
        {
            auto r = make_run(n, lr, 1);
            r.probe_grad_rms_tail = 0.5 * std::pow(n, -0.6) * std::pow(lr, -0.3);
            runs.push_back(r);
        }
    }
    auto bad = make_run(1e6, 1e-1, 1, true);
    bad.probe_grad_rms_tail = 123; // a diverged run is left out
    runs.push_back(bad);
    const auto f = st::fit_grad_rms(runs, st::size_measure::non_embedding);
    CHECK(f.points == 9);
    CHECK(f.a == Approx(std::log10(0.5)).epsilon(1e-10));
    CHECK(f.b == Approx(-0.6).epsilon(1e-10));
    CHECK(f.c == Approx(-0.3).epsilon(1e-10));
    const double n_eps = f.size_reaching(1e-8, 1e-2);
    CHECK(0.5 * std::pow(n_eps, -0.6) * std::pow(1e-2, -0.3) == Approx(1e-8).epsilon(1e-8));
    // Total parameters are 2N in make_run: same slopes, shifted intercept.
    const auto t = st::fit_grad_rms(runs, st::size_measure::total);
    CHECK(t.b == Approx(-0.6).epsilon(1e-10));
    CHECK(t.a == Approx(std::log10(0.5) + 0.6 * std::log10(2.0)).epsilon(1e-10));
    // A rising law has no crossing.
    st::grad_rms_fit up{ 0, 0.5, 0, 0, 3 };
    CHECK(std::isnan(up.size_reaching(1e-8, 1e-2)));
    runs.resize(2);
    CHECK_THROWS_WITH(st::fit_grad_rms(runs, st::size_measure::total), Catch::Contains("at least 3"));
}

TEST_CASE("load_runs reads run lines and refuses files it cannot trust", "[study][predict]")
{
    ballast::test::temp_dir dir("predict");
    const nlohmann::json run = { { "type", "run" },
                                 { "policy_set", "no_qk" },
                                 { "optimizer", "adamw" },
                                 { "size", "d32_L2_H2" },
                                 { "params", 41000 },
                                 { "params_non_embedding", 24800 },
                                 { "lr", 0.1 },
                                 { "weight_decay", 1e-4 },
                                 { "eps", 1e-8 },
                                 { "warmup", 25 },
                                 { "steps", 500 },
                                 { "diverged", false },
                                 { "diverged_step", 0 },
                                 { "final_val_loss", 2.5 },
                                 { "diagnostics",
                                   { { "series",
                                       { { "step", { 10, 20 } },
                                         { "max_attn_logit_l0", { 3.5, nullptr } },
                                         { "probe_grad_rms", { 0.01, 0.02 } },
                                         { "probe_update_rms", { 0.5, 0.4 } } } },
                                     { "probe_grad_rms_tail", 0.015 },
                                     { "probe_update_rms_tail", nullptr } } } };
    const auto write = [&](const std::string& name, const std::string& text)
    {
        std::ofstream(dir / name) << text;
        return dir / name;
    };
    const auto ok =
      write("ok.jsonl", "{\"type\":\"study\"}\n" + run.dump() + "\n" + run.dump().substr(0, 40));
    const auto runs = st::load_runs(ok);
    REQUIRE(runs.size() == 1);
    CHECK(runs[0].params_non_embedding == 24800);
    CHECK(runs[0].max_logit_at(5) == 3.5);
    CHECK(std::isnan(runs[0].max_logit_at(20)));
    CHECK(std::isnan(runs[0].max_logit_at(21)));
    CHECK(runs[0].probe_grad_rms_tail == 0.015);
    CHECK(std::isnan(runs[0].probe_update_rms_tail));

    auto old = run;
    old["diagnostics"].erase("series");
    CHECK_THROWS_WITH(st::load_runs(write("old.jsonl", old.dump() + "\n")),
                      Catch::Contains("no diagnostics series"));
    auto missing = run;
    missing.erase("lr");
    CHECK_THROWS_WITH(st::load_runs(write("missing.jsonl", missing.dump() + "\n")),
                      Catch::Contains("line 1") && Catch::Contains("'lr'"));
    auto ragged = run;
    ragged["diagnostics"]["series"]["probe_grad_rms"] = { 0.1 };
    CHECK_THROWS_WITH(st::load_runs(write("ragged.jsonl", ragged.dump() + "\n")), Catch::Contains("ragged"));
    CHECK_THROWS_WITH(st::load_runs(dir / "absent.jsonl"), Catch::Contains("cannot open"));
    CHECK_THROWS_WITH(st::select_runs(runs, "qk_ln"), Catch::Contains("has: no_qk"));
    CHECK(st::select_runs(runs, "").size() == 1);
}

TEST_CASE("the loss-degradation divergence criterion relabels runs by ℓ* + margin and a reference loss",
          "[study][predict][divergence]")
{
    // One group (size d64) over 5 LRs, final losses 2.0 (ℓ*), 2.05, 2.2, 3.0 and a NaN-diverged run; a
    // second group (size d32) whose ℓ* is 2.5: groups get their own ℓ*.
    const auto run = [](std::string size, double lr, double loss, double logit, bool nan = false)
    {
        auto r = make_run(1, lr, logit, nan, 50);
        r.size = std::move(size);
        r.final_val_loss = nan ? NAN : loss;
        return r;
    };
    const std::vector<st::run_observation> runs = {
        run("d64", 1e-3, 2.05, 10), run("d64", 1e-2, 2.0, 20),  run("d64", 3e-2, 2.2, 300),
        run("d64", 1e-1, 3.0, 900), run("d64", 3e-1, 0, 5000, true), run("d32", 1e-2, 2.5, 15),
        run("d32", 1e-1, 2.58, 40)
    };
    // Under the numerical criterion only the NaN run diverged, and it has no reading at step 100.
    auto c0 = st::calibrate_threshold(runs, 100);
    CHECK(c0.diverged == 0);
    CHECK_FALSE(c0.separable);

    st::divergence_criterion crit; // margin 0.1
    const auto relabelled = st::apply_divergence_criterion(runs, crit);
    std::vector<bool> got;
    for (const auto& r : relabelled)
        got.push_back(r.diverged);
    CHECK(got == std::vector<bool>{ false, false, true, true, true, false, false });
    CHECK(relabelled[2].final_val_loss == 2.2); // nothing else changes
    CHECK(relabelled[2].max_logit_l0 == runs[2].max_logit_l0);

    // The margin is strict: a loss of exactly ℓ* + margin (2.0 = 1.75 + 0.25, exact in binary) is not
    // diverged, one above it is; a tighter margin catches 2.05.
    CHECK_FALSE(st::loss_diverged(runs[1], 1.75, st::divergence_criterion{ .margin = 0.25 }));
    CHECK(st::loss_diverged(runs[0], 1.75, st::divergence_criterion{ .margin = 0.25 }));
    crit.margin = 0.04;
    CHECK(st::apply_divergence_criterion(runs, crit)[0].diverged);

    // A reference (the bigram baseline's loss) is a ceiling on its own: 2.58 > 2.55 with a huge margin.
    st::divergence_criterion ref{ .margin = 10.0, .reference = 2.55 };
    const auto by_ref = st::apply_divergence_criterion(runs, ref);
    CHECK(by_ref[6].diverged);
    CHECK_FALSE(by_ref[5].diverged);
    CHECK(by_ref[3].diverged);  // 3.0 > 2.55
    CHECK(by_ref[4].diverged);  // NaN stays diverged
    CHECK_FALSE(by_ref[1].diverged);

    // Claim 20's threshold rule on the relabelled runs: readings at step 100 now separate.
    const auto c1 = st::calibrate_threshold(relabelled, 100);
    CHECK(c1.diverged == 2);
    CHECK(c1.survived == 4);
    CHECK(c1.max_survived == Approx(40));
    CHECK(c1.min_diverged == Approx(300));
    CHECK(c1.separable);
    CHECK(c1.threshold == Approx(std::sqrt(40.0 * 300.0)));

    CHECK_THROWS_WITH(st::apply_divergence_criterion(runs, st::divergence_criterion{ .margin = -1 }),
                      Catch::Contains("ballast: apply_divergence_criterion: margin"));
}
