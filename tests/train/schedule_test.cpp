#include <cmath>
#include <numbers>

#include <catch2/catch.hpp>

#include <ballast/train/schedule.hpp>

#include "support/tolerance.hpp"

using ballast::lr_schedule;
using ballast::schedule_kind;

TEST_CASE("warm-up is linear to the peak, then cosine decays to the absolute minimum", "[train][schedule]")
{
    const lr_schedule s{
        .kind = schedule_kind::cosine, .peak_lr = 0.3, .min_lr = 1e-5, .warmup = 10, .total = 110
    };
    s.validate();
    for (std::size_t t = 0; t < 10; ++t)
    {
        BALLAST_CHECK_CLOSE(s.lr(t), 0.3 * static_cast<double>(t + 1) / 10.0, double);
    }
    BALLAST_CHECK_CLOSE(s.lr(10), 0.3, double);   // p = 0
    BALLAST_CHECK_CLOSE(s.lr(109), 1e-5, double); // p = 1: the last step reaches the minimum
    BALLAST_CHECK_CLOSE(s.lr(500), 1e-5, double); // held afterwards
    for (std::size_t t = 10; t < 110; ++t)
    {
        const double p = static_cast<double>(t - 10) / 99.0;
        BALLAST_CHECK_CLOSE(s.lr(t), 1e-5 + (0.3 - 1e-5) * 0.5 * (1 + std::cos(std::numbers::pi * p)),
                            double);
    }
    BALLAST_CHECK_CLOSE(s.multiplier(10), 1.0, double);
}

TEST_CASE("constant, linear, inverse-sqrt and warmup-stable-decay match their closed forms",
          "[train][schedule]")
{
    const lr_schedule c{ .kind = schedule_kind::constant, .peak_lr = 0.01, .warmup = 4, .total = 20 };
    CHECK(c.lr(3) == 0.01);
    CHECK(c.lr(19) == 0.01);
    const lr_schedule l{
        .kind = schedule_kind::linear, .peak_lr = 1.0, .min_lr = 0.0, .warmup = 0, .total = 11
    };
    for (std::size_t t = 0; t < 11; ++t)
    {
        BALLAST_CHECK_CLOSE(l.lr(t), 1.0 - static_cast<double>(t) / 10.0, double);
    }
    const lr_schedule r{ .kind = schedule_kind::inverse_sqrt, .peak_lr = 2.0, .warmup = 16, .total = 1000 };
    BALLAST_CHECK_CLOSE(r.lr(15), 2.0, double);                          // end of warm-up
    BALLAST_CHECK_CLOSE(r.lr(63), 2.0 * std::sqrt(16.0 / 64.0), double); // = 1.0
    const lr_schedule w{ .kind = schedule_kind::warmup_stable_decay,
                         .peak_lr = 1.0,
                         .min_lr = 0.0,
                         .warmup = 0,
                         .total = 100,
                         .decay_fraction = 0.1 };
    CHECK(w.lr(89) == 1.0);
    BALLAST_CHECK_CLOSE(w.lr(90), 0.9, double);
    BALLAST_CHECK_CLOSE(w.lr(99), 0.0, double);
}

TEST_CASE("bad schedules are refused with clear messages", "[train][schedule][errors]")
{
    CHECK_THROWS_WITH((lr_schedule{ .peak_lr = 0 }.validate()), Catch::Contains("peak_lr must be > 0"));
    CHECK_THROWS_WITH((lr_schedule{ .peak_lr = 1e-3, .min_lr = 1e-2 }.validate()), Catch::Contains("min_lr"));
    CHECK_THROWS_WITH((lr_schedule{ .warmup = 5, .total = 3 }.validate()),
                      Catch::Contains("warmup (5) exceeds"));
    CHECK_THROWS_WITH(ballast::parse_schedule("cosin"), Catch::Contains("schedule: unknown value 'cosin'") && Catch::Contains("known: constant, cosine"));
    CHECK(ballast::parse_schedule("warmup_stable_decay") == schedule_kind::warmup_stable_decay);
}
