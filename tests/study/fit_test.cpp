// The fits of study/fit.hpp: least squares against the closed-form line, an exact polynomial on nearly
// collinear Vandermonde columns, refusals, and the xtensor interface (expressions in, xtensor out), which
// gives the same bits as the span overload.
#include <cmath>
#include <cstring>
#include <vector>

#include <catch2/catch.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xtensor.hpp>

#include <ballast/study/fit.hpp>

namespace st = ballast::study;

TEST_CASE("least_squares matches the closed-form line and recovers an exact polynomial", "[study][predict]")
{
    // Line through noisy points: slope = cov(x, y) / var(x), intercept = ȳ − slope·x̄.
    const std::vector<double> x = { 1, 2, 3, 4, 5, 6 }, y = { 2.1, 3.9, 6.2, 7.8, 10.1, 12.2 };
    double mx = 0, my = 0;
    for (std::size_t i = 0; i < x.size(); ++i)
    {
        mx += x[i] / 6;
        my += y[i] / 6;
    }
    double sxy = 0, sxx = 0;
    for (std::size_t i = 0; i < x.size(); ++i)
    {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
    }
    const auto line = st::fit_polynomial(x, y, 1);
    CHECK(line.coef[1] == Approx(sxy / sxx).epsilon(1e-13));
    // The intercept is a difference of two terms near 7 that cancel to -0.02: judge it relative to the
    // terms, not to the result (a compiler's FMA contraction moves the last bits of either side).
    const double intercept = my - sxy / sxx * mx;
    CHECK(std::fabs(line.coef[0] - intercept) <= 1e-13 * (std::fabs(my) + std::fabs(sxy / sxx * mx)));
    double ss = 0;
    for (std::size_t i = 0; i < x.size(); ++i)
    {
        ss += std::pow(line.coef[0] + line.coef[1] * x[i] - y[i], 2);
    }
    CHECK(line.rms_residual == Approx(std::sqrt(ss / 6)).epsilon(1e-12));

    // An exact quadratic at log10 N-like abscissas (nearly collinear Vandermonde columns).
    const std::vector<double> lx = { 4.1, 4.5, 4.9, 5.3, 5.7 };
    std::vector<double> ly;
    for (const double v : lx)
    {
        ly.push_back(-3.0 + 0.7 * v + 0.15 * v * v);
    }
    const auto q = st::fit_polynomial(lx, ly, 2);
    CHECK(q.coef[0] == Approx(-3.0).epsilon(1e-9));
    CHECK(q.coef[1] == Approx(0.7).epsilon(1e-9));
    CHECK(q.coef[2] == Approx(0.15).epsilon(1e-9));
    CHECK(q.rms_residual < 1e-12);
    CHECK(q(6.5) == Approx(-3.0 + 0.7 * 6.5 + 0.15 * 6.5 * 6.5).epsilon(1e-11));
}

TEST_CASE("least_squares refuses under-determined and rank-deficient fits", "[study][predict]")
{
    const std::vector<double> two = { 1, 2 }, y2 = { 1, 2 };
    CHECK_THROWS_WITH(st::fit_polynomial(two, y2, 2), Catch::Contains("needs at least 3 points"));
    const std::vector<double> same = { 3, 3, 3 }, y3 = { 1, 2, 3 };
    CHECK_THROWS_WITH(st::fit_polynomial(same, y3, 1), Catch::Contains("rank-deficient"));
    const std::vector<double> nan = { 1, NAN, 3 };
    CHECK_THROWS_WITH(st::fit_polynomial(nan, y3, 1), Catch::Contains("non-finite"));
}

TEST_CASE("the fits take xtensor expressions and agree bit for bit with the span overloads",
          "[study][fit][xtensor]")
{
    // A power law y = 3·N^0.4 fitted as a line in log10 space, the arguments xtensor expressions.
    const xt::xtensor<double, 1> n = { 1e4, 3e4, 1e5, 3e5, 1e6 };
    const xt::xtensor<double, 1> y = 3.0 * xt::pow(n, 0.4);
    const auto f = st::fit_polynomial(xt::log10(n), xt::log10(y), 1);
    CHECK(f.coef[1] == Approx(0.4).epsilon(1e-12));
    CHECK(std::pow(10.0, f.coef[0]) == Approx(3.0).epsilon(1e-12));
    // The same points through spans: the same arithmetic, so the same bits.
    const xt::xtensor<double, 1> lxn = xt::log10(n), lyn = xt::log10(y);
    const std::vector<double> lx(lxn.begin(), lxn.end()), ly(lyn.begin(), lyn.end());
    const auto g = st::fit_polynomial(lx, ly, 1);
    REQUIRE(g.coef.size() == 2);
    CHECK(std::memcmp(f.coef.data(), g.coef.data(), 2 * sizeof(double)) == 0);
    CHECK(f.rms_residual == g.rms_residual);

    // least_squares over an xtensor design: a plane a + b·u + c·v recovered exactly.
    xt::xtensor<double, 2> X = xt::ones<double>({ 6, 3 });
    xt::xtensor<double, 1> t = xt::zeros<double>({ 6 });
    for (std::size_t i = 0; i < 6; ++i)
    {
        X(i, 1) = static_cast<double>(i);
        X(i, 2) = static_cast<double>(i * i % 5);
        t(i) = 0.5 - 2.0 * X(i, 1) + 0.25 * X(i, 2);
    }
    const auto beta = st::least_squares(X, t);
    REQUIRE(beta.size() == 3);
    CHECK(beta(0) == Approx(0.5).epsilon(1e-12));
    CHECK(beta(1) == Approx(-2.0).epsilon(1e-12));
    CHECK(beta(2) == Approx(0.25).epsilon(1e-12));
}
