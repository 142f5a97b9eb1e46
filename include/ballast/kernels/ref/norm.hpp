#ifndef BALLAST_KERNELS_REF_NORM_HPP
#define BALLAST_KERNELS_REF_NORM_HPP

/// @file
/// Scalar reference twins of the normalisation kernels in <ballast/kernels/norm.hpp>: plain loops,
/// serial, every intermediate in double, the same signatures and conventions as the SIMD kernels.
/// They are the oracle the tests compare against and what `BALLAST_FORCE_SCALAR` routes to.
///
/// Dims legend (all kernels in this header):
///   rows  number of normalised vectors (B*T tokens, or B*T*H heads for qk-norm)
///   cols  length of each normalised vector (C, or d_h for qk-norm); cols >= 1
///   ld_*  row stride in elements of the matching matrix (ld >= cols); row r of x starts at x + r*ld_x
///   mean, rstd       [rows]  per-row caches written by forward, read by backward (contiguous)
///   gain, bias       [cols]  per-column parameters; nullptr means "none" (gain = 1, bias = 0)
///   dgain, dbias     [cols]  parameter gradients, ACCUMULATED (+=); nullptr means "not wanted"
///   dx               [rows x cols] input gradient, OVERWRITTEN

#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

#include <ballast/core/config.hpp>

namespace ballast::kernels
{
    namespace detail
    {
        /// Shape checks shared by every norm kernel (SIMD and reference).
        inline void check_norm_shape(const char* where, std::size_t cols, std::size_t ld_out,
                                     std::size_t ld_in)
        {
            BALLAST_CHECK(cols >= 1, where, "cols must be >= 1, got ", cols);
            BALLAST_CHECK(ld_out >= cols, where, "output row stride (", ld_out, ") must be >= cols (", cols,
                          ")");
            BALLAST_CHECK(ld_in >= cols, where, "input row stride (", ld_in, ") must be >= cols (", cols,
                          ")");
        }

        /// eps must be a positive finite number (it keeps 1/sqrt(var + eps) finite for constant rows).
        template <class T>
        inline void check_norm_eps(const char* where, T eps)
        {
            BALLAST_CHECK(eps > T(0) && std::isfinite(eps), where, "eps must be positive and finite, got ",
                          eps);
        }

        /// Backward-specific checks: a second input matrix (dy) and consistent parameter pointers.
        inline void check_norm_backward(const char* where, std::size_t rows, std::size_t cols,
                                        std::size_t ld_dy, const void* dx, const void* dy, const void* x,
                                        const void* gain, const void* dgain, const void* rstd)
        {
            BALLAST_CHECK(ld_dy >= cols, where, "dy row stride (", ld_dy, ") must be >= cols (", cols, ")");
            BALLAST_CHECK(rows == 0 || (dx && dy && x && rstd), where,
                          "dx, dy, x and the rstd cache must be non-null");
            BALLAST_CHECK(gain || !dgain, where, "dgain given but gain is nullptr (no scale, no gradient)");
        }
    } // namespace detail

    namespace ref
    {
        // ------------------------------------------------------------------------------------------
        // LayerNorm

        /// LayerNorm forward, reference. Per row r with n = cols:
        ///   mu = (1/n) sum_j x_j,  var = (1/n) sum_j (x_j - mu)^2   (biased, two passes, in double)
        ///   rstd = 1 / sqrt(var + eps),  y_j = (x_j - mu) * rstd * g_j + b_j
        /// mean/rstd may be nullptr (nothing cached). y may alias x exactly (same pointer, same ld).
        template <class T>
        inline void layer_norm_forward(T* y, std::size_t ld_y, std::type_identity_t<T>* mean,
                                       std::type_identity_t<T>* rstd, const T* x, std::size_t ld_x,
                                       const std::type_identity_t<T>* gain,
                                       const std::type_identity_t<T>* bias, std::size_t rows,
                                       std::size_t cols, std::type_identity_t<T> eps)
        {
            constexpr const char* where = "ref::layer_norm_forward";
            detail::check_norm_shape(where, cols, ld_y, ld_x);
            detail::check_norm_eps(where, eps);
            BALLAST_CHECK(rows == 0 || (y && x), where, "y and x must be non-null");
            const double n = static_cast<double>(cols);
            for (std::size_t r = 0; r < rows; ++r)
            {
                const T* xr = x + r * ld_x;
                T* yr = y + r * ld_y;
                double sum = 0;
                for (std::size_t j = 0; j < cols; ++j)
                {
                    sum += static_cast<double>(xr[j]);
                }
                const double mu = sum / n;
                double ss = 0;
                for (std::size_t j = 0; j < cols; ++j)
                {
                    const double d = static_cast<double>(xr[j]) - mu;
                    ss += d * d;
                }
                const double rs = 1.0 / std::sqrt(ss / n + static_cast<double>(eps));
                for (std::size_t j = 0; j < cols; ++j)
                {
                    double o = (static_cast<double>(xr[j]) - mu) * rs;
                    if (gain)
                    {
                        o *= static_cast<double>(gain[j]);
                    }
                    if (bias)
                    {
                        o += static_cast<double>(bias[j]);
                    }
                    yr[j] = static_cast<T>(o);
                }
                if (mean)
                {
                    mean[r] = static_cast<T>(mu);
                }
                if (rstd)
                {
                    rstd[r] = static_cast<T>(rs);
                }
            }
        }

        /// Contiguous rows (ld_y = ld_x = cols).
        template <class T>
        inline void layer_norm_forward(T* y, std::type_identity_t<T>* mean, std::type_identity_t<T>* rstd,
                                       const T* x, const std::type_identity_t<T>* gain,
                                       const std::type_identity_t<T>* bias, std::size_t rows,
                                       std::size_t cols, std::type_identity_t<T> eps)
        {
            ref::layer_norm_forward(y, cols, mean, rstd, x, cols, gain, bias, rows, cols, eps);
        }

        /// LayerNorm backward, reference. With xhat_j = (x_j - mu) * rstd and dyg_j = dy_j * g_j:
        ///   dx_j = rstd * (dyg_j - mean_k(dyg_k) - xhat_j * mean_k(dyg_k * xhat_k))     (OVERWRITTEN)
        ///   dgain_j += sum_rows dy_j * xhat_j,  dbias_j += sum_rows dy_j                 (ACCUMULATED)
        /// mean and rstd are the caches from the forward pass. dx may alias dy or x exactly.
        template <class T>
        inline void layer_norm_backward(T* dx, std::size_t ld_dx, std::type_identity_t<T>* dgain,
                                        std::type_identity_t<T>* dbias, const T* dy, std::size_t ld_dy,
                                        const T* x, std::size_t ld_x, const std::type_identity_t<T>* gain,
                                        const T* mean, const T* rstd, std::size_t rows, std::size_t cols)
        {
            constexpr const char* where = "ref::layer_norm_backward";
            detail::check_norm_shape(where, cols, ld_dx, ld_x);
            detail::check_norm_backward(where, rows, cols, ld_dy, dx, dy, x, gain, dgain, rstd);
            BALLAST_CHECK(rows == 0 || mean, where, "the mean cache must be non-null");
            const double n = static_cast<double>(cols);
            std::vector<double> acc_g(dgain ? cols : 0, 0.0), acc_b(dbias ? cols : 0, 0.0);
            for (std::size_t r = 0; r < rows; ++r)
            {
                const T* xr = x + r * ld_x;
                const T* dyr = dy + r * ld_dy;
                T* dxr = dx + r * ld_dx;
                const double mu = static_cast<double>(mean[r]);
                const double rs = static_cast<double>(rstd[r]);
                double s1 = 0, s2 = 0;
                for (std::size_t j = 0; j < cols; ++j)
                {
                    const double xh = (static_cast<double>(xr[j]) - mu) * rs;
                    const double d = static_cast<double>(dyr[j]);
                    const double dg = gain ? d * static_cast<double>(gain[j]) : d;
                    s1 += dg;
                    s2 += dg * xh;
                    if (dgain)
                    {
                        acc_g[j] += d * xh;
                    }
                    if (dbias)
                    {
                        acc_b[j] += d;
                    }
                }
                const double m1 = s1 / n, m2 = s2 / n;
                for (std::size_t j = 0; j < cols; ++j)
                {
                    const double xh = (static_cast<double>(xr[j]) - mu) * rs;
                    const double d = static_cast<double>(dyr[j]);
                    const double dg = gain ? d * static_cast<double>(gain[j]) : d;
                    dxr[j] = static_cast<T>(rs * (dg - m1 - xh * m2));
                }
            }
            for (std::size_t j = 0; j < cols && dgain; ++j)
            {
                dgain[j] = static_cast<T>(static_cast<double>(dgain[j]) + acc_g[j]);
            }
            for (std::size_t j = 0; j < cols && dbias; ++j)
            {
                dbias[j] = static_cast<T>(static_cast<double>(dbias[j]) + acc_b[j]);
            }
        }

        /// Contiguous rows (ld_dx = ld_dy = ld_x = cols).
        template <class T>
        inline void layer_norm_backward(T* dx, std::type_identity_t<T>* dgain, std::type_identity_t<T>* dbias,
                                        const T* dy, const T* x, const std::type_identity_t<T>* gain,
                                        const T* mean, const T* rstd, std::size_t rows, std::size_t cols)
        {
            ref::layer_norm_backward(dx, cols, dgain, dbias, dy, cols, x, cols, gain, mean, rstd, rows, cols);
        }

        // ------------------------------------------------------------------------------------------
        // RMSNorm

        /// RMSNorm forward, reference. Per row: rstd = 1 / sqrt((1/n) sum_j x_j^2 + eps), y_j = x_j * rstd *
        /// g_j. rstd may be nullptr (nothing cached). y may alias x exactly.
        template <class T>
        inline void rms_norm_forward(T* y, std::size_t ld_y, std::type_identity_t<T>* rstd, const T* x,
                                     std::size_t ld_x, const std::type_identity_t<T>* gain, std::size_t rows,
                                     std::size_t cols, std::type_identity_t<T> eps)
        {
            constexpr const char* where = "ref::rms_norm_forward";
            detail::check_norm_shape(where, cols, ld_y, ld_x);
            detail::check_norm_eps(where, eps);
            BALLAST_CHECK(rows == 0 || (y && x), where, "y and x must be non-null");
            const double n = static_cast<double>(cols);
            for (std::size_t r = 0; r < rows; ++r)
            {
                const T* xr = x + r * ld_x;
                T* yr = y + r * ld_y;
                double ss = 0;
                for (std::size_t j = 0; j < cols; ++j)
                {
                    ss += static_cast<double>(xr[j]) * static_cast<double>(xr[j]);
                }
                const double rs = 1.0 / std::sqrt(ss / n + static_cast<double>(eps));
                for (std::size_t j = 0; j < cols; ++j)
                {
                    double o = static_cast<double>(xr[j]) * rs;
                    if (gain)
                    {
                        o *= static_cast<double>(gain[j]);
                    }
                    yr[j] = static_cast<T>(o);
                }
                if (rstd)
                {
                    rstd[r] = static_cast<T>(rs);
                }
            }
        }

        /// Contiguous rows (ld_y = ld_x = cols).
        template <class T>
        inline void rms_norm_forward(T* y, std::type_identity_t<T>* rstd, const T* x,
                                     const std::type_identity_t<T>* gain, std::size_t rows, std::size_t cols,
                                     std::type_identity_t<T> eps)
        {
            ref::rms_norm_forward(y, cols, rstd, x, cols, gain, rows, cols, eps);
        }

        /// RMSNorm backward, reference. With xhat_j = x_j * rstd and dyg_j = dy_j * g_j:
        ///   dx_j = rstd * (dyg_j - xhat_j * mean_k(dyg_k * xhat_k))     (OVERWRITTEN)
        ///   dgain_j += sum_rows dy_j * xhat_j                           (ACCUMULATED)
        /// dx may alias dy or x exactly.
        template <class T>
        inline void rms_norm_backward(T* dx, std::size_t ld_dx, std::type_identity_t<T>* dgain, const T* dy,
                                      std::size_t ld_dy, const T* x, std::size_t ld_x,
                                      const std::type_identity_t<T>* gain, const T* rstd, std::size_t rows,
                                      std::size_t cols)
        {
            constexpr const char* where = "ref::rms_norm_backward";
            detail::check_norm_shape(where, cols, ld_dx, ld_x);
            detail::check_norm_backward(where, rows, cols, ld_dy, dx, dy, x, gain, dgain, rstd);
            const double n = static_cast<double>(cols);
            std::vector<double> acc_g(dgain ? cols : 0, 0.0);
            for (std::size_t r = 0; r < rows; ++r)
            {
                const T* xr = x + r * ld_x;
                const T* dyr = dy + r * ld_dy;
                T* dxr = dx + r * ld_dx;
                const double rs = static_cast<double>(rstd[r]);
                double s2 = 0;
                for (std::size_t j = 0; j < cols; ++j)
                {
                    const double xh = static_cast<double>(xr[j]) * rs;
                    const double d = static_cast<double>(dyr[j]);
                    const double dg = gain ? d * static_cast<double>(gain[j]) : d;
                    s2 += dg * xh;
                    if (dgain)
                    {
                        acc_g[j] += d * xh;
                    }
                }
                const double m2 = s2 / n;
                for (std::size_t j = 0; j < cols; ++j)
                {
                    const double xh = static_cast<double>(xr[j]) * rs;
                    const double d = static_cast<double>(dyr[j]);
                    const double dg = gain ? d * static_cast<double>(gain[j]) : d;
                    dxr[j] = static_cast<T>(rs * (dg - xh * m2));
                }
            }
            for (std::size_t j = 0; j < cols && dgain; ++j)
            {
                dgain[j] = static_cast<T>(static_cast<double>(dgain[j]) + acc_g[j]);
            }
        }

        /// Contiguous rows (ld_dx = ld_dy = ld_x = cols).
        template <class T>
        inline void rms_norm_backward(T* dx, std::type_identity_t<T>* dgain, const T* dy, const T* x,
                                      const std::type_identity_t<T>* gain, const T* rstd, std::size_t rows,
                                      std::size_t cols)
        {
            ref::rms_norm_backward(dx, cols, dgain, dy, cols, x, cols, gain, rstd, rows, cols);
        }
    } // namespace ref
} // namespace ballast::kernels

#endif
