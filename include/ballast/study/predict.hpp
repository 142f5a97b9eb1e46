#ifndef BALLAST_STUDY_PREDICT_HPP
#define BALLAST_STUDY_PREDICT_HPP

/// @file
/// Predicting instabilities from finished runs (Wortsman et al. 2023, §3.3 and §3.4).
///
/// **Attention-logit divergence (Fig 9).** Read the max attention logit of block 0 at a fixed early step,
/// for every (size, LR) of a grid trained without qk-layernorm. At each LR, fit it against the parameter
/// count N over the smaller sizes and extrapolate to a larger N; a prediction above the divergence threshold
/// (1e4 in the paper, calibrated on the runs here: `calibrate_threshold`) predicts that the larger model
/// diverges.
///
/// The fit (the paper says "quadratic" and leaves the axes open): log10(logit) as a polynomial of degree
/// 2 (default) or 1 in x = log10(N). Log axes because the logit spans orders of magnitude across a grid and
/// must stay positive when extrapolated (a polynomial in linear N or linear logit goes negative or explodes a
/// decade out); a quadratic in log N because that is the reading of the paper's Fig 9 (log-log axes, curves
/// bending upwards). With 3 fitting sizes a quadratic interpolates them exactly, so `rms_residual` is 0 and
/// says nothing: fit on ≥ 4 sizes, or compare with degree 1 (docs/diagnostics.md reports both).
///
/// **Gradient RMS vs ε (Fig 11).** The gradient RMS of the probe tensor (the first MLP weight of block 0),
/// averaged over the last 10% of the steps, falls with N and with LR. Fit the plane
/// log10(rms) = a + b·log10(N) + c·log10(LR) over the runs that did not diverge, and solve for the N at which
/// it reaches AdamW's ε (there the update collapses: Fig 13).
///
/// All of this reads a study's results.jsonl (study/study.hpp writes one line per finished run, with the
/// diagnostics series); nothing here trains.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ballast/core/config.hpp>
#include <ballast/core/jsonl.hpp>
#include <ballast/study/fit.hpp>

namespace ballast::study
{
    // -- runs ---------------------------------------------------------------------------------------------

    /// One finished run of a results file, as the analysis reads it.
    struct run_observation
    {
        std::string policy_set, optimizer, size;
        double params = 0;               ///< every parameter
        double params_non_embedding = 0; ///< the paper's N (no token/position tables, no head)
        double lr = 0, weight_decay = 0, eps = 0;
        std::size_t warmup = 0, steps = 0;
        bool diverged = false;
        std::size_t diverged_step = 0;
        double final_val_loss = 0;
        std::vector<std::size_t> series_step; ///< recorded diagnostics steps
        std::vector<double> max_logit_l0;     ///< block-0 max attention logit per recorded step (NaN: none)
        std::vector<double> probe_grad_rms;   ///< probe-tensor gradient RMS per recorded step
        double probe_grad_rms_tail = NAN;     ///< its mean over the last 10% of steps (NaN when diverged)
        double probe_update_rms_tail = NAN;

        /// The block-0 max logit at the first recorded step ≥ `step`; NaN if the run has no reading there
        /// (it diverged earlier, or recorded no diagnostics).
        double max_logit_at(std::size_t step) const noexcept
        {
            for (std::size_t i = 0; i < series_step.size(); ++i)
            {
                if (series_step[i] >= step)
                {
                    return max_logit_l0[i];
                }
            }
            return NAN;
        }
    };

    /// Which parameter count is N.
    enum class size_measure
    {
        non_embedding, ///< the paper's N: blocks and final norm only (default)
        total          ///< every parameter
    };

    inline double run_size(const run_observation& r, size_measure m) noexcept
    {
        return m == size_measure::total ? r.params : r.params_non_embedding;
    }

    namespace detail
    {
        inline double num_or_nan(const nlohmann::json& j, const char* key)
        {
            const auto it = j.find(key);
            return it != j.end() && it->is_number() ? it->get<double>() : NAN;
        }
    } // namespace detail

    /// Every run line of a study's results.jsonl. Throws ballast::error for a missing or corrupt file, or for
    /// run lines written before the diagnostics series existed (re-run the study with this version).
    inline std::vector<run_observation> load_runs(const std::filesystem::path& results)
    {
        std::vector<run_observation> out;
        std::size_t line = 0;
        for (const auto& j : read_jsonl(results, false))
        {
            ++line;
            if (string_field(j, "type") != "run")
            {
                continue;
            }
            try
            {
                const auto need = [&](const char* key)
                {
                    BALLAST_CHECK(j.contains(key), "load_runs", "'", results.string(), "' run line ", line,
                                  " has no '", key, "'");
                    return j.at(key);
                };
                run_observation r;
                r.policy_set = need("policy_set").get<std::string>();
                r.optimizer = need("optimizer").get<std::string>();
                r.size = need("size").get<std::string>();
                r.params = need("params").get<double>();
                r.params_non_embedding = need("params_non_embedding").get<double>();
                r.lr = need("lr").get<double>();
                r.weight_decay = need("weight_decay").get<double>();
                r.eps = need("eps").get<double>();
                r.warmup = need("warmup").get<std::size_t>();
                r.steps = need("steps").get<std::size_t>();
                r.diverged = need("diverged").get<bool>();
                r.diverged_step = need("diverged_step").get<std::size_t>();
                r.final_val_loss = detail::num_or_nan(j, "final_val_loss");
                const auto& d = need("diagnostics");
                BALLAST_CHECK(d.contains("series"), "load_runs", "'", results.string(), "' run line ", line,
                              " has no diagnostics series (written by an older ballast? re-run the study)");
                const auto& s = d.at("series");
                for (const auto& v : s.at("step"))
                {
                    r.series_step.push_back(v.get<std::size_t>());
                }
                for (const auto& v : s.at("max_attn_logit_l0"))
                {
                    r.max_logit_l0.push_back(v.is_number() ? v.get<double>() : NAN);
                }
                for (const auto& v : s.at("probe_grad_rms"))
                {
                    r.probe_grad_rms.push_back(v.is_number() ? v.get<double>() : NAN);
                }
                BALLAST_CHECK(r.max_logit_l0.size() == r.series_step.size() &&
                                r.probe_grad_rms.size() == r.series_step.size(),
                              "load_runs", "'", results.string(), "' run line ", line, " has ragged series");
                r.probe_grad_rms_tail = detail::num_or_nan(d, "probe_grad_rms_tail");
                r.probe_update_rms_tail = detail::num_or_nan(d, "probe_update_rms_tail");
                out.push_back(std::move(r));
            }
            catch (const nlohmann::json::exception& e) // a field of the wrong type: name the file and line
            {
                ::ballast::detail::throw_error("load_runs", "'", results.string(), "' run line ", line, ": ",
                                               e.what());
            }
        }
        return out;
    }

    /// The runs of one policy set (all of them when `policy_set` is empty). Throws if that leaves none.
    inline std::vector<run_observation> select_runs(const std::vector<run_observation>& runs,
                                                    const std::string& policy_set)
    {
        std::vector<run_observation> out;
        for (const auto& r : runs)
        {
            if (policy_set.empty() || r.policy_set == policy_set)
            {
                out.push_back(r);
            }
        }
        if (out.empty())
        {
            std::set<std::string> names;
            for (const auto& r : runs)
            {
                names.insert(r.policy_set);
            }
            std::string known;
            for (const auto& n : names)
            {
                known += (known.empty() ? "" : ", ") + n;
            }
            ballast::detail::throw_error("select_runs", "no runs of policy set '", policy_set,
                                         "' (the file has: ", known.empty() ? "none" : known, ")");
        }
        return out;
    }

    // -- divergence as loss degradation ----------------------------------------------------------------

    /// When a run "diverged" at this scale. The proxy's runs rarely produce a NaN: an unstable run ends at a
    /// finite but degraded loss (docs/diagnostics.md, "Divergence criterion"). A run counts as diverged under
    /// this criterion when
    ///   - it diverged numerically (`diverged`: non-finite loss, the study's own flag), or
    ///   - its final validation loss is non-finite, or above ℓ* + `margin`, where ℓ* is the best final loss
    ///     over the LRs of its group (same policy set, optimizer, size, warm-up, weight decay, ε and steps:
    ///     the LR-sensitivity curve it belongs to), or
    ///   - `reference` is finite and its final loss is above it (e.g. the 0-layer bigram baseline's loss, the
    ///     paper's Fig 10 line: a model worse than a bigram has learnt nothing from the context).
    /// The margin is a choice, not a calibration: 0.1 nats is 5× the ~0.02 loss differences that
    /// docs/reproduction.md calls too small to judge with one seed. The seed noise itself is not measured
    /// yet (issue 15); once it is, the margin should be stated as a multiple of it.
    struct divergence_criterion
    {
        double margin = 0.1;    ///< nats above the group's best final loss ℓ*
        double reference = NAN; ///< absolute ceiling on the final loss (NaN: none)
    };

    namespace detail
    {
        inline std::string loss_group_key(const run_observation& r)
        {
            return r.policy_set + '|' + r.optimizer + '|' + r.size + '|' + std::to_string(r.warmup) + '|' +
                   std::to_string(r.weight_decay) + '|' + std::to_string(r.eps) + '|' +
                   std::to_string(r.steps);
        }
    } // namespace detail

    /// Does run `r` count as diverged under `c`, given its group's best final loss `best`?
    inline bool loss_diverged(const run_observation& r, double best, const divergence_criterion& c) noexcept
    {
        if (r.diverged || !std::isfinite(r.final_val_loss))
        {
            return true;
        }
        if (std::isfinite(best) && r.final_val_loss > best + c.margin)
        {
            return true;
        }
        return std::isfinite(c.reference) && r.final_val_loss > c.reference;
    }

    /// The runs with `diverged` replaced by the loss-degradation criterion (a numerically diverged run stays
    /// diverged; `diverged_step` is kept, 0 for runs that only degraded). ℓ* is taken per group over its
    /// finite final losses. Feed the result to calibrate_threshold / predict_max_logit to test the paper's
    /// threshold rule (claim 20) against degradation instead of NaN.
    inline std::vector<run_observation> apply_divergence_criterion(std::vector<run_observation> runs,
                                                                   const divergence_criterion& c)
    {
        BALLAST_CHECK(c.margin >= 0 && std::isfinite(c.margin), "apply_divergence_criterion",
                      "margin must be finite and >= 0, got ", c.margin);
        std::map<std::string, double> best;
        for (const auto& r : runs)
        {
            if (!r.diverged && std::isfinite(r.final_val_loss))
            {
                const auto [it, fresh] = best.emplace(detail::loss_group_key(r), r.final_val_loss);
                it->second = fresh ? it->second : std::min(it->second, r.final_val_loss);
            }
        }
        for (auto& r : runs)
        {
            const auto it = best.find(detail::loss_group_key(r));
            r.diverged = loss_diverged(r, it == best.end() ? NAN : it->second, c);
        }
        return runs;
    }

    // -- attention-logit divergence (Fig 9) -------------------------------------------------------------

    /// Where the block-0 max logit at `step` separates the runs that later diverged from those that did
    /// not: the proxy's analogue of the paper's 1e4.
    struct threshold_calibration
    {
        std::size_t step = 0;
        std::size_t survived = 0, diverged = 0; ///< runs with a reading at `step`
        std::size_t diverged_before = 0;        ///< runs that diverged before `step` (no reading)
        double max_survived = NAN;              ///< largest reading of a run that finished
        double min_diverged = NAN;              ///< smallest reading of a run that later diverged
        bool separable = false;                 ///< max_survived < min_diverged
        double threshold = NAN;                 ///< geometric mean of the two when separable, else NaN
    };

    inline threshold_calibration calibrate_threshold(const std::vector<run_observation>& runs,
                                                     std::size_t step)
    {
        threshold_calibration c;
        c.step = step;
        double hi = -INFINITY, lo = INFINITY;
        for (const auto& r : runs)
        {
            const double v = r.max_logit_at(step);
            if (!std::isfinite(v))
            {
                c.diverged_before += r.diverged ? 1 : 0;
                continue;
            }
            if (r.diverged)
            {
                ++c.diverged;
                lo = std::min(lo, v);
            }
            else
            {
                ++c.survived;
                hi = std::max(hi, v);
            }
        }
        c.max_survived = c.survived ? hi : NAN;
        c.min_diverged = c.diverged ? lo : NAN;
        c.separable = c.survived && c.diverged && hi < lo;
        c.threshold = c.separable ? std::sqrt(hi * lo) : NAN;
        return c;
    }

    struct logit_fit_options
    {
        std::size_t step = 50;  ///< read the logit at the first recorded step at or after this one
        std::size_t degree = 2; ///< polynomial degree in log10 N (2: the paper's quadratic)
        double threshold = 1e4; ///< divergence threshold on the max logit
        size_measure measure = size_measure::non_embedding;
    };

    /// One LR's fit and its prediction at the target size.
    struct logit_prediction
    {
        double lr = 0;
        std::vector<double> sizes, values;     ///< the fitted points (N, logit at step)
        std::optional<polynomial_fit> fit;     ///< in (log10 N, log10 logit); empty if too few points
        std::string skipped;                   ///< why there is no fit (too few readings, …)
        double target = 0;                     ///< N predicted for
        double predicted = NAN;                ///< the fit's logit at the target
        bool predicted_crosses = false;        ///< predicted > threshold (divergence predicted)
        std::optional<double> measured;        ///< a run at the target N with a reading at the step
        std::optional<bool> measured_diverged; ///< a run at the target N: did it diverge
    };

    /// For each LR of `runs` (one policy set): fit the block-0 max logit at `opt.step` against N over the
    /// sizes below `target`, and predict it at `target`. When the runs include the target size, its reading
    /// and fate are returned next to the prediction. A run with no reading at the step (it diverged
    /// earlier) cannot be fitted: it is left out, and `skipped` says so when too few points remain.
    inline std::vector<logit_prediction> predict_max_logit(const std::vector<run_observation>& runs,
                                                           const logit_fit_options& opt, double target)
    {
        BALLAST_CHECK(target > 0, "predict_max_logit", "target size must be > 0, got ", target);
        BALLAST_CHECK(opt.degree >= 1 && opt.degree <= 3, "predict_max_logit", "degree must be 1..3, got ",
                      opt.degree);
        std::map<double, logit_prediction> by_lr;
        for (const auto& r : runs)
        {
            auto& p = by_lr[r.lr];
            p.lr = r.lr;
            p.target = target;
            const double n = run_size(r, opt.measure);
            const double v = r.max_logit_at(opt.step);
            if (std::fabs(n - target) <= 1e-9 * target)
            {
                p.measured_diverged = r.diverged;
                if (std::isfinite(v))
                {
                    p.measured = v;
                }
            }
            else if (n < target && std::isfinite(v) && v > 0)
            {
                p.sizes.push_back(n);
                p.values.push_back(v);
            }
        }
        std::vector<logit_prediction> out;
        for (auto& [lr, p] : by_lr)
        {
            std::vector<double> lx, ly;
            for (std::size_t i = 0; i < p.sizes.size(); ++i)
            {
                lx.push_back(std::log10(p.sizes[i]));
                ly.push_back(std::log10(p.values[i]));
            }
            std::vector<double> distinct = lx;
            std::sort(distinct.begin(), distinct.end());
            distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
            if (distinct.size() <= opt.degree)
            {
                p.skipped = "only " + std::to_string(distinct.size()) +
                            " smaller size(s) with a reading at step " + std::to_string(opt.step) +
                            "; a degree-" + std::to_string(opt.degree) + " fit needs " +
                            std::to_string(opt.degree + 1);
            }
            else
            {
                p.fit = fit_polynomial(lx, ly, opt.degree);
                p.predicted = std::pow(10.0, (*p.fit)(std::log10(target)));
                p.predicted_crosses = p.predicted > opt.threshold;
            }
            out.push_back(std::move(p));
        }
        return out;
    }

    // -- gradient RMS vs ε (Fig 11)
    // ---------------------------------------------------------------------------

    /// log10(grad RMS) = a + b·log10(N) + c·log10(LR), fitted over runs that finished.
    struct grad_rms_fit
    {
        double a = 0, b = 0, c = 0;
        double rms_residual = 0; ///< in log10 units
        std::size_t points = 0;

        double predict(double n, double lr) const noexcept
        {
            return std::pow(10.0, a + b * std::log10(n) + c * std::log10(lr));
        }
        /// The N at which the fitted RMS reaches `eps` at this LR; NaN unless RMS falls with N (b < 0).
        double size_reaching(double eps, double lr) const noexcept
        {
            if (!(b < 0))
            {
                return NAN;
            }
            return std::pow(10.0, (std::log10(eps) - a - c * std::log10(lr)) / b);
        }
    };

    /// Fit over the runs that finished and have a tail gradient RMS; needs ≥ 2 sizes and ≥ 2 LRs.
    inline grad_rms_fit fit_grad_rms(const std::vector<run_observation>& runs, size_measure m)
    {
        std::vector<std::vector<double>> X;
        std::vector<double> y;
        for (const auto& r : runs)
        {
            if (r.diverged || !std::isfinite(r.probe_grad_rms_tail) || !(r.probe_grad_rms_tail > 0))
            {
                continue;
            }
            X.push_back({ 1.0, std::log10(run_size(r, m)), std::log10(r.lr) });
            y.push_back(std::log10(r.probe_grad_rms_tail));
        }
        BALLAST_CHECK(X.size() >= 3, "fit_grad_rms",
                      "need at least 3 finished runs with a gradient RMS, got ", X.size());
        const auto beta = least_squares(X, y);
        grad_rms_fit f{ beta[0], beta[1], beta[2], 0, X.size() };
        double ss = 0;
        for (std::size_t i = 0; i < X.size(); ++i)
        {
            const double e = beta[0] + beta[1] * X[i][1] + beta[2] * X[i][2] - y[i];
            ss += e * e;
        }
        f.rms_residual = std::sqrt(ss / double(X.size()));
        return f;
    }
} // namespace ballast::study

#endif
