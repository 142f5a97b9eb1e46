// study: LR-sensitivity studies on small proxies (Wortsman et al. 2023), the main job of ballast.
//
//   study                                    # the default study: qk-layernorm × z-loss, 7 LRs, 2 sizes
//   study --preset warmup --out runs/warmup  # a reproduction preset (docs/reproduction.md)
//   study --lrs 1e-3,1e-2,1e-1 --steps 300   # any preset with flags overriding its numbers
//
// Prints a table (final validation loss per LR, ℓ0, best loss and LR sensitivity per recipe and size) and
// writes results.jsonl, summary.json, CSVs and per-run metrics into --out; `tools/plot_study.py DIR` draws
// the plots. Interrupt with Ctrl-C and run the same command again to resume: finished runs are kept. Bad
// input exits with code 2 and one line; an interrupted study exits with 130.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include <boost/hana/tuple.hpp>

#include <ballast/policies/policy_set.hpp>
#include <ballast/study/grid.hpp>
#include <ballast/study/study.hpp>

#include "support/cli.hpp"
#include "support/config_file.hpp"
#include "support/corpus.hpp"
#include "support/progress.hpp"

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
    };

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

    /// The terminal table: one row per group, one column per LR.
    void print_table(const std::vector<st::group_summary>& groups, const std::vector<double>& lrs)
    {
        std::printf("\nfinal validation loss (cross-entropy, nats/byte) per peak LR\n");
        std::printf("%-14s %-11s %9s", "recipe", "size", "params");
        for (const double lr : lrs)
        {
            std::printf(" %9.0e", lr);
        }
        std::printf(" | %7s %7s %8s %7s\n", "l0", "best", "best LR", "LR sens");
        for (const auto& g : groups)
        {
            std::printf("%-14s %-11s %9zu", g.recipe.c_str(), g.size.c_str(), g.params);
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
    int run_preset(Recipes recipes, const st::study_spec& spec, const tool_options& o)
    {
        std::string corpus_name;
        auto tokens = ballast::cli::resolve_corpus(o.corpus, corpus_name);
        const ballast::token_splits data(std::move(tokens), spec.model.vocab, spec.train.val_fraction,
                                         spec.train.seq, corpus_name);
        st::study_runner runner(recipes, spec, data);
        const std::size_t n_recipes = hana::length(recipes);
        std::printf(
          "study '%s': %zu recipes x %zu sizes x %zu LRs = %zu runs | %zu steps x %zu x %zu tokens | %s (%zu "
          "training, %zu validation tokens) | out %s\n",
          spec.study.name.c_str(), n_recipes, spec.study.sizes.size(), spec.study.lrs.size(),
          runner.runs().size(), spec.train.steps, spec.train.batch, spec.train.seq, corpus_name.c_str(),
          data.train().size(), data.validation().size(), spec.out.string().c_str());
        std::fflush(stdout);
        ballast::cli::progress bar("study", runner.runs().size());
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
        const auto finished = runner.run(obs);
        bar.finish();
        const auto groups = st::summarise(finished, spec.study.sensitivity_window);
        print_table(groups, spec.study.lrs);
        std::printf(
          "\n%zu of %zu runs finished (%.1f s this session). LR sensitivity = mean over the LR grid of "
          "min(loss, l0) - best (Wortsman et al. 2023 §2.2); diverged runs count as l0.\n",
          finished.size(), runner.runs().size(), bar.seconds());
        std::printf("results: %s  (plots: python3 tools/plot_study.py %s)\n",
                    runner.results_path().string().c_str(), spec.out.string().c_str());
        if (runner.interrupted())
        {
            std::printf("interrupted: run the same command again to resume\n");
            return 130;
        }
        return 0;
    }
} // namespace

int main(int argc, char** argv)
{
    CLI::App app{ "study: LR-sensitivity studies of small transformer proxies (ballast)", "study" };
    tool_options o;
    const auto all = presets();
    // The preset is read first, so that the flags below override its numbers.
    o.preset = ballast::cli::find_flag(argc, argv, "preset");
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
    ballast::cli::add_reflected_options(app, spec.study, "Study grid");
    ballast::cli::add_reflected_options(app, spec.train, "Training (every run)");
    ballast::cli::add_reflected_options(app, spec.optimizer, "Optimizer (every run)");
    if (const int rc = ballast::cli::parse(app, argc, argv); rc >= 0)
    {
        return rc;
    }
    spec.out = o.out.empty() ? std::filesystem::path("runs") / o.preset : std::filesystem::path(o.out);
    return ballast::cli::run_main("study",
                                  [&]
                                  {
                                      if (o.preset == "default")
                                      {
                                          return run_preset(default_recipes(), spec, o);
                                      }
                                      return 2;
                                  });
}
