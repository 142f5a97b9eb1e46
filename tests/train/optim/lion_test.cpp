// Lion (ballast/train/optim/lion.hpp) against its PyTorch fixture (tests/fixtures/optim/lion_*: torch tensor
// ops from Chen et al. 2023, decoupled decay scaled by the LR).
#include <catch2/catch.hpp>

#include <ballast/train/optim/lion.hpp>

#include "train/optim/replay.hpp"

TEMPLATE_TEST_CASE("Lion follows PyTorch step by step", "[train][optimizer][lion][pytorch]", float, double)
{
    ballast::test::replay<ballast::optim::lion<ballast::weight_decay::coupled>, TestType>(
      "lion",
      [](ballast::optimizer_config& c, const ballast::io::safetensors_file& f)
      {
          c.lion.beta1 = ballast::test::meta(f, "beta1");
          c.lion.beta2 = ballast::test::meta(f, "beta2");
      });
}
