// The LR-sensitivity metric on hand-made inputs, against the paper's definition worked by hand.
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/study/metric.hpp>

using ballast::study::lr_point;

TEST_CASE("LR sensitivity is the mean of min(loss, l0) minus the best loss, diverged runs at l0",
          "[study][metric]")
{
    const double l0 = 5.0;
    // Losses 3, 2.5, 2, 4, 6 (above l0: capped), diverged, NaN (counts as l0): ℓ* = 2.
    const std::vector<lr_point> pts{ { 3e-4, 3.0 }, { 1e-3, 2.5 },       { 3e-3, 2.0 },         { 1e-2, 4.0 },
                                     { 3e-2, 6.0 }, { 1e-1, 1.0, true }, { 3e-1, std::nan("") } };
    // Contributions: 1, 0.5, 0, 2, 3, 3, 3 → 12.5 / 7.
    CHECK(ballast::study::lr_sensitivity(pts, l0) == Approx(12.5 / 7.0).epsilon(1e-15));
    CHECK(ballast::study::best_loss(pts, l0) == 2.0); // the diverged run's 1.0 is ignored
    CHECK(ballast::study::best_lr(pts, l0) == 3e-3);
}

TEST_CASE("LR sensitivity is 0 for a flat curve and for a model that never learns", "[study][metric]")
{
    const std::vector<lr_point> flat{ { 1e-3, 2.0 }, { 1e-2, 2.0 }, { 1e-1, 2.0 } };
    CHECK(ballast::study::lr_sensitivity(flat, 5.0) == 0.0);
    const std::vector<lr_point> none{ { 1e-3, 7.0 }, { 1e-2, 0.0, true } };
    CHECK(ballast::study::lr_sensitivity(none, 5.0) == 0.0); // App. B caveat 2: read it with the curve
    CHECK(ballast::study::best_lr(none, 5.0) == 0.0);
}

TEST_CASE("the shifted-window variant takes the best window of consecutive LRs (coupled decay)",
          "[study][metric]")
{
    // 8 LRs {1e-4 … 3e-1}, optimum at the low end: the window [1e-4, 1e-1] is centred better.
    const double l0 = 6.0;
    const std::vector<lr_point> pts{ { 3e-1, 6.5 }, { 1e-4, 2.2 }, { 3e-4, 2.0 }, { 1e-3, 2.1 },
                                     { 3e-3, 2.4 }, { 1e-2, 3.0 }, { 3e-2, 4.0 }, { 1e-1, 5.0 } };
    // Window 1 (1e-4 … 1e-1): 0.2 + 0 + 0.1 + 0.4 + 1 + 2 + 3 = 6.7 → /7.
    // Window 2 (3e-4 … 3e-1): 0 + 0.1 + 0.4 + 1 + 2 + 3 + 4 (capped at l0) = 10.5 → /7.
    CHECK(ballast::study::lr_sensitivity_shifted(pts, l0, 7) == Approx(6.7 / 7.0).epsilon(1e-14));
    CHECK(ballast::study::lr_sensitivity_shifted(pts, l0, 8) ==
          Approx(ballast::study::lr_sensitivity(pts, l0)));
    CHECK_THROWS_WITH(ballast::study::lr_sensitivity_shifted(pts, l0, 9), Catch::Contains("window"));
    CHECK_THROWS_WITH(ballast::study::lr_sensitivity({}, l0), Catch::Contains("no runs"));
    CHECK(ballast::study::paper_lr_grid().size() == 7);
}
