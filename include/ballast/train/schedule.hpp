#ifndef BALLAST_TRAIN_SCHEDULE_HPP
#define BALLAST_TRAIN_SCHEDULE_HPP

/// @file
/// Learning-rate schedules. "LR" always means the peak value η (Wortsman et al. 2023 §2.2); a schedule
/// returns the LR at a step, lr(t) = s_t·η, and `multiplier(t)` = s_t ∈ [0, 1] is what independent weight
/// decay scales by. Steps count from 0; warm-up is linear from η/warmup at step 0 to η at step warmup−1.
///
/// | kind                 | after warm-up (progress p = (t − W)/(T − W) ∈ [0, 1])                      |
/// |----------------------|-----------------------------------------------------------------------------|
/// | `constant`           | η                                                                           |
/// | `cosine` (default)   | η_min + (η − η_min)·½(1 + cos πp)   — the paper: η_min = 1e-5 absolute      |
/// | `linear`             | η_min + (η − η_min)·(1 − p)                                                 |
/// | `inverse_sqrt`       | η·√(W / (t + 1))   (continuous at the end of warm-up when W ≥ 1)            |
/// | `warmup_stable_decay`| η until the last `decay_fraction` of steps, then linear to η_min           |
///
/// Past the last step every schedule holds its final value.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <numbers>
#include <string>
#include <string_view>
#include <utility>

#include <ballast/core/config.hpp>
#include <ballast/core/reflect.hpp>

namespace ballast
{
    enum class schedule_kind
    {
        constant,
        cosine,
        linear,
        inverse_sqrt,
        warmup_stable_decay
    };

    /// The schedules' names (their JSON, TOML and command-line form), for reflection (core/reflect.hpp).
    template <>
    struct enum_names<schedule_kind>
    {
        static constexpr std::array values{
            std::pair{ std::string_view("constant"), schedule_kind::constant },
            std::pair{ std::string_view("cosine"), schedule_kind::cosine },
            std::pair{ std::string_view("linear"), schedule_kind::linear },
            std::pair{ std::string_view("inverse_sqrt"), schedule_kind::inverse_sqrt },
            std::pair{ std::string_view("warmup_stable_decay"), schedule_kind::warmup_stable_decay }
        };
    };

    inline constexpr std::string_view schedule_name(schedule_kind k) noexcept
    {
        return enum_name(k);
    }

    /// Parse a schedule name; throws ballast::error listing the valid names.
    inline schedule_kind parse_schedule(std::string_view name)
    {
        return parse_enum<schedule_kind>(name, "schedule");
    }

    /// A schedule: the runtime numbers of one LR curve.
    struct lr_schedule
    {
        schedule_kind kind = schedule_kind::cosine;
        double peak_lr = 1e-3;       ///< η
        double min_lr = 1e-5;        ///< η_min, absolute (cosine, linear, WSD)
        std::size_t warmup = 0;      ///< W warm-up steps
        std::size_t total = 1;       ///< T total steps
        double decay_fraction = 0.2; ///< WSD: fraction of the steps spent decaying

        void validate() const
        {
            BALLAST_CHECK(peak_lr > 0 && std::isfinite(peak_lr), "lr_schedule", "peak_lr must be > 0, got ",
                          peak_lr);
            BALLAST_CHECK(min_lr >= 0 && min_lr <= peak_lr, "lr_schedule",
                          "min_lr must be in [0, peak_lr], got ", min_lr);
            BALLAST_CHECK(total >= 1, "lr_schedule", "total steps must be >= 1");
            BALLAST_CHECK(warmup <= total, "lr_schedule", "warmup (", warmup, ") exceeds total steps (",
                          total, ")");
            BALLAST_CHECK(decay_fraction >= 0 && decay_fraction <= 1, "lr_schedule",
                          "decay_fraction must be in [0, 1], got ", decay_fraction);
        }

        /// The learning rate at step t.
        double lr(std::size_t t) const noexcept
        {
            const double eta = peak_lr;
            if (t < warmup)
            {
                return eta * static_cast<double>(t + 1) / static_cast<double>(warmup);
            }
            const std::size_t last = total - 1;
            const double span = static_cast<double>(std::max<std::size_t>(1, last - std::min(last, warmup)));
            const double p =
              std::min(1.0, static_cast<double>(std::min(t, last) - std::min(last, warmup)) / span);
            switch (kind)
            {
                case schedule_kind::constant:
                    return eta;
                case schedule_kind::cosine:
                    return min_lr + (eta - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * p));
                case schedule_kind::linear:
                    return min_lr + (eta - min_lr) * (1.0 - p);
                case schedule_kind::inverse_sqrt:
                    return eta * std::sqrt(static_cast<double>(std::max<std::size_t>(warmup, 1)) /
                                           static_cast<double>(std::min(t, last) + 1));
                case schedule_kind::warmup_stable_decay:
                {
                    const double decay_steps = decay_fraction * static_cast<double>(total);
                    const double start = static_cast<double>(total) - decay_steps;
                    const double tt = static_cast<double>(std::min(t, last));
                    if (decay_steps <= 0 || tt < start)
                    {
                        return eta;
                    }
                    const double q = std::min(1.0, (tt - start + 1) / decay_steps);
                    return min_lr + (eta - min_lr) * (1.0 - q);
                }
            }
            return eta;
        }

        /// s_t = lr(t)/η.
        double multiplier(std::size_t t) const noexcept { return lr(t) / peak_lr; }
    };
} // namespace ballast

#endif
