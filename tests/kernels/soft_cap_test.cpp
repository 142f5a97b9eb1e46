#include <cmath>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/core/simd.hpp>
#include <ballast/kernels/soft_cap.hpp>

#include "support/gradcheck.hpp"
#include "support/random.hpp"
#include "support/tolerance.hpp"

using ballast::simd::lanes;

TEMPLATE_TEST_CASE("soft_cap matches its scalar twin at awkward sizes and offsets", "[kernels][soft_cap]",
                   float, double)
{
    constexpr std::size_t w = lanes<TestType>;
    for (const std::size_t n : { std::size_t{ 0 }, std::size_t{ 1 }, w - 1, w, w + 1, 2 * w + 3,
                                 std::size_t{ 37 }, std::size_t{ 257 } })
    {
        for (const std::size_t off : { 0u, 1u })
        {
            CAPTURE(n, off);
            auto g = ballast::test::rng(n * 2 + off);
            auto z = ballast::test::uniform<TestType>(g, n, -20, 20, off);
            auto dz = ballast::test::uniform<TestType>(g, n, -1, 1, off);
            auto z_ref = z;
            auto dz_ref = dz;
            ballast::kernels::soft_cap_forward(z.data() + off, n, 5.0);
            ballast::kernels::ref::soft_cap_forward(z_ref.data() + off, n, 5.0);
            // xsimd::tanh is within ~1 ulp of std::tanh (kernels/gelu tests); ×c keeps it relative.
            ballast::test::check_all_close(z.data() + off, z_ref.data() + off, n,
                                           ballast::test::tolerance<TestType>::rel,
                                           ballast::test::tolerance<TestType>::abs);
            ballast::kernels::soft_cap_backward(dz.data() + off, z_ref.data() + off, n, 5.0);
            ballast::kernels::ref::soft_cap_backward(dz_ref.data() + off, z_ref.data() + off, n, 5.0);
            ballast::test::check_all_close(dz.data() + off, dz_ref.data() + off, n,
                                           ballast::test::tolerance<TestType>::rel,
                                           ballast::test::tolerance<TestType>::abs);
        }
    }
}

TEST_CASE("soft_cap backward matches central finite differences", "[kernels][soft_cap][backward]")
{
    const std::size_t n = 19;
    auto g = ballast::test::rng(3);
    auto x = ballast::test::uniform<double>(g, n, -6, 6);
    auto w = ballast::test::uniform<double>(g, n, -1, 1);
    const double c = 2.5;
    const auto loss = [&]
    {
        std::vector<double> y(x.begin(), x.end());
        ballast::kernels::soft_cap_forward(y.data(), n, c);
        double s = 0;
        for (std::size_t i = 0; i < n; ++i)
        {
            s += w[i] * y[i];
        }
        return s;
    };
    std::vector<double> y(x.begin(), x.end()), dz(w.begin(), w.end());
    ballast::kernels::soft_cap_forward(y.data(), n, c);
    ballast::kernels::soft_cap_backward(dz.data(), y.data(), n, c);
    ballast::test::check_gradient(dz.data(), loss, x.data(), n);
}

TEST_CASE("soft_cap bounds logits by c, keeps NaN and maps infinities to the cap", "[kernels][soft_cap][nan]")
{
    std::vector<float> z = { 1e30f,
                             -1e30f,
                             std::numeric_limits<float>::infinity(),
                             std::numeric_limits<float>::quiet_NaN(),
                             0.0f,
                             3.0f,
                             -3.0f,
                             1e-3f,
                             50.0f };
    ballast::kernels::soft_cap_forward(z.data(), z.size(), 4.0);
    CHECK(z[0] == 4.0f);
    CHECK(z[1] == -4.0f);
    CHECK(z[2] == 4.0f);
    CHECK(std::isnan(z[3]));
    CHECK(z[4] == 0.0f);
    CHECK(z[5] < 3.0f);
    CHECK(z[6] == -z[5]);                   // odd function
    BALLAST_CHECK_CLOSE(z[7], 1e-3, float); // ~identity near 0
    for (const float v : z)
    {
        CHECK((std::isnan(v) || std::fabs(v) <= 4.0f));
    }
}
