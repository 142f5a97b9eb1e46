// The results file's schema: a run record survives run_line → text → parse_run_line field for field
// (non-finite losses as null, read back as NaN); load_results reads the study line and the run lines and
// repairs a torn last line; the diagnostics summary of a run matches hand-computed means.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <ballast/core/file.hpp>
#include <ballast/study/results.hpp>

#include "support/temp_dir.hpp"

namespace
{
    namespace st = ballast::study;

    st::run_record a_record()
    {
        st::run_record rec;
        auto& s = rec.spec;
        s.recipe = 1;
        s.recipe_name = "qk_ln+zloss";
        s.optimizer = "adamw";
        s.size = { 32, 2, 4 };
        s.lr = 3e-3;
        s.warmup = 5;
        s.steps = 40;
        s.weight_decay = 1e-4;
        s.eps = 1e-8;
        rec.params = 12345;
        rec.params_non_embedding = 6789;
        rec.result.l0 = 5.545177444479562;
        rec.result.final_val_loss = 2.0 / 3.0;
        rec.result.best_val_loss = std::numeric_limits<double>::infinity();
        rec.result.diverged = true;
        rec.result.diverged_step = 17;
        rec.result.diverged_reason = "non-finite gradient norm";
        rec.result.evals = { { 0, 5.5 }, { 10, 4.25 } };
        rec.result.train_seconds = 1.5;
        rec.wall_seconds = 2.25;
        rec.diagnostics = { { "max_attn_logit", 12.5 } };
        return rec;
    }

    std::string text_of(const std::filesystem::path& p)
    {
        std::ifstream in(p, std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }
} // namespace

TEST_CASE("a run record round-trips through its run line, field for field", "[study][results]")
{
    const auto rec = a_record();
    ballast::model_config m;
    m.d_model = 32;
    ballast::train_config t;
    t.metrics_path = "runs/x.jsonl"; // run control: not part of the recorded config
    ballast::optimizer_config o;
    const auto line = st::run_line(rec, m, t, o, "runs/key.jsonl");
    CHECK(line["type"] == "run");
    CHECK(line["key"] == rec.spec.key());
    CHECK(line["size"] == "d32_L2_H4");
    CHECK(line["best_val_loss"].is_null()); // infinite
    CHECK(line["metrics"] == "runs/key.jsonl");
    CHECK(line["config"]["model"] == ballast::to_json(m));
    CHECK(line["config"]["train"] == ballast::identity_json(t));
    CHECK_FALSE(line["config"]["train"].contains("metrics_path"));
    CHECK(line["config"]["optimizer"] == ballast::to_json(o));

    const auto back = st::parse_run_line(nlohmann::json::parse(line.dump()));
    CHECK(back.spec.key() == rec.spec.key());
    CHECK(back.spec.recipe_name == rec.spec.recipe_name);
    CHECK(back.spec.optimizer == rec.spec.optimizer);
    CHECK(back.spec.size.label() == "d32_L2_H4");
    CHECK(back.spec.lr == rec.spec.lr);
    CHECK(back.spec.warmup == 5);
    CHECK(back.spec.steps == 40);
    CHECK(back.spec.weight_decay == rec.spec.weight_decay);
    CHECK(back.spec.eps == rec.spec.eps);
    CHECK(back.spec.recipe == 0); // the file does not know the recipe tuple
    CHECK(back.params == 12345);
    CHECK(back.params_non_embedding == 6789);
    CHECK(back.result.policy_set == "qk_ln+zloss");
    CHECK(back.result.optimizer == "adamw");
    CHECK(back.result.l0 == rec.result.l0);
    CHECK(back.result.final_val_loss == rec.result.final_val_loss);
    CHECK(std::isnan(back.result.best_val_loss)); // null reads as NaN
    CHECK(back.result.diverged);
    CHECK(back.result.diverged_step == 17);
    CHECK(back.result.diverged_reason == "non-finite gradient norm");
    CHECK(back.result.steps_done == 40);
    CHECK(back.wall_seconds == 2.25);
    CHECK(back.diagnostics == rec.diagnostics);
    CHECK(back.line == line);
    // The line again from the record read back is the same line (the schema is closed).
    auto again = back;
    again.result.best_val_loss = rec.result.best_val_loss;
    again.result.evals = rec.result.evals;
    again.result.train_seconds = rec.result.train_seconds;
    CHECK(st::run_line(again, m, t, o, "runs/key.jsonl") == line);
}

TEST_CASE("a results file: a study line, run lines appended, a torn last line repaired", "[study][results]")
{
    ballast::test::temp_dir dir("results");
    const auto path = dir / "results.jsonl";
    CHECK(st::load_results(path).study.is_null()); // missing: nothing yet
    const nlohmann::json id = { { "study", { { "lrs", { 0.01 } } } } };
    st::start_results(path, "tiny", id);
    auto rec = a_record();
    rec.line = st::run_line(rec, {}, {}, {}, "");
    st::append_run(path, rec);
    // Not a run line: skipped. (Written as the library writes lines, since a repair rewrites every line so.)
    ballast::append_line(path, nlohmann::json{ { "type", "note" }, { "key", "not a run" } }.dump());
    rec.spec.lr = 1e-2;
    rec.line = st::run_line(rec, {}, {}, {}, "");
    st::append_run(path, rec);
    const std::string whole = text_of(path);
    { // a crash tore the next append
        std::ofstream(path, std::ios::app) << R"({"type": "run", "key": "x)";
    }
    const auto file = st::load_results(path);
    CHECK(file.study == st::study_line("tiny", id));
    CHECK(file.study["name"] == "tiny");
    REQUIRE(file.runs.size() == 2);
    CHECK(file.runs[0]["lr"] == 3e-3);
    CHECK(file.runs[1]["key"] == rec.spec.key());
    CHECK(text_of(path) == whole); // the torn line is gone and the file ends with a newline
}

TEST_CASE("a results file that does not start with a study line is refused", "[study][results]")
{
    ballast::test::temp_dir dir("results_bad");
    const auto path = dir / "results.jsonl";
    ballast::append_line(path, R"({"type": "run", "key": "a"})");
    CHECK_THROWS_WITH(st::load_results(path), Catch::Contains("does not start with a study line"));
}

TEST_CASE("a run's diagnostics summary: max logit, tail means over the last 10% of steps, last step",
          "[study][results]")
{
    ballast::run_result r;
    // Recorded every 2 steps of 100; the tail is the steps after 90: 92, 94, 96, 98, 100.
    for (std::size_t step = 2; step <= 100; step += 2)
    {
        const double s = static_cast<double>(step);
        r.diag_history.push_back({ step, s / 2, s / 4, s / 4, s / 8 });
    }
    r.diag_history[10].max_attn_logit_l0 = std::nan("");
    r.last_diagnostics = { { "log_z_mean", -1.5 },
                           { "log_z_std", 0.5 },
                           { "log_z_min", -3.0 },
                           { "logit_mean", 0.25 },
                           { "layers",
                             { { { "max_logit", 4.0 }, { "residual_rms", 1.25 } }, { { "max_logit", nullptr } } } },
                           { "tensors",
                             { { "a", { { "grad_rms", 1.0 }, { "update_rms", 3.0 } } },
                               { "b", { { "grad_rms", 2.0 }, { "update_rms", nullptr } } } } } };
    r.warnings.push_back({ "log_z_drift", 40, -11.0, -10.0, "" });
    const auto d = st::run_diagnostics(r, 100);
    CHECK(d["max_attn_logit"] == 50.0);
    CHECK(d["max_attn_logit_history"].size() == 50);
    CHECK(d["max_attn_logit_history"][0] == nlohmann::json{ 2, 1.0 });
    CHECK(d["series"]["step"].size() == 50);
    CHECK(d["series"]["max_attn_logit_l0"][10].is_null());
    CHECK(d["series"]["probe_update_rms"][49] == 12.5);
    CHECK(d["probe_tensor"] == ballast::probe_tensor);
    // (92 + 94 + 96 + 98 + 100) / 5 = 96; grad = step / 4 → 24, update = step / 8 → 12.
    CHECK(d["probe_grad_rms_tail"] == 24.0);
    CHECK(d["probe_update_rms_tail"] == 12.0);
    CHECK(d["warnings"].size() == 1);
    CHECK(d["warnings"][0]["rule"] == "log_z_drift");
    CHECK(d["last_step"] == 100);
    CHECK(d["log_z_mean"] == -1.5);
    CHECK(d["logit_mean"] == 0.25);
    CHECK(d["max_attn_logit_by_layer"] == nlohmann::json{ 4.0, nullptr });
    CHECK(d["residual_rms_by_layer"] == nlohmann::json{ 1.25, nullptr });
    CHECK(d["qk_cos_mean_by_layer"] == nlohmann::json{ nullptr, nullptr });
    CHECK(d["grad_rms"] == 1.5);   // mean over both tensors
    CHECK(d["update_rms"] == 3.0); // the null one is left out
    // A diverged run has no tail (its last steps are not a steady state).
    r.diverged = true;
    const auto dd = st::run_diagnostics(r, 100);
    CHECK(dd["probe_grad_rms_tail"].is_null());
    CHECK(dd["probe_update_rms_tail"].is_null());
    // Without recorded diagnostics: no history, no last-step fields.
    const auto none = st::run_diagnostics({}, 100);
    CHECK(none["max_attn_logit"].is_null()); // -inf
    CHECK(none["max_attn_logit_history"].empty());
    CHECK_FALSE(none.contains("last_step"));
}

TEST_CASE("non_embedding_params leaves out the token and position tables and the head", "[study][results]")
{
    ballast::param_layout l;
    using ballast::policies::param_role;
    for (const auto& [name, role, n] : { std::tuple{ "tok", param_role::embedding, std::size_t{ 10 } },
                                         std::tuple{ "pos", param_role::position, std::size_t{ 7 } },
                                         std::tuple{ "w", param_role::matrix, std::size_t{ 12 } },
                                         std::tuple{ "g", param_role::scale, std::size_t{ 3 } },
                                         std::tuple{ "head", param_role::head, std::size_t{ 10 } } })
    {
        ballast::param_entry e;
        e.name = name;
        e.role = role;
        e.shape = { n };
        l.add(e, 1);
    }
    CHECK(l.count() == 42);
    CHECK(st::non_embedding_params(l) == 15);
}

TEST_CASE("a run line with a wrongly typed field is refused naming the file, the run and the field",
          "[study][results]")
{
    // Type errors, not nlohmann's type_error (which names nothing): every field parse_run_line reads.
    for (const char* bad : { R"({"type":"run","key":"k1","steps":"ten"})", R"({"type":"run","key":"k1","diverged":1})",
                             R"({"type":"run","key":"k1","policy_set":3})", R"({"type":"run","key":"k1","diagnostics":[1]})",
                             R"({"type":"run","key":"k1","d_model":-16})" })
    {
        const auto j = nlohmann::json::parse(bad);
        CHECK_THROWS_WITH(st::parse_run_line(j, "runs/x/results.jsonl"),
                          Catch::StartsWith("ballast: study: 'runs/x/results.jsonl', run 'k1': run line: field '"));
    }
    // A "type" that is not a string is simply not a run line.
    ballast::test::temp_dir dir("results_types");
    const auto path = dir / "results.jsonl";
    ballast::append_line(path, R"({"type":"study","config":{}})");
    ballast::append_line(path, R"({"type":0,"key":"a"})");
    CHECK(st::load_results(path).runs.empty());
}
