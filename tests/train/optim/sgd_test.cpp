// SGD with momentum (ballast/train/optim/sgd.hpp) against torch.optim.SGD with L2 decay
// (tests/fixtures/optim/sgd_momentum_*).
#include <catch2/catch.hpp>

#include <ballast/train/optim/sgd.hpp>

#include "train/optim/replay.hpp"

TEMPLATE_TEST_CASE("SGD with momentum follows PyTorch step by step", "[train][optimizer][sgd][pytorch]",
                   float, double)
{
    ballast::test::replay<ballast::optim::sgd_momentum<ballast::weight_decay::coupled>, TestType>(
      "sgd_momentum", [](ballast::optimizer_config& c, const ballast::io::safetensors_file& f)
      { c.sgd.momentum = ballast::test::meta(f, "momentum"); });
}
