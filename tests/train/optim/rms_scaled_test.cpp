// rms_scaled<O> (ballast/train/optim/rms_scaled.hpp): AdamW with the paper's parameter-RMS LR scaling (Fig
// E.14) against its PyTorch fixture (tests/fixtures/optim/adamw_rms_scaled_*; b sits on the 1e-3 floor).
#include <catch2/catch.hpp>

#include <ballast/train/optim/rms_scaled.hpp>

#include "train/optim/replay.hpp"

TEMPLATE_TEST_CASE("AdamW with parameter-RMS LR scaling follows PyTorch step by step",
                   "[train][optimizer][rms_scaled][pytorch]", float, double)
{
    namespace optim = ballast::optim;
    using O = optim::rms_scaled<optim::adamw<ballast::weight_decay::independent>>;
    STATIC_REQUIRE(O::param_rms_scaling);
    ballast::test::replay<O, TestType>(
      "adamw_rms_scaled",
      [](ballast::optimizer_config& c, const ballast::io::safetensors_file& f)
      {
          c.adamw.beta1 = ballast::test::meta(f, "beta1");
          c.adamw.beta2 = ballast::test::meta(f, "beta2");
          c.adamw.eps = ballast::test::meta(f, "eps");
          c.rms.rms_floor = ballast::test::meta(f, "rms_floor");
      });
}
