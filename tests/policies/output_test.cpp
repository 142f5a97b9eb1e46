// Laws of the output-loss family (include/ballast/policies/output.hpp), instantiated for every policy of
// output_loss_policies (tests/support/policy_families.hpp). An output-loss policy is behaviour: forward
// turns logits and targets into the loss, log Z per row and d loss / d logits, as the model calls it
// (model/output.hpp). The laws hold for any loss; each shipped loss is then checked against an
// independent double reference from first principles: CE = log Σ exp(x) − x[target], plus coef·(log Z)².

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/policies/output.hpp>

#include "support/gradcheck.hpp"
#include "support/policy_families.hpp"
#include "support/random.hpp"
#include "support/tolerance.hpp"

namespace
{
    constexpr std::size_t rows = 6, vocab = 13;

    double reference_lse(const double* x)
    {
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
        return m + std::log(s);
    }

    /// The mean per-token loss CE + coef·(log Z)² in double from first principles (no kernel).
    double reference_loss(const std::vector<double>& logits, const std::vector<std::int32_t>& targets,
                          double coef, double* ce_out = nullptr)
    {
        double total = 0, ce = 0;
        for (std::size_t r = 0; r < rows; ++r)
        {
            const double* x = logits.data() + r * vocab;
            const double lse = reference_lse(x);
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

    /// The policy's forward, as the model calls it.
    template <class P>
    ballast::loss_parts run(const loss_inputs& in, const ballast::model_config& cfg, std::vector<double>* lse,
                            std::vector<double>* dlogits)
    {
        std::vector<double> row_loss(rows), lse_local(rows);
        std::vector<double>& l = lse ? *lse : lse_local;
        l.assign(rows, 0.0);
        if (dlogits)
        {
            dlogits->assign(rows * vocab, 0.0);
        }
        return P::forward(ballast::policies::loss_args<double>{ .cfg = cfg,
                                                                .logits = in.logits.data(),
                                                                .targets = in.targets.data(),
                                                                .rows = rows,
                                                                .vocab = vocab,
                                                                .lse = l.data(),
                                                                .row_loss = row_loss.data(),
                                                                .dlogits = dlogits ? dlogits->data() : nullptr });
    }
} // namespace

TEMPLATE_LIST_TEST_CASE("output-loss law: dlogits equals central finite differences of the reported loss",
                        "[policies][output][laws][grad]", ballast::test::output_loss_policies)
{
    using P = TestType;
    INFO(P::name);
    ballast::model_config cfg;
    cfg.zloss_coef = 1e-2; // larger than the paper's 1e-4 so the z-loss term is visible to FD
    auto in = make_inputs(2);
    std::vector<double> dlogits;
    run<P>(in, cfg, nullptr, &dlogits);
    ballast::test::check_gradient(
      dlogits.data(), [&] { return run<P>(in, cfg, nullptr, nullptr).loss; }, in.logits.data(),
      in.logits.size());
}

TEMPLATE_LIST_TEST_CASE("output-loss law: lse is log Z, ce is the plain cross-entropy, loss = ce + aux, and "
                        "asking for the gradient does not change the loss",
                        "[policies][output][laws]", ballast::test::output_loss_policies)
{
    using P = TestType;
    INFO(P::name);
    ballast::model_config cfg;
    cfg.zloss_coef = 1e-2;
    const auto in = make_inputs(3);
    std::vector<double> lse, dlogits;
    const auto with_grad = run<P>(in, cfg, &lse, &dlogits);
    const auto without = run<P>(in, cfg, nullptr, nullptr);
    CHECK(with_grad.loss == without.loss);
    CHECK(with_grad.ce == without.ce);
    CHECK(with_grad.aux == without.aux);
    for (std::size_t r = 0; r < rows; ++r)
    {
        BALLAST_CHECK_CLOSE(lse[r], reference_lse(in.logits.data() + r * vocab), double);
    }
    double ce = 0;
    reference_loss(in.logits, in.targets, 0.0, &ce);
    BALLAST_CHECK_CLOSE(with_grad.ce, ce, double);
    BALLAST_CHECK_CLOSE(with_grad.loss, with_grad.ce + with_grad.aux, double);
    CHECK(std::isfinite(with_grad.loss));
}

TEST_CASE("cross_entropy is plain CE; z_loss is CE + coef·(log Z)² with coef = zloss_coef, and equals "
          "cross_entropy bit for bit at coef 0",
          "[policies][output]")
{
    namespace pol = ballast::policies;
    const auto in = make_inputs(1);
    ballast::model_config cfg;
    for (const double c : { 0.0, 1e-4, 1e-2 })
    {
        INFO("coef " << c);
        cfg.zloss_coef = c;
        double ce = 0;
        const double ref = reference_loss(in.logits, in.targets, c, &ce);
        const auto z = run<pol::z_loss>(in, cfg, nullptr, nullptr);
        BALLAST_CHECK_CLOSE(z.loss, ref, double);
        BALLAST_CHECK_CLOSE(z.ce, ce, double);
        const auto x = run<pol::cross_entropy>(in, cfg, nullptr, nullptr);
        BALLAST_CHECK_CLOSE(x.loss, ce, double); // the null loss ignores the configured coefficient
        CHECK(x.aux == 0.0);
        if (c > 0)
        {
            CHECK(z.loss > x.loss); // log Z > 0 here, so the auxiliary term is strictly positive
        }
        else
        {
            std::vector<double> gz, gx;
            CHECK(run<pol::z_loss>(in, cfg, nullptr, &gz).loss == run<pol::cross_entropy>(in, cfg, nullptr, &gx).loss);
            CHECK(gz == gx);
        }
    }
    std::apply([](auto... p) { STATIC_REQUIRE((ballast::policies::output_loss_policy<decltype(p)> && ...)); },
               ballast::test::output_loss_policies{});
}
