#ifndef BALLAST_KERNELS_REF_OPTIMIZER_HPP
#define BALLAST_KERNELS_REF_OPTIMIZER_HPP

/// @file
/// Scalar reference twins of the fused optimizer updates (`ballast/kernels/optimizer.hpp`), plus the
/// hyper-parameter structs both share. Each twin is a plain serial loop that computes in double and
/// rounds once to T; it is the oracle the SIMD kernels are tested against.
///
/// Dims legend: n = number of elements of every buffer passed to a call; rows, cols = the shape of a
/// matrix viewed as [rows, cols] (row-major), n = rows·cols.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <ballast/core/config.hpp>

namespace ballast::kernels
{
    /// How an optimizer applies weight decay (resolved at compile time: a template argument).
    enum class weight_decay
    {
        none,        ///< no decay term
        independent, ///< θ ← θ − … − wd·θ: wd is used as given (the caller folds in lr or a schedule)
        coupled      ///< decay multiplied by lr (AdamW/Lion), or added to the gradient (SGD, L2 penalty)
    };

    /// AdamW hyper-parameters for one step. The bias corrections are precomputed by the caller
    /// (`with_step`): bias_correction1 = 1 − β1^t, bias_correction2 = 1 − β2^t, t counted from 1.
    struct adamw_hparams
    {
        double lr = 1e-3;
        double beta1 = 0.9;
        double beta2 = 0.999;
        double eps = 1e-8;
        double weight_decay = 0.0;
        double grad_scale = 1.0; ///< g ← grad_scale·g before use (folds global-norm clipping into the pass)
        double bias_correction1 = 1.0;
        double bias_correction2 = 1.0;

        /// A copy with the bias corrections of step `t` (>= 1).
        [[nodiscard]] adamw_hparams with_step(std::int64_t t) const
        {
            BALLAST_CHECK(t >= 1, "adamw_hparams::with_step", "step must be >= 1, got ", t);
            adamw_hparams h = *this;
            h.bias_correction1 = 1.0 - std::pow(beta1, static_cast<double>(t));
            h.bias_correction2 = 1.0 - std::pow(beta2, static_cast<double>(t));
            return h;
        }
    };

    /// SGD-with-momentum hyper-parameters.
    struct sgd_hparams
    {
        double lr = 1e-2;
        double momentum = 0.9;
        double weight_decay = 0.0;
        double grad_scale = 1.0; ///< g ← grad_scale·g before use
    };

    /// Lion hyper-parameters (paper defaults β1 = 0.9, β2 = 0.99).
    struct lion_hparams
    {
        double lr = 1e-4;
        double beta1 = 0.9;
        double beta2 = 0.99;
        double weight_decay = 0.0;
        double grad_scale = 1.0; ///< g ← grad_scale·g before use
    };

    /// Adafactor hyper-parameters for one step (Shazeer & Stern 2018; see `kernels::adafactor_update`).
    struct adafactor_hparams
    {
        double lr = 1e-2;    ///< α_t: the step size, already multiplied by max(ε2, RMS(θ)) if wanted
        double beta1 = 0.0;  ///< first-moment decay of the clipped update; 0: no momentum (m = Û)
        double beta2 = 0.0;  ///< β̂2t of this step (the caller computes 1 − t^(−c)); 0 at t = 1
        double eps1 = 1e-30; ///< ε1, added to G² before averaging
        double clip_threshold = 1.0; ///< d: Û = U / max(1, RMS(U)/d)
        double weight_decay = 0.0;
        double grad_scale = 1.0; ///< g ← grad_scale·g before use
    };

    /// Does Adafactor factor the second moment of a [rows, cols] tensor? Only true matrices: rows, cols ≥ 2
    /// (then the row and column accumulators, rows + cols numbers, fit in a parameter-sized slot).
    constexpr bool adafactor_factored(std::size_t rows, std::size_t cols) noexcept
    {
        return rows >= 2 && cols >= 2;
    }
} // namespace ballast::kernels

namespace ballast::kernels::ref
{
    /// Per-call scalars derived from `adamw_hparams`: 1/(1−β1^t) and 1/√(1−β2^t), so that
    /// m̂ = m·inv_bias_correction1 and √v̂ = √v·inv_sqrt_bias_correction2.
    struct adamw_derived
    {
        double inv_bias_correction1;
        double inv_sqrt_bias_correction2;
    };

    inline adamw_derived adamw_derived_scalars(const adamw_hparams& h)
    {
        BALLAST_CHECK(h.bias_correction1 > 0 && h.bias_correction2 > 0, "adamw_update",
                      "bias corrections must be > 0 (use adamw_hparams::with_step), got ", h.bias_correction1,
                      ", ", h.bias_correction2);
        return { 1.0 / h.bias_correction1, 1.0 / std::sqrt(h.bias_correction2) };
    }

    /// AdamW step; see `ballast::kernels::adamw_update` for the math.
    template <weight_decay Mode = weight_decay::independent, class T>
    inline void adamw_update(T* param, T* m, T* v, const T* grad, const adamw_hparams& h, std::size_t n)
    {
        const adamw_derived s = adamw_derived_scalars(h);
        for (std::size_t i = 0; i < n; ++i)
        {
            const double g = static_cast<double>(grad[i]) * h.grad_scale;
            const double th = param[i];
            const double mi = h.beta1 * static_cast<double>(m[i]) + (1 - h.beta1) * g;
            const double vi = h.beta2 * static_cast<double>(v[i]) + (1 - h.beta2) * g * g;
            const double u =
              (mi * s.inv_bias_correction1) / (std::sqrt(vi) * s.inv_sqrt_bias_correction2 + h.eps);
            double out = th - h.lr * u;
            if constexpr (Mode == weight_decay::independent)
            {
                out -= h.weight_decay * th;
            }
            else if constexpr (Mode == weight_decay::coupled)
            {
                out -= h.lr * h.weight_decay * th;
            }
            m[i] = static_cast<T>(mi);
            v[i] = static_cast<T>(vi);
            param[i] = static_cast<T>(out);
        }
    }

    /// SGD with momentum; see `ballast::kernels::sgd_momentum_update` for the math.
    template <weight_decay Mode = weight_decay::none, class T>
    inline void sgd_momentum_update(T* param, T* buf, const T* grad, const sgd_hparams& h, std::size_t n)
    {
        for (std::size_t i = 0; i < n; ++i)
        {
            const double th = param[i];
            double g = static_cast<double>(grad[i]) * h.grad_scale;
            if constexpr (Mode == weight_decay::coupled)
            {
                g += h.weight_decay * th;
            }
            const double b = h.momentum * static_cast<double>(buf[i]) + g;
            double out = th - h.lr * b;
            if constexpr (Mode == weight_decay::independent)
            {
                out -= h.weight_decay * th;
            }
            buf[i] = static_cast<T>(b);
            param[i] = static_cast<T>(out);
        }
    }

    /// Lion step; see `ballast::kernels::lion_update` for the math.
    template <weight_decay Mode = weight_decay::coupled, class T>
    inline void lion_update(T* param, T* m, const T* grad, const lion_hparams& h, std::size_t n)
    {
        for (std::size_t i = 0; i < n; ++i)
        {
            const double g = static_cast<double>(grad[i]) * h.grad_scale;
            const double mi = m[i];
            const double th = param[i];
            const double c = h.beta1 * mi + (1 - h.beta1) * g;
            const double sgn = c > 0 ? 1.0 : (c < 0 ? -1.0 : c); // 0 stays 0, NaN stays NaN
            double out = th - h.lr * sgn;
            if constexpr (Mode == weight_decay::independent)
            {
                out -= h.weight_decay * th;
            }
            else if constexpr (Mode == weight_decay::coupled)
            {
                out -= h.lr * h.weight_decay * th;
            }
            param[i] = static_cast<T>(out);
            m[i] = static_cast<T>(h.beta2 * mi + (1 - h.beta2) * g);
        }
    }

    /// Adafactor step; see `ballast::kernels::adafactor_update` for the math and the layout of `v`.
    template <weight_decay Mode = weight_decay::independent, class T>
    inline void adafactor_update(T* param, T* m, T* v, const T* grad, const adafactor_hparams& h,
                                 std::size_t rows, std::size_t cols)
    {
        const std::size_t n = rows * cols;
        if (n == 0)
        {
            return;
        }
        const double b2 = h.beta2;
        const auto sq = [&](std::size_t i)
        {
            const double g = static_cast<double>(grad[i]) * h.grad_scale;
            return g * g + h.eps1;
        };
        std::vector<double> vhat(n);
        if (adafactor_factored(rows, cols))
        {
            T* r = v;
            T* c = v + rows;
            std::vector<double> rs(rows, 0.0), cs(cols, 0.0);
            for (std::size_t i = 0; i < rows; ++i)
            {
                for (std::size_t j = 0; j < cols; ++j)
                {
                    const double s = sq(i * cols + j);
                    rs[i] += s;
                    cs[j] += s;
                }
            }
            double rsum = 0;
            for (std::size_t i = 0; i < rows; ++i)
            {
                const double ri = b2 * static_cast<double>(r[i]) + (1 - b2) * rs[i];
                r[i] = static_cast<T>(ri);
                rs[i] = ri;
                rsum += ri;
            }
            for (std::size_t j = 0; j < cols; ++j)
            {
                cs[j] = b2 * static_cast<double>(c[j]) + (1 - b2) * cs[j];
                c[j] = static_cast<T>(cs[j]);
            }
            for (std::size_t i = 0; i < rows; ++i)
            {
                for (std::size_t j = 0; j < cols; ++j)
                {
                    vhat[i * cols + j] = rs[i] * cs[j] / rsum;
                }
            }
        }
        else
        {
            for (std::size_t i = 0; i < n; ++i)
            {
                vhat[i] = b2 * static_cast<double>(v[i]) + (1 - b2) * sq(i);
                v[i] = static_cast<T>(vhat[i]);
            }
        }
        double usq = 0;
        for (std::size_t i = 0; i < n; ++i)
        {
            const double u = static_cast<double>(grad[i]) * h.grad_scale / std::sqrt(vhat[i]);
            vhat[i] = u; // reuse: vhat now holds U
            usq += u * u;
        }
        const double denom = std::max(1.0, std::sqrt(usq / static_cast<double>(n)) / h.clip_threshold);
        for (std::size_t i = 0; i < n; ++i)
        {
            const double uh = vhat[i] / denom;
            const double mi = h.beta1 * static_cast<double>(m[i]) + (1 - h.beta1) * uh;
            const double th = param[i];
            double out = th - h.lr * mi;
            if constexpr (Mode == weight_decay::independent)
            {
                out -= h.weight_decay * th;
            }
            else if constexpr (Mode == weight_decay::coupled)
            {
                out -= h.lr * h.weight_decay * th;
            }
            m[i] = static_cast<T>(mi);
            param[i] = static_cast<T>(out);
        }
    }
} // namespace ballast::kernels::ref

#endif
