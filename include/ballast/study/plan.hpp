#ifndef BALLAST_STUDY_PLAN_HPP
#define BALLAST_STUDY_PLAN_HPP

/// @file
/// `study_plan<Recipes>`: the grid of a study before anything runs, as every process computes it the same
/// way: its runs in grid order (recipes × sizes × LRs × the optional axes) with their keys and estimated
/// costs, the identity and study line its results files record, and their names (results.jsonl, and
/// results.I-of-N.jsonl per shard). The engine that runs a plan, `study_runner`, derives from it
/// (study/study.hpp).

#include <cstddef>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include <boost/hana/for_each.hpp>
#include <nlohmann/json.hpp>

#include <ballast/core/config.hpp>
#include <ballast/study/grid.hpp>
#include <ballast/study/merge.hpp>
#include <ballast/study/metric.hpp>
#include <ballast/study/results.hpp>
#include <ballast/study/shard.hpp>
#include <ballast/study/spec.hpp>
#include <ballast/train/data.hpp>
#include <ballast/train/optimizer.hpp>
#include <ballast/train/train_config.hpp>

namespace ballast::study
{
    /// The grid of a study over the recipes of `Recipes` (a Hana tuple of `hana::type<recipe<P, O>>`).
    template <class Recipes>
    class study_plan
    {
    public:
        study_plan(Recipes recipes, study_spec spec, const token_splits& data)
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

        /// The grid's run keys, in grid order.
        std::vector<std::string> keys() const
        {
            std::vector<std::string> out;
            out.reserve(m_runs.size());
            for (const auto& r : m_runs)
            {
                out.push_back(r.key());
            }
            return out;
        }

        /// Each run's estimated cost, in grid order: `estimated_cost(params, steps)` with the parameters
        /// of a transformer of that size (12·d²·L for the blocks plus (vocab + context)·d for the tables;
        /// recipes' small extras, e.g. norm gains, are left out). Only the ratios matter, and every process
        /// computes the same numbers, so every process deals the same shards.
        std::vector<double> costs() const
        {
            std::vector<double> out;
            out.reserve(m_runs.size());
            for (const auto& r : m_runs)
            {
                const std::size_t d = r.size.d_model, l = r.size.n_layers;
                out.push_back(
                  estimated_cost(12 * d * d * l + (m_spec.model.vocab + m_spec.model.context) * d, r.steps));
            }
            return out;
        }

        /// The study line of this process's results file: `study_line` plus the build
        /// (`build_identity`) and, for a shard, the shard (`shard_study_line`).
        nlohmann::json results_header(const std::optional<shard_id>& shard = std::nullopt) const
        {
            auto line = study_line(m_spec.study.name, identity());
            if (shard)
            {
                return shard_study_line(std::move(line), *shard);
            }
            line["build"] = build_identity();
            return line;
        }

        /// The results file of shard `s` (results.I-of-N.jsonl in the output directory).
        std::filesystem::path results_path(const shard_id& s) const
        {
            return m_spec.out / shard_results_name(s);
        }

        /// The grid indices of shard `s`'s runs (its share of `deal_shards` over `costs`), longest first.
        std::vector<std::size_t> shard_runs(const shard_id& s) const
        {
            const auto cost = costs();
            auto plan = deal_shards(std::span<const double>(cost), s.count);
            BALLAST_CHECK(s.index < s.count, "study", "shard ", s.index, " of ", s.count, " is out of range");
            return std::move(plan.runs[s.index]);
        }

    protected:
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

        void make_directories() const
        {
            std::error_code ec; // several processes may create them at once
            std::filesystem::create_directories(m_spec.out, ec);
            if (m_spec.study.run_metrics)
            {
                std::filesystem::create_directories(m_spec.out / "runs", ec);
            }
            BALLAST_CHECK(std::filesystem::is_directory(m_spec.out), "study", "cannot create '",
                          m_spec.out.string(), "'");
        }

        std::size_t index_of(const std::string& key) const
        {
            for (std::size_t i = 0; i < m_runs.size(); ++i)
            {
                if (m_runs[i].key() == key)
                {
                    return i;
                }
            }
            ballast::detail::throw_error("study", "run '", key, "' is not in this study's grid");
        }

        Recipes m_recipes;
        study_spec m_spec;
        const token_splits& m_data;
        std::vector<run_spec> m_runs;

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
    };
} // namespace ballast::study

#endif
