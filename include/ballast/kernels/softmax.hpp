#ifndef BALLAST_KERNELS_SOFTMAX_HPP
#define BALLAST_KERNELS_SOFTMAX_HPP

/// @file
/// Row softmax forward and backward (SIMD), plain and causal-masked (attention).
///
/// Dims legend:
///   rows × cols   matrix, row r starts at ptr + r·ld (ld >= cols, in elements); the same ld for every
///                 matrix argument of a call
///   t_len         causal variants: a square t_len × t_len block (query t attends to keys 0..t)
///
/// Forward, per row (numerically stable):  m = max_j x_j,  e_j = exp(x_j − m),  y_j = e_j / Σ_k e_k.
/// Backward (activation gradient, overwrites dx):  dx_j = y_j·(dy_j − Σ_k dy_k·y_k).
/// Causal: row t uses columns 0..t only; columns t+1..t_len−1 of the output are set to 0.
/// Columns past `cols` (the ld padding) are never read or written.
///
/// NaN/Inf: a NaN anywhere in a row makes the whole output row NaN (the row max is NaN-propagating);
/// a +Inf in a row also yields NaN (Inf − Inf), like the unguarded softmax in PyTorch; other rows are
/// untouched. exp is xsimd::exp (≈1 ulp, checked against std::exp in the tests).
/// Sums use the fixed block order of `reduce.hpp`; rows are split across threads in chunks of
/// whole rows, so results are bit-identical for any thread count.
/// Aliasing: out may equal in, dx may equal dy (exactly, same ld).
///
/// With `BALLAST_FORCE_SCALAR` every public kernel forwards to its twin in `ballast::kernels::ref`.

#include <algorithm>
#include <cstddef>
#include <limits>

#include <ballast/core/config.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/kernels/reduce.hpp>
#include <ballast/kernels/ref/softmax.hpp>

namespace ballast::kernels
{
    /// Target elements per parallel chunk of a row-wise kernel (whole rows per chunk, at least one):
    /// 16 Ki elements ≈ 20-50 µs of exp work, well above the OpenMP fork cost.
    inline constexpr std::size_t row_chunk_elems = std::size_t{ 1 } << 14;

    namespace detail
    {
        /// Rows per parallel chunk for rows of `cols` elements.
        inline std::size_t rows_per_chunk(std::size_t cols) noexcept
        {
            return std::max<std::size_t>(1, row_chunk_elems / std::max<std::size_t>(cols, 1));
        }

        /// Softmax of one row of `cols` elements (serial); out may equal in.
        template <class T>
        inline void softmax_row(T* out, const T* in, std::size_t cols, T* max_out = nullptr,
                                T* entropy_out = nullptr)
        {
            using B = simd::batch<T>;
            if (cols == 0)
            {
                return;
            }
            const T m = row_max<T, false>(in, cols);
            const B mx(m);
            // Padding lanes load −∞ so that exp(−∞ − m) = 0 leaves the sum unchanged.
            const T pad = -std::numeric_limits<T>::infinity();
            // Entropy (diagnostics only): H = log s − Σ e·(x − m)/s, accumulated in the same pass as s.
            B ez(T(0));
            const double s = blocked_sum<T, false>(cols,
                                                   [&](std::size_t i, std::size_t k)
                                                   {
                                                       const B z = load_n(in + i, k, pad) - mx;
                                                       const B e = xsimd::exp(z);
                                                       if (entropy_out)
                                                       {
                                                           // padding: e = 0 and z = −∞; select avoids 0·∞
                                                           ez += xsimd::select(e > B(T(0)), e * z, B(T(0)));
                                                       }
                                                       store_n(out + i, k, e);
                                                       return e;
                                                   });
            if (max_out)
            {
                *max_out = m;
            }
            if (entropy_out)
            {
                *entropy_out = static_cast<T>(std::log(s) - static_cast<double>(simd::reduce_add(ez)) / s);
            }
            const B inv(static_cast<T>(1.0 / s));
            for_each_batch<T>(
              0, cols, [&](std::size_t i, std::size_t k) { store_n(out + i, k, load_n(out + i, k) * inv); });
        }

        /// dx = y ⊙ (dy − Σ dy·y) over one row (serial); dx may equal dy.
        template <class T>
        inline void softmax_backward_row(T* dx, const T* y, const T* dy, std::size_t cols)
        {
            using B = simd::batch<T>;
            const B s(static_cast<T>(blocked_sum<T, false>(
              cols, [&](std::size_t i, std::size_t k) { return load_n(dy + i, k) * load_n(y + i, k); })));
            for_each_batch<T>(0, cols,
                              [&](std::size_t i, std::size_t k)
                              { store_n(dx + i, k, load_n(y + i, k) * (load_n(dy + i, k) - s)); });
        }

        /// Zero `p[0, n)`.
        template <class T>
        inline void zero_row(T* p, std::size_t n)
        {
            const simd::batch<T> z(T(0));
            for_each_batch<T>(0, n, [&](std::size_t i, std::size_t k) { store_n(p + i, k, z); });
        }
    } // namespace detail

    /// Row softmax: out[r, j] = exp(in[r, j] − max_k in[r, k]) / Σ_k exp(in[r, k] − max_k in[r, k]).
    /// Overwrites out (may equal in).
    template <class T>
    inline void softmax_forward(T* out, const T* in, std::size_t rows, std::size_t cols, std::size_t ld)
    {
        if constexpr (simd::force_scalar)
        {
            ref::softmax_forward(out, in, rows, cols, ld);
        }
        else
        {
            BALLAST_CHECK(ld >= cols, "softmax_forward", "ld (", ld, ") must be >= cols (", cols, ")");
            parallel_for(rows, detail::rows_per_chunk(cols),
                         [&](std::size_t r0, std::size_t r1)
                         {
                             for (std::size_t r = r0; r < r1; ++r)
                             {
                                 detail::softmax_row(out + r * ld, in + r * ld, cols);
                             }
                         });
        }
    }

    /// Causal softmax of a t_len × t_len block (attention scores): row t is the softmax of
    /// in[t, 0..t]; out[t, j] = 0 for j > t. Overwrites out (may equal in). Diagnostics, computed in the
    /// same pass when the pointers are given: row_max[t] = max_j in[t, j] (the max attention logit of query
    /// t) and row_entropy[t] = −Σ_j y_j·log y_j (nats) of the output row.
    template <class T>
    inline void softmax_causal_forward(T* out, const T* in, std::size_t t_len, std::size_t ld,
                                       T* row_max = nullptr, T* row_entropy = nullptr)
    {
        if constexpr (simd::force_scalar)
        {
            ref::softmax_causal_forward(out, in, t_len, ld, row_max, row_entropy);
        }
        else
        {
            BALLAST_CHECK(ld >= t_len, "softmax_causal_forward", "ld (", ld, ") must be >= t_len (", t_len,
                          ")");
            parallel_for(t_len, detail::rows_per_chunk(t_len),
                         [&](std::size_t r0, std::size_t r1)
                         {
                             for (std::size_t t = r0; t < r1; ++t)
                             {
                                 detail::softmax_row(out + t * ld, in + t * ld, t + 1,
                                                     row_max ? row_max + t : nullptr,
                                                     row_entropy ? row_entropy + t : nullptr);
                                 detail::zero_row(out + t * ld + t + 1, t_len - t - 1);
                             }
                         });
        }
    }

    /// Softmax backward (activation gradient, overwrites dx; dx may equal dy):
    /// dx[r, j] = y[r, j]·(dy[r, j] − Σ_k dy[r, k]·y[r, k]), y = softmax output of the forward pass.
    template <class T>
    inline void softmax_backward(T* dx, const T* y, const T* dy, std::size_t rows, std::size_t cols,
                                 std::size_t ld)
    {
        if constexpr (simd::force_scalar)
        {
            ref::softmax_backward(dx, y, dy, rows, cols, ld);
        }
        else
        {
            BALLAST_CHECK(ld >= cols, "softmax_backward", "ld (", ld, ") must be >= cols (", cols, ")");
            parallel_for(rows, detail::rows_per_chunk(cols),
                         [&](std::size_t r0, std::size_t r1)
                         {
                             for (std::size_t r = r0; r < r1; ++r)
                             {
                                 detail::softmax_backward_row(dx + r * ld, y + r * ld, dy + r * ld, cols);
                             }
                         });
        }
    }

    /// Causal softmax backward over a t_len × t_len block: row t over columns 0..t, dx[t, j > t] = 0.
    /// Overwrites dx (may equal dy).
    template <class T>
    inline void softmax_causal_backward(T* dx, const T* y, const T* dy, std::size_t t_len, std::size_t ld)
    {
        if constexpr (simd::force_scalar)
        {
            ref::softmax_causal_backward(dx, y, dy, t_len, ld);
        }
        else
        {
            BALLAST_CHECK(ld >= t_len, "softmax_causal_backward", "ld (", ld, ") must be >= t_len (", t_len,
                          ")");
            parallel_for(t_len, detail::rows_per_chunk(t_len),
                         [&](std::size_t r0, std::size_t r1)
                         {
                             for (std::size_t t = r0; t < r1; ++t)
                             {
                                 detail::softmax_backward_row(dx + t * ld, y + t * ld, dy + t * ld, t + 1);
                                 detail::zero_row(dx + t * ld + t + 1, t_len - t - 1);
                             }
                         });
        }
    }
} // namespace ballast::kernels

#endif
