#ifndef BALLAST_TESTS_SUPPORT_GRADCHECK_HPP
#define BALLAST_TESTS_SUPPORT_GRADCHECK_HPP

// Central finite differences in double: the independent reference every backward pass is checked
// against. The metric is mlpack's CheckGradient: ||g - g_fd|| / ||g + g_fd|| (with a floor for the
// all-zero case), which is scale-free and robust to individual near-zero coordinates.

#include <cmath>
#include <cstddef>
#include <functional>
#include <vector>

#include "tolerance.hpp"

namespace ballast::test
{
    /// d loss / d x[i] for every i by central differences with step h; `loss` is evaluated with x
    /// perturbed in place and x is restored exactly afterwards.
    inline std::vector<double> finite_difference(const std::function<double()>& loss, double* x,
                                                 std::size_t n, double h = tolerance<double>::fd_step)
    {
        std::vector<double> g(n);
        for (std::size_t i = 0; i < n; ++i)
        {
            const double saved = x[i];
            x[i] = saved + h;
            const double lp = loss();
            x[i] = saved - h;
            const double lm = loss();
            x[i] = saved;
            g[i] = (lp - lm) / (2 * h);
        }
        return g;
    }

    /// ||a - b|| / max(||a + b||, tiny).
    inline double relative_error(const double* a, const double* b, std::size_t n)
    {
        double num = 0, den = 0;
        for (std::size_t i = 0; i < n; ++i)
        {
            num += (a[i] - b[i]) * (a[i] - b[i]);
            den += (a[i] + b[i]) * (a[i] + b[i]);
        }
        return std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
    }

    /// Check an analytic gradient against central differences (double only).
    inline void check_gradient(const double* analytic, const std::function<double()>& loss, double* x,
                               std::size_t n, double rel = tolerance<double>::fd_rel)
    {
        const auto fd = finite_difference(loss, x, n);
        const double err = relative_error(analytic, fd.data(), n);
        INFO("gradient relative error " << err << " over " << n << " coordinates (limit " << rel << ")");
        CHECK(err <= rel);
    }
} // namespace ballast::test

#endif
