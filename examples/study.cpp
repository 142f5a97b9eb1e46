// study: LR-sensitivity studies on small proxies (Wortsman et al. 2023), the main job of ballast.
//
//   study                                    # the default study: qk-layernorm × z-loss, 7 LRs, 2 sizes
//   study --preset warmup --out runs/warmup  # a reproduction preset (docs/reproduction.md)
//   study --lrs 1e-3,1e-2,1e-1 --steps 300   # any preset with flags overriding its numbers
//   study --preset mup --dry-run             # the grid, the number of runs and an estimated time; no training
//   study --report runs/default              # (re)write runs/default/report.html for a results directory
//
// Prints a table (final validation loss per LR, ℓ0, best loss and LR sensitivity per recipe and size) and
// writes results.jsonl, summary.json, CSVs and per-run metrics into --out, then the report page
// <out>/report.html (tools/report.py; skipped with one line when Python/matplotlib is missing);
// `tools/plot_study.py DIR` draws the plots. Interrupt with Ctrl-C and run the same command again to resume: finished runs are kept. Bad
// input exits with code 2 and one line; an interrupted study exits with 130.
//
// Across processes (docs/distributed.md):
//   study --shard 0/4 …            # shard 0 of 4 (static: writes results.0-of-4.jsonl)
//   study --shard auto …           # I and N from Slurm arrays/tasks, mpirun, PMI; Kubernetes: + --shards N
//   study merge DIR [flags]        # every result file of DIR -> results.jsonl (grid order), summaries
//   mpirun -np K study --mpi …     # dynamic: rank 0 hands out runs, writes results.jsonl and summaries
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/hana/tuple.hpp>

#include <ballast/policies/policy_set.hpp>
#include <ballast/study/grid.hpp>
#include <ballast/study/merge.hpp>
#include <ballast/study/shard.hpp>
#include <ballast/study/study.hpp>
#if defined(BALLAST_STUDY_WITH_MPI)
#include <ballast/mpi/comm.hpp>
#endif

#include "support/cli.hpp"
#include "support/config_file.hpp"
#include "support/corpus.hpp"
#include "support/estimate.hpp"
#include "support/progress.hpp"
#include "support/report.hpp"

namespace
{
    namespace hana = boost::hana;
    namespace st = ballast::study;
    namespace pol = ballast::policies;

    struct tool_options
    {
        std::string preset = "default";
        std::string corpus = "default";
        std::string out;
        bool dry_run = false;
        bool no_report = false;
        std::string report;
    };

    /// How this process takes part in the study (docs/distributed.md): alone, as a static shard, as a rank
    /// of an MPI study, or merging the result files of a finished (or partial) study.
    struct process_mode
    {
        std::string shard;      ///< --shard: "I/N", "auto" or empty
        std::size_t shards = 0; ///< --shards: N for --shard auto (Kubernetes), checked against the launcher
        bool mpi = false;       ///< --mpi
        bool merge = false;     ///< --merge / `study merge DIR`
        ballast::communicator* comm = nullptr;    ///< the MPI world (set with --mpi)
        std::optional<st::shard_source> resolved; ///< the shard, once read
    };

    /// Run the study in `mode`: the runs this process finished or merged, for the table.
    template <class Runner>
    std::vector<st::run_record> run_in_mode(Runner& runner, const process_mode& mode,
                                            const st::study_observer& obs)
    {
        if (mode.merge)
        {
            return runner.merge();
        }
        if (mode.comm != nullptr)
        {
            return runner.run_queue(*mode.comm, obs);
        }
        if (mode.resolved)
        {
            return runner.run_shard(mode.resolved->shard, obs);
        }
        return runner.run(obs);
    }

    /// `--dry-run`: the grid, one line per run with its estimated time, and the total (support/estimate.hpp).
    template <class Runner>
    int print_dry_run(const Runner& runner, const st::study_spec& spec, std::size_t n_recipes)
    {
        const auto& st_cfg = spec.study;
        std::printf("study '%s' (dry run: nothing is trained)\n", st_cfg.name.c_str());
        std::printf("  recipes: %zu | sizes: %zu | LRs: %zu | runs: %zu\n", n_recipes, st_cfg.sizes.size(),
                    st_cfg.lrs.size(), runner.runs().size());
        double total = 0;
        std::printf("  %-34s %-12s %9s %6s %6s %9s %9s %6s %10s\n", "recipe", "size", "lr", "warmup", "steps",
                    "wd", "eps", "", "est. 1 thr");
        for (const auto& r : runner.runs())
        {
            auto m = spec.model;
            m.d_model = r.size.d_model;
            m.n_layers = r.size.n_layers;
            m.n_heads = r.size.n_heads;
            auto t = spec.train;
            t.steps = r.steps;
            const double sec = ballast::cli::run_seconds(m, t);
            total += sec;
            std::printf("  %-34s %-12s %9.2e %6zu %6zu %9.3g %9.3g %6s %10s\n",
                        (r.recipe_name + " " + r.optimizer).c_str(), r.size.label().c_str(), r.lr, r.warmup,
                        r.steps, r.weight_decay, r.eps, "", ballast::cli::human_duration(sec).c_str());
        }
        const double wall =
          ballast::cli::study_wall_seconds(total, runner.runs().size(), st_cfg.jobs, st_cfg.threads_per_run);
        std::printf("%zu runs, estimated %s of single-thread compute, about %s wall-clock here (%d jobs, %d "
                    "thread(s) per run; cost model fitted on this project's development machine, see "
                    "examples/support/estimate.hpp)\n",
                    runner.runs().size(), ballast::cli::human_duration(total).c_str(),
                    ballast::cli::human_duration(wall).c_str(),
                    st_cfg.jobs > 0 ? st_cfg.jobs : static_cast<int>(std::thread::hardware_concurrency()),
                    st_cfg.threads_per_run);
        return 0;
    }

    /// A preset: the base configs, and which recipe grid it runs (by id, resolved at compile time below).
    struct preset
    {
        std::string description;
        st::study_spec spec;
    };

    /// The proxy every preset starts from (docs/study.md explains the choice).
    st::study_spec proxy_base()
    {
        st::study_spec s;
        s.model.vocab = 256;
        s.model.context = 64;
        s.train.steps = 500;
        s.train.batch = 8;
        s.train.seq = 64;
        s.train.warmup = 25; // 5% of the steps, as in the paper
        s.train.eval_batches = 8;
        s.train.eval_interval = 100;
        s.train.log_interval = 10;
        s.train.diag_interval = 10;
        s.study.sizes = { "d64_L2_H4", "d128_L2_H8" }; // head width 16 at both sizes
        return s;
    }

    std::map<std::string, preset> presets()
    {
        std::map<std::string, preset> p;
        {
            auto s = proxy_base();
            s.study.name = "default";
            p["default"] = { "qk-layernorm on/off x z-loss on/off, 7 LRs, 2 sizes (the paper's Fig 1 and Fig "
                             "3 comparison)",
                             s };
        }
        {
            // Claim 8: without weight decay, z-loss keeps high-LR runs from output-logit divergence.
            auto s = proxy_base();
            s.study.name = "no_decay";
            s.study.weight_decays = { 0.0 };
            p["no_decay"] = {
                "the default grid without weight decay (claim 8: z-loss vs output-logit divergence)", s
            };
        }
        {
            // Claim 10: longer warm-up lowers LR sensitivity. Warm-up at 0.5%, 5% and 25% of the steps.
            auto s = proxy_base();
            s.study.name = "warmup";
            s.study.warmups = { 3, 25, 125 };
            p["warmup"] = { "paper_default with warm-up 0.5% / 5% / 25% of the steps (claim 10)", s };
        }
        {
            // Claim 11: independent decay (1e-4) vs coupled decay (0.1, PyTorch's AdamW), on the 8-point grid
            // {1e-4 ... 3e-1} with the paper's shifted 7-point window.
            auto s = proxy_base();
            s.study.name = "weight_decay";
            s.study.lrs = { 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1 };
            s.study.sensitivity_window = 7;
            p["weight_decay"] = {
                "paper_default with independent (1e-4) vs coupled (0.1) AdamW decay (claim 11)", s
            };
        }
        {
            // Claim 16: muParam (simple) moves the optimal LR less across width than standard
            // parameterisation.
            auto s = proxy_base();
            s.study.name = "mup";
            s.study.sizes = { "d32_L2_H2", "d64_L2_H4", "d128_L2_H8" };
            p["mup"] = {
                "paper_default vs muParam (simple) across 3 widths (claim 16: the optimal LR stops moving)", s
            };
        }
        {
            // Claim 23: AdamW eps near the gradient RMS collapses the update RMS and hurts the loss.
            auto s = proxy_base();
            s.study.name = "eps";
            s.study.sizes = { "d64_L2_H4" };
            s.study.lrs = { 1e-3, 1e-2, 1e-1 };
            s.study.epss = { 1e-15, 1e-8, 1e-5, 1e-4, 1e-3 };
            p["eps"] = { "paper_default with AdamW eps from 1e-15 to 1e-3 (claim 23: eps-collapse)", s };
        }
        {
            // Claims 1 and 20: without qk-layernorm, the first diverging LR falls with size, and the early
            // block-0 max attention logit of the smaller sizes predicts the larger ones (`predict`).
            auto s = proxy_base();
            s.study.name = "prediction";
            s.study.sizes = {
                "d32_L2_H2", "d48_L2_H3", "d64_L2_H4", "d96_L2_H6", "d128_L2_H8", "d192_L2_H12"
            };
            p["prediction"] = {
                "paper_default without qk-layernorm over 6 widths (claims 1, 14, 20: fit small "
                "sizes, predict the large ones with `predict`)",
                s
            };
        }
        {
            // Claim 13: LR sensitivity grows faster with depth than with width. A width family (L = 2,
            // d = 32..128) and a depth family (d = 64, L = 1..8) spanning the same non-embedding N.
            auto s = proxy_base();
            s.study.name = "width_depth";
            s.study.sizes = { "d32_L2_H2", "d64_L2_H4", "d128_L2_H8", "d64_L1_H4", "d64_L4_H4", "d64_L8_H4" };
            p["width_depth"] = {
                "paper_default scaled in width (L=2, d 32..128) vs depth (d=64, L 1..8) (claim 13)", s
            };
        }
        {
            // Claim 7 (Fig E.11): attention-logit growth without qk-layernorm is not a softmax effect.
            // Squared-ReLU attention (P = relu(z)^2/sqrt(T)) with and without per-head qk-layernorm.
            auto s = proxy_base();
            s.study.name = "pointwise_attention";
            p["pointwise_attention"] = { "squared-ReLU attention (relu(z)^2/sqrt(T)) with vs without "
                                         "qk-layernorm (claim 7, Fig E.11; not yet run)",
                                         s };
        }
        {
            // Claim 21 (Fig 10): forced logit scale kappa = 1e1 ... 1e5 (one sub-study per kappa under
            // <out>/kappa<k>, kappa is a model number, not a grid axis), and the 0-layer bigram baseline
            // (embedding -> final norm -> head) under <out>/bigram as the reference line.
            auto s = proxy_base();
            s.study.name = "forced_scale";
            s.study.sizes = { "d64_L2_H4" };
            p["forced_scale"] = { "forced logit scale kappa 1e1..1e5 against a 0-layer bigram baseline "
                                  "d64_L0_H4 (claim 21, Fig 10; not yet run)",
                                  s };
        }
        return p;
    }

    /// The default study's recipes: the paper's default recipe with qk-layernorm on/off and z-loss on/off,
    /// built as a Hana cartesian product, each trained with AdamW (independent decay).
    constexpr auto default_recipes()
    {
        constexpr auto grid = st::policy_grid<ballast::paper_default>(
          hana::tuple_t<st::with_qk<"qk_ln", pol::qk_norm<pol::layer_norm, pol::qk_scope::per_head>>,
                        st::with_qk<"no_qk", pol::no_qk_control>>,
          hana::tuple_t<st::with_output_loss<"zloss", pol::z_loss>,
                        st::with_output_loss<"ce", pol::cross_entropy>>);
        return st::recipe_grid(grid, hana::tuple_t<ballast::optim::adamw<>>);
    }

    std::string fmt_loss(const st::lr_point& p)
    {
        char buf[32];
        if (p.diverged)
        {
            std::snprintf(buf, sizeof buf, "%9s", "diverged");
        }
        else
        {
            std::snprintf(buf, sizeof buf, "%9.4f", p.loss);
        }
        return buf;
    }

    /// The terminal table: one row per group (recipe, and every grid axis that varies), one column per LR.
    void print_table(std::vector<st::group_summary> groups, const std::vector<double>& lrs,
                     const std::vector<st::run_spec>& grid)
    {
        std::ranges::stable_sort(groups, {}, &st::group_summary::params);
        std::vector<std::string> order; // recipes in grid order
        for (const auto& r : grid)
        {
            if (std::ranges::find(order, r.recipe_name + r.optimizer) == order.end())
            {
                order.push_back(r.recipe_name + r.optimizer);
            }
        }
        std::ranges::stable_sort(groups, {},
                                 [&](const st::group_summary& g) {
                                     return std::ranges::find(order, g.recipe + g.optimizer) - order.begin();
                                 });
        const auto varies = [&](auto field)
        {
            for (const auto& g : groups)
            {
                if (field(g) != field(groups.front()))
                {
                    return true;
                }
            }
            return false;
        };
        const bool v_opt = varies([](const auto&g) { return g.optimizer; }),
                   v_wu = varies([](const auto&g) { return g.warmup; }),
                   v_wd = varies([](const auto&g) { return g.weight_decay; }),
                   v_eps = varies([](const auto&g) { return g.eps; }),
                   v_steps = varies([](const auto&g) { return g.steps; });
        const auto label = [&](const st::group_summary& g)
        {
            std::string l = g.recipe;
            char buf[64];
            if (v_opt)
                l += " " + g.optimizer;
            if (v_wu)
                l += " wu=" + std::to_string(g.warmup);
            if (v_wd)
            {
                std::snprintf(buf, sizeof buf, " wd=%g", g.weight_decay);
                l += buf;
            }
            if (v_eps)
            {
                std::snprintf(buf, sizeof buf, " eps=%g", g.eps);
                l += buf;
            }
            if (v_steps)
                l += " steps=" + std::to_string(g.steps);
            return l;
        };
        std::size_t width = 14;
        for (const auto& g : groups)
        {
            width = std::max(width, label(g).size());
        }
        const int w = static_cast<int>(width);
        std::printf("\nfinal validation loss (cross-entropy, nats/byte) per peak LR\n");
        std::printf("%-*s %-11s %9s", w, "recipe", "size", "params");
        for (const double lr : lrs)
        {
            std::printf(" %9.0e", lr);
        }
        std::printf(" | %7s %7s %8s %7s\n", "l0", "best", "best LR", "LR sens");
        for (const auto& g : groups)
        {
            std::printf("%-*s %-11s %9zu", w, label(g).c_str(), g.size.c_str(), g.params);
            for (const double lr : lrs)
            {
                const auto it =
                  std::ranges::find_if(g.points, [&](const st::lr_point& p) { return p.lr == lr; });
                std::printf(" %s", it == g.points.end() ? "        -" : fmt_loss(*it).c_str());
            }
            std::printf(" | %7.4f %7.4f %8.0e %7.4f\n", g.l0, g.best_loss, g.best_lr, g.lr_sensitivity);
        }
    }

    template <class Recipes>
    int run_preset(Recipes recipes, const st::study_spec& spec, const tool_options& o,
                   const process_mode& mode)
    {
        std::string corpus_name;
        auto tokens = ballast::cli::resolve_corpus(o.corpus, corpus_name);
        const ballast::token_splits data(std::move(tokens), spec.model.vocab, spec.train.val_fraction,
                                         spec.train.seq, corpus_name);
        st::study_runner runner(recipes, spec, data); // refuses an empty grid or duplicate points
        const std::size_t n_recipes = hana::length(recipes);
        if (o.dry_run)
        {
            return print_dry_run(runner, spec, n_recipes);
        }
        if (mode.comm != nullptr && mode.comm->rank() != 0)
        {
            runner.run_queue(*mode.comm); // an MPI worker: trains what rank 0 hands out, prints nothing
            return 0;
        }
        std::printf(
          "study '%s': %zu recipes x %zu sizes x %zu LRs = %zu runs | %zu steps x %zu x %zu tokens | %s (%zu "
          "training, %zu validation tokens) | out %s\n",
          spec.study.name.c_str(), n_recipes, spec.study.sizes.size(), spec.study.lrs.size(),
          runner.runs().size(), spec.train.steps, spec.train.batch, spec.train.seq, corpus_name.c_str(),
          data.train().size(), data.validation().size(), spec.out.string().c_str());
        if (mode.resolved)
        {
            std::printf("shard %s (%s): results.%s.jsonl\n", mode.resolved->shard.to_string().c_str(),
                        mode.resolved->launcher.c_str(), mode.resolved->shard.file_tag().c_str());
        }
        else if (mode.comm != nullptr)
        {
            std::printf("mpi: %d ranks (rank 0 dispatches and writes results.jsonl)\n", mode.comm->size());
        }
        std::fflush(stdout);
        const std::size_t mine =
          mode.resolved ? runner.shard_runs(mode.resolved->shard).size() : runner.runs().size();
        ballast::cli::progress bar("study", mine);
        std::size_t resumed = 0;
        bool first = true;
        st::study_observer obs;
        obs.on_run_done = [&](const st::run_record& r, std::size_t done, std::size_t)
        {
            if (first)
            {
                resumed = done - 1;
                first = false;
            }
            char status[200];
            std::snprintf(status, sizeof status, "last: %s %s lr %.0e -> %s", r.spec.recipe_name.c_str(),
                          r.spec.size.label().c_str(), r.spec.lr,
                          r.result.diverged ? "diverged"
                                            : std::to_string(r.result.final_val_loss).substr(0, 6).c_str());
            bar.update(done, status, resumed);
        };
        const auto finished = run_in_mode(runner, mode, obs);
        bar.finish();
        const auto groups = st::summarise(finished, spec.study.sensitivity_window);
        print_table(groups, spec.study.lrs, runner.runs());
        std::printf(
          "\n%zu of %zu runs finished (%.1f s this session). LR sensitivity = mean over the LR grid of "
          "min(loss, l0) - best (Wortsman et al. 2023 §2.2); diverged runs count as l0.\n",
          finished.size(), mine, bar.seconds());
        std::printf("results: %s  (plots: python3 tools/plot_study.py %s)\n",
                    (mode.resolved ? runner.results_path(mode.resolved->shard) : runner.results_path())
                      .string()
                      .c_str(),
                    spec.out.string().c_str());
        if (mode.merge && !runner.missing().empty())
        {
            std::printf("merge: %zu of %zu runs are not finished yet (first: %s): run the study again to "
                        "finish them, then merge again\n",
                        runner.missing().size(), runner.runs().size(), runner.missing().front().c_str());
        }
        else if (mode.resolved)
        {
            std::printf("shard done: when every shard is, run: study merge %s (with the same preset and "
                        "flags)\n",
                        spec.out.string().c_str());
        }
        if (runner.interrupted())
        {
            std::printf("interrupted: run the same command again to resume\n");
            return 130;
        }
        if (!o.no_report)
        {
            ballast::cli::write_report(spec.out, "study --report " + spec.out.string());
        }
        return 0;
    }
} // namespace

int main(int argc_in, char** argv_in)
{
    CLI::App app{ "study: LR-sensitivity studies of small transformer proxies (ballast)", "study" };
    tool_options o;
    process_mode mode;
    const auto all = presets();
    // `study merge DIR [flags]` is `study --merge --out DIR [flags]`.
    std::vector<std::string> words(argv_in, argv_in + argc_in);
    if (words.size() >= 2 && words[1] == "merge")
    {
        if (words.size() < 3 || words[2].starts_with("-"))
        {
            std::fprintf(stderr, "study: error: usage: study merge DIR [--preset P and the study's flags]\n");
            return 2;
        }
        const std::string dir = words[2];
        words.erase(words.begin() + 1, words.begin() + 3);
        words.insert(words.begin() + 1, { "--merge", "--out", dir });
    }
    std::vector<char*> args;
    for (auto& w : words)
    {
        args.push_back(w.data());
    }
    args.push_back(nullptr);
    int argc = static_cast<int>(words.size());
    char** argv = args.data();
    // The preset is read first, so that the flags below override its numbers.
    o.preset = ballast::cli::find_flag(argc, argv, "preset");
    if (o.preset.empty() && std::ranges::find(words, std::string("--merge")) != words.end())
    {
        // merge without --preset: the preset named by the result files' study line, if it is one.
        try
        {
            const auto out = ballast::cli::find_flag(argc, argv, "out");
            const auto files = st::read_results_dir(out);
            if (!files.empty() && !files.front().lines.empty())
            {
                const auto name = files.front().lines.front().value("name", "");
                o.preset = all.contains(name) ? name : "";
            }
        }
        catch (const std::exception& e)
        {
            std::fprintf(stderr, "study: error: %s\n", e.what());
            return 2;
        }
    }
    if (o.preset.empty())
    {
        o.preset = "default";
    }
    const auto it = all.find(o.preset);
    if (it == all.end())
    {
        std::string known;
        for (const auto& [k, v] : all)
        {
            known += (known.empty() ? "" : ", ") + k;
        }
        std::fprintf(stderr, "study: error: unknown preset '%s' (known: %s)\n", o.preset.c_str(),
                     known.c_str());
        return 2;
    }
    st::study_spec spec = it->second.spec;
    std::string presets_help;
    for (const auto& [k, v] : all)
    {
        presets_help += "\n  " + k + ": " + v.description;
    }
    app.add_option("--preset", o.preset, "study preset:" + presets_help)->capture_default_str();
    app
      .add_option("--corpus", o.corpus,
                  "'default' (Debian's fortunes), a token file, a text file or a directory")
      ->capture_default_str();
    app.add_option("--out", o.out, "output directory (default runs/<preset>)");
    app.add_option("--shard", mode.shard,
                   "run one static shard: I/N, or 'auto' (I and N from Slurm, mpirun, PMI or "
                   "Kubernetes; docs/distributed.md)");
    app.add_option("--shards", mode.shards,
                   "with --shard auto: the shard count (Kubernetes: the Job's completions; checked against "
                   "other launchers)");
    app.add_flag("--mpi", mode.mpi, "dynamic scheduling under mpirun: rank 0 hands out runs and writes");
    app.add_flag(
      "--merge", mode.merge,
      "merge the result files in --out into results.jsonl and the summaries (as `study merge DIR`)");
    app.add_flag("--dry-run", o.dry_run,
                 "print the grid, the number of runs and an estimated time, and exit without training");
    app.add_option(
      "--report", o.report,
      "write DIR/report.html for the finished (or partial) study in DIR, and exit without training");
    app.add_flag("--no-report", o.no_report, "do not write <out>/report.html at the end of the study");
    ballast::cli::add_reflected_options(app, spec.study, "Study grid");
    ballast::cli::add_reflected_options(app, spec.train, "Training (every run)");
    ballast::cli::add_reflected_options(app, spec.optimizer, "Optimizer (every run)");
    if (const int rc = ballast::cli::parse(app, argc, argv); rc >= 0)
    {
        return rc;
    }
    if (!o.report.empty())
    {
        return ballast::cli::run_main(
          "study",
          [&]
          {
              BALLAST_CHECK(
                std::filesystem::is_regular_file(std::filesystem::path(o.report) / "results.jsonl"), "study",
                "--report: no results.jsonl in '", o.report, "'");
              return ballast::cli::write_report(o.report, "python3 tools/report.py " + o.report) == 0 ? 0 : 1;
          });
    }
    spec.out = o.out.empty() ? std::filesystem::path("runs") / o.preset : std::filesystem::path(o.out);
    if (int(mode.merge) + int(mode.mpi) + int(!mode.shard.empty()) > 1)
    {
        std::fprintf(stderr, "study: error: --shard, --mpi and merge exclude each other\n");
        return 2;
    }
    if (mode.shards > 0 && mode.shard != "auto")
    {
        std::fprintf(stderr,
                     "study: error: --shards N goes with --shard auto (give --shard I/N otherwise)\n");
        return 2;
    }
#if defined(BALLAST_STUDY_WITH_MPI)
    std::optional<ballast::mpi::mpi_session> session;
    std::optional<ballast::mpi::mpi_comm> world;
    if (mode.mpi)
    {
        session.emplace(argc, argv);
        world.emplace();
        mode.comm = &*world;
    }
#else
    if (mode.mpi)
    {
        std::fprintf(stderr, "study: error: --mpi: this study was built without MPI; configure with "
                             "-DBALLAST_WITH_MPI=ON (Debian: libopenmpi-dev), or use --shard\n");
        return 2;
    }
#endif
    const auto body = [&]
    {
        if (!mode.shard.empty())
        {
            mode.resolved = mode.shard == "auto"
                              ? st::shard_from_environment(st::process_environment, mode.shards)
                              : st::shard_source{ st::parse_shard(mode.shard), "explicit" };
        }
        using adamw = ballast::optim::adamw<>;
        if (o.preset == "default" || o.preset == "no_decay")
        {
            return run_preset(default_recipes(), spec, o, mode);
        }
        if (o.preset == "warmup" || o.preset == "eps" || o.preset == "width_depth")
        {
            return run_preset(st::recipe_grid(hana::tuple_t<ballast::paper_default>, hana::tuple_t<adamw>),
                              spec, o, mode);
        }
        if (o.preset == "prediction")
        {
            constexpr auto no_qk = st::policy_grid<ballast::paper_default>(
              hana::tuple_t<st::with_qk<"no_qk", pol::no_qk_control>>);
            return run_preset(st::recipe_grid(no_qk, hana::tuple_t<adamw>), spec, o, mode);
        }
        if (o.preset == "weight_decay")
        {
            return run_preset(
              st::recipe_grid(hana::tuple_t<ballast::paper_default>,
                              hana::tuple_t<adamw, ballast::optim::adamw<ballast::weight_decay::coupled>>),
              spec, o, mode);
        }
        if (o.preset == "mup")
        {
            return run_preset(st::recipe_grid(hana::tuple_t<ballast::paper_default, ballast::mup_recipe>,
                                              hana::tuple_t<adamw>),
                              spec, o, mode);
        }
        if (o.preset == "pointwise_attention")
        {
            // "relu2_": the default study's "qk_ln" / "no_qk" are softmax recipes.
            constexpr auto grid = st::policy_grid<ballast::squared_relu_attention>(
              hana::tuple_t<
                st::with_qk<"relu2_qk_ln", pol::qk_norm<pol::layer_norm, pol::qk_scope::per_head>>,
                st::with_qk<"relu2_no_qk", pol::no_qk_control>>);
            return run_preset(st::recipe_grid(grid, hana::tuple_t<adamw>), spec, o, mode);
        }
        if (o.preset == "forced_scale")
        {
            constexpr auto forced =
              st::recipe_grid(hana::tuple_t<ballast::forced_scale>, hana::tuple_t<adamw>);
            {
                // The bigram reference: 0 layers, so the q/k policy (and kappa) play no part.
                auto b = spec;
                b.study.name = spec.study.name + "_bigram";
                b.study.sizes = { "d64_L0_H4" };
                b.out = spec.out / "bigram";
                if (const int rc = run_preset(forced, b, o, mode); rc != 0)
                {
                    return rc;
                }
            }
            for (const double kappa : { 1e1, 1e2, 1e3, 1e4, 1e5 })
            {
                char label[32];
                std::snprintf(label, sizeof label, "kappa1e%d",
                              static_cast<int>(std::lround(std::log10(kappa))));
                auto k = spec;
                k.model.kappa = kappa;
                k.study.name = spec.study.name + "_" + label;
                k.out = spec.out / label;
                if (const int rc = run_preset(forced, k, o, mode); rc != 0)
                {
                    return rc;
                }
            }
            return 0;
        }
        ballast::detail::throw_error("study", "preset '", o.preset, "' has no recipes");
    };
#if defined(BALLAST_STUDY_WITH_MPI)
    if (mode.comm != nullptr)
    {
        // A rank that fails aborts the whole job, so no rank is left waiting for it.
        try
        {
            return body();
        }
        catch (const std::exception& e)
        {
            std::fprintf(stderr, "study: error: rank %d of %d: %s (aborting the MPI job)\n",
                         mode.comm->rank(), mode.comm->size(), e.what());
            std::fflush(stderr);
            ballast::mpi::mpi_session::abort(2);
        }
    }
#endif
    return ballast::cli::run_main("study", body);
}
