// Reductions (sum, sum_squares, dot, max) against their double-accumulating scalar twins, plus the
// determinism contract: the result depends on neither the thread count nor the pointer alignment.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/core/parallel.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/kernels/reduce.hpp>

#include "support/random.hpp"
#include "support/sizes.hpp"
#include "support/tolerance.hpp"

namespace
{
    namespace bk = ballast::kernels;
    using ballast::test::tolerance;

    /// Lengths that exercise the unrolled body, the round-robin remainder, the padded tail and the
    /// block boundaries of reduce.hpp.
    template <class T>
    std::vector<std::size_t> reduce_sizes()
    {
        return ballast::test::awkward_sizes<T>(
          { 4 * ballast::simd::lanes<T> - 1, 4 * ballast::simd::lanes<T> + 1, 13, 37, 257, 1031,
            bk::reduce_block, bk::reduce_block + 1, 3 * bk::reduce_block + 5 });
    }

    /// Worst-case rounding bound of the SIMD order relative to the (double, correctly rounded) twin,
    /// as a multiple of eps·Σ|term|: a lane accumulator adds ceil(min(n, block)/(4L)) terms in T, then
    /// 2 adds combine the 4 accumulators, log2(L) adds the horizontal sum, plus 1 for forming a product
    /// (dot, sum_squares) and 1 for the final rounding of either side. Block values are added in double
    /// (negligible in float; for double it adds one more rounding per block level, covered by +1).
    template <class T>
    double order_bound(std::size_t n)
    {
        constexpr std::size_t L = ballast::simd::lanes<T>;
        const std::size_t per_lane = (std::min(n, bk::reduce_block) + 4 * L - 1) / (4 * L);
        return static_cast<double>(per_lane + 2 + 3 + 1 + 1 + 1) * tolerance<T>::eps;
    }
} // namespace

TEMPLATE_TEST_CASE(
  "sum, sum_squares and dot match the scalar twin within the rounding bound of the fixed order",
  "[kernels][reduce]", float, double)
{
    using T = TestType;
    auto g = ballast::test::rng(101);
    for (const std::size_t n : reduce_sizes<T>())
    {
        for (const std::size_t mis : { 0u, 1u })
        {
            CAPTURE(n, mis);
            const auto xb = ballast::test::uniform<T>(g, n, -1.0, 1.0, mis);
            const auto yb = ballast::test::uniform<T>(g, n, -1.0, 1.0, mis);
            const T* x = xb.data() + mis;
            const T* y = yb.data() + mis;
            double abs_x = 0, abs_xx = 0, abs_xy = 0;
            for (std::size_t i = 0; i < n; ++i)
            {
                abs_x += std::fabs(double(x[i]));
                abs_xx += double(x[i]) * double(x[i]);
                abs_xy += std::fabs(double(x[i]) * double(y[i]));
            }
            const double b = order_bound<T>(n);
            CHECK(std::fabs(double(bk::sum(x, n)) - double(bk::ref::sum(x, n))) <= b * abs_x);
            CHECK(std::fabs(double(bk::sum_squares(x, n)) - double(bk::ref::sum_squares(x, n))) <=
                  b * abs_xx);
            CHECK(std::fabs(double(bk::dot(x, y, n)) - double(bk::ref::dot(x, y, n))) <= b * abs_xy);
            CHECK(bk::max(x, n) == bk::ref::max(x, n));
        }
    }
}

TEMPLATE_TEST_CASE("sums of positive data agree with the scalar twin to a relative tolerance",
                   "[kernels][reduce]", float, double)
{
    // All terms positive: sum = sum|x|, so the order bound becomes a relative tolerance.
    using T = TestType;
    auto g = ballast::test::rng(102);
    for (const std::size_t n : reduce_sizes<T>())
    {
        CAPTURE(n);
        const auto xb = ballast::test::uniform<T>(g, n, 0.0, 1.0, 1);
        const T* x = xb.data() + 1;
        const double b = order_bound<T>(n);
        CHECK(ballast::test::close(bk::sum(x, n), bk::ref::sum(x, n), b, 0.0));
        CHECK(ballast::test::close(bk::sum_squares(x, n), bk::ref::sum_squares(x, n), b, 0.0));
    }
}

TEMPLATE_TEST_CASE("reductions have closed forms on constant data", "[kernels][reduce]", float, double)
{
    using T = TestType;
    // Exact: integers far below 2^24, so every order of summation is exact.
    for (const std::size_t n : reduce_sizes<T>())
    {
        CAPTURE(n);
        std::vector<T> ones(n, T(1)), threes(n, T(3));
        CHECK(bk::sum(ones.data(), n) == T(n));
        CHECK(bk::sum_squares(threes.data(), n) == T(9 * n));
        CHECK(bk::dot(ones.data(), threes.data(), n) == T(3 * n));
        threes[n / 2] = T(5);
        CHECK(bk::max(threes.data(), n) == T(5));
    }
}

TEMPLATE_TEST_CASE("reductions of zero elements return the neutral element", "[kernels][reduce]", float,
                   double)
{
    using T = TestType;
    const T* none = nullptr;
    CHECK(bk::sum(none, 0) == T(0));
    CHECK(bk::sum_squares(none, 0) == T(0));
    CHECK(bk::dot(none, none, 0) == T(0));
    CHECK(bk::max(none, 0) == -std::numeric_limits<T>::infinity());
    CHECK(bk::ref::max(none, 0) == -std::numeric_limits<T>::infinity());
}

TEMPLATE_TEST_CASE("max propagates NaN from any position and sums propagate NaN and Inf",
                   "[kernels][reduce][nan]", float, double)
{
    using T = TestType;
    const T nan = std::numeric_limits<T>::quiet_NaN();
    const T inf = std::numeric_limits<T>::infinity();
    auto g = ballast::test::rng(103);
    for (const std::size_t n : reduce_sizes<T>())
    {
        for (const std::size_t pos : { std::size_t{ 0 }, n / 2, n - 1 })
        {
            CAPTURE(n, pos);
            auto xb = ballast::test::uniform<T>(g, n, -1.0, 1.0, 1);
            T* x = xb.data() + 1;
            x[pos] = nan;
            CHECK(std::isnan(bk::max(x, n)));
            CHECK(std::isnan(bk::ref::max(x, n)));
            CHECK(std::isnan(bk::sum(x, n)));
            CHECK(std::isnan(bk::sum_squares(x, n)));
            CHECK(std::isnan(bk::dot(x, x, n)));
            x[pos] = inf;
            CHECK(bk::max(x, n) == inf);
            CHECK(bk::sum(x, n) == inf);
            CHECK(bk::sum_squares(x, n) == inf);
            x[pos] = -inf;
            CHECK(bk::sum(x, n) == -inf);
            if (n > 1)
            {
                CHECK(bk::max(x, n) == bk::ref::max(x, n));
            }
        }
    }
}

TEMPLATE_TEST_CASE("reductions are bit-identical for 1 and 2 threads and for any alignment",
                   "[kernels][reduce][threads]", float, double)
{
    using T = TestType;
    // 74 blocks of reduce_block elements: 5 parallel chunks of reduce_blocks_per_task blocks.
    const std::size_t n = 18 * bk::reduce_blocks_per_task * bk::reduce_block / 4 + 7;
    REQUIRE(n > 2 * bk::reduce_blocks_per_task * bk::reduce_block);
    auto g = ballast::test::rng(104);
    const auto xb = ballast::test::uniform<T>(g, n, -1.0, 1.0, 0);
    const auto yb = ballast::test::uniform<T>(g, n, -1.0, 1.0, 0);
    auto shifted = ballast::test::uniform<T>(g, n, 0.0, 0.0, 1);
    std::memcpy(shifted.data() + 1, xb.data(), n * sizeof(T));

    T r1[4], r2[4], r3[4];
    const auto run = [&](const T* x, T* out)
    {
        out[0] = bk::sum(x, n);
        out[1] = bk::sum_squares(x, n);
        out[2] = bk::dot(x, yb.data(), n);
        out[3] = bk::max(x, n);
    };
    {
        ballast::thread_scope one(1);
        run(xb.data(), r1);
    }
    {
        ballast::thread_scope two(2);
        run(xb.data(), r2);
        run(shifted.data() + 1, r3);
    }
    CHECK(std::memcmp(r1, r2, sizeof r1) == 0);
    CHECK(std::memcmp(r1, r3, sizeof r1) == 0);
}
