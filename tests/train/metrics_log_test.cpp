// The metrics log: its lines follow the documented schema with non-finite numbers as null, a resumed log
// keeps exactly the lines up to the checkpoint's step, and the forward-pass part of a "diag" object holds
// the hand-made statistics it was given.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <ballast/core/jsonl.hpp>
#include <ballast/train/metrics_log.hpp>

#include "support/temp_dir.hpp"

namespace
{
    ballast::step_info a_step(std::size_t step, double loss)
    {
        ballast::step_info s;
        s.step = step;
        s.steps = 10;
        s.lr = 0.01;
        s.loss = { loss, loss - 0.25, 0.25 };
        s.grad_norm = 1.5;
        s.clip = 0.5;
        s.tokens_per_second = 100;
        return s;
    }
} // namespace

TEST_CASE("a step line counts steps from 1 and writes a non-finite loss as null", "[train][metrics]")
{
    const auto j = ballast::step_line(a_step(4, std::nan("")));
    CHECK(j["type"] == "step");
    CHECK(j["step"] == 5);
    CHECK(j["lr"] == 0.01);
    CHECK(j["loss"].is_null());
    CHECK(j["ce"].is_null());
    CHECK(j["zloss"] == 0.25);
    CHECK(j["grad_norm"] == 1.5);
    CHECK(j["clip"] == 0.5);
    CHECK(j["tokens_per_s"] == 100);
    CHECK_FALSE(j.contains("max_attn_logit")); // no diagnostics on this step
    const auto e = ballast::eval_line(8, { 3.5, 3.0, std::numeric_limits<double>::infinity() });
    CHECK(e == nlohmann::json{ { "type", "eval" },
                               { "step", 8 },
                               { "val_loss", 3.5 },
                               { "val_ce", 3.0 },
                               { "val_zloss", nullptr } });
}

TEST_CASE("a recorded step gets its headline signals inline and a diag line after it", "[train][metrics]")
{
    ballast::test::temp_dir dir("metrics_log");
    const ballast::metrics_log log(dir / "m.jsonl");
    log.start({ { "type", "header" } });
    const nlohmann::json diag = { { "max_attn_logit", 12.5 },
                                  { "log_z_mean", -0.5 },
                                  { "layers", { 1, 2 } } };
    auto s = a_step(9, 2.0);
    s.diagnostics = &diag;
    log.step(s);
    log.step(a_step(10, 1.5)); // not recorded: a step line only
    const auto lines = ballast::read_jsonl(log.path(), false);
    REQUIRE(lines.size() == 4);
    CHECK(lines[0]["type"] == "header");
    CHECK(lines[1]["type"] == "step");
    CHECK(lines[1]["max_attn_logit"] == 12.5);
    CHECK(lines[1]["log_z_mean"] == -0.5);
    CHECK_FALSE(lines[1].contains("layers"));
    CHECK(lines[2]["type"] == "diag");
    CHECK(lines[2]["step"] == 10);
    CHECK(lines[2]["layers"] == nlohmann::json{ 1, 2 });
    CHECK(lines[3]["step"] == 11);
}

TEST_CASE("the end line says how the run ended", "[train][metrics]")
{
    ballast::run_result r;
    r.steps_done = 7;
    r.diverged = true;
    r.diverged_step = 6;
    r.diverged_reason = "non-finite training loss";
    r.l0 = 5.5;
    r.final_val_loss = 5.5;
    r.best_val_loss = 4.0;
    const auto j = ballast::end_line(r);
    CHECK(j["type"] == "end");
    CHECK(j["step"] == 7);
    CHECK(j["diverged"] == true);
    CHECK(j["diverged_step"] == 6);
    CHECK(j["reason"] == "non-finite training loss");
    CHECK(j["interrupted"] == false);
    CHECK(j["l0"] == 5.5);
    CHECK(j["best_val_loss"] == 4.0);
    CHECK(j.contains("train_seconds"));
}

TEST_CASE("a resumed log keeps the lines up to the step, drops later ones and the end, notes the resume",
          "[train][metrics]")
{
    ballast::test::temp_dir dir("metrics_resume");
    const ballast::metrics_log log(dir / "m.jsonl");
    const nlohmann::json header = { { "type", "header" }, { "step", 99 } }; // a header is never dropped
    log.start(header);
    log.eval(0, { 5, 5, 0 });
    for (std::size_t t = 0; t < 6; ++t)
    {
        log.step(a_step(t, 3.0));
    }
    log.eval(4, { 4, 4, 0 });
    log.eval(6, { 3, 3, 0 });
    log.end({});
    { // a crash tore a last line
        std::ofstream(log.path(), std::ios::app) << R"({"type": "step", "st)";
    }
    log.resume({ { "type", "header" }, { "fresh", true } }, 4, 2);
    const auto lines = ballast::read_jsonl(log.path(), false);
    std::vector<std::string> kinds;
    for (const auto& j : lines)
    {
        kinds.push_back(j["type"].get<std::string>() + (j.contains("step") ? " " + j["step"].dump() : ""));
    }
    CHECK(kinds == std::vector<std::string>{ "header 99", "eval 0", "step 1", "step 2", "step 3", "step 4",
                                             "eval 4", "resume 4" });
    CHECK(lines.front() == header); // the old header is kept, not replaced
    CHECK(lines.back()["threads"] == 2);

    // Nothing to keep (the log is gone): the new header starts it.
    std::filesystem::remove(log.path());
    log.resume({ { "type", "header" }, { "fresh", true } }, 4, 1);
    const auto again = ballast::read_jsonl(log.path(), false);
    REQUIRE(again.size() == 2);
    CHECK(again[0]["fresh"] == true);
    CHECK(again[1]["type"] == "resume");
}

TEST_CASE("a log without a path writes nothing", "[train][metrics]")
{
    ballast::test::temp_dir dir("metrics_off");
    const ballast::metrics_log off;
    CHECK_FALSE(off.enabled());
    off.start({ { "type", "header" } });
    off.step(a_step(0, 1.0));
    off.end({});
    CHECK(std::filesystem::is_empty(dir.path()));
}

TEST_CASE("the forward-pass diagnostics hold the statistics given, NaN as null", "[train][metrics]")
{
    ballast::diagnostics::forward_stats f;
    f.valid = true;
    ballast::diagnostics::layer_stats a, b;
    a.max_logit = 3.0;
    a.max_logit_head = { 1.0, 3.0 };
    a.entropy_min = 0.5;
    a.entropy_mean = 1.0;
    a.q_norm_mean = 2.0;
    a.k_norm_mean = 4.0;
    a.qk_cos_mean = 0.25;
    a.residual_rms = 1.5;
    b = a;
    b.max_logit = 7.0;
    b.max_logit_head = { 7.0, std::nan("") };
    f.layers = { a, b };
    f.log_z_mean = -1.0;
    f.log_z_std = 0.5;
    f.log_z_min = -2.0;
    f.logit_mean = 0.125;
    CHECK(ballast::max_attn_logit(f) == 7.0);
    nlohmann::json diag = { { "tensors", nlohmann::json::object() } };
    ballast::add_forward_diagnostics(diag, f);
    CHECK(diag["tensors"].is_object()); // left alone
    CHECK(diag["max_attn_logit"] == 7.0);
    CHECK(diag["log_z_mean"] == -1.0);
    CHECK(diag["log_z_std"] == 0.5);
    CHECK(diag["log_z_min"] == -2.0);
    CHECK(diag["logit_mean"] == 0.125);
    REQUIRE(diag["layers"].size() == 2);
    CHECK(diag["layers"][0] == nlohmann::json{ { "max_logit", 3.0 },
                                               { "max_logit_head", { 1.0, 3.0 } },
                                               { "entropy_min", 0.5 },
                                               { "entropy_mean", 1.0 },
                                               { "q_norm_mean", 2.0 },
                                               { "k_norm_mean", 4.0 },
                                               { "qk_cos_mean", 0.25 },
                                               { "residual_rms", 1.5 } });
    CHECK(diag["layers"][1]["max_logit_head"][1].is_null());
    // One NaN layer makes the max NaN (a divergence must not hide behind a finite layer), written as null.
    f.layers[0].max_logit = std::nan("");
    CHECK(std::isnan(ballast::max_attn_logit(f)));
    ballast::add_forward_diagnostics(diag, f);
    CHECK(diag["max_attn_logit"].is_null());
    CHECK(ballast::max_attn_logit({}) == -std::numeric_limits<double>::infinity());
}
