#ifndef BALLAST_STUDY_FIT_HPP
#define BALLAST_STUDY_FIT_HPP

/// @file
/// The fits the prediction tools make (study/predict.hpp), over xtensor arrays: least squares by
/// Householder QR, and the least-squares polynomial built on it. Both take and give xtensor containers
/// (`xt::xtensor<double, 2>` designs, `xt::xtensor<double, 1>` vectors), so user code can hand them
/// expressions (`xt::log10(n)`, `xt::view(...)`); overloads for nested std::vector rows and spans keep
/// plain callers simple. The arithmetic is one loop nest in double whichever overload is called.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include <xtensor/xadapt.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xtensor.hpp>

#include <ballast/core/config.hpp>

namespace ballast::study
{
    /// Least-squares solution of X·β ≈ y (X: n × p, n ≥ p), by Householder QR in double (no normal
    /// equations: Vandermonde columns in log N are nearly collinear, and squaring the condition number
    /// would cost the digits the extrapolation needs). Throws when X is rank-deficient.
    inline xt::xtensor<double, 1> least_squares(xt::xtensor<double, 2> X, xt::xtensor<double, 1> y)
    {
        const std::size_t n = X.shape()[0], p = X.shape()[1];
        BALLAST_CHECK(n > 0 && n == y.size(), "least_squares", "need as many targets as rows, got ", y.size(),
                      " for ", n, " rows");
        BALLAST_CHECK(p > 0 && n >= p, "least_squares", "need at least ", p, " points, got ", n);
        double scale = 0;
        for (const double v : X)
        {
            scale = std::max(scale, std::fabs(v));
        }
        for (std::size_t j = 0; j < p; ++j)
        {
            // Householder reflection zeroing column j below the diagonal; applied to X's remaining columns
            // and to y.
            double norm = 0;
            for (std::size_t i = j; i < n; ++i)
            {
                norm += X(i, j) * X(i, j);
            }
            norm = std::sqrt(norm);
            BALLAST_CHECK(norm > 1e-12 * std::max(scale, 1.0), "least_squares",
                          "the points do not determine the fit (rank-deficient: too few distinct x)");
            const double alpha = X(j, j) > 0 ? -norm : norm;
            xt::xtensor<double, 1> v = xt::zeros<double>({ n - j });
            for (std::size_t i = j; i < n; ++i)
            {
                v(i - j) = X(i, j);
            }
            v(0) -= alpha;
            double vv = 0;
            for (const double e : v)
            {
                vv += e * e;
            }
            const auto reflect = [&](auto&& at)
            {
                double dot = 0;
                for (std::size_t i = j; i < n; ++i)
                {
                    dot += v(i - j) * at(i);
                }
                const double f = 2 * dot / vv;
                for (std::size_t i = j; i < n; ++i)
                {
                    at(i) -= f * v(i - j);
                }
            };
            for (std::size_t c = j; c < p; ++c)
            {
                reflect([&](std::size_t i) -> double& { return X(i, c); });
            }
            reflect([&](std::size_t i) -> double& { return y(i); });
        }
        xt::xtensor<double, 1> beta = xt::zeros<double>({ p });
        for (std::size_t j = p; j-- > 0;)
        {
            double s = y(j);
            for (std::size_t c = j + 1; c < p; ++c)
            {
                s -= X(j, c) * beta(c);
            }
            beta(j) = s / X(j, j);
        }
        return beta;
    }

    /// least_squares with X given by rows (each of the same length).
    inline std::vector<double> least_squares(const std::vector<std::vector<double>>& rows,
                                             const std::vector<double>& y)
    {
        BALLAST_CHECK(!rows.empty(), "least_squares", "need as many targets as rows, got ", y.size(),
                      " for 0 rows");
        const std::size_t p = rows.front().size();
        xt::xtensor<double, 2> X = xt::zeros<double>({ rows.size(), p });
        for (std::size_t i = 0; i < rows.size(); ++i)
        {
            BALLAST_CHECK(rows[i].size() == p, "least_squares", "ragged design matrix");
            for (std::size_t k = 0; k < p; ++k)
            {
                X(i, k) = rows[i][k];
            }
        }
        const auto beta = least_squares(std::move(X), xt::adapt(y, { y.size() }));
        return { beta.begin(), beta.end() };
    }

    /// y ≈ Σ_k coef[k]·x^k, fitted by least squares.
    struct polynomial_fit
    {
        std::vector<double> coef; ///< c0, c1, ... (degree + 1 values)
        double rms_residual = 0;  ///< sqrt(mean squared residual) over the fitted points
        std::size_t points = 0;

        double operator()(double x) const noexcept
        {
            double v = 0;
            for (std::size_t k = coef.size(); k-- > 0;)
            {
                v = v * x + coef[k];
            }
            return v;
        }
    };

    /// Least-squares polynomial of `degree` through (x, y); needs at least degree + 1 distinct x.
    inline polynomial_fit fit_polynomial(const xt::xtensor<double, 1>& x, const xt::xtensor<double, 1>& y,
                                         std::size_t degree)
    {
        BALLAST_CHECK(x.size() == y.size(), "fit_polynomial", "x and y differ in length (", x.size(), " vs ",
                      y.size(), ")");
        BALLAST_CHECK(x.size() > degree, "fit_polynomial", "a degree-", degree, " fit needs at least ",
                      degree + 1, " points, got ", x.size());
        xt::xtensor<double, 2> X = xt::zeros<double>({ x.size(), degree + 1 }); // the Vandermonde matrix
        for (std::size_t i = 0; i < x.size(); ++i)
        {
            BALLAST_CHECK(std::isfinite(x(i)) && std::isfinite(y(i)), "fit_polynomial", "non-finite point ",
                          i);
            double v = 1;
            for (std::size_t k = 0; k <= degree; ++k, v *= x(i))
            {
                X(i, k) = v;
            }
        }
        polynomial_fit f;
        const auto beta = least_squares(std::move(X), y);
        f.coef.assign(beta.begin(), beta.end());
        f.points = x.size();
        double ss = 0;
        for (std::size_t i = 0; i < x.size(); ++i)
        {
            ss += (f(x(i)) - y(i)) * (f(x(i)) - y(i));
        }
        f.rms_residual = std::sqrt(ss / double(x.size()));
        return f;
    }

    /// fit_polynomial over spans (copied into xtensor vectors).
    inline polynomial_fit fit_polynomial(std::span<const double> x, std::span<const double> y,
                                         std::size_t degree)
    {
        xt::xtensor<double, 1> xs =
          xt::adapt(x.data(), x.size(), xt::no_ownership(), std::vector<std::size_t>{ x.size() });
        xt::xtensor<double, 1> ys =
          xt::adapt(y.data(), y.size(), xt::no_ownership(), std::vector<std::size_t>{ y.size() });
        return fit_polynomial(xs, ys, degree);
    }
} // namespace ballast::study

#endif
