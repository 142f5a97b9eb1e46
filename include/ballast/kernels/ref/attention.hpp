#ifndef BALLAST_KERNELS_REF_ATTENTION_HPP
#define BALLAST_KERNELS_REF_ATTENTION_HPP

/// @file
/// Scalar reference twin of the fused causal attention kernels (`ballast/kernels/attention.hpp`) for one
/// (batch, head) pair: serial loops that compute every logit, probability, sum and gradient in double
/// and round once to T when storing. Also defines `attention_shape` and the argument validation shared
/// with the SIMD kernels.
///
/// Dims legend (see attention.hpp): T = shape.t_len queries = keys, d = shape.head_dim; q, k, v, dq, dk,
/// dv are T × d with row stride shape.ld_qkv; out and dout are T × d with row stride shape.ld_o; probs
/// is T × T, contiguous (row stride T).
///
/// Forward (per query row i, in double):  z_ij = s·Σ_c q_ic·k_jc  (j <= i);  y = c·tanh(z/c) if c > 0
/// else z;  m_i = max_j y_ij;  e_ij = exp(y_ij − m_i);  S_i = Σ_j e_ij;  p_ij = e_ij / S_i;
/// out_ic = Σ_{j<=i} p_ij·v_jc (with the unrounded p);  probs_ij = p_ij (j <= i), 0 (j > i);
/// row_max_i = m_i;  row_entropy_i = log S_i − Σ_j e_ij·(y_ij − m_i) / S_i;  logits_ij = z_ij (j <= i).
/// Backward (in double, from the stored T-valued probs P):  dv_jc = Σ_{i>=j} P_ij·dout_ic;
/// dP_ij = Σ_c dout_ic·v_jc;  dy_ij = P_ij·(dP_ij − Σ_{k<=i} P_ik·dP_ik);  dz = dy·(1 − tanh²(z/c)) with
/// z recomputed from q, k (c > 0) else dy;  then dz ← s·dz;  dq_ic = Σ_{j<=i} dz_ij·k_jc;
/// dk_jc = Σ_{i>=j} dz_ij·q_ic.  All sums run in increasing index order.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>
#include <vector>

#include <ballast/core/config.hpp>

namespace ballast::kernels
{
    /// Geometry of one (batch, head) attention pair. q, k, v (and dq, dk, dv) are rows of a packed qkv
    /// buffer ([N, 3·d_model] in the model: ld_qkv = 3·d_model); out and dout are rows of the [N, d_model]
    /// attention output (ld_o = d_model).
    struct attention_shape
    {
        std::size_t t_len = 0;    ///< T: queries = keys (causal)
        std::size_t head_dim = 0; ///< d_h
        std::size_t ld_qkv = 0;   ///< row stride (elements) of q, k, v, dq, dk, dv; >= head_dim
        std::size_t ld_o = 0;     ///< row stride (elements) of out and dout; >= head_dim
    };

    /// Optional diagnostic outputs of attention_forward (each nullptr to skip; all T-valued):
    ///   row_max[i]      max_j of the (capped) logits of query i      (T values)
    ///   row_entropy[i]  −Σ_j P_ij·log P_ij of query i, in nats       (T values)
    ///   logits[i·T + j] the scaled logits z_ij = s·q_i·k_j before any cap, j <= i; 0 for j > i   (T × T)
    /// `logits` is for the model's cosine diagnostic (Σ z_ij / (s·‖q_i‖·‖k_j‖) over causal pairs).
    template <class T>
    struct attention_diagnostics
    {
        T* row_max = nullptr;
        T* row_entropy = nullptr;
        T* logits = nullptr;
    };

    namespace detail
    {
        /// Validate the arguments every attention kernel shares (throws ballast::error).
        inline void attention_check(const char* where, const attention_shape& sh, double soft_cap)
        {
            BALLAST_CHECK(sh.head_dim > 0, where, "head_dim must be positive");
            BALLAST_CHECK(sh.ld_qkv >= sh.head_dim, where, "ld_qkv (", sh.ld_qkv, ") must be >= head_dim (",
                          sh.head_dim, ")");
            BALLAST_CHECK(sh.ld_o >= sh.head_dim, where, "ld_o (", sh.ld_o, ") must be >= head_dim (",
                          sh.head_dim, ")");
            BALLAST_CHECK(soft_cap >= 0 && std::isfinite(soft_cap), where, "soft_cap (", soft_cap,
                          ") must be finite and >= 0 (0: no cap)");
        }
    } // namespace detail
} // namespace ballast::kernels

namespace ballast::kernels::ref
{
    namespace ref_detail
    {
        /// The logits of query row i against keys 0..i in double: z = s·q_i·k_j and y = c·tanh(z/c) (c > 0)
        /// or z.
        template <class T>
        inline void attention_logits(double* z_out, double* y, const T* q, const T* k, std::size_t i,
                                     double s, double soft_cap, const attention_shape& sh)
        {
            const std::size_t d = sh.head_dim, ld = sh.ld_qkv;
            for (std::size_t j = 0; j <= i; ++j)
            {
                double acc = 0;
                for (std::size_t c = 0; c < d; ++c)
                {
                    acc += static_cast<double>(q[i * ld + c]) * static_cast<double>(k[j * ld + c]);
                }
                const double z = s * acc;
                z_out[j] = z;
                y[j] = soft_cap > 0 ? soft_cap * std::tanh(z / soft_cap) : z;
            }
        }
    } // namespace ref_detail

    /// Causal attention forward of one pair (double arithmetic): out (T × d, OVERWRITTEN), probs (T × T,
    /// OVERWRITTEN, zero right of the diagonal), the optional diagnostics (attention_diagnostics).
    /// `scratch` is unused (the SIMD kernel's workspace; may be nullptr). soft_cap = 0: no cap.
    template <class T>
    inline void attention_forward(T* out, T* probs,
                                  const attention_diagnostics<std::type_identity_t<T>>& diag,
                                  std::type_identity_t<T>* /*scratch*/, const T* q, const T* k, const T* v,
                                  T scale, double soft_cap, const attention_shape& sh)
    {
        detail::attention_check("ref::attention_forward", sh, soft_cap);
        const std::size_t n = sh.t_len, d = sh.head_dim;
        std::vector<double> z(n), y(n), p(n), o(d);
        for (std::size_t i = 0; i < n; ++i)
        {
            ref_detail::attention_logits(z.data(), y.data(), q, k, i, static_cast<double>(scale), soft_cap,
                                         sh);
            if (diag.logits)
            {
                for (std::size_t j = 0; j < n; ++j)
                {
                    diag.logits[i * n + j] = j <= i ? static_cast<T>(z[j]) : T(0);
                }
            }
            double m = -std::numeric_limits<double>::infinity();
            bool nan = false;
            for (std::size_t j = 0; j <= i; ++j)
            {
                nan = nan || std::isnan(y[j]);
                m = std::max(m, y[j]);
            }
            if (nan)
            {
                m = std::numeric_limits<double>::quiet_NaN();
            }
            double sum = 0, ez = 0;
            for (std::size_t j = 0; j <= i; ++j)
            {
                p[j] = std::exp(y[j] - m);
                sum += p[j];
            }
            for (std::size_t j = 0; j <= i; ++j)
            {
                ez += p[j] * (y[j] - m);
                p[j] /= sum;
                probs[i * n + j] = static_cast<T>(p[j]);
            }
            for (std::size_t j = i + 1; j < n; ++j)
            {
                probs[i * n + j] = T(0);
            }
            if (diag.row_max)
            {
                diag.row_max[i] = static_cast<T>(m);
            }
            if (diag.row_entropy)
            {
                diag.row_entropy[i] = static_cast<T>(std::log(sum) - ez / sum);
            }
            std::fill(o.begin(), o.end(), 0.0);
            for (std::size_t j = 0; j <= i; ++j)
            {
                for (std::size_t c = 0; c < d; ++c)
                {
                    o[c] += p[j] * static_cast<double>(v[j * sh.ld_qkv + c]);
                }
            }
            for (std::size_t c = 0; c < d; ++c)
            {
                out[i * sh.ld_o + c] = static_cast<T>(o[c]);
            }
        }
    }

    /// Causal attention backward of one pair (double arithmetic): dq, dk, dv (T × d each, OVERWRITTEN) from
    /// dout and the forward's probs; q, k (and the soft cap's logits, recomputed from them) and v are the
    /// forward's inputs. `scratch` is unused (may be nullptr).
    template <class T>
    inline void attention_backward(T* dq, T* dk, T* dv, std::type_identity_t<T>* /*scratch*/, const T* dout,
                                   const T* probs, const T* q, const T* k, const T* v, T scale,
                                   double soft_cap, const attention_shape& sh)
    {
        detail::attention_check("ref::attention_backward", sh, soft_cap);
        const std::size_t n = sh.t_len, d = sh.head_dim, ld = sh.ld_qkv, ldo = sh.ld_o;
        const double s = static_cast<double>(scale);
        std::vector<double> dqv(d), dkacc(n * d, 0.0), dvacc(n * d, 0.0), dz(n), z(n), y(n);
        for (std::size_t i = 0; i < n; ++i)
        {
            double sigma = 0;
            for (std::size_t j = 0; j <= i; ++j)
            {
                double dp = 0;
                for (std::size_t c = 0; c < d; ++c)
                {
                    dp += static_cast<double>(dout[i * ldo + c]) * static_cast<double>(v[j * ld + c]);
                }
                dz[j] = dp;
                sigma += static_cast<double>(probs[i * n + j]) * dp;
            }
            if (soft_cap > 0)
            {
                ref_detail::attention_logits(z.data(), y.data(), q, k, i, s, soft_cap, sh);
            }
            std::fill(dqv.begin(), dqv.end(), 0.0);
            for (std::size_t j = 0; j <= i; ++j)
            {
                const double pij = static_cast<double>(probs[i * n + j]);
                double g = pij * (dz[j] - sigma);
                if (soft_cap > 0)
                {
                    const double t = std::tanh(z[j] / soft_cap);
                    g *= 1 - t * t;
                }
                g *= s;
                for (std::size_t c = 0; c < d; ++c)
                {
                    dqv[c] += g * static_cast<double>(k[j * ld + c]);
                    dkacc[j * d + c] += g * static_cast<double>(q[i * ld + c]);
                    dvacc[j * d + c] += pij * static_cast<double>(dout[i * ldo + c]);
                }
            }
            for (std::size_t c = 0; c < d; ++c)
            {
                dq[i * ld + c] = static_cast<T>(dqv[c]);
            }
        }
        for (std::size_t j = 0; j < n; ++j)
        {
            for (std::size_t c = 0; c < d; ++c)
            {
                dk[j * ld + c] = static_cast<T>(dkacc[j * d + c]);
                dv[j * ld + c] = static_cast<T>(dvacc[j * d + c]);
            }
        }
    }
} // namespace ballast::kernels::ref

#endif
