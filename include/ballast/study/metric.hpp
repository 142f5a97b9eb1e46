#ifndef BALLAST_STUDY_METRIC_HPP
#define BALLAST_STUDY_METRIC_HPP

/// @file
/// The LR-sensitivity metric of Wortsman et al. 2023 (§2.2, App. B).
///
///   LRsens = E_{η ∈ grid} [ min(ℓ(η), ℓ0) − ℓ* ],   ℓ* = min_{η ∈ grid} ℓ(η)
///
/// with ℓ(η) the final validation loss of the run at peak LR η, ℓ0 the loss at initialisation, and
/// diverged (or non-finite) runs counted as ℓ0, so one LR contributes at most ℓ0 − ℓ*. The paper's grid is
/// the 7 values {3e-4, 1e-3, …, 3e-1}. For coupled weight decay, whose optimum sits half a decade lower, the
/// paper reports the minimum over two shifted windows; `lr_sensitivity_shifted` generalises that to the
/// minimum over every window of `window` consecutive grid points.
///
/// Caveat (App. B): the metric is meaningless when an intervention changes what LR means (e.g. parameter-
/// RMS LR scaling), and a model that never learns has sensitivity 0: read it with the loss-vs-LR curve.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <vector>

#include <ballast/core/config.hpp>

namespace ballast::study
{
    /// One finished run of an LR sweep.
    struct lr_point
    {
        double lr = 0;
        double loss = 0;       ///< final validation loss (ignored when diverged)
        bool diverged = false; ///< counted as ℓ0
    };

    /// min(ℓ, ℓ0), with diverged or non-finite runs at ℓ0.
    inline double capped_loss(const lr_point& p, double l0) noexcept
    {
        return p.diverged || !std::isfinite(p.loss) ? l0 : std::min(p.loss, l0);
    }

    /// ℓ* = the best capped loss of the points (ℓ0 if every run diverged).
    inline double best_loss(std::span<const lr_point> points, double l0) noexcept
    {
        double best = l0;
        for (const auto& p : points)
        {
            best = std::min(best, capped_loss(p, l0));
        }
        return best;
    }

    /// LR sensitivity over all `points` (one per LR of the grid). Throws on an empty grid or a non-finite ℓ0.
    inline double lr_sensitivity(std::span<const lr_point> points, double l0)
    {
        BALLAST_CHECK(!points.empty(), "lr_sensitivity", "no runs");
        BALLAST_CHECK(std::isfinite(l0), "lr_sensitivity", "l0 must be finite, got ", l0);
        const double best = best_loss(points, l0);
        double sum = 0;
        for (const auto& p : points)
        {
            sum += capped_loss(p, l0) - best;
        }
        return sum / static_cast<double>(points.size());
    }

    /// The minimum LR sensitivity over every window of `window` consecutive LRs (points sorted by LR).
    /// With the paper's 8-point grid {1e-4 … 3e-1} and window 7 this is its coupled-decay variant,
    /// min(LRsens[1e-4, 1e-1], LRsens[3e-4, 3e-1]).
    inline double lr_sensitivity_shifted(std::span<const lr_point> points, double l0, std::size_t window)
    {
        BALLAST_CHECK(window >= 1 && window <= points.size(), "lr_sensitivity_shifted", "window ", window,
                      " must be in [1, ", points.size(), "]");
        std::vector<lr_point> sorted(points.begin(), points.end());
        std::ranges::sort(sorted, {}, &lr_point::lr);
        double best = std::numeric_limits<double>::infinity();
        for (std::size_t i = 0; i + window <= sorted.size(); ++i)
        {
            best = std::min(best, lr_sensitivity(std::span(sorted).subspan(i, window), l0));
        }
        return best;
    }

    /// The LR of the best run (the smallest such LR on ties); 0 if every run diverged.
    inline double best_lr(std::span<const lr_point> points, double l0) noexcept
    {
        double lr = 0, best = l0;
        for (const auto& p : points)
        {
            const double c = capped_loss(p, l0);
            if (c < best || (c == best && lr > 0 && p.lr < lr && c < l0))
            {
                best = c;
                lr = p.lr;
            }
        }
        return lr;
    }

    /// The paper's 7-point LR grid {3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1}.
    inline std::vector<double> paper_lr_grid()
    {
        return { 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1 };
    }
} // namespace ballast::study

#endif
