// JSON number helpers: non-finite numbers are written as null and read back as NaN; fingerprints are 16
// hex digits.
#include <cmath>
#include <limits>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <ballast/core/json.hpp>

TEST_CASE("finite_or_null keeps finite numbers exactly and writes NaN and infinities as null", "[core][json]")
{
    const double inf = std::numeric_limits<double>::infinity();
    CHECK(ballast::finite_or_null(0.1) == nlohmann::json(0.1));
    CHECK(ballast::finite_or_null(-3.0).get<double>() == -3.0);
    CHECK(ballast::finite_or_null(std::numeric_limits<double>::denorm_min()).get<double>() ==
          std::numeric_limits<double>::denorm_min());
    CHECK(ballast::finite_or_null(std::nan("")).is_null());
    CHECK(ballast::finite_or_null(inf).is_null());
    CHECK(ballast::finite_or_null(-inf).is_null());
    // Through text and back: a finite double survives bit for bit.
    const double x = 2.0 / 3.0;
    CHECK(nlohmann::json::parse(ballast::finite_or_null(x).dump()).get<double>() == x);
}

TEST_CASE("number_or_nan reads numbers and gives NaN for null, other types and absent keys", "[core][json]")
{
    const auto j = nlohmann::json::parse(R"({"a": 1.5, "b": null, "c": "x", "d": 3})");
    CHECK(ballast::number_or_nan(j, "a") == 1.5);
    CHECK(ballast::number_or_nan(j, "d") == 3.0);
    CHECK(std::isnan(ballast::number_or_nan(j, "b")));
    CHECK(std::isnan(ballast::number_or_nan(j, "c")));
    CHECK(std::isnan(ballast::number_or_nan(j, "absent")));
    CHECK(std::isnan(ballast::number_or_nan(nlohmann::json::array({ 1 }), "a"))); // not an object
    CHECK(ballast::number_or_nan(j["a"]) == 1.5);
    CHECK(std::isnan(ballast::number_or_nan(j["b"])));
    // The round trip of a non-finite number: null, then NaN.
    CHECK(std::isnan(ballast::number_or_nan(ballast::finite_or_null(std::nan("")))));
}

TEST_CASE("hex64 writes 16 lower-case hex digits, leading zeros included", "[core][json]")
{
    CHECK(ballast::hex64(0) == "0000000000000000");
    CHECK(ballast::hex64(0xcbf29ce484222325ULL) == "cbf29ce484222325");
    CHECK(ballast::hex64(0xffffffffffffffffULL) == "ffffffffffffffff");
    CHECK(ballast::hex64(0x1a) == "000000000000001a");
}
