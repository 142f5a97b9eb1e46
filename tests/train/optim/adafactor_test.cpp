// Adafactor (ballast/train/optim/adafactor.hpp) against a PyTorch implementation written from the paper's
// Algorithms 4 and 5 (tools/fixtures/make_optimizer_fixtures.py, case adafactor: factored w, unfactored b,
// update clipping firing on some steps, β1 = 0.9, relative step with b on the ε2 floor), plus closed forms.
#include <cmath>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/train/optim/adafactor.hpp>

#include "support/tolerance.hpp"
#include "train/optim/replay.hpp"

TEMPLATE_TEST_CASE("Adafactor follows PyTorch step by step", "[train][optimizer][adafactor][pytorch]", float,
                   double)
{
    ballast::test::replay<ballast::optim::adafactor<ballast::weight_decay::independent>, TestType>(
      "adafactor",
      [](ballast::optimizer_config& c, const ballast::io::safetensors_file& f)
      {
          using ballast::test::meta;
          c.adafactor.beta1 = meta(f, "beta1");
          c.adafactor.decay_rate = meta(f, "decay_rate");
          c.adafactor.eps1 = meta(f, "eps1");
          c.adafactor.eps2 = meta(f, "eps2");
          c.adafactor.clip_threshold = meta(f, "clip_threshold");
      });
}

TEST_CASE("Adafactor's first step is the clipped sign-like update scaled by the parameter RMS",
          "[train][optimizer][adafactor]")
{
    // t = 1: β̂21 = 0, so V̂ = G² + ε1 for a vector and U = G/√(G² + ε1) ≈ sign(G), RMS(U) ≈ 1 ≤ d: no
    // clipping. With β1 = 0, θ1 = θ0 − η·max(ε2, RMS(θ0))·U exactly (no decay: λ = 0).
    ballast::param_layout layout;
    ballast::param_entry e;
    e.name = "v";
    e.shape = { 11 };
    layout.add(e, ballast::param_layout::align_elems<double>);
    ballast::optimizer_config c;
    c.weight_decay = 0;
    c.clip = 0;
    ballast::optimizer<ballast::optim::adafactor<>, double> opt(layout, c);
    std::vector<double> p(layout.total()), g(layout.total());
    double sq = 0;
    for (std::size_t i = 0; i < p.size(); ++i)
    {
        p[i] = 0.3 + 0.05 * static_cast<double>(i);
        g[i] = (i % 2 ? -1.0 : 1.0) * (0.01 + 0.002 * static_cast<double>(i));
        sq += p[i] * p[i];
    }
    const auto p0 = p;
    const double alpha = 0.1 * std::max(c.adafactor.eps2, std::sqrt(sq / static_cast<double>(p.size())));
    opt.step(p, g, 0.1, 1.0);
    for (std::size_t i = 0; i < p.size(); ++i)
    {
        const double u = g[i] / std::sqrt(g[i] * g[i] + c.adafactor.eps1);
        BALLAST_CHECK_CLOSE(p[i], p0[i] - alpha * u, double);
    }
    CHECK(ballast::optim::adafactor<>::beta2_at(1, c.adafactor) == 0.0);
    BALLAST_CHECK_CLOSE(ballast::optim::adafactor<>::beta2_at(32, c.adafactor), 1 - std::pow(32.0, -0.8),
                        double);
}

TEST_CASE("Adafactor factors only true matrices", "[train][optimizer][adafactor]")
{
    CHECK(ballast::kernels::adafactor_factored(7, 13));
    CHECK(ballast::kernels::adafactor_factored(2, 2));
    CHECK_FALSE(ballast::kernels::adafactor_factored(1, 13));
    CHECK_FALSE(ballast::kernels::adafactor_factored(13, 1));
}
