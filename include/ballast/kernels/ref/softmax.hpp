#ifndef BALLAST_KERNELS_REF_SOFTMAX_HPP
#define BALLAST_KERNELS_REF_SOFTMAX_HPP

/// @file
/// Scalar reference twins of the softmax kernels (`ballast/kernels/softmax.hpp`): serial loops computing
/// in double (std::exp on double) and rounding once to T.
///
/// Dims legend: rows × cols matrix, row stride ld (>= cols) elements; causal variants take a square
/// T × T block (t_len = T) with row stride ld.

#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include <ballast/core/config.hpp>

namespace ballast::kernels::ref
{
    namespace ref_detail
    {
        /// Softmax of one row of `cols` elements (double arithmetic).
        template <class T>
        inline void softmax_row(T* out, const T* in, std::size_t cols, T* max_out = nullptr,
                                T* entropy_out = nullptr)
        {
            if (cols == 0)
            {
                return;
            }
            double mx = -std::numeric_limits<double>::infinity();
            bool nan = false;
            for (std::size_t j = 0; j < cols; ++j)
            {
                nan = nan || std::isnan(in[j]);
                mx = std::max<double>(mx, in[j]);
            }
            if (nan)
            {
                mx = std::numeric_limits<double>::quiet_NaN();
            }
            std::vector<double> e(cols);
            double s = 0;
            for (std::size_t j = 0; j < cols; ++j)
            {
                e[j] = std::exp(static_cast<double>(in[j]) - mx);
                s += e[j];
            }
            if (max_out)
            {
                *max_out = static_cast<T>(mx);
            }
            if (entropy_out)
            {
                // H = −Σ p·log p with p = e/s, log p = (x − m) − log s:  H = log s − Σ e·(x − m) / s.
                double ez = 0;
                for (std::size_t j = 0; j < cols; ++j)
                {
                    ez += e[j] * (static_cast<double>(in[j]) - mx);
                }
                *entropy_out = static_cast<T>(std::log(s) - ez / s);
            }
            for (std::size_t j = 0; j < cols; ++j)
            {
                out[j] = static_cast<T>(e[j] / s);
            }
        }

        /// dx = y ⊙ (dy − Σ dy·y) over one row (double arithmetic).
        template <class T>
        inline void softmax_backward_row(T* dx, const T* y, const T* dy, std::size_t cols)
        {
            double s = 0;
            for (std::size_t j = 0; j < cols; ++j)
            {
                s += static_cast<double>(dy[j]) * static_cast<double>(y[j]);
            }
            for (std::size_t j = 0; j < cols; ++j)
            {
                dx[j] = static_cast<T>(static_cast<double>(y[j]) * (static_cast<double>(dy[j]) - s));
            }
        }
    } // namespace ref_detail

    /// out[r, j] = exp(in[r, j] − max_k in[r, k]) / Σ_k exp(in[r, k] − max_k in[r, k]).
    template <class T>
    inline void softmax_forward(T* out, const T* in, std::size_t rows, std::size_t cols, std::size_t ld)
    {
        BALLAST_CHECK(ld >= cols, "ref::softmax_forward", "ld (", ld, ") must be >= cols (", cols, ")");
        for (std::size_t r = 0; r < rows; ++r)
        {
            ref_detail::softmax_row(out + r * ld, in + r * ld, cols);
        }
    }

    /// Causal softmax of a t_len × t_len block: row t over columns 0..t; out[t, j > t] = 0. Optional
    /// diagnostics per row: the max input (logit) and the entropy of the output distribution (nats).
    template <class T>
    inline void softmax_causal_forward(T* out, const T* in, std::size_t t_len, std::size_t ld,
                                       T* row_max = nullptr, T* row_entropy = nullptr)
    {
        BALLAST_CHECK(ld >= t_len, "ref::softmax_causal_forward", "ld (", ld, ") must be >= t_len (", t_len,
                      ")");
        for (std::size_t t = 0; t < t_len; ++t)
        {
            ref_detail::softmax_row(out + t * ld, in + t * ld, t + 1, row_max ? row_max + t : nullptr,
                                    row_entropy ? row_entropy + t : nullptr);
            for (std::size_t j = t + 1; j < t_len; ++j)
            {
                out[t * ld + j] = T(0);
            }
        }
    }

    /// dx[r, j] = y[r, j]·(dy[r, j] − Σ_k dy[r, k]·y[r, k])  (overwrites dx).
    template <class T>
    inline void softmax_backward(T* dx, const T* y, const T* dy, std::size_t rows, std::size_t cols,
                                 std::size_t ld)
    {
        BALLAST_CHECK(ld >= cols, "ref::softmax_backward", "ld (", ld, ") must be >= cols (", cols, ")");
        for (std::size_t r = 0; r < rows; ++r)
        {
            ref_detail::softmax_backward_row(dx + r * ld, y + r * ld, dy + r * ld, cols);
        }
    }

    /// Causal backward: row t over columns 0..t; dx[t, j > t] = 0.
    template <class T>
    inline void softmax_causal_backward(T* dx, const T* y, const T* dy, std::size_t t_len, std::size_t ld)
    {
        BALLAST_CHECK(ld >= t_len, "ref::softmax_causal_backward", "ld (", ld, ") must be >= t_len (", t_len,
                      ")");
        for (std::size_t t = 0; t < t_len; ++t)
        {
            ref_detail::softmax_backward_row(dx + t * ld, y + t * ld, dy + t * ld, t + 1);
            for (std::size_t j = t + 1; j < t_len; ++j)
            {
                dx[t * ld + j] = T(0);
            }
        }
    }
} // namespace ballast::kernels::ref

#endif
