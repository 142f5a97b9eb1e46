#ifndef BALLAST_TESTS_SUPPORT_TOLERANCE_HPP
#define BALLAST_TESTS_SUPPORT_TOLERANCE_HPP

// One tolerance trait keyed by element type. Every test compares through these numbers (scaled, with
// a comment, when an accumulation length demands it), never through ad-hoc literals.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include <catch2/catch.hpp>

namespace ballast::test
{
    template <class T>
    struct tolerance;

    /// float: kernels reorder sums (SIMD lanes, blocking) relative to the scalar twin. The error of a
    /// length-n float sum is bounded by ~n*eps*sum|x_i| in the worst case and ~sqrt(n)*eps typically;
    /// `rel` (64 eps ~ 7.6e-6) covers the elementwise kernels and short reductions, and
    /// `rel_per_sqrt_len` scales with sqrt(n) for long dot products (GEMM with large K).
    /// `fd_rel`: central differences in float are too noisy to check gradients; FD checks run in double.
    template <>
    struct tolerance<float>
    {
        static constexpr double eps = std::numeric_limits<float>::epsilon();
        static constexpr double rel = 64 * eps;
        static constexpr double abs = 1e-6;
        static constexpr double rel_per_sqrt_len = 8 * eps;
    };

    /// double: same rationale, 64 eps ~ 1.4e-14. `fd_rel` is for central finite differences with step
    /// h = 1e-5 on O(1) inputs: truncation error O(h^2 f''') ~ 1e-10 and rounding O(eps/h) ~ 2e-11,
    /// so a relative error of 1e-7 leaves margin without hiding a wrong gradient (those are O(1)).
    template <>
    struct tolerance<double>
    {
        static constexpr double eps = std::numeric_limits<double>::epsilon();
        static constexpr double rel = 64 * eps;
        static constexpr double abs = 1e-13;
        static constexpr double rel_per_sqrt_len = 8 * eps;
        static constexpr double fd_step = 1e-5;
        static constexpr double fd_rel = 1e-7;
    };

    /// |a - b| <= abs + rel * max(|a|, |b|); NaN equals NaN; +-Inf equal only to the same Inf.
    inline bool close(double a, double b, double rel, double abs)
    {
        if (std::isnan(a) || std::isnan(b))
        {
            return std::isnan(a) && std::isnan(b);
        }
        if (std::isinf(a) || std::isinf(b))
        {
            return a == b;
        }
        return std::fabs(a - b) <= abs + rel * std::max(std::fabs(a), std::fabs(b));
    }

    /// Compare two arrays elementwise; on failure report the first mismatching index and values.
    template <class A, class B>
    inline void check_all_close(const A* actual, const B* expected, std::size_t n, double rel, double abs)
    {
        std::size_t bad = n;
        for (std::size_t i = 0; i < n; ++i)
        {
            if (!close(static_cast<double>(actual[i]), static_cast<double>(expected[i]), rel, abs))
            {
                bad = i;
                break;
            }
        }
        if (bad != n)
        {
            UNSCOPED_INFO("first mismatch at index "
                          << bad << " of " << n << ": actual " << static_cast<double>(actual[bad])
                          << " expected " << static_cast<double>(expected[bad]) << " (rel " << rel << ", abs "
                          << abs << ")");
        }
        CHECK(bad == n);
    }
} // namespace ballast::test

/// BALLAST_CHECK_CLOSE(actual, expected, T): scalar comparison through the tolerance trait.
#define BALLAST_CHECK_CLOSE(actual, expected, T)                                                             \
    CHECK(::ballast::test::close(static_cast<double>(actual), static_cast<double>(expected),                 \
                                 ::ballast::test::tolerance<T>::rel, ::ballast::test::tolerance<T>::abs))

#endif
