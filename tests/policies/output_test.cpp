// Laws of the output-loss family (include/ballast/policies/output.hpp), instantiated for every policy of
// output_loss_policies (tests/support/policy_families.hpp). An output-loss policy today is the coefficient
// of the auxiliary z-loss term that the model hands to the fused cross-entropy kernel
// (model/transformer.hpp), so each law runs the policy through that kernel, as the model does, and checks
// it against an independent double reference: CE = log Σ exp(x) − x[target], plus coef·(log Σ exp(x))².

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/kernels/cross_entropy.hpp>
#include <ballast/policies/output.hpp>

#include "support/gradcheck.hpp"
#include "support/policy_families.hpp"
#include "support/random.hpp"
#include "support/tolerance.hpp"

namespace
{
    constexpr std::size_t rows = 6, vocab = 13;

    /// The mean per-token loss in double from first principles (no kernel).
    double reference_loss(const std::vector<double>& logits, const std::vector<std::int32_t>& targets,
                          double coef, double* ce_out = nullptr)
    {
        double total = 0, ce = 0;
        for (std::size_t r = 0; r < rows; ++r)
        {
            const double* x = logits.data() + r * vocab;
            double m = x[0];
            for (std::size_t j = 1; j < vocab; ++j)
            {
                m = std::max(m, x[j]);
            }
            double s = 0;
            for (std::size_t j = 0; j < vocab; ++j)
            {
                s += std::exp(x[j] - m);
            }
            const double lse = m + std::log(s);
            ce += lse - x[targets[r]];
            total += lse - x[targets[r]] + coef * lse * lse;
        }
        if (ce_out)
        {
            *ce_out = ce / rows;
        }
        return total / rows;
    }

    struct loss_inputs
    {
        std::vector<double> logits;
        std::vector<std::int32_t> targets;
    };

    loss_inputs make_inputs(std::uint64_t salt)
    {
        auto g = ballast::test::rng(salt);
        // Logits offset by +3 so log Z is far from 0 and the z-loss term is visible.
        const auto x = ballast::test::uniform<double>(g, rows * vocab, 1.0, 5.0);
        loss_inputs in{ { x.begin(), x.end() }, {} };
        for (std::size_t r = 0; r < rows; ++r)
        {
            in.targets.push_back(static_cast<std::int32_t>((5 * r + 3) % vocab));
        }
        return in;
    }

    /// What the model computes for output-loss policy P: the kernel with coefficient P::zloss_coef(cfg).
    template <class P>
    double model_loss(const loss_inputs& in, const ballast::model_config& cfg, std::vector<double>* dlogits)
    {
        std::vector<double> loss(rows), lse(rows);
        if (dlogits)
        {
            dlogits->assign(rows * vocab, 0.0);
        }
        ballast::kernels::cross_entropy_rows(loss.data(), lse.data(), dlogits ? dlogits->data() : nullptr,
                                             in.logits.data(), in.targets.data(), 1.0 / rows,
                                             P::zloss_coef(cfg), rows, vocab, vocab);
        double total = 0;
        for (const double l : loss)
        {
            total += l;
        }
        return total / rows;
    }
} // namespace

TEMPLATE_LIST_TEST_CASE("output-loss law: with coefficient 0 every loss equals plain cross-entropy",
                        "[policies][output][laws]", ballast::test::output_loss_policies)
{
    using P = TestType;
    INFO(P::name);
    ballast::model_config cfg;
    cfg.zloss_coef = 0.0;
    CHECK(P::zloss_coef(cfg) == 0.0);
    const auto in = make_inputs(1);
    double ce = 0;
    reference_loss(in.logits, in.targets, 0.0, &ce);
    BALLAST_CHECK_CLOSE(model_loss<P>(in, cfg, nullptr), ce, double);
}

TEMPLATE_LIST_TEST_CASE("output-loss law: the loss is CE plus a non-negative coef·(log Z)², and its gradient "
                        "equals central finite differences",
                        "[policies][output][laws][grad]", ballast::test::output_loss_policies)
{
    using P = TestType;
    INFO(P::name);
    ballast::model_config cfg;
    cfg.zloss_coef = 1e-2; // larger than the paper's 1e-4 so the z-loss term is visible to FD
    const double coef = P::zloss_coef(cfg);
    CHECK(coef >= 0.0);
    auto in = make_inputs(2);
    std::vector<double> dlogits;
    const double l = model_loss<P>(in, cfg, &dlogits);
    double ce = 0;
    const double ref = reference_loss(in.logits, in.targets, coef, &ce);
    BALLAST_CHECK_CLOSE(l, ref, double);
    if (coef > 0)
    {
        CHECK(l > ce); // log Z > 0 here, so the auxiliary term is strictly positive
    }
    ballast::test::check_gradient(
      dlogits.data(), [&] { return reference_loss(in.logits, in.targets, coef); }, in.logits.data(),
      in.logits.size());
}

TEST_CASE("the null output loss ignores the configured coefficient and z_loss follows it",
          "[policies][output]")
{
    ballast::model_config cfg;
    for (const double c : { 0.0, 1e-4, 0.5 })
    {
        cfg.zloss_coef = c;
        CHECK(ballast::policies::cross_entropy::zloss_coef(cfg) == 0.0);
        CHECK(ballast::policies::z_loss::zloss_coef(cfg) == c);
    }
    std::apply([](auto... p) { STATIC_REQUIRE((ballast::policies::output_loss_policy<decltype(p)> && ...)); },
               ballast::test::output_loss_policies{});
}
