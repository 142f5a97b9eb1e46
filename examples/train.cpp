// train: train one model on a corpus, with checkpoints, a JSONL metrics log and a progress display.
//
//   train                                           # paper_default on the default corpus, runs/train/
//   train --policy paper_baseline --lr 0.1 --steps 2000 --out runs/baseline
//   train --config examples/configs/small.toml --lr 3e-2     # flags override the file
//   train --out runs/baseline --resume              # continue an interrupted run, bit-identically
//
//   train --diagnostics --lr 0.3                   # also record max attention logit, log Z, update and
//                                                   # gradient RMS every --diag-interval steps, with early warnings
//
// Ctrl-C (SIGINT) or SIGTERM saves a checkpoint and exits with code 130; `--resume` continues from it.
// Output directory: metrics.jsonl (schema in docs/training.md), checkpoint/ (checkpoint.json +
// tensors-*.safetensors), weights.safetensors at the end. A diverged run is a result, not an error: it is
// reported and the exit code is 0. Bad input (flags, config file, corpus) exits with code 2 and one line.
//
// Data-parallel (built with -DBALLAST_WITH_MPI=ON): `mpirun -np K train --microbatches M ...` (K | M)
// gives the same bits as one process with --microbatches M; rank 0 writes every file and prints.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

#include <ballast/core/lock.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/model/diagnostics.hpp>
#include <ballast/policies/registry.hpp>
#include <ballast/train/trainer.hpp>

#include "support/cli.hpp"
#include "support/config_file.hpp"
#include "support/corpus.hpp"
#include "support/progress.hpp"

#ifdef BALLAST_TRAIN_MPI
#include <ballast/mpi/comm.hpp>
#endif

namespace
{
    struct train_options
    {
        std::string policy = "paper_default";
        std::string optimizer = "adamw";
        std::string corpus = "default";
        std::string out = "runs/train";
        bool resume = false;
        bool diagnostics = false;
        ballast::communicator* comm = nullptr; // data-parallel ranks (null: one process)
    };

    /// One terminal line for a fired early warning (the rules: train/warnings.hpp).
    std::string warning_line(const ballast::early_warning& w)
    {
        char buf[256];
        std::snprintf(buf, sizeof buf, "early warning at step %zu: %s = %.4g (threshold %.4g)%s%s", w.step,
                      w.rule.c_str(), w.value, w.threshold, w.where.empty() ? "" : ", ", w.where.c_str());
        return buf;
    }

    /// Progress on stderr: bar, ETA, current loss, LR and throughput; early warnings as they fire.
    struct progress_callback
    {
        ballast::cli::progress* bar;
        std::size_t start_step;
        const std::vector<ballast::early_warning>* warnings;
        std::size_t* printed;
        bool quiet = false; // data-parallel ranks other than 0
        void on_step_end(const ballast::step_info& s) const
        {
            if (quiet)
            {
                return;
            }
            for (; *printed < warnings->size(); ++*printed)
            {
                std::fprintf(stderr, "%s%s\n", ::isatty(::fileno(stderr)) ? "\r\033[K" : "",
                             warning_line((*warnings)[*printed]).c_str());
            }
            char status[160];
            std::snprintf(status, sizeof status, "loss %.4f  lr %.2e  |g| %.3g  %.0f tok/s", s.loss.loss,
                          s.lr, s.grad_norm, s.tokens_per_second);
            bar->update(s.step + 1, status, start_step);
        }
    };

    template <class P, class O>
    int train(const ballast::model_config& model, ballast::train_config cfg,
              const ballast::optimizer_config& opt, const ballast::warning_config& warn,
              const train_options& o)
    {
        std::string corpus_name;
        auto tokens = ballast::cli::resolve_corpus(o.corpus, corpus_name);
        const ballast::token_splits data(std::move(tokens), model.vocab, cfg.val_fraction, cfg.seq,
                                         corpus_name);
        const std::filesystem::path out = o.out;
        std::filesystem::create_directories(out);
        // One writer per output directory: a second `train --out` here is refused with our pid. Data-
        // parallel ranks share it, and rank 0 alone writes.
        std::optional<ballast::directory_lock> lock;
        if (o.comm == nullptr || o.comm->rank() == 0)
        {
            lock.emplace(out);
        }
        if (cfg.metrics_path.empty())
        {
            cfg.metrics_path = (out / "metrics.jsonl").string();
        }
        if (cfg.checkpoint_dir.empty())
        {
            cfg.checkpoint_dir = (out / "checkpoint").string();
        }
        cfg.handle_signals = true;
        if (!o.diagnostics)
        {
            cfg.diag_interval = 0; // the same trainer type, recording nothing
        }
        ballast::trainer<P, O, float, ballast::diagnostics::forward> tr(model, cfg, opt, data, o.comm);
        tr.set_warning_config(warn);
        const bool quiet = !tr.is_writer();
        if (o.resume)
        {
            BALLAST_CHECK(ballast::has_checkpoint(cfg.checkpoint_dir), "train",
                          "--resume: no checkpoint in '", cfg.checkpoint_dir, "'");
            tr.resume(cfg.checkpoint_dir);
        }
        else
        {
            BALLAST_CHECK(
              !ballast::has_checkpoint(cfg.checkpoint_dir), "train", "'", cfg.checkpoint_dir,
              "' already holds a checkpoint: pass --resume to continue it, or choose another --out");
        }
        if (o.comm != nullptr)
        {
            o.comm->barrier(); // every rank has checked the checkpoint directory before rank 0 writes to it
        }
        if (quiet)
        {
            const auto r = tr.run();
            return r.interrupted ? 130 : 0;
        }
        std::printf(
          "%s + %s | %zu parameters | d=%zu L=%zu H=%zu | %s: %zu training and %zu validation tokens\n",
          std::string(P::name).c_str(), std::string(O::name).c_str(), tr.model().layout().count(),
          model.d_model, model.n_layers, model.n_heads, corpus_name.c_str(), data.train().size(),
          data.validation().size());
        const int threads = cfg.threads > 0 ? cfg.threads : ballast::num_threads(); // what run() uses
        std::printf(
          "%zu steps x %zu x %zu tokens, peak LR %g (%s, warm-up %zu), %d thread%s%s%s\n", cfg.steps,
          cfg.batch, cfg.seq, cfg.lr, std::string(ballast::enum_name(cfg.schedule)).c_str(), cfg.warmup,
          threads, threads == 1 ? "" : "s",
          o.diagnostics ? (", diagnostics every " + std::to_string(cfg.diag_interval) + " steps").c_str()
                        : "",
          o.resume ? (", resumed at step " + std::to_string(tr.step())).c_str() : "");
        if (tr.ranks() > 1)
        {
            std::printf("data-parallel: %zu ranks x %zu microbatches of %zu sequences\n", tr.ranks(),
                        cfg.microbatches / tr.ranks(), cfg.batch / cfg.microbatches);
        }
        std::fflush(stdout);
        ballast::cli::progress bar("train", cfg.steps);
        std::size_t printed = tr.warnings().size(); // a resumed run reports only new warnings as they fire
        const auto r = tr.run(progress_callback{ &bar, tr.step(), &tr.warnings(), &printed });
        bar.finish();
        if (o.diagnostics)
        {
            std::printf("diagnostics: %zu recorded steps, %zu early warning%s%s\n", r.diag_history.size(),
                        r.warnings.size(), r.warnings.size() == 1 ? "" : "s", r.warnings.empty() ? "" : ":");
            for (const auto& w : r.warnings)
            {
                std::printf("  %s\n", warning_line(w).c_str());
            }
        }
        if (r.interrupted)
        {
            std::printf("interrupted after step %zu; checkpoint in %s (continue with --resume)\n",
                        r.steps_done, cfg.checkpoint_dir.c_str());
            return 130;
        }
        if (!r.diverged)
        {
            tr.model().save(out / "weights.safetensors");
        }
        std::printf(
          "l0 %.4f -> final validation loss %.4f (best %.4f)%s in %.1f s\n", r.l0, r.final_val_loss,
          r.best_val_loss,
          r.diverged
            ? (" | DIVERGED at step " + std::to_string(r.diverged_step) + ": " + r.diverged_reason).c_str()
            : "",
          r.train_seconds);
        std::printf("metrics: %s%s%s\n", cfg.metrics_path.c_str(),
                    o.diagnostics ? "  (plots: python3 tools/plot_run.py " : "",
                    o.diagnostics ? (o.out + ")").c_str() : "");
        return 0;
    }
} // namespace

int main(int argc, char** argv)
{
#ifdef BALLAST_TRAIN_MPI
    ballast::mpi::mpi_session mpi_session(argc, argv);
    ballast::mpi::mpi_comm world;
#endif
    CLI::App app{ "train: train one transformer on a corpus (ballast)", "train" };
    train_options o;
    ballast::model_config model;
    model.d_model = 64;
    model.n_heads = 4;
    ballast::train_config cfg;
    cfg.steps = 500;
    cfg.batch = 8;
    cfg.warmup = 25;
    cfg.eval_interval = 100;
    ballast::optimizer_config opt;
    ballast::warning_config warn;
    std::string config_path;

    // The config file is applied first, so that flags override it.
    const int rc_file = ballast::cli::run_main(
      "train",
      [&]
      {
          config_path = ballast::cli::find_flag(argc, argv, "config");
          if (config_path.empty())
          {
              return 0;
          }
          auto j = ballast::cli::read_config_file(config_path);
          ballast::cli::apply_table(j, "model", model, "train");
          ballast::cli::apply_table(j, "train", cfg, "train");
          ballast::cli::apply_table(j, "optimizer", opt, "train");
          ballast::cli::apply_table(j, "warnings", warn, "train");
          ballast::cli::reject_unknown_tables(j, { "model", "train", "optimizer", "warnings" });
          for (const auto& [k, v] : j.items())
          {
              BALLAST_CHECK(v.is_string() || v.is_boolean(), "config file", "'", k,
                            "' must be a string or boolean");
              if (k == "policy")
                  o.policy = v.get<std::string>();
              else if (k == "optimizer_name")
                  o.optimizer = v.get<std::string>();
              else if (k == "corpus")
                  o.corpus = v.get<std::string>();
              else if (k == "out")
                  o.out = v.get<std::string>();
              else
                  ballast::detail::throw_error(
                    "config file", "unknown top-level key '", k,
                    "' (known: policy, optimizer_name, corpus, out; tables [model], [train], "
                    "[optimizer], [warnings])");
          }
          return 0;
      });
    if (rc_file != 0)
    {
        return rc_file;
    }
    app.add_option("--config", config_path,
                   "TOML file with [model], [train], [optimizer], [warnings] tables (flags override it)");
    app
      .add_option(
        "--policy", o.policy,
        "policy set: " +
          []
          {
              std::string s;
              for (const auto& n : ballast::policy_set_names())
                  s += (s.empty() ? "" : ", ") + n;
              return s;
          }())
      ->capture_default_str();
    app
      .add_option(
        "--optimizer-name", o.optimizer,
        "optimizer: " +
          []
          {
              std::string s;
              for (const auto& n : ballast::type_names(ballast::shipped_optimizers))
                  s += (s.empty() ? "" : ", ") + n;
              return s;
          }())
      ->capture_default_str();
    app
      .add_option("--corpus", o.corpus,
                  "'default' (Debian's fortunes), a token file, a text file or a directory")
      ->capture_default_str();
    app.add_option("--out", o.out, "output directory (metrics.jsonl, checkpoint/, weights.safetensors)")
      ->capture_default_str();
    app.add_flag("--resume", o.resume, "continue from the checkpoint in <out>/checkpoint");
    app.add_flag(
      "--diagnostics", o.diagnostics,
      "record the study's diagnostics (max attention logit per layer, log Z, update and gradient RMS "
      "per tensor) every --diag-interval steps into metrics.jsonl, and print early warnings as they "
      "fire (docs/diagnostics.md)");
    ballast::cli::add_reflected_options(app, model, "Model");
    ballast::cli::add_reflected_options(app, cfg, "Training");
    ballast::cli::add_reflected_options(app, opt, "Optimizer");
    ballast::cli::add_reflected_options(app, warn, "Early warnings (with --diagnostics)");
    if (const int rc = ballast::cli::parse(app, argc, argv); rc >= 0)
    {
        return rc;
    }
#ifdef BALLAST_TRAIN_MPI
    o.comm = &world;
#endif
    return ballast::cli::run_main(
      "train",
      [&]
      {
          model.validate();
          opt.validate();
          cfg.validate(model);
          int rc = 0;
          ballast::with_policy_set(o.policy,
                                   [&](auto p)
                                   {
                                       ballast::with_optimizer(o.optimizer,
                                                               [&](auto opt_t)
                                                               {
                                                                   using P = typename decltype(p)::type;
                                                                   using O = typename decltype(opt_t)::type;
                                                                   rc = train<P, O>(model, cfg, opt, warn, o);
                                                               });
                                   });
          return rc;
      });
}
