#ifndef BALLAST_STUDY_SUMMARY_HPP
#define BALLAST_STUDY_SUMMARY_HPP

/// @file
/// A study's summaries: finished runs grouped (a recipe at one size and one setting of every axis but the
/// LR) with the LR sensitivity of each group (study/metric.hpp), and the files written from them:
///
///   summary.json   {"study": name, "groups": [{policy_set, optimizer, size, params, warmup, weight_decay,
///                   eps, steps, runs, diverged, l0, best_loss, best_lr, lr_sensitivity}, …]}
///   summary.csv    the same, one row per group
///   results.csv    one row per finished run (key, grid coordinates, losses, divergence, wall time)
///
/// Groups keep the order in which their first run appears; the points of a group are sorted by LR.

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ballast/core/file.hpp>
#include <ballast/study/metric.hpp>
#include <ballast/study/results.hpp>

namespace ballast::study
{
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
    /// A group's ℓ0 is the mean of its runs' (identical across LRs: same seed and size).
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
            g.l0 /= static_cast<double>(g.runs); // identical across LRs; averaged defensively
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

    /// summary.json's content: the study's name and one object per group.
    inline nlohmann::json summary_json(const std::string& study_name,
                                       const std::vector<group_summary>& groups)
    {
        nlohmann::json js = nlohmann::json::array();
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
        }
        return { { "study", study_name }, { "groups", js } };
    }

    /// summary.csv's content: a header row and one row per group.
    inline std::string summary_csv(const std::vector<group_summary>& groups)
    {
        std::string csv =
          "recipe,optimizer,size,params,warmup,weight_decay,eps,steps,runs,diverged,l0,best_loss,best_lr,"
          "lr_sensitivity\n";
        for (const auto& g : groups)
        {
            char row[512];
            std::snprintf(row, sizeof row, "%s,%s,%s,%zu,%zu,%.9g,%.9g,%zu,%zu,%zu,%.6f,%.6f,%.6g,%.6f\n",
                          g.recipe.c_str(), g.optimizer.c_str(), g.size.c_str(), g.params, g.warmup,
                          g.weight_decay, g.eps, g.steps, g.runs, g.diverged, g.l0, g.best_loss, g.best_lr,
                          g.lr_sensitivity);
            csv += row;
        }
        return csv;
    }

    /// results.csv's content: a header row and one row per finished run.
    inline std::string results_csv(const std::vector<run_record>& finished)
    {
        std::string runs = "key,recipe,optimizer,size,params,lr,warmup,weight_decay,eps,steps,l0,final_"
                           "val_loss,best_val_loss,"
                           "diverged,diverged_step,wall_seconds\n";
        for (const auto& r : finished)
        {
            const auto& s = r.spec;
            char row[768];
            std::snprintf(
              row, sizeof row, "%s,%s,%s,%s,%zu,%.6g,%zu,%.9g,%.9g,%zu,%.6f,%.6f,%.6f,%d,%zu,%.2f\n",
              s.key().c_str(), s.recipe_name.c_str(), s.optimizer.c_str(), s.size.label().c_str(), r.params,
              s.lr, s.warmup, s.weight_decay, s.eps, s.steps, r.result.l0, r.result.final_val_loss,
              r.result.best_val_loss, r.result.diverged ? 1 : 0, r.result.diverged_step, r.wall_seconds);
            runs += row;
        }
        return runs;
    }

    /// Write summary.json, summary.csv and results.csv into `out` (atomically, each).
    inline void write_summaries(const std::filesystem::path& out, const std::string& study_name,
                                const std::vector<run_record>& finished, std::size_t window = 0)
    {
        const auto groups = summarise(finished, window);
        const std::string summary = summary_json(study_name, groups).dump(2) + "\n";
        const std::string csv = summary_csv(groups);
        const std::string runs = results_csv(finished);
        write_file_atomic(out / "summary.json", std::as_bytes(std::span(summary)));
        write_file_atomic(out / "summary.csv", std::as_bytes(std::span(csv)));
        write_file_atomic(out / "results.csv", std::as_bytes(std::span(runs)));
    }
} // namespace ballast::study

#endif
