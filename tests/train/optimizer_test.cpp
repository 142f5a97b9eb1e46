// The optimizer family and its driver (each optimizer's PyTorch fixture replay is in tests/train/optim/):
// the driver's contracts: names, the registry, the concept, the diagnostics hook, the flat settings, decay
// masks, clipping folded into the pass, determinism.
#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/core/parallel.hpp>
#include <ballast/train/optimizer.hpp>

#include "support/random.hpp"
#include "support/tolerance.hpp"
#include "train/optim/replay.hpp"

namespace
{
    using ballast::optimizer;
    using ballast::optimizer_config;
    using ballast::weight_decay;
    namespace optim = ballast::optim;
    using role = ballast::policies::param_role;

    using ballast::test::two_tensor_layout;
} // namespace

TEST_CASE("optimizer names say the rule, the decay mode and the RMS modifier", "[train][optimizer]")
{
    STATIC_REQUIRE(optim::optimizer_policy<optim::adamw<>>);
    STATIC_REQUIRE(optim::optimizer_policy<optim::rms_scaled<optim::lion<>>>);
    STATIC_REQUIRE_FALSE(optim::optimizer_policy<int>);
    CHECK(optim::adamw<>::name == "adamw");
    CHECK(optim::adamw<weight_decay::coupled>::name == "adamw_coupled");
    CHECK(optim::adamw<weight_decay::none>::name == "adamw_nodecay");
    CHECK(optim::lion<>::name == "lion_coupled");
    CHECK(optim::sgd_momentum<weight_decay::independent>::name == "sgd_momentum");
    CHECK(optim::rms_scaled<optim::adamw<>>::name == "adamw+rms");
    CHECK(optim::rms_scaled<optim::adamw<>>::param_rms_scaling);
    CHECK_FALSE(optim::adamw<>::param_rms_scaling);
    STATIC_REQUIRE(optim::optimizer_policy<optim::adafactor<>>);
    CHECK(optim::adafactor<>::name == "adafactor");
    CHECK(optim::adafactor<weight_decay::coupled>::name == "adafactor_coupled");
    CHECK(optim::adafactor<>::param_rms_scaling);
    // every shipped optimizer is reachable by its name
    for (const auto& n : ballast::type_names(ballast::shipped_optimizers))
    {
        std::string got;
        ballast::with_optimizer(n, [&](auto t) { got = std::string(decltype(t)::type::name); });
        CHECK(got == n);
    }
    CHECK_THROWS_WITH(ballast::with_optimizer("adam", [](auto) {}), Catch::Contains("adafactor"));
}

TEST_CASE("the diagnostics hook: AdamW and its RMS-scaled form give the direction, SGD and Lion do not",
          "[train][optimizer]")
{
    STATIC_REQUIRE(optim::has_direction<optim::adamw<>, float>);
    STATIC_REQUIRE(optim::has_direction<optim::rms_scaled<optim::adamw<>>, float>);
    STATIC_REQUIRE(optim::has_direction<optim::adafactor<>, float>);
    STATIC_REQUIRE_FALSE(optim::has_direction<optim::lion<>, float>);
    STATIC_REQUIRE_FALSE(optim::has_direction<optim::sgd_momentum<>, float>);
    const auto layout = two_tensor_layout<double>(1, 1);
    optimizer<optim::lion<>, double> lion(layout, optimizer_config{});
    CHECK(std::isnan(lion.direction_stats(layout.entries()[0]).update_rms));
    // AdamW after one step from zero state: m̂ = g, √v̂ = |g|, so Δ = g/(|g| + ε) and its RMS is ~1.
    optimizer_config c;
    c.clip = 0;
    optimizer<optim::adamw<>, double> adam(layout, c);
    std::vector<double> p(layout.total(), 0.5), g(layout.total(), 0.0);
    for (std::size_t i = 0; i < g.size(); ++i)
    {
        g[i] = 0.1 + 0.01 * static_cast<double>(i % 7);
    }
    adam.step(p, g, 1e-3, 1.0);
    const auto& e = layout.entries()[0];
    double sq = 0;
    for (std::size_t i = e.offset; i < e.offset + e.size; ++i)
    {
        const double u = g[i] / (std::fabs(g[i]) + c.adamw.eps);
        sq += u * u;
    }
    BALLAST_CHECK_CLOSE(adam.direction_stats(e).update_rms, std::sqrt(sq / static_cast<double>(e.size)),
                        double);
    CHECK(adam.direction_stats(e).eps_fraction == 0.0);
}

TEST_CASE("optimizer_config reflects flat under the historical keys, each read by its optimizer",
          "[train][optimizer]")
{
    optimizer_config c;
    const auto j = ballast::to_json(c);
    for (const char* k : { "beta1", "beta2", "eps", "lion_beta1", "lion_beta2", "momentum", "weight_decay",
                           "decay_mask", "rms_floor", "clip", "adafactor_beta1", "adafactor_decay_rate",
                           "adafactor_eps1", "adafactor_eps2", "adafactor_clip_threshold" })
    {
        CAPTURE(k);
        CHECK(j.contains(k));
    }
    CHECK(j.size() == 15);
    nlohmann::json in = { { "beta2", 0.99 },
                          { "lion_beta2", 0.5 },
                          { "momentum", 0.8 },
                          { "rms_floor", 0.01 },
                          { "adafactor_eps2", 0.02 } };
    ballast::from_json(in, c, "[optimizer]");
    CHECK(c.adamw.beta2 == 0.99);
    CHECK(c.lion.beta2 == 0.5);
    CHECK(c.sgd.momentum == 0.8);
    CHECK(c.rms.rms_floor == 0.01);
    CHECK(c.adafactor.eps2 == 0.02);
    // the driver hands each policy its own part
    const auto layout = two_tensor_layout<float>(1, 1);
    CHECK(optimizer<optim::lion<>, float>(layout, c).policy_config().beta2 == 0.5);
    CHECK(optimizer<optim::rms_scaled<optim::adamw<>>, float>(layout, c).policy_config().rms_floor == 0.01);
    CHECK(optimizer<optim::rms_scaled<optim::adamw<>>, float>(layout, c).policy_config().beta2 == 0.99);
    CHECK(optimizer<optim::adafactor<>, float>(layout, c).policy_config().eps2 == 0.02);
    // ...and an optimizer can be built from the shared numbers and its own config alone
    optim::adafactor_config ac;
    ac.beta1 = 0.5;
    optimizer<optim::adafactor<>, float> direct(
      layout, optim::common_config{ 0.0, ballast::weight_decay_mask::all, 2.0 }, ac);
    CHECK(direct.policy_config().beta1 == 0.5);
    CHECK(direct.config().clip == 2.0);
    ac.clip_threshold = 0;
    CHECK_THROWS_WITH((optimizer<optim::adafactor<>, float>(layout, optim::common_config{}, ac)),
                      Catch::Contains("adafactor_clip_threshold"));
}

TEST_CASE("the decay mask: all tensors by default, or everything but norm scales and biases",
          "[train][optimizer]")
{
    using ballast::decays;
    using ballast::weight_decay_mask;
    for (const auto r :
         { role::embedding, role::position, role::matrix, role::head, role::scale, role::bias })
    {
        CHECK(decays(r, weight_decay_mask::all));
    }
    CHECK(decays(role::matrix, weight_decay_mask::no_norms_or_biases));
    CHECK(decays(role::embedding, weight_decay_mask::no_norms_or_biases));
    CHECK_FALSE(decays(role::scale, weight_decay_mask::no_norms_or_biases));
    CHECK_FALSE(decays(role::bias, weight_decay_mask::no_norms_or_biases));
    CHECK(optimizer_config{}.decay_mask == weight_decay_mask::all);
}

TEST_CASE("independent decay with zero gradients shrinks by s_t*lambda per step, whatever the LR multiplier",
          "[train][optimizer]")
{
    // With g = 0, AdamW's direction is 0 (m = v = 0), so θ_t = θ_0·Π(1 − s_k·λ): a closed form.
    const auto layout = two_tensor_layout<double>(0.25, 4.0);
    optimizer_config c;
    c.weight_decay = 0.01;
    optimizer<optim::adamw<weight_decay::independent>, double> opt(layout, c);
    std::vector<double> params(layout.total(), 0.0), grads(layout.total(), 0.0);
    for (std::size_t i = 0; i < params.size(); ++i)
    {
        params[i] = 1.0 + 0.01 * static_cast<double>(i);
    }
    const auto p0 = params;
    double factor = 1;
    for (const double s : { 0.5, 1.0, 0.25 })
    {
        opt.step(params, grads, 3.0 * s, s);
        factor *= 1 - s * c.weight_decay;
    }
    for (const auto& e : layout.entries())
    {
        for (std::size_t i = e.offset; i < e.offset + e.size; ++i)
        {
            BALLAST_CHECK_CLOSE(params[i], p0[i] * factor, double);
        }
    }
}

TEST_CASE("clip_factor is min(1, clip/norm) and 1 when clipping is off", "[train][optimizer]")
{
    CHECK(ballast::clip_factor(0.5, 1.0) == 1.0);
    CHECK(ballast::clip_factor(4.0, 1.0) == 0.25);
    CHECK(ballast::clip_factor(4.0, 0.0) == 1.0);
    CHECK(ballast::clip_factor(1.0, 1.0) == 1.0);
}

TEST_CASE("bad optimizer numbers and mismatched buffers are refused with a message", "[train][optimizer]")
{
    const auto layout = two_tensor_layout<float>(1, 1);
    optimizer_config c;
    c.adamw.beta2 = 1.0;
    CHECK_THROWS_WITH((optimizer<optim::adamw<>, float>(layout, c)), Catch::Contains("beta2"));
    c = {};
    c.lion.beta1 = -0.1;
    CHECK_THROWS_WITH((optimizer<optim::adamw<>, float>(layout, c)), Catch::Contains("lion_beta1"));
    c = {};
    c.adafactor.decay_rate = 0;
    CHECK_THROWS_WITH((optimizer<optim::adamw<>, float>(layout, c)), Catch::Contains("adafactor_decay_rate"));
    c = {};
    c.clip = -1;
    CHECK_THROWS_WITH((optimizer<optim::adamw<>, float>(layout, c)), Catch::Contains("clip"));
    optimizer<optim::adamw<>, float> opt(layout, optimizer_config{});
    std::vector<float> p(layout.total()), g(layout.total() - 1);
    CHECK_THROWS_WITH(opt.step(p, g, 1e-3, 1.0), Catch::Contains("expected"));
}

TEST_CASE("an optimizer step is bit-identical on 1 and 2 threads", "[train][optimizer][threads]")
{
    ballast::param_layout layout;
    ballast::param_entry e;
    e.name = "big";
    e.shape = { 300, 1001 }; // large enough for the kernels to split across threads
    layout.add(e, ballast::param_layout::align_elems<float>);
    auto g = ballast::test::rng(71);
    const auto p0 = ballast::test::uniform<float>(g, layout.total());
    const auto grads = ballast::test::uniform<float>(g, layout.total());
    const auto run = [&](int threads)
    {
        ballast::thread_scope scope(threads);
        optimizer<optim::rms_scaled<optim::adamw<>>, float> opt(layout, optimizer_config{});
        optimizer<optim::adafactor<>, float> ada(layout, optimizer_config{});
        auto p = p0, q = p0;
        for (int k = 0; k < 3; ++k)
        {
            opt.step(p, grads, 1e-2, 0.5, 0.7);
            ada.step(q, grads, 1e-2, 0.5, 0.7);
        }
        p.insert(p.end(), q.begin(), q.end());
        return p;
    };
    const auto a = run(1), b = run(2);
    CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

TEST_CASE("optimizer state as shaped zero-copy xtensor views, a factored state as its factors",
          "[train][optimizer]")
{
    const auto layout = two_tensor_layout<double>(1.0, 1.0); // w [7, 13], b [13]
    std::vector<double> params(layout.total(), 0.5), grads(layout.total());
    for (std::size_t i = 0; i < grads.size(); ++i)
    {
        grads[i] = 0.01 * static_cast<double>(i % 17) - 0.05;
    }
    optimizer<optim::adamw<weight_decay::independent>, double> adam(layout, optimizer_config{});
    adam.step(params, grads, 1e-2, 1.0);
    const auto& w = layout.at("w");
    auto m = adam.state_tensor("m", "w");
    REQUIRE(m.dimension() == 2);
    CHECK(m.shape()[0] == 7);
    CHECK(m.shape()[1] == 13);
    for (std::size_t r = 0; r < 7; ++r)
    {
        for (std::size_t c = 0; c < 13; ++c)
        {
            CHECK(m(r, c) == adam.state(0)[w.offset + r * 13 + c]); // the same bytes, row-major
        }
    }
    m(2, 3) = 42.0; // writes through
    CHECK(adam.state(0)[w.offset + 2 * 13 + 3] == 42.0);
    const auto& cadam = adam;
    CHECK(cadam.state_tensor("v", "b").size() == 13);
    CHECK_THROWS_WITH(adam.state_tensor("u", "w"), Catch::Contains("has no state 'u' (its states: m, v)"));
    CHECK_THROWS(adam.state_tensor("m", "nope"));

    // Adafactor: "m" is parameter-shaped; "v" of the matrix is [R | C], 7 + 13 entries; of the vector, [13].
    optimizer<optim::adafactor<weight_decay::independent>, double> ada(layout, optimizer_config{});
    ada.step(params, grads, 1e-2, 1.0);
    CHECK(ada.state_tensor("m", "w").dimension() == 2);
    const auto v = ada.state_tensor("v", "w");
    REQUIRE(v.dimension() == 1);
    CHECK(v.size() == 7 + 13);
    CHECK(v(0) == ada.state(1)[w.offset]);
    CHECK(v(19) == ada.state(1)[w.offset + 19]);
    CHECK(ada.state_tensor("v", "b").size() == 13);
    // SGD-momentum: one state, "momentum".
    optimizer<optim::sgd_momentum<>, double> sgd(layout, optimizer_config{});
    CHECK(sgd.state_tensor("momentum", "w").size() == 7 * 13);
    CHECK_THROWS_WITH(sgd.state_tensor("m", "w"), Catch::Contains("(its states: momentum)"));
}
