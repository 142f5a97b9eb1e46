#ifndef BALLAST_STUDY_STUDY_HPP
#define BALLAST_STUDY_STUDY_HPP

/// @file
/// The LR-sensitivity study engine.
///
/// A study is a grid: recipes (types, from `study/grid.hpp`) × model sizes × peak LRs × optional warm-up
/// lengths, weight decays, AdamW ε values and step counts (runtime numbers). Every run is an independent,
/// deterministic `trainer`; runs are scheduled over worker threads (by default one single-threaded run per
/// core, which beats one multi-threaded run at a time on small proxies: docs/study.md has the measurement).
///
/// Results are crash-safe:
/// - `<out>/results.jsonl` starts with a "study" line (the whole configuration, reflected) and gets one
///   "run" line per finished run, appended with a single write + fsync, so a crash loses at most the runs in
///   flight, never a finished one.
/// - Re-running the same study in the same directory skips finished runs; a study whose configuration
///   differs from the file's is refused (never mixed), naming the differing settings.
/// - SIGINT/SIGTERM stop the study cleanly: runs in flight are abandoned (not recorded) and redone on resume.
///
/// Outputs: results.jsonl (schema: study/results.hpp), summary.json, summary.csv and results.csv (LR
/// sensitivity per group: study/summary.hpp), and per-run metrics logs in runs/ (train/metrics_log.hpp).
/// `tools/plot_study.py` draws the plots from them.

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <boost/hana/adapt_struct.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/length.hpp>
#include <nlohmann/json.hpp>

#include <ballast/core/config.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/core/reflect.hpp>
#include <ballast/core/signals.hpp>
#include <ballast/study/grid.hpp>
#include <ballast/study/metric.hpp>
#include <ballast/study/results.hpp>
#include <ballast/study/summary.hpp>
#include <ballast/train/callbacks.hpp>
#include <ballast/train/trainer.hpp>

namespace ballast::study
{
    /// The grid's runtime axes and the scheduling. Empty optional axes use the base config's value.
    struct study_config
    {
        std::string name = "study";
        std::vector<std::string> sizes = { "d64_L2_H4" }; ///< model sizes, "d<d_model>_L<layers>_H<heads>"
        std::vector<double> lrs = paper_lr_grid();        ///< peak learning rates
        std::vector<std::size_t> warmups;  ///< warm-up lengths (empty: the base train config's)
        std::vector<double> weight_decays; ///< λ values (empty: the base optimizer config's)
        /// λ values for recipes whose optimizer uses coupled decay (PyTorch-style AdamW: the paper's 0.1)
        std::vector<double> coupled_weight_decays = { 0.1 };
        std::vector<double> epss;             ///< AdamW ε values (empty: the base's)
        std::vector<std::size_t> step_counts; ///< total steps (empty: the base's)
        std::size_t sensitivity_window =
          0; ///< >0: report the min LR sensitivity over windows of this many LRs
        // -- run control (may change between a study and its resume) -------------------------------------
        int jobs = 0;            ///< concurrent runs (0: one per hardware thread)
        int threads_per_run = 1; ///< OpenMP threads inside each run
        bool run_metrics = true; ///< write runs/<key>.jsonl per run

        bool operator==(const study_config&) const = default;
    };
} // namespace ballast::study

BOOST_HANA_ADAPT_STRUCT(ballast::study::study_config, name, sizes, lrs, warmups, weight_decays,
                        coupled_weight_decays, epss, step_counts, sensitivity_window, jobs, threads_per_run,
                        run_metrics);

template <>
struct ballast::field_docs<ballast::study::study_config>
{
    static constexpr std::array<field_doc, 12> fields{ {
      { "name", "the study's name (written into results and the report)" },
      { "sizes", "model sizes, comma-separated labels d<d_model>_L<layers>_H<heads> (e.g. d64_L2_H4)" },
      { "lrs", "peak learning rates, comma-separated (the LR grid of every recipe and size)" },
      { "warmups", "warm-up lengths in steps, comma-separated (empty: --warmup)" },
      { "weight_decays", "weight decay values for recipes with independent decay (empty: --weight-decay)" },
      { "coupled_weight_decays", "weight decay values for recipes with coupled decay (PyTorch-style AdamW; "
                                 "the paper's 0.1)" },
      { "epss", "AdamW eps values, comma-separated (empty: --eps)" },
      { "step_counts", "total steps per run, comma-separated (empty: --steps)" },
      { "sensitivity_window", "> 0: LR sensitivity is the minimum over windows of this many consecutive "
                              "LRs (0: the whole grid)" },
      { "jobs", "runs trained at the same time (0: one per hardware thread)" },
      { "threads_per_run", "worker threads inside each run; >= 1" },
      { "run_metrics", "write each run's metrics log to runs/<key>.jsonl (true|false)" },
    } };
};
static_assert(ballast::documented<ballast::study::study_config>);

namespace ballast::study
{
    /// What the engine reports while it works (all optional).
    struct study_observer
    {
        std::function<void(const run_record&, std::size_t done, std::size_t total)> on_run_done;
        std::function<void(const run_spec&)> on_run_start;
    };

    /// The base configs every run starts from; the grid overrides size, LR and the optional axes.
    struct study_spec
    {
        study_config study;
        model_config model;
        train_config train;
        optimizer_config optimizer;
        std::filesystem::path out;
    };

    /// The study's identity, recorded in the results file's study line: every config value of the grid
    /// and the base configs except run control (jobs, threads_per_run, run_metrics and the train config's
    /// run-control fields), the recipes (`recipes`: name and optimizer of each) and the data's identity.
    /// A results file whose identity differs is refused.
    inline nlohmann::json study_identity(const study_spec& s, const nlohmann::json& recipes,
                                         const nlohmann::json& data)
    {
        auto st = to_json(s.study);
        for (const char* k : { "jobs", "threads_per_run", "run_metrics" })
        {
            st.erase(k);
        }
        return { { "study", st },
                 { "model", to_json(s.model) },
                 { "train", identity_json(s.train) },
                 { "optimizer", to_json(s.optimizer) },
                 { "recipes", recipes },
                 { "data", data } };
    }

    /// Runs a study over the recipes of `Recipes` (a Hana tuple of `hana::type<recipe<P, O>>`).
    template <class Recipes>
    class study_runner
    {
    public:
        study_runner(Recipes recipes, study_spec spec, const token_splits& data)
          : m_recipes(recipes)
          , m_spec(std::move(spec))
          , m_data(data)
        {
            BALLAST_CHECK(!m_spec.study.lrs.empty(), "study", "no learning rates");
            BALLAST_CHECK(!m_spec.study.sizes.empty(), "study", "no model sizes");
            BALLAST_CHECK(m_spec.study.jobs >= 0 && m_spec.study.threads_per_run >= 1, "study",
                          "jobs must be >= 0 and threads_per_run >= 1");
            m_spec.model.validate();
            m_spec.optimizer.validate();
            enumerate();
        }

        const std::vector<run_spec>& runs() const noexcept { return m_runs; }
        const study_spec& spec() const noexcept { return m_spec; }
        std::filesystem::path results_path() const { return m_spec.out / "results.jsonl"; }

        nlohmann::json recipe_names() const
        {
            nlohmann::json names = nlohmann::json::array();
            boost::hana::for_each(m_recipes,
                                  [&](auto t)
                                  {
                                      using R = typename decltype(t)::type;
                                      names.push_back({ { "name", std::string(R::name) },
                                                        { "optimizer", std::string(R::optimizer::name) } });
                                  });
            return names;
        }

        /// What the results file's study line records (`study_identity`).
        nlohmann::json identity() const { return study_identity(m_spec, recipe_names(), m_data.identity()); }

        /// Runs every unfinished run; returns all finished runs (earlier ones read back from the file).
        /// Throws ballast::error if the results file belongs to a different study.
        std::vector<run_record> run(const study_observer& obs = {})
        {
            std::filesystem::create_directories(m_spec.out);
            if (m_spec.study.run_metrics)
            {
                std::filesystem::create_directories(m_spec.out / "runs");
            }
            auto finished = load_finished();
            std::set<std::string> done_keys;
            for (const auto& r : finished)
            {
                done_keys.insert(r.spec.key());
            }
            std::vector<run_spec> pending;
            for (const auto& r : m_runs)
            {
                if (!done_keys.contains(r.key()))
                {
                    pending.push_back(r);
                }
            }
            // Longest first (cost ~ params × steps), so the last runs to finish are short ones.
            std::ranges::stable_sort(pending,
                                     [](const run_spec& a, const run_spec& b)
                                     {
                                         return a.size.d_model * a.size.d_model * a.size.n_layers * a.steps >
                                                b.size.d_model * b.size.d_model * b.size.n_layers * b.steps;
                                     });
            const std::size_t total = m_runs.size();
            std::size_t done = finished.size();
            stop_signal_scope signals(true);
            std::mutex mu;
            std::atomic<std::size_t> next{ 0 };
            std::atomic<bool> stop{ false };
            std::exception_ptr error;
            const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
            const int jobs =
              m_spec.study.jobs > 0 ? m_spec.study.jobs : std::max(1, hw / m_spec.study.threads_per_run);
            const auto worker = [&]
            {
                ballast::thread_scope threads(m_spec.study.threads_per_run);
                while (!stop)
                {
                    const std::size_t i = next++;
                    if (i >= pending.size())
                    {
                        return;
                    }
                    try
                    {
                        if (obs.on_run_start)
                        {
                            std::lock_guard lock(mu);
                            obs.on_run_start(pending[i]);
                        }
                        auto rec = run_one(pending[i], signals);
                        if (!rec)
                        {
                            stop = true; // interrupted by a signal: not recorded
                            return;
                        }
                        std::lock_guard lock(mu);
                        append_run(results_path(), *rec);
                        finished.push_back(std::move(*rec));
                        ++done;
                        if (obs.on_run_done)
                        {
                            obs.on_run_done(finished.back(), done, total);
                        }
                    }
                    catch (...)
                    {
                        std::lock_guard lock(mu);
                        if (!error)
                        {
                            error = std::current_exception();
                        }
                        stop = true;
                    }
                }
            };
            std::vector<std::thread> pool;
            for (int w = 0;
                 w < std::min<int>(jobs, static_cast<int>(std::max<std::size_t>(1, pending.size()))); ++w)
            {
                pool.emplace_back(worker);
            }
            for (auto& t : pool)
            {
                t.join();
            }
            if (error)
            {
                std::rethrow_exception(error);
            }
            m_interrupted = signals.pending() != 0;
            write_summaries(finished);
            return finished;
        }

        /// True if the last `run` was stopped by SIGINT/SIGTERM before finishing every run.
        bool interrupted() const noexcept { return m_interrupted; }

        /// Write summary.json, summary.csv and results.csv from finished runs (study/summary.hpp).
        void write_summaries(const std::vector<run_record>& finished) const
        {
            study::write_summaries(m_spec.out, m_spec.study.name, finished, m_spec.study.sensitivity_window);
        }

    private:
        void enumerate()
        {
            const auto& st = m_spec.study;
            const auto or_default = [](const auto& v, auto d) {
                return v.empty() ? std::vector<decltype(d)>{ d }
                                 : std::vector<decltype(d)>(v.begin(), v.end());
            };
            const auto warmups = or_default(st.warmups, m_spec.train.warmup);
            const auto wds = or_default(st.weight_decays, m_spec.optimizer.weight_decay);
            const auto coupled_wds = or_default(st.coupled_weight_decays, 0.1);
            const auto epss = or_default(st.epss, m_spec.optimizer.adamw.eps);
            const auto steps = or_default(st.step_counts, m_spec.train.steps);
            std::size_t index = 0;
            boost::hana::for_each(m_recipes,
                                  [&](auto t)
                                  {
                                      using R = typename decltype(t)::type;
                                      for (const auto& size_label : st.sizes)
                                      {
                                          const auto size = parse_size(size_label);
                                          for (const auto wu : warmups)
                                              for (const auto wd :
                                                   R::optimizer::decay == weight_decay::coupled ? coupled_wds
                                                                                                : wds)
                                                  for (const auto eps : epss)
                                                      for (const auto n : steps)
                                                          for (const double lr : st.lrs)
                                                          {
                                                              run_spec r;
                                                              r.recipe = index;
                                                              r.recipe_name = std::string(R::name);
                                                              r.optimizer = std::string(R::optimizer::name);
                                                              r.size = size;
                                                              r.lr = lr;
                                                              r.warmup = wu;
                                                              r.weight_decay = wd;
                                                              r.eps = eps;
                                                              r.steps = n;
                                                              m_runs.push_back(r);
                                                          }
                                      }
                                      ++index;
                                  });
            std::set<std::string> keys;
            for (const auto& r : m_runs)
            {
                BALLAST_CHECK(keys.insert(r.key()).second, "study", "duplicate run '", r.key(),
                              "' (repeated grid values or recipe names)");
                // Validate every run's configs up front: a bad grid fails before any work is done.
                const auto [m, tc, oc] = configs(r);
                m.validate();
                tc.validate(m);
                oc.validate();
            }
        }

        std::tuple<model_config, train_config, optimizer_config> configs(const run_spec& r) const
        {
            auto m = m_spec.model;
            m.d_model = r.size.d_model;
            m.n_layers = r.size.n_layers;
            m.n_heads = r.size.n_heads;
            auto t = m_spec.train;
            t.lr = r.lr;
            t.warmup = r.warmup;
            t.steps = r.steps;
            t.threads = 0;
            t.checkpoint_dir.clear();
            t.handle_signals = false;
            t.metrics_path = m_spec.study.run_metrics ? (m_spec.out / "runs" / (r.key() + ".jsonl")).string()
                                                      : std::string{};
            auto o = m_spec.optimizer;
            o.weight_decay = r.weight_decay;
            o.adamw.eps = r.eps;
            return { m, t, o };
        }

        std::optional<run_record> run_one(const run_spec& r, const stop_signal_scope& signals)
        {
            std::optional<run_record> out;
            std::size_t index = 0;
            boost::hana::for_each(m_recipes,
                                  [&](auto t)
                                  {
                                      if (index++ != r.recipe)
                                      {
                                          return;
                                      }
                                      using R = typename decltype(t)::type;
                                      out =
                                        run_recipe<typename R::policies, typename R::optimizer>(r, signals);
                                  });
            return out;
        }

        template <class P, class O>
        std::optional<run_record> run_recipe(const run_spec& r, const stop_signal_scope& signals)
        {
            const auto t0 = std::chrono::steady_clock::now();
            const auto [m, tc, oc] = configs(r);
            trainer<P, O, float, diagnostics::forward> tr(m, tc, oc, m_data);
            const auto result = tr.run(stop_on_signal{ &signals });
            if (result.interrupted)
            {
                return std::nullopt;
            }
            run_record rec;
            rec.spec = r;
            rec.params = tr.model().layout().count();
            rec.params_non_embedding = non_embedding_params(tr.model().layout());
            rec.result = result;
            rec.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            rec.diagnostics = run_diagnostics(result, r.steps);
            rec.line = run_line(rec, m, tc, oc, m_spec.study.run_metrics ? "runs/" + r.key() + ".jsonl" : "");
            return rec;
        }

        /// Read the results file: check its study line against this study, return the finished runs that
        /// belong to this grid. Creates the file with its study line when absent.
        std::vector<run_record> load_finished()
        {
            const auto path = results_path();
            const auto file = load_results(path);
            const auto id = identity();
            if (file.study.is_null())
            {
                start_results(path, m_spec.study.name, id);
                return {};
            }
            const auto diff = json_differences(file.study["config"], id);
            BALLAST_CHECK(diff.empty(), "study", "'", path.string(),
                          "' holds results of a different study configuration (file vs now: ", diff,
                          "); use another output directory");
            std::map<std::string, const run_spec*> by_key;
            for (const auto& r : m_runs)
            {
                by_key[r.key()] = &r;
            }
            std::vector<run_record> out;
            std::set<std::string> seen;
            for (const nlohmann::json& j : file.runs)
            {
                const auto key = j["key"].get<std::string>();
                const auto it = by_key.find(key);
                if (it == by_key.end() || !seen.insert(key).second)
                {
                    continue; // cannot happen for an unchanged config; a duplicate from a crash race is
                              // dropped
                }
                run_record rec = parse_run_line(j);
                rec.spec = *it->second; // the grid's spec (with its recipe index)
                out.push_back(std::move(rec));
            }
            return out;
        }

        Recipes m_recipes;
        study_spec m_spec;
        const token_splits& m_data;
        std::vector<run_spec> m_runs;
        bool m_interrupted = false;
    };
} // namespace ballast::study

#endif
