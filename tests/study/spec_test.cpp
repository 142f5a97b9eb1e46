// A study's identity (study/spec.hpp): every config value of the grid and the base configs, the recipes
// and the data, but not run control, so that a resumed study may change jobs or threads and still match.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <ballast/study/spec.hpp>

namespace st = ballast::study;

TEST_CASE("the study identity records the grid and the base configs, not run control", "[study][spec]")
{
    st::study_spec a;
    const nlohmann::json recipes = { { { "name", "r" }, { "optimizer", "adamw" } } };
    const nlohmann::json data = { { "fnv1a64", "00" } };
    const auto id = st::study_identity(a, recipes, data);
    CHECK(id["study"]["sizes"] == nlohmann::json::array({ "d64_L2_H4" }));
    CHECK(id["recipes"] == recipes);
    CHECK(id["data"] == data);
    for (const char* k : { "jobs", "threads_per_run", "run_metrics" })
    {
        CHECK_FALSE(id["study"].contains(k));
    }
    CHECK_FALSE(id["train"].contains("threads"));
    CHECK_FALSE(id["train"].contains("checkpoint_seconds"));

    // Run control may change; anything else changes the identity.
    auto b = a;
    b.study.jobs = 7;
    b.study.threads_per_run = 2;
    b.train.threads = 3;
    CHECK(st::study_identity(b, recipes, data) == id);
    b.study.lrs = { 1e-3 };
    CHECK(st::study_identity(b, recipes, data) != id);
    auto c = a;
    c.model.d_model = 32;
    CHECK(st::study_identity(c, recipes, data) != id);
}
