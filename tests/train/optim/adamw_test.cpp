// AdamW (ballast/train/optim/adamw.hpp) against torch.optim.AdamW step by step, coupled decay, and with the
// paper's independent decay (tests/fixtures/optim/adamw_*).
#include <catch2/catch.hpp>

#include <ballast/train/optim/adamw.hpp>

#include "train/optim/replay.hpp"

namespace
{
    void adamw_numbers(ballast::optimizer_config& c, const ballast::io::safetensors_file& f)
    {
        c.adamw.beta1 = ballast::test::meta(f, "beta1");
        c.adamw.beta2 = ballast::test::meta(f, "beta2");
        c.adamw.eps = ballast::test::meta(f, "eps");
    }
} // namespace

TEMPLATE_TEST_CASE("AdamW follows PyTorch step by step, with clipping, LR multipliers and a decay mask",
                   "[train][optimizer][adamw][pytorch]", float, double)
{
    using ballast::weight_decay;
    namespace optim = ballast::optim;
    SECTION("coupled decay (torch.optim.AdamW)")
    {
        ballast::test::replay<optim::adamw<weight_decay::coupled>, TestType>("adamw_coupled", adamw_numbers);
    }
    SECTION("independent decay (the paper's)")
    {
        ballast::test::replay<optim::adamw<weight_decay::independent>, TestType>("adamw_independent",
                                                                                 adamw_numbers);
    }
}
