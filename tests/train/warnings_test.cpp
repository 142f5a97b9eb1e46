// Early-warning rules on hand-made diagnostics: each rule fires exactly when its condition holds, once per
// run.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <ballast/train/warnings.hpp>

namespace
{
    nlohmann::json diag(std::initializer_list<double> layer_logits, double log_z = 0.0)
    {
        nlohmann::json layers = nlohmann::json::array();
        for (const double v : layer_logits)
        {
            layers.push_back({ { "max_logit", v } });
        }
        return { { "layers", layers }, { "log_z_mean", log_z }, { "tensors", nlohmann::json::object() } };
    }
} // namespace

TEST_CASE("the attention-logit threshold fires above 1e4, once, naming the layer", "[train][warnings]")
{
    ballast::early_warnings w;
    CHECK(w.check(10, diag({ 5.0, 9999.0 })).empty());
    const auto fired = w.check(20, diag({ 5.0, 20000.0 }));
    REQUIRE(fired.size() == 1);
    CHECK(fired[0].rule == "attn_logit_threshold");
    CHECK(fired[0].step == 20);
    CHECK(fired[0].where == "layer 1");
    CHECK(fired[0].value == 20000.0);
    CHECK(w.check(30, diag({ 5.0, 30000.0 })).empty()); // the onset only
}

TEST_CASE("the growth rule fires on a >10x jump from at least 10, not from tiny values", "[train][warnings]")
{
    ballast::early_warnings w;
    CHECK(w.check(1, diag({ 0.5 })).empty());
    CHECK(w.check(2, diag({ 8.0 })).empty()); // 16x, but from below the floor of 10
    CHECK(w.check(3, diag({ 12.0 })).empty());
    CHECK(w.check(4, diag({ 110.0 })).empty()); // 9.2x
    const auto fired = w.check(5, diag({ 1200.0 }));
    REQUIRE(fired.size() == 1);
    CHECK(fired[0].rule == "attn_logit_growth");
    CHECK(fired[0].value == Approx(1200.0 / 110.0));
}

TEST_CASE("log Z drifting below the bound and the eps-collapse fire with their values", "[train][warnings]")
{
    ballast::warning_config c;
    c.log_z_bound = -5;
    ballast::early_warnings w(c, /*eps=*/1e-6);
    CHECK(w.check(1, diag({ 1.0 }, -4.9)).empty());
    auto d = diag({ 1.0 }, -6.0);
    d["tensors"]["a"] = { { "grad_rms", 5e-5 }, { "update_rms", 0.05 } }; // grad < 100·ε and update < 0.1
    d["tensors"]["b"] = { { "grad_rms", 5e-3 }, { "update_rms", 0.05 } }; // gradient far above ε: no
    d["tensors"]["c"] = { { "grad_rms", 5e-5 }, { "update_rms", 0.5 } };  // update healthy: no
    const auto fired = w.check(2, d);
    REQUIRE(fired.size() == 2);
    CHECK(fired[0].rule == "log_z_drift");
    CHECK(fired[0].value == -6.0);
    CHECK(fired[1].rule == "eps_collapse");
    CHECK(fired[1].where == "a");
    CHECK(fired[1].to_json()["type"] == "warning");
}
