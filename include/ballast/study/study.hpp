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
///
/// Across processes (docs/distributed.md):
/// - `run_shard(s)`: static shard s = I/N. The whole grid is dealt by estimated cost (`deal_shards`), the
///   shard runs its share minus the runs any result file in the directory has finished, and appends to its
///   own `results.I-of-N.jsonl`.
/// - `run_queue(comm)`: dynamic scheduling over a communicator (MPI): rank 0 hands out runs longest first,
///   is the only writer of results.jsonl and merges it into grid order with the summaries at the end.
/// - `merge()`: every result file of the directory into results.jsonl in grid order, plus the summaries.
///
/// One writer per file (core/lock.hpp): `run`, `merge` and rank 0 of `run_queue` hold `<out>/.lock`
/// exclusively; a shard holds it shared and `<out>/.lock.I-of-N` exclusively. So a second study in the
/// same directory, or the same shard twice, is refused with the holder's pid, while the shards of one
/// array run side by side; a results file is repaired (a torn last line dropped) only under its lock.

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
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <tuple>
#include <vector>

#include <boost/hana/adapt_struct.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/length.hpp>
#include <nlohmann/json.hpp>

#include <ballast/core/comm.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/file.hpp>
#include <ballast/core/jsonl.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/core/reflect.hpp>
#include <ballast/core/lock.hpp>
#include <ballast/core/signals.hpp>
#include <ballast/study/grid.hpp>
#include <ballast/study/merge.hpp>
#include <ballast/study/metric.hpp>
#include <ballast/study/plan.hpp>
#include <ballast/study/results.hpp>
#include <ballast/study/shard.hpp>
#include <ballast/study/spec.hpp>
#include <ballast/study/summary.hpp>
#include <ballast/study/work_queue.hpp>
#include <ballast/train/callbacks.hpp>
#include <ballast/train/trainer.hpp>

namespace ballast::study
{
    /// Runs a study over the recipes of `Recipes` (a Hana tuple of `hana::type<recipe<P, O>>`).
    template <class Recipes>
    class study_runner : public study_plan<Recipes>
    {
    public:
        using plan_type = study_plan<Recipes>;

        study_runner(Recipes recipes, study_spec study, const token_splits& data)
          : plan_type(std::move(recipes), std::move(study), data)
        {
        }

        using plan_type::identity;
        using plan_type::keys;
        using plan_type::costs;
        using plan_type::results_header;
        using plan_type::results_path;
        using plan_type::runs;
        using plan_type::spec;

        /// Runs every unfinished run; returns all finished runs (earlier ones read back from the file).
        /// Throws ballast::error if the results file belongs to a different study.
        std::vector<run_record> run(const study_observer& obs = {})
        {
            make_directories();
            const directory_lock lock(m_spec.out);
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
            // Longest first (the deal's cost estimate), so the last runs to finish are short ones.
            const auto cost = costs();
            std::map<std::string, double> cost_of;
            for (std::size_t i = 0; i < m_runs.size(); ++i)
            {
                cost_of[m_runs[i].key()] = cost[i];
            }
            std::ranges::stable_sort(pending, [&](const run_spec& a, const run_spec& b)
                                     { return cost_of[a.key()] > cost_of[b.key()]; });
            execute(pending, results_path(), finished, m_runs.size(), obs);
            // Grid order, whatever the completion order: the summaries of a resumed, sharded or MPI study
            // are then those of an uninterrupted one (the file itself stays in completion order).
            std::map<std::string, std::size_t> position;
            for (std::size_t i = 0; i < m_runs.size(); ++i)
            {
                position[m_runs[i].key()] = i;
            }
            std::ranges::stable_sort(finished, {},
                                     [&](const run_record& r) { return position[r.spec.key()]; });
            write_summaries(finished);
            return finished;
        }

        /// Runs shard `s` of the study: deals the whole grid to `s.count` shards by estimated cost (the
        /// same deal in every process), and runs this shard's runs that no result file in the output
        /// directory has finished yet, longest first, appending to `results_path(s)`. Every result file in
        /// the directory must belong to this study (`unfinished_runs`). Returns the shard's finished runs
        /// (from every file). Writes no summaries: `merge` does, once the shards are done.
        std::vector<run_record> run_shard(const shard_id& s, const study_observer& obs = {})
        {
            BALLAST_CHECK(s.count >= 1 && s.index < s.count, "study", "shard ", s.index, " of ", s.count,
                          " is out of range");
            make_directories();
            const directory_lock whole(m_spec.out, lock_mode::shared);
            const directory_lock own(m_spec.out, lock_mode::exclusive,
                                     ".lock." + std::to_string(s.index) + "-of-" + std::to_string(s.count));
            const auto path = results_path(s);
            const auto header = results_header(s);
            load_results(path); // drops (and removes) a torn last line before this shard appends again
            const auto grid = keys();
            const auto missing_keys = unfinished_runs(m_spec.out, grid, header);
            const std::set<std::string> missing(missing_keys.begin(), missing_keys.end());
            if (load_results(path).study.is_null())
            {
                const std::string text = header.dump() + "\n";
                write_file_atomic(path, std::as_bytes(std::span(text)));
            }
            const auto cost = costs();
            const auto plan = deal_shards(std::span<const double>(cost), s.count);
            const auto& mine = plan.runs[s.index];
            std::vector<run_spec> pending;
            for (const std::size_t i : mine)
            {
                if (missing.contains(grid[i]))
                {
                    pending.push_back(m_runs[i]);
                }
            }
            std::vector<run_record> finished;
            for (auto& rec : read_directory_runs())
            {
                if (plan.shard_of[index_of(rec.spec.key())] == s.index)
                {
                    finished.push_back(std::move(rec));
                }
            }
            execute(pending, path, finished, mine.size(), obs);
            return finished;
        }

        /// Dynamic scheduling over `comm` (every rank calls it; `run_work_queue`): rank 0 hands out the
        /// unfinished runs longest first and appends every result to results.jsonl, the other ranks train.
        /// The fingerprint exchanged at the start is the study line (config, corpus, build), so ranks of
        /// another build or study are refused. At the end rank 0 merges the directory (results.jsonl in
        /// grid order) and writes the summaries, and returns every finished run; workers return nothing.
        std::vector<run_record> run_queue(communicator& comm, const study_observer& obs = {})
        {
            make_directories();
            const auto header = results_header();
            const std::string fingerprint = header.dump();
            stop_signal_scope signals(true);
            std::vector<std::size_t> order;
            std::size_t done = 0;
            const auto path = results_path();
            std::optional<directory_lock> lock;
            if (comm.rank() == 0)
            {
                lock.emplace(m_spec.out); // before the torn-line repair: rank 0 is the one writer
                load_results(path);       // drops a torn last line
                const auto grid = keys();
                const auto missing_keys = unfinished_runs(m_spec.out, grid, header);
                const std::set<std::string> missing(missing_keys.begin(), missing_keys.end());
                if (load_results(path).study.is_null())
                {
                    const std::string text = header.dump() + "\n";
                    write_file_atomic(path, std::as_bytes(std::span(text)));
                }
                const auto cost = costs();
                std::vector<double> pending_cost;
                std::vector<std::size_t> pending;
                for (std::size_t i = 0; i < grid.size(); ++i)
                {
                    if (missing.contains(grid[i]))
                    {
                        pending.push_back(i);
                        pending_cost.push_back(cost[i]);
                    }
                }
                for (const auto p : longest_first(std::span<const double>(pending_cost)))
                {
                    order.push_back(pending[p]);
                }
                done = grid.size() - missing.size();
            }
            ballast::thread_scope threads(m_spec.study.threads_per_run);
            const auto train = [&](std::size_t i) -> std::string
            {
                BALLAST_CHECK(i < m_runs.size(), "study", "run index ", i, " is not in the grid");
                if (obs.on_run_start && comm.size() == 1)
                {
                    obs.on_run_start(m_runs[i]);
                }
                auto rec = run_one(m_runs[i], signals);
                BALLAST_CHECK(rec.has_value(), "study", "interrupted by a signal during run '",
                              m_runs[i].key(), "'; run the same command again to resume");
                return rec->line.dump();
            };
            const auto record = [&](std::size_t i, int, std::string_view line)
            {
                auto j = nlohmann::json::parse(line);
                BALLAST_CHECK(string_field(j, "key") == m_runs[i].key(), "study", "the result for run ", i,
                              " has key ", string_field(j, "key"), ", expected ", m_runs[i].key());
                append_line(path, j.dump());
                run_record rec = parse_run_line(j);
                rec.spec = m_runs[i];
                ++done;
                if (obs.on_run_done)
                {
                    obs.on_run_done(rec, done, m_runs.size());
                }
            };
            run_work_queue(comm, std::span<const std::size_t>(order), train, record, fingerprint);
            if (comm.rank() != 0)
            {
                return {};
            }
            return merge_locked();
        }

        /// Merge every result file in the output directory (results.jsonl and results.I-of-N.jsonl) into
        /// results.jsonl in grid order (`merge_results_dir`) and write the summaries from the merged runs.
        /// The files must be of this study (the same configuration, recipes and corpus; named otherwise).
        /// Returns the finished runs in grid order; `missing()` lists the runs no file has.
        std::vector<run_record> merge()
        {
            make_directories();
            const directory_lock lock(m_spec.out);
            return merge_locked();
        }

        /// The grid keys the last `merge` (or the end of `run_queue`) found in no file, in grid order.
        const std::vector<std::string>& missing() const noexcept { return m_missing; }

        /// True if the last `run` was stopped by SIGINT/SIGTERM before finishing every run.
        bool interrupted() const noexcept { return m_interrupted; }

        /// Write summary.json, summary.csv and results.csv from finished runs (study/summary.hpp).
        void write_summaries(const std::vector<run_record>& finished) const
        {
            study::write_summaries(m_spec.out, m_spec.study.name, finished, m_spec.study.sensitivity_window);
        }

    private:
        using plan_type::configs;
        using plan_type::index_of;
        using plan_type::make_directories;
        using plan_type::m_data;
        using plan_type::m_recipes;
        using plan_type::m_runs;
        using plan_type::m_spec;

        /// `merge` with the directory's lock already held.
        std::vector<run_record> merge_locked()
        {
            const auto files = read_results_dir(m_spec.out);
            BALLAST_CHECK(!files.empty(), "merge", "no results.jsonl or results.I-of-N.jsonl in '",
                          m_spec.out.string(), "'");
            const auto id = identity();
            for (const auto& f : files)
            {
                BALLAST_CHECK(!f.lines.empty() && f.lines.front().contains("config"), "merge", "'", f.name,
                              "' does not start with a study line");
                const auto diff = json_differences(f.lines.front()["config"], id);
                BALLAST_CHECK(diff.empty(), "merge", "'", f.name,
                              "' holds another study than the one given (file vs flags: ", diff,
                              "); give merge the preset and flags of the study");
            }
            const auto grid = keys();
            const auto merged = merge_results(std::span<const results_lines>(files), grid);
            const auto text = merged.text();
            write_file_atomic(results_path(), std::as_bytes(std::span(text)));
            m_missing = merged.missing;
            std::vector<run_record> out;
            for (const auto& j : merged.runs)
            {
                run_record rec = parse_run_line(j, m_spec.out.string());
                rec.spec = m_runs[index_of(j["key"].template get<std::string>())];
                out.push_back(std::move(rec));
            }
            write_summaries(out);
            return out;
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


        /// The finished runs of every result file in the output directory, each once.
        std::vector<run_record> read_directory_runs() const
        {
            std::vector<run_record> out;
            const auto files = read_results_dir(m_spec.out);
            if (files.empty())
            {
                return out;
            }
            const auto grid = keys();
            for (const auto& j : merge_results(std::span<const results_lines>(files), grid).runs)
            {
                run_record rec = parse_run_line(j, m_spec.out.string());
                rec.spec = m_runs[index_of(j["key"].template get<std::string>())];
                out.push_back(std::move(rec));
            }
            return out;
        }

        /// The cores this process may use: the launcher's (`cores_from_environment`: SLURM_CPUS_PER_TASK,
        /// OMP_NUM_THREADS), else the hardware's.
        static int available_cores()
        {
            if (const auto c = cores_from_environment())
            {
                return c->cores;
            }
            return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        }

        /// Run `pending` in that order over the worker threads (`jobs` concurrent runs of
        /// `threads_per_run` threads), appending each finished run to `path` and to `finished`.
        void execute(const std::vector<run_spec>& pending, const std::filesystem::path& path,
                     std::vector<run_record>& finished, std::size_t total, const study_observer& obs)
        {
            std::size_t done = finished.size();
            stop_signal_scope signals(true);
            std::mutex mu;
            std::atomic<std::size_t> next{ 0 };
            std::atomic<bool> stop{ false };
            std::exception_ptr error;
            const int cores = available_cores();
            const int jobs =
              m_spec.study.jobs > 0 ? m_spec.study.jobs : std::max(1, cores / m_spec.study.threads_per_run);
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
                        append_run(path, *rec);
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
                const std::string text = results_header().dump() + "\n";
                write_file_atomic(path, std::as_bytes(std::span(text)));
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
                run_record rec = parse_run_line(j, path.string());
                rec.spec = *it->second; // the grid's spec (with its recipe index)
                out.push_back(std::move(rec));
            }
            return out;
        }

        bool m_interrupted = false;
        std::vector<std::string> m_missing;
    };
} // namespace ballast::study

#endif
