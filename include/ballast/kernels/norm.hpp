#ifndef BALLAST_KERNELS_NORM_HPP
#define BALLAST_KERNELS_NORM_HPP

/// @file
/// Row normalisation kernels: LayerNorm and RMSNorm, forward and backward, vectorised with xsimd over
/// the columns of a row and threaded over fixed blocks of rows. Scalar twins with identical signatures
/// live in <ballast/kernels/ref/norm.hpp>; with `BALLAST_FORCE_SCALAR` every kernel here forwards to
/// its twin.
///
/// Dims legend (all kernels in this header):
///   rows  number of normalised vectors (B*T tokens, or B*T*H heads for qk-norm)
///   cols  length of each normalised vector (C, or d_h for qk-norm); cols >= 1
///   ld_*  row stride in elements of the matching matrix (ld >= cols); row r of x starts at x + r*ld_x.
///         The overloads without ld_* take contiguous rows (ld = cols). With ld, one call normalises one
///         d_h-wide head slice of every row of a wider [rows x H*d_h] matrix (qk-norm).
///   mean, rstd       [rows]  per-row caches written by forward, read by backward (contiguous)
///   gain, bias       [cols]  per-column parameters; nullptr means "none" (gain = 1, bias = 0)
///   dgain, dbias     [cols]  parameter gradients, ACCUMULATED (+=); nullptr means "not wanted"
///   dx               [rows x cols] input gradient, OVERWRITTEN
///
/// Argument order follows llm.c: outputs, caches, inputs, parameters, dims (eps last). T is deduced
/// from the data pointers only; the nullable ones (caches in forward, gain, bias, dgain, dbias) are
/// non-deduced (`std::type_identity_t<T>*`) so a plain `nullptr` can be passed.
///
/// Numerics. Forward computes the mean and the biased variance in two passes over the row (the row
/// sits in L1), never as E[x^2] - E[x]^2, so there is no cancellation for rows with a large mean.
/// Row sums use several lane accumulators; the order differs from the scalar twin by a reassociation
/// only. Backward reduces the parameter gradients deterministically: each fixed block of
/// `norm_row_block` rows accumulates its own partial (in row order) into scratch, and partials are
/// combined in block order. Block boundaries depend only on `rows`, so every output is bit-identical
/// for any thread count.
///
/// NaN/Inf never stay hidden and never leak across rows. LayerNorm: a NaN or Inf in a row makes the
/// whole output row (and its mean/rstd) NaN. RMSNorm: a NaN makes the row NaN; an Inf gives rstd = 0,
/// so the Inf element's output is NaN (Inf * 0) and the row's other outputs are 0. In backward, a
/// non-finite dy poisons that row of dx and the matching column of dgain/dbias. Other rows are
/// bit-identical to a clean run.

#include <cmath>
#include <cstddef>
#include <type_traits>

#include <ballast/core/aligned.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/kernels/norm_rows.hpp>
#include <ballast/kernels/ref/norm.hpp>

namespace ballast::kernels
{
    // ----------------------------------------------------------------------------------------------
    // LayerNorm

    /// LayerNorm forward. Per row r with n = cols:
    ///   mu = (1/n) sum_j x_j,  var = (1/n) sum_j (x_j - mu)^2   (biased, as PyTorch; two passes)
    ///   rstd = 1 / sqrt(var + eps),  y_j = (x_j - mu) * rstd * g_j + b_j
    /// Caches mean[r] = mu and rstd[r] for the backward pass; mean/rstd may be nullptr (inference).
    /// gain/bias may be nullptr (g = 1, b = 0). y may alias x exactly (same pointer, same ld).
    /// @throws ballast::error if eps is not positive and finite, cols == 0, ld < cols or a required
    ///         pointer is null.
    template <class T>
    inline void layer_norm_forward(T* y, std::size_t ld_y, std::type_identity_t<T>* mean,
                                   std::type_identity_t<T>* rstd, const T* x, std::size_t ld_x,
                                   const std::type_identity_t<T>* gain, const std::type_identity_t<T>* bias,
                                   std::size_t rows, std::size_t cols, std::type_identity_t<T> eps)
    {
        static_assert(detail::norm_is_simd_real<T>, "layer_norm_forward: T must be float or double");
        if constexpr (simd::force_scalar)
        {
            ref::layer_norm_forward(y, ld_y, mean, rstd, x, ld_x, gain, bias, rows, cols, eps);
        }
        else
        {
            constexpr const char* where = "layer_norm_forward";
            detail::check_norm_shape(where, cols, ld_y, ld_x);
            detail::check_norm_eps(where, eps);
            BALLAST_CHECK(rows == 0 || (y && x), where, "y and x must be non-null");
            detail::norm_dispatch_flags(
              gain != nullptr, bias != nullptr,
              [&](auto has_gain, auto has_bias)
              {
                  parallel_for(rows, norm_row_block,
                               [&](std::size_t r0, std::size_t r1)
                               {
                                   for (std::size_t r = r0; r < r1; ++r)
                                   {
                                       detail::layer_norm_forward_row<T, decltype(has_gain)::value,
                                                                      decltype(has_bias)::value>(
                                         y + r * ld_y, mean ? mean + r : nullptr, rstd ? rstd + r : nullptr,
                                         x + r * ld_x, gain, bias, cols, eps);
                                   }
                               });
              });
        }
    }

    /// LayerNorm forward over contiguous rows (ld_y = ld_x = cols).
    template <class T>
    inline void layer_norm_forward(T* y, std::type_identity_t<T>* mean, std::type_identity_t<T>* rstd,
                                   const T* x, const std::type_identity_t<T>* gain,
                                   const std::type_identity_t<T>* bias, std::size_t rows, std::size_t cols,
                                   std::type_identity_t<T> eps)
    {
        kernels::layer_norm_forward(y, cols, mean, rstd, x, cols, gain, bias, rows, cols, eps);
    }

    /// LayerNorm backward. With xhat_j = (x_j - mu) * rstd and dyg_j = dy_j * g_j (mu, rstd: forward caches):
    ///   dx_j     = rstd * (dyg_j - mean_k(dyg_k) - xhat_j * mean_k(dyg_k * xhat_k))   (dx OVERWRITTEN)
    ///   dgain_j += sum_rows dy_j * xhat_j                                            (ACCUMULATED)
    ///   dbias_j += sum_rows dy_j                                                     (ACCUMULATED)
    /// dgain/dbias may be nullptr (not computed); dgain requires gain. dx may alias dy or x exactly.
    /// The column sums are reduced per block of `norm_row_block` rows and combined in block order, so
    /// results are bit-identical for any thread count. Allocates 2 * rows/norm_row_block * cols scratch
    /// elements when a parameter gradient is requested.
    template <class T>
    inline void layer_norm_backward(T* dx, std::size_t ld_dx, std::type_identity_t<T>* dgain,
                                    std::type_identity_t<T>* dbias, const T* dy, std::size_t ld_dy,
                                    const T* x, std::size_t ld_x, const std::type_identity_t<T>* gain,
                                    const T* mean, const T* rstd, std::size_t rows, std::size_t cols)
    {
        static_assert(detail::norm_is_simd_real<T>, "layer_norm_backward: T must be float or double");
        if constexpr (simd::force_scalar)
        {
            ref::layer_norm_backward(dx, ld_dx, dgain, dbias, dy, ld_dy, x, ld_x, gain, mean, rstd, rows,
                                     cols);
        }
        else
        {
            constexpr const char* where = "layer_norm_backward";
            detail::check_norm_shape(where, cols, ld_dx, ld_x);
            detail::check_norm_backward(where, rows, cols, ld_dy, dx, dy, x, gain, dgain, rstd);
            BALLAST_CHECK(rows == 0 || mean, where, "the mean cache must be non-null");
            const bool want_params = (dgain || dbias) && rows > 0;
            const std::size_t blocks = (rows + norm_row_block - 1) / norm_row_block;
            const std::size_t stride = detail::norm_partial_stride<T>(cols);
            aligned_vector<T> partial(want_params ? blocks * 2 * stride : 0, T(0));
            const auto run = [&](auto has_gain)
            {
                parallel_for(
                  rows, norm_row_block,
                  [&](std::size_t r0, std::size_t r1)
                  {
                      T* pg = dgain ? partial.data() + (r0 / norm_row_block) * 2 * stride : nullptr;
                      T* pb = dbias ? partial.data() + (r0 / norm_row_block) * 2 * stride + stride : nullptr;
                      for (std::size_t r = r0; r < r1; ++r)
                      {
                          detail::layer_norm_backward_row<T, decltype(has_gain)::value>(
                            dx + r * ld_dx, pg, pb, dy + r * ld_dy, x + r * ld_x, gain, mean[r], rstd[r],
                            cols);
                      }
                  });
            };
            if (gain)
            {
                run(std::true_type{});
            }
            else
            {
                run(std::false_type{});
            }
            if (want_params && dgain)
            {
                detail::norm_combine_partials(dgain, partial.data(), blocks, 2 * stride, cols);
            }
            if (want_params && dbias)
            {
                detail::norm_combine_partials(dbias, partial.data() + stride, blocks, 2 * stride, cols);
            }
        }
    }

    /// LayerNorm backward over contiguous rows (ld_dx = ld_dy = ld_x = cols).
    template <class T>
    inline void layer_norm_backward(T* dx, std::type_identity_t<T>* dgain, std::type_identity_t<T>* dbias,
                                    const T* dy, const T* x, const std::type_identity_t<T>* gain,
                                    const T* mean, const T* rstd, std::size_t rows, std::size_t cols)
    {
        kernels::layer_norm_backward(dx, cols, dgain, dbias, dy, cols, x, cols, gain, mean, rstd, rows, cols);
    }

    // ----------------------------------------------------------------------------------------------
    // RMSNorm

    /// RMSNorm forward. Per row: rstd = 1 / sqrt((1/n) sum_j x_j^2 + eps),  y_j = x_j * rstd * g_j.
    /// Caches rstd[r] (may be nullptr). gain may be nullptr (g = 1). y may alias x exactly.
    /// @throws ballast::error on bad eps, cols == 0, ld < cols or a required null pointer.
    template <class T>
    inline void rms_norm_forward(T* y, std::size_t ld_y, std::type_identity_t<T>* rstd, const T* x,
                                 std::size_t ld_x, const std::type_identity_t<T>* gain, std::size_t rows,
                                 std::size_t cols, std::type_identity_t<T> eps)
    {
        static_assert(detail::norm_is_simd_real<T>, "rms_norm_forward: T must be float or double");
        if constexpr (simd::force_scalar)
        {
            ref::rms_norm_forward(y, ld_y, rstd, x, ld_x, gain, rows, cols, eps);
        }
        else
        {
            constexpr const char* where = "rms_norm_forward";
            detail::check_norm_shape(where, cols, ld_y, ld_x);
            detail::check_norm_eps(where, eps);
            BALLAST_CHECK(rows == 0 || (y && x), where, "y and x must be non-null");
            const auto run = [&](auto has_gain)
            {
                parallel_for(rows, norm_row_block,
                             [&](std::size_t r0, std::size_t r1)
                             {
                                 for (std::size_t r = r0; r < r1; ++r)
                                 {
                                     detail::rms_norm_forward_row<T, decltype(has_gain)::value>(
                                       y + r * ld_y, rstd ? rstd + r : nullptr, x + r * ld_x, gain, cols,
                                       eps);
                                 }
                             });
            };
            if (gain)
            {
                run(std::true_type{});
            }
            else
            {
                run(std::false_type{});
            }
        }
    }

    /// RMSNorm forward over contiguous rows (ld_y = ld_x = cols).
    template <class T>
    inline void rms_norm_forward(T* y, std::type_identity_t<T>* rstd, const T* x,
                                 const std::type_identity_t<T>* gain, std::size_t rows, std::size_t cols,
                                 std::type_identity_t<T> eps)
    {
        kernels::rms_norm_forward(y, cols, rstd, x, cols, gain, rows, cols, eps);
    }

    /// RMSNorm backward. With xhat_j = x_j * rstd and dyg_j = dy_j * g_j (rstd: forward cache):
    ///   dx_j     = rstd * (dyg_j - xhat_j * mean_k(dyg_k * xhat_k))   (dx OVERWRITTEN)
    ///   dgain_j += sum_rows dy_j * xhat_j                             (ACCUMULATED)
    /// dgain may be nullptr (not computed); dgain requires gain. dx may alias dy or x exactly.
    /// Deterministic for any thread count (block partials, see layer_norm_backward).
    template <class T>
    inline void rms_norm_backward(T* dx, std::size_t ld_dx, std::type_identity_t<T>* dgain, const T* dy,
                                  std::size_t ld_dy, const T* x, std::size_t ld_x,
                                  const std::type_identity_t<T>* gain, const T* rstd, std::size_t rows,
                                  std::size_t cols)
    {
        static_assert(detail::norm_is_simd_real<T>, "rms_norm_backward: T must be float or double");
        if constexpr (simd::force_scalar)
        {
            ref::rms_norm_backward(dx, ld_dx, dgain, dy, ld_dy, x, ld_x, gain, rstd, rows, cols);
        }
        else
        {
            constexpr const char* where = "rms_norm_backward";
            detail::check_norm_shape(where, cols, ld_dx, ld_x);
            detail::check_norm_backward(where, rows, cols, ld_dy, dx, dy, x, gain, dgain, rstd);
            const bool want_params = dgain && rows > 0;
            const std::size_t blocks = (rows + norm_row_block - 1) / norm_row_block;
            const std::size_t stride = detail::norm_partial_stride<T>(cols);
            aligned_vector<T> partial(want_params ? blocks * stride : 0, T(0));
            const auto run = [&](auto has_gain)
            {
                parallel_for(rows, norm_row_block,
                             [&](std::size_t r0, std::size_t r1)
                             {
                                 T* pg =
                                   want_params ? partial.data() + (r0 / norm_row_block) * stride : nullptr;
                                 for (std::size_t r = r0; r < r1; ++r)
                                 {
                                     detail::rms_norm_backward_row<T, decltype(has_gain)::value>(
                                       dx + r * ld_dx, pg, dy + r * ld_dy, x + r * ld_x, gain, rstd[r], cols);
                                 }
                             });
            };
            if (gain)
            {
                run(std::true_type{});
            }
            else
            {
                run(std::false_type{});
            }
            if (want_params)
            {
                detail::norm_combine_partials(dgain, partial.data(), blocks, stride, cols);
            }
        }
    }

    /// RMSNorm backward over contiguous rows (ld_dx = ld_dy = ld_x = cols).
    template <class T>
    inline void rms_norm_backward(T* dx, std::type_identity_t<T>* dgain, const T* dy, const T* x,
                                  const std::type_identity_t<T>* gain, const T* rstd, std::size_t rows,
                                  std::size_t cols)
    {
        kernels::rms_norm_backward(dx, cols, dgain, dy, cols, x, cols, gain, rstd, rows, cols);
    }
} // namespace ballast::kernels

#endif
