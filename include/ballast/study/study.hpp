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
/// Outputs: results.jsonl, summary.json (LR sensitivity per group), results.csv, summary.csv, and per-run
/// metrics logs in runs/. `tools/plot_study.py` draws the plots from them.

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include <boost/hana/adapt_struct.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/length.hpp>
#include <nlohmann/json.hpp>

#include <ballast/core/checked.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/file.hpp>
#include <ballast/core/jsonl.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/core/reflect.hpp>
#include <ballast/study/grid.hpp>
#include <ballast/study/metric.hpp>
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

namespace ballast::study
{
    /// One model size of the grid.
    struct model_size
    {
        std::size_t d_model = 0, n_layers = 0, n_heads = 0;
        std::string label() const
        {
            return "d" + std::to_string(d_model) + "_L" + std::to_string(n_layers) + "_H" +
                   std::to_string(n_heads);
        }
    };

    /// Parse "d64_L2_H4" strictly: 'd', digits, "_L", digits, "_H", digits and nothing else (no sign,
    /// blanks, leading zeros or trailing bytes, so an accepted label round-trips through label()), each
    /// value in [1, 2^20]; throws ballast::error otherwise.
    inline model_size parse_size(const std::string& s)
    {
        const auto fail = [&]
        {
            std::string shown; // control bytes escaped, so the one error line stays readable
            for (const char c : s)
            {
                const auto u = static_cast<unsigned char>(c);
                char esc[5];
                std::snprintf(esc, sizeof esc, "\\x%02x", u);
                shown += u < 0x20 || u == 0x7f ? std::string(esc) : std::string(1, c);
            }
            ::ballast::detail::throw_error(
              "study", "model size '", shown,
              "' is not of the form d<d_model>_L<layers>_H<heads>, e.g. d64_L2_H4");
        };
        const auto l = s.find("_L");
        const auto h = l == std::string::npos ? std::string::npos : s.find("_H", l + 2);
        if (s.empty() || s[0] != 'd' || h == std::string::npos)
        {
            fail();
        }
        const auto field = [&](std::size_t begin, std::size_t end, const char* what)
        {
            const std::string_view t = std::string_view(s).substr(begin, end - begin);
            if (t.empty() || t.find_first_not_of("0123456789") != std::string_view::npos || t[0] == '0')
            {
                fail();
            }
            return parse_unsigned(t, "study", what, std::size_t{ 1 } << 20);
        };
        model_size m;
        m.d_model = field(1, l, "model size d_model");
        m.n_layers = field(l + 2, h, "model size n_layers");
        m.n_heads = field(h + 2, s.size(), "model size n_heads");
        return m;
    }

    /// The specification of one run of the grid.
    struct run_spec
    {
        std::size_t recipe = 0; ///< index into the recipe tuple
        std::string recipe_name, optimizer;
        model_size size;
        double lr = 0;
        std::size_t warmup = 0, steps = 0;
        double weight_decay = 0, eps = 0;

        /// A unique, filesystem-safe key.
        std::string key() const
        {
            char buf[256];
            std::snprintf(buf, sizeof buf, "%s__%s__%s__lr%.6g__wu%zu__wd%.6g__eps%.6g__steps%zu",
                          recipe_name.c_str(), optimizer.c_str(), size.label().c_str(), lr, warmup,
                          weight_decay, eps, steps);
            std::string k = buf;
            for (auto& c : k)
            {
                c =
                  (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-') ? c : '-';
            }
            return k;
        }
    };

    /// One finished run, as recorded in results.jsonl.
    struct run_record
    {
        run_spec spec;
        std::size_t params = 0;               ///< every trained parameter
        std::size_t params_non_embedding = 0; ///< without token/position tables and the head (the paper's N)
        run_result result;
        double wall_seconds = 0;
        nlohmann::json diagnostics = nlohmann::json::object();
        nlohmann::json line; ///< the JSON line as written / read
    };

    /// LR sensitivity of one group (a recipe at one size and one setting of every other axis).
    struct group_summary
    {
        std::string recipe, optimizer, size;
        std::size_t params = 0, warmup = 0, steps = 0;
        double weight_decay = 0, eps = 0;
        double l0 = 0, best_loss = 0, best_lr = 0, lr_sensitivity = 0;
        std::size_t runs = 0, diverged = 0;
        std::vector<lr_point> points; ///< sorted by LR
    };

    /// Group finished runs and compute the metric per group (`window` > 0: the shifted-window variant).
    inline std::vector<group_summary> summarise(const std::vector<run_record>& runs, std::size_t window = 0)
    {
        std::map<std::string, group_summary> groups;
        std::vector<std::string> order;
        for (const auto& r : runs)
        {
            const auto& s = r.spec;
            char key[512];
            std::snprintf(key, sizeof key, "%s|%s|%s|%zu|%.9g|%.9g|%zu", s.recipe_name.c_str(),
                          s.optimizer.c_str(), s.size.label().c_str(), s.warmup, s.weight_decay, s.eps,
                          s.steps);
            auto [it, fresh] = groups.try_emplace(key);
            auto& g = it->second;
            if (fresh)
            {
                order.emplace_back(key);
                g.recipe = s.recipe_name;
                g.optimizer = s.optimizer;
                g.size = s.size.label();
                g.params = r.params;
                g.warmup = s.warmup;
                g.steps = s.steps;
                g.weight_decay = s.weight_decay;
                g.eps = s.eps;
                g.l0 = 0;
            }
            g.points.push_back({ s.lr, r.result.final_val_loss, r.result.diverged });
            g.l0 += r.result.l0;
            g.diverged += r.result.diverged ? 1 : 0;
        }
        std::vector<group_summary> out;
        for (const auto& k : order)
        {
            auto g = groups[k];
            g.runs = g.points.size();
            g.l0 /=
              static_cast<double>(g.runs); // identical across LRs (same seed and size); averaged defensively
            std::ranges::sort(g.points, {}, &lr_point::lr);
            g.best_loss = best_loss(g.points, g.l0);
            g.best_lr = best_lr(g.points, g.l0);
            g.lr_sensitivity = window > 0 && window < g.points.size()
                                 ? lr_sensitivity_shifted(g.points, g.l0, window)
                                 : lr_sensitivity(g.points, g.l0);
            out.push_back(std::move(g));
        }
        return out;
    }

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

    namespace detail
    {
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

        /// Minimum, mean and standard deviation of a span (double accumulation).
        template <class T>
        nlohmann::json stats(std::span<const T> x)
        {
            double mn = INFINITY, sum = 0, sq = 0;
            for (const T v : x)
            {
                mn = std::min(mn, static_cast<double>(v));
                sum += static_cast<double>(v);
            }
            const double mean = x.empty() ? 0 : sum / static_cast<double>(x.size());
            for (const T v : x)
            {
                sq += (static_cast<double>(v) - mean) * (static_cast<double>(v) - mean);
            }
            const auto fin = [](double v)
            { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
            return { { "min", fin(mn) },
                     { "mean", fin(mean) },
                     { "std", fin(x.empty() ? 0 : std::sqrt(sq / static_cast<double>(x.size()))) } };
        }
    } // namespace detail

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

        nlohmann::json identity() const
        {
            std::uint64_t h = fnv1a64(std::as_bytes(m_data.train()));
            h = fnv1a64(std::as_bytes(m_data.validation()), h);
            char hex[17];
            std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
            return detail::study_identity(m_spec, recipe_names(),
                                          { { "origin", m_data.origin() },
                                            { "train_tokens", m_data.train().size() },
                                            { "validation_tokens", m_data.validation().size() },
                                            { "fnv1a64", hex } });
        }

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
            ballast::detail::stop_signal_scope signals(true);
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
                        append_line(results_path(), rec->line.dump());
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

        /// Write summary.json, summary.csv and results.csv from finished runs.
        void write_summaries(const std::vector<run_record>& finished) const
        {
            const auto groups = summarise(finished, m_spec.study.sensitivity_window);
            nlohmann::json js = nlohmann::json::array();
            std::string csv =
              "recipe,optimizer,size,params,warmup,weight_decay,eps,steps,runs,diverged,l0,best_loss,best_lr,"
              "lr_sensitivity\n";
            for (const auto& g : groups)
            {
                js.push_back({ { "policy_set", g.recipe },
                               { "optimizer", g.optimizer },
                               { "size", g.size },
                               { "params", g.params },
                               { "warmup", g.warmup },
                               { "weight_decay", g.weight_decay },
                               { "eps", g.eps },
                               { "steps", g.steps },
                               { "runs", g.runs },
                               { "diverged", g.diverged },
                               { "l0", g.l0 },
                               { "best_loss", g.best_loss },
                               { "best_lr", g.best_lr },
                               { "lr_sensitivity", g.lr_sensitivity } });
                char row[512];
                std::snprintf(row, sizeof row, "%s,%s,%s,%zu,%zu,%.9g,%.9g,%zu,%zu,%zu,%.6f,%.6f,%.6g,%.6f\n",
                              g.recipe.c_str(), g.optimizer.c_str(), g.size.c_str(), g.params, g.warmup,
                              g.weight_decay, g.eps, g.steps, g.runs, g.diverged, g.l0, g.best_loss,
                              g.best_lr, g.lr_sensitivity);
                csv += row;
            }
            const std::string summary =
              nlohmann::json{ { "study", m_spec.study.name }, { "groups", js } }.dump(2) + "\n";
            write_file_atomic(m_spec.out / "summary.json", std::as_bytes(std::span(summary)));
            write_file_atomic(m_spec.out / "summary.csv", std::as_bytes(std::span(csv)));
            std::string runs = "key,recipe,optimizer,size,params,lr,warmup,weight_decay,eps,steps,l0,final_"
                               "val_loss,best_val_loss,"
                               "diverged,diverged_step,wall_seconds\n";
            for (const auto& r : finished)
            {
                const auto& s = r.spec;
                char row[768];
                std::snprintf(row, sizeof row,
                              "%s,%s,%s,%s,%zu,%.6g,%zu,%.9g,%.9g,%zu,%.6f,%.6f,%.6f,%d,%zu,%.2f\n",
                              s.key().c_str(), s.recipe_name.c_str(), s.optimizer.c_str(),
                              s.size.label().c_str(), r.params, s.lr, s.warmup, s.weight_decay, s.eps,
                              s.steps, r.result.l0, r.result.final_val_loss, r.result.best_val_loss,
                              r.result.diverged ? 1 : 0, r.result.diverged_step, r.wall_seconds);
                runs += row;
            }
            write_file_atomic(m_spec.out / "results.csv", std::as_bytes(std::span(runs)));
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
            const auto epss = or_default(st.epss, m_spec.optimizer.eps);
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
            o.eps = r.eps;
            return { m, t, o };
        }

        /// Stops a run when the study receives a signal.
        struct signal_stop
        {
            const ballast::detail::stop_signal_scope* signals;
            callback_action on_step_end(const step_info&) const
            {
                return signals->pending() ? callback_action::stop : callback_action::proceed;
            }
        };

        std::optional<run_record> run_one(const run_spec& r,
                                          const ballast::detail::stop_signal_scope& signals)
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
        std::optional<run_record> run_recipe(const run_spec& r,
                                             const ballast::detail::stop_signal_scope& signals)
        {
            const auto t0 = std::chrono::steady_clock::now();
            const auto [m, tc, oc] = configs(r);
            trainer<P, O, float, diagnostics::forward> tr(m, tc, oc, m_data);
            const auto result = tr.run(signal_stop{ &signals });
            if (result.interrupted)
            {
                return std::nullopt;
            }
            run_record rec;
            rec.spec = r;
            rec.params = tr.model().layout().count();
            for (const auto& e : tr.model().layout().entries())
            {
                using policies::param_role;
                const bool table = e.role == param_role::embedding || e.role == param_role::position ||
                                   e.role == param_role::head;
                rec.params_non_embedding += table ? 0 : e.size;
            }
            rec.result = result;
            rec.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            // Attention-logit growth over training (recorded every diag_interval steps) and the last recorded
            // step's output-logit and optimizer signals.
            const auto fin = [](double v)
            { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
            double max_logit = -INFINITY;
            nlohmann::json history = nlohmann::json::array();
            nlohmann::json series = { { "step", nlohmann::json::array() },
                                      { "max_attn_logit_l0", nlohmann::json::array() },
                                      { "probe_grad_rms", nlohmann::json::array() },
                                      { "probe_update_rms", nlohmann::json::array() } };
            // The probe tensor's RMS over the last 10% of the steps (the paper averages the final 500 of
            // 1e5 steps; a proxy's last 10% is as many noisy samples as a short run has).
            double tail_g = 0, tail_u = 0;
            std::size_t tail_n = 0;
            const double tail_from = 0.9 * double(r.steps);
            for (const auto& d : result.diag_history)
            {
                max_logit =
                  std::isnan(d.max_attn_logit) ? d.max_attn_logit : std::max(max_logit, d.max_attn_logit);
                history.push_back({ d.step, fin(d.max_attn_logit) });
                series["step"].push_back(d.step);
                series["max_attn_logit_l0"].push_back(fin(d.max_attn_logit_l0));
                series["probe_grad_rms"].push_back(fin(d.probe_grad_rms));
                series["probe_update_rms"].push_back(fin(d.probe_update_rms));
                if (double(d.step) > tail_from)
                {
                    tail_g += d.probe_grad_rms;
                    tail_u += d.probe_update_rms;
                    ++tail_n;
                }
            }
            rec.diagnostics["max_attn_logit"] = fin(max_logit);
            rec.diagnostics["max_attn_logit_history"] = std::move(history);
            rec.diagnostics["series"] = std::move(series);
            rec.diagnostics["probe_tensor"] = probe_tensor;
            rec.diagnostics["probe_grad_rms_tail"] =
              tail_n && !result.diverged ? fin(tail_g / double(tail_n)) : nlohmann::json(nullptr);
            rec.diagnostics["probe_update_rms_tail"] =
              tail_n && !result.diverged ? fin(tail_u / double(tail_n)) : nlohmann::json(nullptr);
            nlohmann::json warnings = nlohmann::json::array();
            for (const auto& w : result.warnings)
            {
                warnings.push_back(w.to_json());
            }
            rec.diagnostics["warnings"] = std::move(warnings);
            if (result.last_diagnostics.is_object())
            {
                const auto& d = result.last_diagnostics;
                rec.diagnostics["last_step"] =
                  result.diag_history.empty() ? 0 : result.diag_history.back().step;
                for (const char* k : { "log_z_mean", "log_z_std", "log_z_min", "logit_mean" })
                {
                    rec.diagnostics[k] = d[k];
                }
                nlohmann::json by_layer = nlohmann::json::array();
                for (const auto& l : d["layers"])
                {
                    by_layer.push_back(l["max_logit"]);
                }
                rec.diagnostics["max_attn_logit_by_layer"] = std::move(by_layer);
                // Mean over tensors of the gradient RMS and the unscaled-update RMS (paper Figs 11, 13).
                double g = 0, u = 0;
                std::size_t ng = 0, nu = 0;
                for (const auto& [name, t] : d["tensors"].items())
                {
                    if (t["grad_rms"].is_number())
                    {
                        g += t["grad_rms"].template get<double>();
                        ++ng;
                    }
                    if (t["update_rms"].is_number())
                    {
                        u += t["update_rms"].template get<double>();
                        ++nu;
                    }
                }
                rec.diagnostics["grad_rms"] = ng ? nlohmann::json(g / double(ng)) : nlohmann::json(nullptr);
                rec.diagnostics["update_rms"] = nu ? nlohmann::json(u / double(nu)) : nlohmann::json(nullptr);
            }
            rec.line = record_json(rec, m, tc, oc);
            return rec;
        }

        nlohmann::json record_json(const run_record& rec, const model_config& m, const train_config& t,
                                   const optimizer_config& o) const
        {
            const auto& s = rec.spec;
            const auto& res = rec.result;
            const auto fin = [](double v)
            { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
            return {
                { "type", "run" },
                { "key", s.key() },
                { "policy_set", s.recipe_name },
                { "optimizer", s.optimizer },
                { "size", s.size.label() },
                { "params", rec.params },
                { "params_non_embedding", rec.params_non_embedding },
                { "d_model", s.size.d_model },
                { "n_layers", s.size.n_layers },
                { "n_heads", s.size.n_heads },
                { "lr", s.lr },
                { "warmup", s.warmup },
                { "weight_decay", s.weight_decay },
                { "eps", s.eps },
                { "steps", s.steps },
                { "l0", fin(res.l0) },
                { "final_val_loss", fin(res.final_val_loss) },
                { "best_val_loss", fin(res.best_val_loss) },
                { "diverged", res.diverged },
                { "diverged_step", res.diverged_step },
                { "reason", res.diverged_reason },
                { "evals", res.evals },
                { "wall_seconds", rec.wall_seconds },
                { "train_seconds", res.train_seconds },
                { "metrics", m_spec.study.run_metrics ? "runs/" + s.key() + ".jsonl" : "" },
                { "diagnostics", rec.diagnostics },
                { "config",
                  { { "model", to_json(m) }, { "train", identity_json(t) }, { "optimizer", to_json(o) } } }
            };
        }

        /// Read the results file: check its study line against this study, return the finished runs that
        /// belong to this grid. Creates the file with its study line when absent.
        std::vector<run_record> load_finished()
        {
            const auto path = results_path();
            const auto lines = read_jsonl(path);
            const auto id = identity();
            {
                // A crash mid-append can leave a torn last line: rewrite the file without it, so the next
                // append starts on a line of its own.
                std::error_code ec;
                if (!lines.empty() && std::filesystem::exists(path, ec))
                {
                    std::string clean;
                    for (const auto& j : lines)
                    {
                        clean += j.dump() + "\n";
                    }
                    const auto bytes = read_file(path);
                    if (bytes.size() != clean.size() || (!bytes.empty() && bytes.back() != std::byte{ '\n' }))
                    {
                        write_file_atomic(path, std::as_bytes(std::span(clean)));
                    }
                }
            }
            if (lines.empty())
            {
                const nlohmann::json header = { { "type", "study" },
                                                { "name", m_spec.study.name },
                                                { "config", id } };
                const std::string text = header.dump() + "\n";
                write_file_atomic(path, std::as_bytes(std::span(text)));
                return {};
            }
            BALLAST_CHECK(lines.front().value("type", "") == "study" && lines.front().contains("config"),
                          "study", "'", path.string(), "' does not start with a study line");
            const auto diff = json_differences(lines.front()["config"], id);
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
            for (std::size_t i = 1; i < lines.size(); ++i)
            {
                const nlohmann::json& j = lines[i];
                if (j.value("type", "") != "run" || !j.contains("key") || !j["key"].is_string())
                {
                    continue;
                }
                const auto key = j["key"].get<std::string>();
                const auto it = by_key.find(key);
                if (it == by_key.end() || !seen.insert(key).second)
                {
                    continue; // cannot happen for an unchanged config; a duplicate from a crash race is
                              // dropped
                }
                run_record rec;
                rec.spec = *it->second;
                rec.params = j.value("params", std::size_t{ 0 });
                rec.params_non_embedding = j.value("params_non_embedding", std::size_t{ 0 });
                const auto num = [&j](const char* k) -> double
                {
                    const auto f = j.find(k);
                    return f != j.end() && f->is_number() ? f->template get<double>() : std::nan("");
                };
                rec.result.policy_set = rec.spec.recipe_name;
                rec.result.optimizer = rec.spec.optimizer;
                rec.result.l0 = num("l0");
                rec.result.final_val_loss = num("final_val_loss");
                rec.result.best_val_loss = num("best_val_loss");
                rec.result.diverged = j.value("diverged", false);
                rec.result.diverged_step = j.value("diverged_step", std::size_t{ 0 });
                rec.result.diverged_reason = j.value("reason", "");
                rec.result.steps_done = rec.spec.steps;
                rec.wall_seconds = num("wall_seconds");
                rec.diagnostics = j.value("diagnostics", nlohmann::json::object());
                rec.line = j;
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
