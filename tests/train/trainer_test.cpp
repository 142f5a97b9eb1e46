// The trainer: it learns, it survives divergence, it stops cleanly on a signal, it resumes bit-identically,
// it refuses a corrupt or foreign checkpoint, and its metrics log follows the documented schema.
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <ballast/core/file.hpp>
#include <ballast/policies/policy_set.hpp>
#include <ballast/train/trainer.hpp>

#include "support/temp_dir.hpp"

namespace
{
    using ballast::model_config;
    using ballast::optimizer_config;
    using ballast::token_splits;
    using ballast::train_config;
    using trainer_t = ballast::trainer<ballast::paper_default, ballast::optim::adamw<>, float>;

    model_config tiny_model()
    {
        model_config m;
        m.vocab = 256;
        m.d_model = 16;
        m.n_layers = 1;
        m.n_heads = 2;
        m.context = 16;
        return m;
    }

    train_config tiny_run(std::size_t steps)
    {
        train_config t;
        t.steps = steps;
        t.batch = 4;
        t.seq = 16;
        t.lr = 1e-2;
        t.warmup = 2;
        t.eval_interval = 4;
        t.eval_batches = 2;
        t.log_interval = 1;
        return t;
    }

    /// Real English text (the repository's README), byte-level.
    const token_splits& readme_splits()
    {
        static const token_splits s(
          ballast::load_corpus(std::filesystem::path(BALLAST_SOURCE_DIR) / "README.md"), 256, 0.1, 16,
          "README.md");
        return s;
    }

    /// Stops the run after `at` steps (as a user's callback would).
    struct stop_after
    {
        std::size_t at;
        ballast::callback_action on_step_end(const ballast::step_info& s) const
        {
            return s.step + 1 == at ? ballast::callback_action::stop : ballast::callback_action::proceed;
        }
    };

    bool same_bytes(std::span<const float> a, std::span<const float> b)
    {
        return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
    }
} // namespace

TEST_CASE("the trainer lowers the validation loss on real text and records l0", "[train][trainer]")
{
    auto cfg = tiny_run(60);
    cfg.lr = 3e-2;
    trainer_t tr(tiny_model(), cfg, optimizer_config{}, readme_splits());
    std::size_t evals = 0, steps = 0;
    struct counter
    {
        std::size_t *evals, *steps;
        void on_eval(const ballast::eval_info&) const { ++*evals; }
        void on_step_end(const ballast::step_info&) const { ++*steps; }
    };
    const auto r = tr.run(counter{ &evals, &steps });
    CHECK_FALSE(r.diverged);
    CHECK_FALSE(r.interrupted);
    CHECK(r.steps_done == 60);
    CHECK(steps == 60);
    CHECK(evals == 1 + 60 / 4); // at initialisation, then every 4 steps (the last is step 60)
    // A fresh model guesses nearly uniformly: ℓ0 ≈ ln V plus about half the variance of its initial logits.
    CHECK(r.l0 > std::log(256.0));
    CHECK(r.l0 < std::log(256.0) + 1.0);
    CHECK(r.final_val_loss < r.l0 - 1.0);
    CHECK(r.best_val_loss <= r.final_val_loss);
    CHECK(r.evals.front().first == 0);
    CHECK(r.evals.back().first == 60);
    CHECK(r.policy_set == "paper_default");
    CHECK(r.optimizer == "adamw");
}

TEST_CASE("N steps straight equal k steps, a checkpoint, a resume and N-k steps, byte for byte",
          "[train][trainer][checkpoint]")
{
    ballast::test::temp_dir dir("resume");
    const std::size_t n = 13;

    auto straight_cfg = tiny_run(n);
    straight_cfg.metrics_path = (dir / "straight.jsonl").string();
    trainer_t straight(tiny_model(), straight_cfg, optimizer_config{}, readme_splits());
    const auto r1 = straight.run();

    // Interrupted after 5 steps (a callback's stop checkpoints like a signal), then resumed by a fresh
    // trainer with a different thread count.
    auto cfg = tiny_run(n);
    cfg.checkpoint_dir = (dir / "ck").string();
    cfg.metrics_path = (dir / "resumed.jsonl").string();
    cfg.threads = 1;
    {
        trainer_t first(tiny_model(), cfg, optimizer_config{}, readme_splits());
        const auto r = first.run(stop_after{ 5 });
        CHECK(r.interrupted);
        CHECK(r.steps_done == 5);
    }
    REQUIRE(ballast::has_checkpoint(cfg.checkpoint_dir));
    cfg.threads = 2; // run control: allowed to differ
    trainer_t second(tiny_model(), cfg, optimizer_config{}, readme_splits());
    second.resume(cfg.checkpoint_dir);
    CHECK(second.step() == 5);
    const auto r2 = second.run();

    CHECK(same_bytes(straight.model().parameters(), second.model().parameters()));
    CHECK(same_bytes(straight.opt().state(0), second.opt().state(0)));
    CHECK(same_bytes(straight.opt().state(1), second.opt().state(1)));
    CHECK(r1.final_val_loss == r2.final_val_loss);
    CHECK(r1.evals == r2.evals);
    CHECK(r1.l0 == r2.l0);

    // The resumed log holds every step exactly once, with the same losses as the straight one.
    const auto steps_of = [](const std::vector<nlohmann::json>& lines)
    {
        std::vector<std::pair<std::size_t, double>> out;
        for (const auto& j : lines)
        {
            if (j["type"] == "step")
            {
                out.emplace_back(j["step"].get<std::size_t>(), j["loss"].get<double>());
            }
        }
        return out;
    };
    const auto a = steps_of(ballast::read_jsonl(straight_cfg.metrics_path, false)),
               b = steps_of(ballast::read_jsonl(cfg.metrics_path, false));
    CHECK(a.size() == n);
    CHECK(a == b);
}

TEST_CASE("SIGINT during a run checkpoints and stops cleanly", "[train][trainer][checkpoint]")
{
    ballast::test::temp_dir dir("sigint");
    auto cfg = tiny_run(20);
    cfg.checkpoint_dir = (dir / "ck").string();
    cfg.handle_signals = true;
    trainer_t tr(tiny_model(), cfg, optimizer_config{}, readme_splits());
    const auto before = std::signal(SIGINT, SIG_DFL); // whatever the test runner installed
    std::signal(SIGINT, before);
    struct interrupt_at_3
    {
        void on_step_end(const ballast::step_info& s) const
        {
            if (s.step == 2)
            {
                std::raise(SIGINT); // handled by the trainer: sets a flag, nothing else
            }
        }
    };
    const auto r = tr.run(interrupt_at_3{});
    CHECK(r.interrupted);
    CHECK(r.steps_done == 3);
    REQUIRE(ballast::has_checkpoint(cfg.checkpoint_dir));
    CHECK(ballast::read_checkpoint(cfg.checkpoint_dir).manifest["step"] == 3);
    CHECK(std::signal(SIGINT, before) == before); // the previous handler is restored
    // A later run that does not handle signals is not stopped by the old one.
    auto plain = tiny_run(5);
    trainer_t tr2(tiny_model(), plain, optimizer_config{}, readme_splits());
    CHECK(tr2.run().steps_done == 5);
}

TEST_CASE("divergence ends the run cleanly, recorded with its step and reason",
          "[train][trainer][divergence]")
{
    ballast::test::temp_dir dir("diverge");
    SECTION("a NaN weight makes the next loss non-finite")
    {
        auto cfg = tiny_run(20);
        cfg.metrics_path = (dir / "m.jsonl").string();
        trainer_t tr(tiny_model(), cfg, optimizer_config{}, readme_splits());
        struct poison
        {
            trainer_t* tr;
            void on_step_end(const ballast::step_info& s) const
            {
                if (s.step == 6)
                {
                    // The last tensor (the output head or final norm) feeds every token's loss.
                    const auto& e = tr->model().layout().entries().back();
                    tr->model().parameters()[e.offset] = std::numeric_limits<float>::quiet_NaN();
                }
            }
        };
        const auto r = tr.run(poison{ &tr });
        CHECK(r.diverged);
        CHECK(r.diverged_step == 7);
        CHECK(r.diverged_reason == "non-finite training loss");
        CHECK(r.final_val_loss == r.l0); // counted as l0 by the LR-sensitivity metric
        const auto lines = ballast::read_jsonl(cfg.metrics_path, false);
        REQUIRE(lines.back()["type"] == "end");
        CHECK(lines.back()["diverged"] == true);
        CHECK(lines.back()["diverged_step"] == 7);
    }
    SECTION("a loss above the bound")
    {
        auto cfg = tiny_run(30);
        cfg.lr = 1e3; // absurd: the loss explodes within a few steps
        cfg.divergence_factor = 1.5;
        optimizer_config oc;
        oc.clip = 0;
        trainer_t tr(tiny_model(), cfg, oc, readme_splits());
        const auto r = tr.run();
        CHECK(r.diverged);
        CHECK(r.diverged_step < 30);
        CHECK_FALSE(r.diverged_reason.empty());
    }
}

TEST_CASE("a corrupt, truncated or foreign checkpoint is refused and the trainer is left untouched",
          "[train][trainer][checkpoint]")
{
    ballast::test::temp_dir dir("corrupt");
    auto cfg = tiny_run(6);
    cfg.checkpoint_dir = (dir / "ck").string();
    trainer_t tr(tiny_model(), cfg, optimizer_config{}, readme_splits());
    tr.run();
    const auto ck = std::filesystem::path(cfg.checkpoint_dir);
    const auto manifest = ballast::read_checkpoint(ck).manifest;
    const auto tensors = ck / manifest["tensors"]["file"].get<std::string>();
    const auto good_tensors = ballast::read_file(tensors);
    const auto good_manifest = ballast::read_file(ck / "checkpoint.json");

    trainer_t fresh(tiny_model(), cfg, optimizer_config{}, readme_splits());
    const std::vector<float> before(fresh.model().parameters().begin(), fresh.model().parameters().end());
    const auto untouched = [&]
    { return same_bytes(before, fresh.model().parameters()) && fresh.step() == 0; };

    SECTION("a flipped byte")
    {
        auto bytes = good_tensors;
        bytes[bytes.size() / 2] ^= std::byte{ 0x40 };
        ballast::write_file_atomic(tensors, bytes);
        CHECK_THROWS_WITH(fresh.resume(ck), Catch::Contains("corrupt"));
    }
    SECTION("a truncated tensor file")
    {
        ballast::write_file_atomic(tensors, std::span(good_tensors).first(good_tensors.size() - 100));
        CHECK_THROWS_WITH(fresh.resume(ck), Catch::Contains("truncated"));
    }
    SECTION("a torn manifest")
    {
        ballast::write_file_atomic(ck / "checkpoint.json",
                                   std::span(good_manifest).first(good_manifest.size() / 2));
        CHECK_THROWS_WITH(fresh.resume(ck), Catch::Contains("not valid JSON"));
    }
    SECTION("a missing directory")
    {
        CHECK_THROWS_WITH(fresh.resume(dir / "nope"), Catch::Contains("cannot open"));
    }
    SECTION("another run's checkpoint (different LR and width)")
    {
        auto other_cfg = cfg;
        other_cfg.lr = 2e-2;
        trainer_t other(tiny_model(), other_cfg, optimizer_config{}, readme_splits());
        CHECK_THROWS_WITH(other.resume(ck), Catch::Contains("different run") && Catch::Contains("lr"));
        auto wide = tiny_model();
        wide.d_model = 32;
        trainer_t other2(wide, cfg, optimizer_config{}, readme_splits());
        CHECK_THROWS_WITH(other2.resume(ck), Catch::Contains("d_model"));
    }
    SECTION("another policy set's checkpoint")
    {
        ballast::trainer<ballast::paper_baseline, ballast::optim::adamw<>, float> other(
          tiny_model(), cfg, optimizer_config{}, readme_splits());
        CHECK_THROWS_WITH(other.resume(ck), Catch::Contains("policy_set"));
    }
    CHECK(untouched());
}

TEST_CASE("checkpoint writes are crash-safe: the manifest always names a complete tensor file",
          "[train][checkpoint]")
{
    ballast::test::temp_dir dir("atomic");
    auto cfg = tiny_run(8);
    cfg.checkpoint_dir = (dir / "ck").string();
    cfg.checkpoint_interval = 3;
    trainer_t tr(tiny_model(), cfg, optimizer_config{}, readme_splits());
    tr.run();
    // Checkpoints at 3, 6 and the end (8); only the newest tensor file is kept, and no temporary remains
    // (the run's lock file stays, by design: core/lock.hpp).
    std::set<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(cfg.checkpoint_dir))
    {
        files.insert(e.path().filename().string());
    }
    CHECK(files == std::set<std::string>{ ".lock", "checkpoint.json", "tensors-000000008.safetensors" });
    // A crash after a newer tensor file was written but before the manifest moved: the old pair still loads.
    const std::string junk = "half-written";
    ballast::write_file_atomic(std::filesystem::path(cfg.checkpoint_dir) / "tensors-000000011.safetensors",
                               std::as_bytes(std::span(junk)));
    trainer_t again(tiny_model(), cfg, optimizer_config{}, readme_splits());
    again.resume(cfg.checkpoint_dir);
    CHECK(again.step() == 8);
    CHECK(same_bytes(tr.model().parameters(), again.model().parameters()));
}

TEST_CASE("the metrics log: a header with every config value, then step, eval and end lines",
          "[train][metrics]")
{
    ballast::test::temp_dir dir("metrics");
    auto cfg = tiny_run(6);
    cfg.metrics_path = (dir / "m.jsonl").string();
    cfg.log_interval = 2;
    trainer_t tr(tiny_model(), cfg, optimizer_config{}, readme_splits());
    tr.run();
    const auto lines = ballast::read_jsonl(cfg.metrics_path, false);
    REQUIRE(lines.size() >= 3);
    const auto& h = lines.front();
    CHECK(h["type"] == "header");
    CHECK(h["policy_set"] == "paper_default");
    CHECK(h["optimizer"] == "adamw");
    // Reflected, not hand-listed: every field of every config is present under its own name.
    ballast::for_each_field(tr.model().config(), [&](std::string_view k, const auto&)
                            { CHECK(h["model"].contains(std::string(k))); });
    // ... except `microbatches` at its default 1, which is left out so that files and run identities stay
    // those of the runs before gradient accumulation existed (train_config.hpp).
    ballast::for_each_field(tr.config(),
                            [&](std::string_view k, const auto&)
                            {
                                if (k != "microbatches")
                                {
                                    CHECK(h["train"].contains(std::string(k)));
                                }
                            });
    CHECK_FALSE(h["train"].contains("microbatches"));
    ballast::for_each_field(tr.opt().config(), [&](std::string_view k, const auto&)
                            { CHECK(h["optimizer_config"].contains(std::string(k))); });
    CHECK(h["train"]["schedule"] == "cosine");
    std::size_t steps = 0, evals = 0;
    for (const auto& j : lines)
    {
        if (j["type"] == "step")
        {
            ++steps;
            for (const char* k : { "step", "lr", "loss", "ce", "zloss", "grad_norm", "clip", "tokens_per_s" })
            {
                CHECK(j.contains(k));
            }
            CHECK(j["zloss"].get<double>() > 0); // paper_default has z-loss
            CHECK(j["loss"].get<double>() == Approx(j["ce"].get<double>() + j["zloss"].get<double>()));
        }
        if (j["type"] == "eval")
        {
            ++evals;
        }
    }
    CHECK(steps == 3);
    CHECK(evals == 1 + 6 / 4 + 1); // l0, step 4, the end
    CHECK(lines.back()["type"] == "end");
    CHECK(lines.back()["diverged"] == false);
}

TEST_CASE("bad run settings are refused with a message", "[train][trainer]")
{
    auto cfg = tiny_run(10);
    cfg.seq = 32; // longer than the model's context of 16
    CHECK_THROWS_WITH(trainer_t(tiny_model(), cfg, optimizer_config{}, readme_splits()),
                      Catch::Contains("context"));
    cfg = tiny_run(10);
    cfg.warmup = 11;
    CHECK_THROWS_WITH(trainer_t(tiny_model(), cfg, optimizer_config{}, readme_splits()),
                      Catch::Contains("warmup"));
    cfg = tiny_run(10);
    cfg.seq = 8; // the data was split for 16
    CHECK_THROWS_WITH(trainer_t(tiny_model(), cfg, optimizer_config{}, readme_splits()),
                      Catch::Contains("split"));
}

TEST_CASE("sizes that overflow or cannot fit in memory are refused before anything is allocated",
          "[train][trainer]")
{
    // A model whose parameter count cannot be represented: refused by the config check, naming the sizes.
    auto wide = tiny_model();
    wide.d_model = std::size_t(1) << 32;
    wide.n_heads = 1;
    CHECK_THROWS_WITH(trainer_t(wide, tiny_run(10), optimizer_config{}, readme_splits()),
                      Catch::Contains("more than any machine holds"));
    // Activations that overflow: a batch of 2^62 sequences.
    auto huge = tiny_run(10);
    huge.batch = std::size_t(1) << 62;
    CHECK_THROWS_WITH(trainer_t(tiny_model(), huge, optimizer_config{}, readme_splits()),
                      Catch::Contains("activations of about"));
    // Representable, but more than this machine has: "needs X GiB, Y GiB available".
    const auto avail = ballast::available_memory_bytes();
    if (avail)
    {
        auto big = tiny_run(10);
        // Each sequence of 16 tokens takes > 2 · 16 · 256 floats of logits alone: ask for 4× the memory.
        big.batch = static_cast<std::size_t>(*avail / (16 * 256 * 8)) * 4 + 1;
        CHECK_THROWS_WITH(trainer_t(tiny_model(), big, optimizer_config{}, readme_splits()),
                          Catch::Matches(".*memory: the run \\(parameters, gradients, optimizer state and "
                                         "activations\\) needs [0-9.]+ GiB, [0-9.]+ GiB available"));
    }
    // The estimate covers what the run allocates: parameters, gradients, two AdamW moments, activations.
    trainer_t tr(tiny_model(), tiny_run(10), optimizer_config{}, readme_splits());
    const auto m = trainer_t::model_type::estimate_memory(tiny_model(), 4, 16,
                                                          static_cast<std::size_t>(ballast::num_threads()));
    CHECK(m.parameters == tr.model().layout().total());
    tr.run();
    CHECK(m.activations == tr.model().allocated_activation_elements()); // what the run allocated
}

namespace
{
    /// Asks for a stop at its `at`-th poll (the trainer polls before each validation batch), and counts.
    struct stop_at_poll
    {
        std::size_t at;
        mutable std::size_t polls = 0;
        bool stop_requested() const { return ++polls == at; }
    };

    /// The eval lines of a metrics log, as (step, val_ce).
    std::vector<std::pair<std::size_t, double>> eval_lines(const std::string& path)
    {
        std::vector<std::pair<std::size_t, double>> out;
        for (const auto& j : ballast::read_jsonl(path, false))
        {
            if (j["type"] == "eval")
            {
                out.emplace_back(j["step"].get<std::size_t>(), j["val_ce"].get<double>());
            }
        }
        return out;
    }
} // namespace

TEST_CASE("a stop inside an evaluation abandons it; the resumed run does it first and equals a straight run",
          "[train][trainer][checkpoint]")
{
    ballast::test::temp_dir dir("stop_eval");
    const std::size_t n = 12; // evaluations at 0, 4, 8, 12, two batches each
    auto straight_cfg = tiny_run(n);
    straight_cfg.metrics_path = (dir / "straight.jsonl").string();
    trainer_t straight(tiny_model(), straight_cfg, optimizer_config{}, readme_splits());
    const auto r1 = straight.run();
    REQUIRE(r1.evals.size() == 4);

    // Polls 1-2: l0; 3-4: step 4; 5: the first batch of step 8's evaluation; 6: before its second batch.
    // And poll 1: before l0's first batch. And the last evaluation (step 12).
    for (const std::size_t at : { std::size_t(6), std::size_t(1), std::size_t(8) })
    {
        DYNAMIC_SECTION("stop at poll " << at)
        {
            auto cfg = tiny_run(n);
            cfg.checkpoint_dir = (dir / ("ck" + std::to_string(at))).string();
            cfg.metrics_path = (dir / ("resumed" + std::to_string(at) + ".jsonl")).string();
            const std::size_t stopped_at = at == 6 ? 8 : at == 1 ? 0 : 12;
            {
                trainer_t first(tiny_model(), cfg, optimizer_config{}, readme_splits());
                const auto r = first.run(stop_at_poll{ at });
                CHECK(r.interrupted);
                CHECK(r.steps_done == stopped_at);
                // The abandoned evaluation is not recorded.
                CHECK(r.evals.size() == (at + 1) / 2 - 1);
                CHECK((r.evals.empty() || r.evals.back().first < stopped_at));
            }
            REQUIRE(ballast::has_checkpoint(cfg.checkpoint_dir));
            CHECK(ballast::read_checkpoint(cfg.checkpoint_dir).manifest["step"] == stopped_at);
            trainer_t second(tiny_model(), cfg, optimizer_config{}, readme_splits());
            second.resume(cfg.checkpoint_dir);
            const auto r2 = second.run();
            CHECK_FALSE(r2.interrupted);
            CHECK(same_bytes(straight.model().parameters(), second.model().parameters()));
            CHECK(r1.evals == r2.evals);
            CHECK(r1.l0 == r2.l0);
            CHECK(r1.best_val_loss == r2.best_val_loss);
            CHECK(r1.final_val_loss == r2.final_val_loss);
            CHECK(eval_lines(straight_cfg.metrics_path) == eval_lines(cfg.metrics_path));
        }
    }
}

TEST_CASE("SIGINT inside an evaluation is acted on before the next validation batch",
          "[train][trainer][checkpoint]")
{
    ballast::test::temp_dir dir("sigint_eval");
    auto cfg = tiny_run(8);
    cfg.eval_batches = 4;
    cfg.checkpoint_dir = (dir / "ck").string();
    cfg.handle_signals = true;
    struct sigint_in_eval
    {
        mutable std::size_t polls = 0;
        bool stop_requested() const
        {
            if (++polls == 6) // the second batch of step 4's evaluation
            {
                std::raise(SIGINT);
            }
            return false; // the trainer's own signal scope must see it
        }
    };
    sigint_in_eval cb;
    trainer_t tr(tiny_model(), cfg, optimizer_config{}, readme_splits());
    const auto r = tr.run(cb);
    CHECK(r.interrupted);
    CHECK(r.steps_done == 4);
    CHECK(r.evals.size() == 1); // l0 only
}

TEST_CASE("time-based checkpoints: written by default when a directory is set, off at 0", "[train][trainer][checkpoint]")
{
    ballast::test::temp_dir dir("timed");
    CHECK(train_config{}.checkpoint_seconds > 0); // crash-safe by default
    auto cfg = tiny_run(20);
    cfg.eval_interval = 0;
    cfg.checkpoint_dir = (dir / "ck").string();
    cfg.checkpoint_seconds = 1e-9; // due at every step, stretched to 100x the last write's duration
    trainer_t tr(tiny_model(), cfg, optimizer_config{}, readme_splits());
    tr.run();
    CHECK(tr.checkpoints_written() >= 1);
    CHECK(tr.checkpoints_written() <= 19);
    cfg.checkpoint_seconds = 0;
    cfg.checkpoint_dir = (dir / "ck0").string();
    trainer_t off(tiny_model(), cfg, optimizer_config{}, readme_splits());
    off.run();
    CHECK(off.checkpoints_written() == 0);
    cfg.checkpoint_seconds = -1;
    CHECK_THROWS_WITH(trainer_t(tiny_model(), cfg, optimizer_config{}, readme_splits()),
                      Catch::Contains("checkpoint_seconds must be >= 0"));
}

TEST_CASE("a second trainer on the same checkpoint directory is refused while the first runs",
          "[train][trainer][checkpoint]")
{
    ballast::test::temp_dir dir("two_trainers");
    auto cfg = tiny_run(3);
    cfg.checkpoint_dir = (dir / "ck").string();
    struct start_another
    {
        const train_config* cfg;
        mutable bool tried = false;
        void on_step_end(const ballast::step_info&) const
        {
            if (!tried)
            {
                tried = true;
                trainer_t other(tiny_model(), *cfg, optimizer_config{}, readme_splits());
                CHECK_THROWS_WITH(other.run(), Catch::Contains("is in use by pid " + std::to_string(::getpid())));
            }
        }
    };
    trainer_t tr(tiny_model(), cfg, optimizer_config{}, readme_splits());
    start_another cb{ &cfg };
    CHECK_FALSE(tr.run(cb).interrupted);
    CHECK(cb.tried);
    trainer_t after(tiny_model(), cfg, optimizer_config{}, readme_splits()); // released at the end
    after.resume(cfg.checkpoint_dir);
    CHECK_NOTHROW(after.run());
}
