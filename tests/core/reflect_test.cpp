// Field documentation of reflected configs (core/reflect.hpp): every reflected struct of the library
// documents every field, and the check itself rejects missing, extra, misordered and empty entries.
#include <array>
#include <set>
#include <string>
#include <string_view>

#include <boost/hana/adapt_struct.hpp>
#include <catch2/catch.hpp>

// Every header with a reflected struct, included directly (not through ballast.hpp, to keep this test small).
#include <ballast/model/config.hpp>
#include <ballast/study/study.hpp>
#include <ballast/train/optimizer.hpp>
#include <ballast/train/train_config.hpp>
#include <ballast/train/warnings.hpp>

namespace
{
    struct two_fields
    {
        int alpha = 0;
        double beta = 0;
    };
    struct missing_one : two_fields
    {
    };
    struct misordered : two_fields
    {
    };
    struct empty_text : two_fields
    {
    };
    struct extra_entry : two_fields
    {
    };
    struct undocumented : two_fields
    {
    };
} // namespace

BOOST_HANA_ADAPT_STRUCT(two_fields, alpha, beta);
BOOST_HANA_ADAPT_STRUCT(missing_one, alpha, beta);
BOOST_HANA_ADAPT_STRUCT(misordered, alpha, beta);
BOOST_HANA_ADAPT_STRUCT(empty_text, alpha, beta);
BOOST_HANA_ADAPT_STRUCT(extra_entry, alpha, beta);
BOOST_HANA_ADAPT_STRUCT(undocumented, alpha, beta);

template <>
struct ballast::field_docs<two_fields>
{
    static constexpr std::array<field_doc, 2> fields{ { { "alpha", "the first" },
                                                        { "beta", "the second" } } };
};
template <>
struct ballast::field_docs<missing_one>
{
    static constexpr std::array<field_doc, 1> fields{ { { "alpha", "the first" } } };
};
template <>
struct ballast::field_docs<misordered>
{
    static constexpr std::array<field_doc, 2> fields{ { { "beta", "the second" },
                                                        { "alpha", "the first" } } };
};
template <>
struct ballast::field_docs<empty_text>
{
    static constexpr std::array<field_doc, 2> fields{ { { "alpha", "the first" }, { "beta", "" } } };
};
template <>
struct ballast::field_docs<extra_entry>
{
    static constexpr std::array<field_doc, 3> fields{
        { { "alpha", "the first" }, { "beta", "the second" }, { "gamma", "no such field" } }
    };
};

TEST_CASE("documented accepts complete docs and rejects missing, misordered, empty or extra entries",
          "[core][reflect]")
{
    STATIC_REQUIRE(ballast::documented<two_fields>);
    STATIC_REQUIRE_FALSE(ballast::documented<missing_one>);
    STATIC_REQUIRE_FALSE(ballast::documented<misordered>);
    STATIC_REQUIRE_FALSE(ballast::documented<empty_text>);
    STATIC_REQUIRE_FALSE(ballast::documented<extra_entry>);
    STATIC_REQUIRE_FALSE(ballast::documented<undocumented>);
    STATIC_REQUIRE(ballast::field_description<two_fields>("beta") == "the second");
    STATIC_REQUIRE(ballast::field_description<two_fields>("gamma").empty());
}

namespace
{
    /// Every field of S is documented, and its description is found under its reflected name.
    template <class S>
    void check_all_described(const char* type)
    {
        INFO(type);
        STATIC_REQUIRE(ballast::documented<S>);
        S s{};
        std::set<std::string> names;
        ballast::for_each_field(s,
                                [&](std::string_view name, const auto&)
                                {
                                    INFO(name);
                                    CHECK(!ballast::field_description<S>(name).empty());
                                    CHECK(names.insert(std::string(name)).second);
                                });
        CHECK(names.size() == ballast::field_docs<S>::fields.size());
    }
} // namespace

TEST_CASE("every reflected config of the library describes every field", "[core][reflect]")
{
    check_all_described<ballast::model_config>("model_config");
    check_all_described<ballast::train_config>("train_config");
    check_all_described<ballast::optimizer_config>("optimizer_config");
    check_all_described<ballast::warning_config>("warning_config");
    check_all_described<ballast::study::study_config>("study_config");
    check_all_described<ballast::optim::common_config>("common_config");
    check_all_described<ballast::optim::adamw_config>("adamw_config");
    check_all_described<ballast::optim::lion_config>("lion_config");
    check_all_described<ballast::optim::sgd_momentum_config>("sgd_momentum_config");
    check_all_described<ballast::optim::rms_scaling_config>("rms_scaling_config");
    check_all_described<ballast::optim::adafactor_config>("adafactor_config");
}

TEST_CASE("the flat optimizer keys take the per-optimizer configs' descriptions", "[core][reflect]")
{
    CHECK(ballast::field_description<ballast::optimizer_config>("lion_beta2") ==
          ballast::field_description<ballast::optim::lion_config>("beta2"));
    CHECK(ballast::field_description<ballast::optimizer_config>("eps") ==
          ballast::field_description<ballast::optim::adamw_config>("eps"));
    CHECK(ballast::field_description<ballast::optimizer_config>("adafactor_clip_threshold") ==
          ballast::field_description<ballast::optim::adafactor_config>("clip_threshold"));
}
