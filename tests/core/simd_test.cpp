#include <cmath>
#include <limits>

#include <catch2/catch.hpp>

#include <ballast/core/config.hpp>
#include <ballast/core/simd.hpp>

using ballast::simd::batch;
using ballast::simd::lanes;

TEMPLATE_TEST_CASE("reduce_add and reduce_max match a scalar loop over the lanes", "[core][simd]", float,
                   double)
{
    alignas(64) TestType v[lanes<TestType>];
    double sum = 0;
    TestType mx = -std::numeric_limits<TestType>::infinity();
    for (std::size_t i = 0; i < lanes<TestType>; ++i)
    {
        v[i] = static_cast<TestType>(0.25 * static_cast<double>(i * 7 % 5) - 0.5);
        sum += v[i];
        mx = std::max(mx, v[i]);
    }
    const auto b = batch<TestType>::load_unaligned(v);
    CHECK(ballast::simd::reduce_add(b) == static_cast<TestType>(sum)); // exact: quarter-integers
    CHECK(ballast::simd::reduce_max(b) == mx);
}

TEMPLATE_TEST_CASE("reduce_max and max_nan propagate NaN from any lane", "[core][simd][nan]", float, double)
{
    const TestType nan = std::numeric_limits<TestType>::quiet_NaN();
    for (std::size_t lane = 0; lane < lanes<TestType>; ++lane)
    {
        alignas(64) TestType v[lanes<TestType>];
        for (std::size_t i = 0; i < lanes<TestType>; ++i)
        {
            v[i] = static_cast<TestType>(i);
        }
        v[lane] = nan;
        CAPTURE(lane);
        const auto b = batch<TestType>::load_unaligned(v);
        CHECK(std::isnan(ballast::simd::reduce_max(b)));
        const auto zero = batch<TestType>(TestType(0));
        alignas(64) TestType out[lanes<TestType>];
        ballast::simd::max_nan(b, zero).store_unaligned(out);
        CHECK(std::isnan(out[lane]));
        ballast::simd::max_nan(zero, b).store_unaligned(out);
        CHECK(std::isnan(out[lane]));
    }
}

TEST_CASE("BALLAST_CHECK throws ballast::error naming where and why", "[core][config]")
{
    const auto f = [](int x) { BALLAST_CHECK(x > 0, "demo", "x must be positive, got ", x); };
    CHECK_NOTHROW(f(1));
    CHECK_THROWS_AS(f(-3), ballast::error);
    CHECK_THROWS_WITH(f(-3), "ballast: demo: x must be positive, got -3");
}

TEST_CASE("the build keeps IEEE semantics so NaN detection works", "[core][config][nan]")
{
    volatile float zero = 0.0f;
    const float nan = zero / zero;
    CHECK(std::isnan(nan));
    CHECK(nan != nan);
    CHECK(std::isinf(1.0f / zero));
}
