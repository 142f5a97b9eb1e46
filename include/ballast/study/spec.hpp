#ifndef BALLAST_STUDY_SPEC_HPP
#define BALLAST_STUDY_SPEC_HPP

/// @file
/// What a study is, before it runs: `study_config` (the grid's runtime axes and the scheduling, reflected,
/// with a description per field), `study_spec` (that plus the base configs every run starts from and the
/// output directory), `study_observer` (the engine's progress callbacks) and `study_identity` (what the
/// results file's study line records, so that a different study is never mixed into it). The engine
/// that runs a spec is study/study.hpp.

#include <array>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <boost/hana/adapt_struct.hpp>
#include <nlohmann/json.hpp>

#include <ballast/core/reflect.hpp>
#include <ballast/model/config.hpp>
#include <ballast/study/grid.hpp>
#include <ballast/study/metric.hpp>
#include <ballast/study/results.hpp>
#include <ballast/train/optimizer.hpp>
#include <ballast/train/train_config.hpp>

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
        int threads_per_run = 1; ///< worker threads inside each run
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

} // namespace ballast::study

#endif
