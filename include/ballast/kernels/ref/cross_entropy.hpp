#ifndef BALLAST_KERNELS_REF_CROSS_ENTROPY_HPP
#define BALLAST_KERNELS_REF_CROSS_ENTROPY_HPP

/// @file
/// Scalar reference twins of the cross-entropy kernels (`ballast/kernels/cross_entropy.hpp`): serial
/// loops computing in double and rounding once to T.
///
/// Dims legend: rows × vocab logits, row stride ld (>= vocab); targets: rows ids in [0, vocab).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include <ballast/core/config.hpp>

namespace ballast::kernels::ref
{
    namespace ref_detail
    {
        /// (max, Σ exp(x − max)) of one row in double; max is NaN if any element is NaN.
        template <class T>
        inline void row_max_expsum(const T* x, std::size_t n, double& mx, double& s)
        {
            mx = -std::numeric_limits<double>::infinity();
            bool nan = false;
            for (std::size_t j = 0; j < n; ++j)
            {
                nan = nan || std::isnan(x[j]);
                mx = std::max<double>(mx, x[j]);
            }
            if (nan)
            {
                mx = std::numeric_limits<double>::quiet_NaN();
            }
            s = 0;
            for (std::size_t j = 0; j < n; ++j)
            {
                s += std::exp(static_cast<double>(x[j]) - mx);
            }
        }
    } // namespace ref_detail

    /// lse[r] = log Σ_j exp(logits[r, j]), computed as max + log Σ exp(x − max).
    template <class T>
    inline void logsumexp_rows(T* lse, const T* logits, std::size_t rows, std::size_t vocab, std::size_t ld)
    {
        BALLAST_CHECK(ld >= vocab, "ref::logsumexp_rows", "ld (", ld, ") must be >= vocab (", vocab, ")");
        for (std::size_t r = 0; r < rows; ++r)
        {
            double mx, s;
            ref_detail::row_max_expsum(logits + r * ld, vocab, mx, s);
            lse[r] = static_cast<T>(mx + std::log(s));
        }
    }

    /// Fused cross-entropy; see `ballast::kernels::cross_entropy_rows` for the math and the contract.
    template <class T>
    inline void cross_entropy_rows(T* loss, T* lse, T* dlogits, const T* logits, const std::int32_t* targets,
                                   T scale, T z_coef, std::size_t rows, std::size_t vocab, std::size_t ld)
    {
        BALLAST_CHECK(ld >= vocab, "ref::cross_entropy_rows", "ld (", ld, ") must be >= vocab (", vocab, ")");
        for (std::size_t r = 0; r < rows; ++r)
        {
            BALLAST_CHECK(targets[r] >= 0 && static_cast<std::size_t>(targets[r]) < vocab,
                          "ref::cross_entropy_rows", "target id ", targets[r], " of row ", r,
                          " is outside [0, ", vocab, ")");
        }
        const double sc = scale, z = z_coef;
        for (std::size_t r = 0; r < rows; ++r)
        {
            const T* x = logits + r * ld;
            const std::size_t t = static_cast<std::size_t>(targets[r]);
            const double xt = x[t];
            double mx, s;
            ref_detail::row_max_expsum(x, vocab, mx, s);
            const double l = mx + std::log(s);
            loss[r] = static_cast<T>(l - xt + z * l * l);
            if (lse != nullptr)
            {
                lse[r] = static_cast<T>(l);
            }
            if (dlogits != nullptr)
            {
                T* d = dlogits + r * ld;
                const double k = sc * (1 + 2 * z * l) / s;
                for (std::size_t j = 0; j < vocab; ++j)
                {
                    d[j] = static_cast<T>(std::exp(static_cast<double>(x[j]) - mx) * k - (j == t ? sc : 0.0));
                }
            }
        }
    }
} // namespace ballast::kernels::ref

#endif
