// predict: see instabilities coming, from a finished study (Wortsman et al. 2023, §3.3 and §3.4).
//
//   predict runs/prediction                          # fit the smaller sizes, predict the largest, compare
//   predict runs/prediction --target-params 2e6      # predict a size that was never trained
//   predict runs/default --policy-set no_qk_ce --degree 1 --step 100 --json out.json
//
// 1. Calibrates the divergence threshold on the fitting runs: the block-0 max attention logit at --step
//    that separates runs that later diverged from runs that finished (the proxy's analogue of the paper's
//    1e4), or takes --threshold.
// 2. At each LR, fits log10(max logit at --step) as a polynomial (--degree, default 2: the paper's
//    quadratic) in log10 N over the sizes below the target, predicts the target's logit and whether it
//    crosses the threshold, and, when the target was trained, prints what it measured and whether it
//    diverged.
// 3. Fits log10(gradient RMS of blocks.0.mlp.up.weight, last 10% of steps) = a + b·log10 N + c·log10 LR over
//    the finished fitting runs (Fig 11), compares it with the target, and solves for the N at which the RMS
//    reaches AdamW's ε at each LR.
// Bad input exits with code 2 and one line.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ballast/core/file.hpp>
#include <ballast/study/predict.hpp>

#include "support/cli.hpp"

namespace
{
    namespace st = ballast::study;

    struct options
    {
        std::string results;
        std::string policy_set;
        std::size_t step = 100;
        std::size_t degree = 2;
        std::string threshold = "auto";
        std::string target;
        double target_params = 0;
        std::string measure = "non_embedding";
        double eps = 0;
        std::string json;
    };

    std::string fmt(double v, const char* f = "%.3g")
    {
        if (!std::isfinite(v))
        {
            return "-";
        }
        char buf[48];
        std::snprintf(buf, sizeof buf, f, v);
        return buf;
    }

    nlohmann::json num(double v)
    {
        return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
    }

    int run(const options& o)
    {
        double given_threshold = 0;
        if (o.threshold != "auto")
        {
            double threshold = 0;
            std::size_t used = 0;
            try
            {
                threshold = std::stod(o.threshold, &used);
            }
            catch (const std::exception&)
            {
                used = 0;
            }
            BALLAST_CHECK(used == o.threshold.size() && threshold > 0 && std::isfinite(threshold), "predict",
                          "--threshold must be a number > 0 or 'auto', got '", o.threshold, "'");
            given_threshold = threshold;
        }
        std::filesystem::path path = o.results;
        if (std::filesystem::is_directory(path))
        {
            path /= "results.jsonl";
        }
        auto all = st::load_runs(path);
        BALLAST_CHECK(!all.empty(), "predict", "'", path.string(), "' has no finished runs");
        std::set<std::string> sets;
        for (const auto& r : all)
        {
            sets.insert(r.policy_set);
        }
        std::string set = o.policy_set;
        if (set.empty())
        {
            std::string names;
            for (const auto& s : sets)
            {
                names += (names.empty() ? "" : ", ") + s;
            }
            BALLAST_CHECK(sets.size() == 1, "predict", "the results hold several policy sets (", names,
                          "): choose one with --policy-set");
            set = *sets.begin();
        }
        const auto runs = st::select_runs(all, set);
        const auto measure = o.measure == "total" ? st::size_measure::total : st::size_measure::non_embedding;
        BALLAST_CHECK(o.measure == "total" || o.measure == "non_embedding", "predict",
                      "--size-measure must be non_embedding or total, got '", o.measure, "'");

        // Sizes present, by N.
        std::map<double, std::string> sizes;
        for (const auto& r : runs)
        {
            sizes[st::run_size(r, measure)] = r.size;
        }
        double target = o.target_params;
        std::string target_label = "N=" + fmt(target);
        if (!o.target.empty())
        {
            BALLAST_CHECK(o.target_params == 0, "predict", "give --target or --target-params, not both");
            const auto it =
              std::find_if(sizes.begin(), sizes.end(), [&](const auto& s) { return s.second == o.target; });
            BALLAST_CHECK(it != sizes.end(), "predict", "no runs of size '", o.target, "' in '",
                          path.string(), "'");
            target = it->first;
            target_label = o.target;
        }
        else if (target == 0)
        {
            BALLAST_CHECK(sizes.size() >= 2, "predict",
                          "need at least 2 sizes to fit and predict, the results have ", sizes.size());
            target = sizes.rbegin()->first;
            target_label = sizes.rbegin()->second;
        }
        BALLAST_CHECK(target > sizes.begin()->first, "predict", "the target (", target_label,
                      ") must be larger than the smallest size trained");
        std::vector<st::run_observation> fitting;
        for (const auto& r : runs)
        {
            if (st::run_size(r, measure) < target)
            {
                fitting.push_back(r);
            }
        }

        // 1. Threshold.
        const auto cal = st::calibrate_threshold(fitting, o.step);
        double threshold = 0;
        std::string threshold_from;
        if (o.threshold == "auto")
        {
            threshold = cal.separable ? cal.threshold : 1e4;
            threshold_from = cal.separable ? "calibrated on the fitting runs"
                                           : "the paper's 1e4 (the fitting runs do not separate)";
        }
        else
        {
            threshold = given_threshold;
            threshold_from = "given";
        }
        std::printf("predict: %s, policy set %s: %zu runs, fitting %zu (N < target), target %s (N = %s %s)\n",
                    path.string().c_str(), set.c_str(), runs.size(), fitting.size(), target_label.c_str(),
                    fmt(target).c_str(), o.measure.c_str());
        std::printf("threshold on the block-0 max attention logit at step %zu: %s (%s)\n", o.step,
                    fmt(threshold).c_str(), threshold_from.c_str());
        std::printf("  fitting runs with a reading: %zu finished (max %s), %zu diverged later (min %s); %zu "
                    "diverged before step %zu\n",
                    cal.survived, fmt(cal.max_survived).c_str(), cal.diverged, fmt(cal.min_diverged).c_str(),
                    cal.diverged_before, o.step);

        // 2. Max-logit fits.
        st::logit_fit_options lo;
        lo.step = o.step;
        lo.degree = o.degree;
        lo.threshold = threshold;
        lo.measure = measure;
        const auto preds = st::predict_max_logit(runs, lo, target);
        std::printf("\nmax attention logit (block 0, step %zu): log10 fit of degree %zu in log10 N\n", o.step,
                    o.degree);
        std::printf("%-8s %-32s %9s %10s %9s %10s %10s %8s %s\n", "LR", "fitted logits (N ascending)",
                    "fit rms", "predicted", "crosses", "measured", "pred/meas", "diverged", "verdict");
        nlohmann::json jpreds = nlohmann::json::array();
        std::size_t agree = 0, judged = 0;
        for (const auto& p : preds)
        {
            std::vector<std::pair<double, double>> by_n;
            for (std::size_t i = 0; i < p.sizes.size(); ++i)
            {
                by_n.emplace_back(p.sizes[i], p.values[i]);
            }
            std::sort(by_n.begin(), by_n.end());
            std::string pts; // the fitted readings, smallest N first
            for (const auto& [n, v] : by_n)
            {
                pts += (pts.empty() ? "" : " ") + fmt(v, "%.3g");
            }
            std::string verdict = "-";
            if (p.fit && p.measured_diverged)
            {
                ++judged;
                const bool ok = p.predicted_crosses == *p.measured_diverged;
                agree += ok ? 1 : 0;
                verdict = ok ? "agrees" : (p.predicted_crosses ? "false alarm" : "missed");
            }
            std::printf("%-8s %-32s %9s %10s %9s %10s %10s %8s %s\n", fmt(p.lr).c_str(), pts.c_str(),
                        p.fit ? fmt(p.fit->rms_residual, "%.3f").c_str() : "-", fmt(p.predicted).c_str(),
                        p.fit ? (p.predicted_crosses ? "yes" : "no") : "-",
                        p.measured ? fmt(*p.measured).c_str() : "-",
                        p.measured && p.fit ? fmt(p.predicted / *p.measured, "%.2f").c_str() : "-",
                        p.measured_diverged ? (*p.measured_diverged ? "yes" : "no") : "-", verdict.c_str());
            if (!p.skipped.empty())
            {
                std::printf("         (no fit: %s)\n", p.skipped.c_str());
            }
            nlohmann::json jp = { { "lr", p.lr },
                                  { "sizes", p.sizes },
                                  { "values", p.values },
                                  { "predicted", num(p.predicted) },
                                  { "predicted_crosses",
                                    p.fit ? nlohmann::json(p.predicted_crosses) : nlohmann::json(nullptr) },
                                  { "measured", p.measured ? num(*p.measured) : nlohmann::json(nullptr) },
                                  { "measured_diverged", p.measured_diverged
                                                           ? nlohmann::json(*p.measured_diverged)
                                                           : nlohmann::json(nullptr) },
                                  { "skipped", p.skipped } };
            if (p.fit)
            {
                jp["fit"] = { { "coef", p.fit->coef }, { "rms_residual", p.fit->rms_residual } };
            }
            jpreds.push_back(std::move(jp));
        }
        if (judged > 0)
        {
            std::printf("divergence predicted correctly at %zu of %zu LRs\n", agree, judged);
        }

        // 3. Gradient RMS.
        nlohmann::json jgrad = nullptr;
        std::printf(
          "\ngradient RMS of %s (mean over the last 10%% of steps), fitted on the finished fitting runs\n",
          "blocks.0.mlp.up.weight");
        try
        {
            const auto g = st::fit_grad_rms(fitting, measure);
            const double eps = o.eps > 0 ? o.eps : fitting.front().eps;
            std::printf(
              "log10 rms = %.3f %+.3f log10 N %+.3f log10 LR  (%zu runs, rms residual %.3f decades)\n", g.a,
              g.b, g.c, g.points, g.rms_residual);
            std::printf("%-8s %12s %12s %10s %16s\n", "LR", "predicted", "measured", "pred/meas",
                        ("N at eps=" + fmt(eps)).c_str());
            std::map<double, std::optional<double>> measured;
            for (const auto& r : runs)
            {
                measured.try_emplace(r.lr);
                if (std::fabs(st::run_size(r, measure) - target) <= 1e-9 * target &&
                    std::isfinite(r.probe_grad_rms_tail))
                {
                    measured[r.lr] = r.probe_grad_rms_tail;
                }
            }
            nlohmann::json rows = nlohmann::json::array();
            for (const auto& [lr, m] : measured)
            {
                const double pr = g.predict(target, lr);
                const double n_eps = g.size_reaching(eps, lr);
                std::printf("%-8s %12s %12s %10s %16s\n", fmt(lr).c_str(), fmt(pr).c_str(),
                            m ? fmt(*m).c_str() : "-", m ? fmt(pr / *m, "%.2f").c_str() : "-",
                            fmt(n_eps).c_str());
                rows.push_back({ { "lr", lr },
                                 { "predicted", num(pr) },
                                 { "measured", m ? num(*m) : nlohmann::json(nullptr) },
                                 { "size_reaching_eps", num(n_eps) } });
            }
            nlohmann::json points = nlohmann::json::array(); // what the fit saw
            for (const auto& r : fitting)
            {
                if (!r.diverged && std::isfinite(r.probe_grad_rms_tail))
                {
                    points.push_back({ st::run_size(r, measure), r.lr, r.probe_grad_rms_tail });
                }
            }
            jgrad = { { "points", points },
                      { "a", g.a },
                      { "b", g.b },
                      { "c", g.c },
                      { "rms_residual", g.rms_residual },
                      { "points", g.points },
                      { "eps", eps },
                      { "rows", rows } };
        }
        catch (const ballast::error& e)
        {
            std::printf("no fit: %s\n", e.what());
        }

        if (!o.json.empty())
        {
            const nlohmann::json out = {
                { "results", path.string() },
                { "policy_set", set },
                { "target", target_label },
                { "target_n", target },
                { "size_measure", o.measure },
                { "step", o.step },
                { "degree", o.degree },
                { "threshold", threshold },
                { "threshold_from", threshold_from },
                { "calibration",
                  { { "survived", cal.survived },
                    { "diverged", cal.diverged },
                    { "diverged_before", cal.diverged_before },
                    { "max_survived", num(cal.max_survived) },
                    { "min_diverged", num(cal.min_diverged) },
                    { "separable", cal.separable } } },
                { "max_logit", jpreds },
                { "grad_rms", jgrad },
            };
            const std::string text = out.dump(2) + "\n";
            if (const auto dir = std::filesystem::path(o.json).parent_path(); !dir.empty())
            {
                std::filesystem::create_directories(dir);
            }
            ballast::write_file_atomic(o.json, std::as_bytes(std::span(text)));
        }
        return 0;
    }
} // namespace

int main(int argc, char** argv)
{
    options o;
    CLI::App app{
        "predict: fit early attention logits and gradient RMS of a finished study against model size, "
        "predict a larger size and check it against the runs (docs/diagnostics.md)",
        "predict"
    };
    app.add_option("results", o.results, "a study's results.jsonl, or its output directory")->required();
    app.add_option("--policy-set", o.policy_set,
                   "policy set to analyse (needed when the results hold several)");
    ballast::cli::add_option(app, "--step", o.step,
                             "read the max attention logit at the first recorded step >= this");
    app
      .add_option("--degree", o.degree,
                  "degree of the log-log fit of the max logit (1..3; 2: the paper's quadratic)")
      ->capture_default_str()
      ->check(CLI::Range(1, 3));
    app
      .add_option("--threshold", o.threshold,
                  "divergence threshold on the max logit, or 'auto' (calibrated on the fitting runs)")
      ->capture_default_str();
    app.add_option("--target", o.target,
                   "size label to predict (default: the largest size; smaller ones are fitted)");
    app
      .add_option("--target-params", o.target_params,
                  "predict for this N instead (a size that was not trained)")
      ->check(CLI::PositiveNumber);
    app.add_option("--size-measure", o.measure, "N = non_embedding (the paper's) or total parameters")
      ->capture_default_str()
      ->check(CLI::IsMember({ "non_embedding", "total" }));
    app.add_option("--eps", o.eps, "AdamW eps for the gradient-RMS crossing (default: the runs' eps)")
      ->check(CLI::PositiveNumber);
    app.add_option("--json", o.json, "also write the fits and predictions as JSON");
    if (const int rc = ballast::cli::parse(app, argc, argv); rc >= 0)
    {
        return rc;
    }
    return ballast::cli::run_main("predict", [&] { return run(o); });
}
