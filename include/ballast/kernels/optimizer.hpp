#ifndef BALLAST_KERNELS_OPTIMIZER_HPP
#define BALLAST_KERNELS_OPTIMIZER_HPP

/// @file
/// Fused optimizer updates over flat buffers (AdamW, SGD with momentum, Lion: one pass over param, state
/// and grad; Adafactor: three passes, for its two reductions). The hyper-parameter structs are in
/// `ballast/kernels/ref/optimizer.hpp`, with the scalar twins.
///
/// Dims legend: n = number of elements of every buffer passed to a call; rows, cols = a matrix's shape.
/// Argument order (llm.c): outputs, then state buffers, then inputs, then scalars, then dims. Every
/// pointer may be unaligned; no buffer may overlap another.
///
/// Gradient conventions: these kernels never write gradients; they read `grad` and update `param` and
/// their state in place. g = grad_scale·grad everywhere, so global-norm clipping costs no extra pass.
///
/// Determinism: the elementwise updates compute every element by the same batch code whether it lies in
/// the vector body or in the tail (see `ballast/kernels/elementwise.hpp`) and are threaded in
/// `elementwise_grain` chunks; Adafactor's reductions run serially in a fixed order. Results do not depend
/// on the thread count.
///
/// With `BALLAST_FORCE_SCALAR` every public kernel forwards to its twin in `ballast::kernels::ref`.

#include <algorithm>
#include <cmath>
#include <cstddef>

#include <ballast/core/aligned.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/kernels/ref/optimizer.hpp>

namespace ballast::kernels
{
    /// AdamW, one fused pass (t = step, counted from 1; hyper-parameters in `adamw_hparams`;
    /// g = grad_scale·grad, so global-norm clipping costs no extra pass):
    ///   m ← β1 m + (1−β1) g
    ///   v ← β2 v + (1−β2) g²
    ///   u = m̂ / (√v̂ + ε),  m̂ = m / (1−β1^t),  v̂ = v / (1−β2^t)
    ///   independent: θ ← θ − lr·u − wd·θ      (wd is the caller's already-scheduled decay, not × lr)
    ///   coupled:     θ ← θ − lr·(u + wd·θ)    (PyTorch AdamW: decay scaled by lr)
    ///   none:        θ ← θ − lr·u
    /// (θ on the right-hand side is the value before the step.)
    /// Instantiate with `T = float` or `double`: the float kernels compute in float.
    /// `param`, `m`, `v` are updated in place; `grad` is read only.
    template <weight_decay Mode = weight_decay::independent, class T>
    inline void adamw_update(T* param, T* m, T* v, const T* grad, const adamw_hparams& h, std::size_t n)
    {
        if constexpr (simd::force_scalar)
        {
            ref::adamw_update<Mode>(param, m, v, grad, h, n);
        }
        else
        {
            using B = simd::batch<T>;
            const auto s = ref::adamw_derived_scalars(h);
            const B b1(static_cast<T>(h.beta1)), omb1(static_cast<T>(1 - h.beta1));
            const B b2(static_cast<T>(h.beta2)), omb2(static_cast<T>(1 - h.beta2));
            const B rc1(static_cast<T>(s.inv_bias_correction1)),
              rs2(static_cast<T>(s.inv_sqrt_bias_correction2));
            const B eps(static_cast<T>(h.eps)), lr(static_cast<T>(h.lr)), wd(static_cast<T>(h.weight_decay));
            const B gs(static_cast<T>(h.grad_scale));
            detail::parallel_for_each_batch<T>(
              n,
              [&](std::size_t i, std::size_t k)
              {
                  const B g = detail::load_n(grad + i, k) * gs;
                  const B th = detail::load_n(param + i, k);
                  const B mi = xsimd::fma(b1, detail::load_n(m + i, k), omb1 * g);
                  const B vi = xsimd::fma(b2, detail::load_n(v + i, k), omb2 * (g * g));
                  const B u = (mi * rc1) / xsimd::fma(xsimd::sqrt(vi), rs2, eps);
                  B out;
                  if constexpr (Mode == weight_decay::independent)
                  {
                      out = th - xsimd::fma(lr, u, wd * th);
                  }
                  else if constexpr (Mode == weight_decay::coupled)
                  {
                      out = xsimd::fnma(lr, xsimd::fma(wd, th, u), th);
                  }
                  else
                  {
                      out = xsimd::fnma(lr, u, th);
                  }
                  detail::store_n(m + i, k, mi);
                  detail::store_n(v + i, k, vi);
                  detail::store_n(param + i, k, out);
              });
        }
    }

    /// SGD with heavy-ball momentum (PyTorch semantics, dampening 0, no Nesterov; g = grad_scale·grad):
    ///   coupled:     g' = g + wd·θ,  buf ← μ buf + g',  θ ← θ − lr·buf     (L2 penalty in the gradient)
    ///   independent: buf ← μ buf + g,  θ ← θ − lr·buf − wd·θ               (wd already scheduled)
    ///   none:        buf ← μ buf + g,  θ ← θ − lr·buf
    /// `param` and `buf` are updated in place; `grad` is read only.
    template <weight_decay Mode = weight_decay::none, class T>
    inline void sgd_momentum_update(T* param, T* buf, const T* grad, const sgd_hparams& h, std::size_t n)
    {
        if constexpr (simd::force_scalar)
        {
            ref::sgd_momentum_update<Mode>(param, buf, grad, h, n);
        }
        else
        {
            using B = simd::batch<T>;
            const B mu(static_cast<T>(h.momentum)), lr(static_cast<T>(h.lr)),
              wd(static_cast<T>(h.weight_decay)), gs(static_cast<T>(h.grad_scale));
            detail::parallel_for_each_batch<T>(n,
                                               [&](std::size_t i, std::size_t k)
                                               {
                                                   const B th = detail::load_n(param + i, k);
                                                   B g = detail::load_n(grad + i, k) * gs;
                                                   if constexpr (Mode == weight_decay::coupled)
                                                   {
                                                       g = xsimd::fma(wd, th, g);
                                                   }
                                                   const B b = xsimd::fma(mu, detail::load_n(buf + i, k), g);
                                                   B out;
                                                   if constexpr (Mode == weight_decay::independent)
                                                   {
                                                       out = th - xsimd::fma(lr, b, wd * th);
                                                   }
                                                   else
                                                   {
                                                       out = xsimd::fnma(lr, b, th);
                                                   }
                                                   detail::store_n(buf + i, k, b);
                                                   detail::store_n(param + i, k, out);
                                               });
        }
    }

    /// Lion (Chen et al. 2023); g = grad_scale·grad:
    ///   c = β1 m + (1−β1) g
    ///   coupled (the Lion paper): θ ← θ − lr·(sign(c) + wd·θ)        sign(0) = 0, sign(NaN) = NaN
    ///   independent:              θ ← θ − lr·sign(c) − wd·θ          (wd already scheduled)
    ///   none:                     θ ← θ − lr·sign(c)
    ///   m ← β2 m + (1−β2) g
    /// `param` and `m` are updated in place; `grad` is read only.
    template <weight_decay Mode = weight_decay::coupled, class T>
    inline void lion_update(T* param, T* m, const T* grad, const lion_hparams& h, std::size_t n)
    {
        if constexpr (simd::force_scalar)
        {
            ref::lion_update<Mode>(param, m, grad, h, n);
        }
        else
        {
            using B = simd::batch<T>;
            const B b1(static_cast<T>(h.beta1)), omb1(static_cast<T>(1 - h.beta1));
            const B b2(static_cast<T>(h.beta2)), omb2(static_cast<T>(1 - h.beta2));
            const B lr(static_cast<T>(h.lr)), wd(static_cast<T>(h.weight_decay)),
              gs(static_cast<T>(h.grad_scale));
            detail::parallel_for_each_batch<T>(
              n,
              [&](std::size_t i, std::size_t k)
              {
                  const B g = detail::load_n(grad + i, k) * gs;
                  const B mi = detail::load_n(m + i, k);
                  const B th = detail::load_n(param + i, k);
                  const B c = xsimd::fma(b1, mi, omb1 * g);
                  B out;
                  if constexpr (Mode == weight_decay::independent)
                  {
                      out = th - xsimd::fma(lr, detail::sign_nan(c), wd * th);
                  }
                  else if constexpr (Mode == weight_decay::coupled)
                  {
                      out = xsimd::fnma(lr, xsimd::fma(wd, th, detail::sign_nan(c)), th);
                  }
                  else
                  {
                      out = xsimd::fnma(lr, detail::sign_nan(c), th);
                  }
                  detail::store_n(param + i, k, out);
                  detail::store_n(m + i, k, xsimd::fma(b2, mi, omb2 * g));
              });
        }
    }

    /// Adafactor (Shazeer & Stern 2018, Algorithms 4 and 5), one step on a [rows, cols] tensor; g =
    /// grad_scale·grad, β̂ = `beta2` (β̂2t, computed by the caller), ε1 = `eps1`, d = `clip_threshold`:
    ///   factored (rows, cols ≥ 2; `adafactor_factored`), v = [R (rows) | C (cols)]:
    ///     R ← β̂ R + (1−β̂)·rowsum(g² + ε1)      C ← β̂ C + (1−β̂)·colsum(g² + ε1)
    ///     V̂_ij = R_i C_j / Σ_i R_i
    ///   unfactored (vectors, and matrices with a dimension of 1), v has n entries:
    ///     v ← β̂ v + (1−β̂)(g² + ε1),  V̂ = v
    ///   U = g / √V̂,   Û = U / max(1, RMS(U)/d),   RMS(U) = √(Σ U²/n)
    ///   m ← β1 m + (1−β1) Û                       (β1 = 0: m = Û)
    ///   independent: θ ← θ − lr·m − wd·θ,  coupled: θ ← θ − lr·(m + wd·θ),  none: θ ← θ − lr·m
    /// `lr` is α_t (the caller multiplies in max(ε2, RMS(θ)), the paper's relative step). In the factored
    /// case only the first rows + cols entries of `v` are used (the rest is left untouched). The float
    /// kernel computes in float except Σ U² and Σ R, which are accumulated in double.
    template <weight_decay Mode = weight_decay::independent, class T>
    inline void adafactor_update(T* param, T* m, T* v, const T* grad, const adafactor_hparams& h,
                                 std::size_t rows, std::size_t cols)
    {
        if constexpr (simd::force_scalar)
        {
            ref::adafactor_update<Mode>(param, m, v, grad, h, rows, cols);
        }
        else
        {
            using B = simd::batch<T>;
            const std::size_t n = rows * cols;
            if (n == 0)
            {
                return;
            }
            const T b2 = static_cast<T>(h.beta2), omb2 = static_cast<T>(1 - h.beta2);
            const B gs(static_cast<T>(h.grad_scale)), e1(static_cast<T>(h.eps1)), vb2(b2), vomb2(omb2);
            const B b1(static_cast<T>(h.beta1)), omb1(static_cast<T>(1 - h.beta1));
            const B lr(static_cast<T>(h.lr)), wd(static_cast<T>(h.weight_decay));
            const bool factored = adafactor_factored(rows, cols);
            // The last pass: Û = U / denom, the momentum and the parameter update, for the k elements at
            // `at` whose U is `u`.
            const auto finish = [&](std::size_t at, std::size_t k, const B& u, const B& inv_denom)
            {
                const B uh = u * inv_denom;
                const B mi = xsimd::fma(b1, detail::load_n(m + at, k), omb1 * uh);
                const B th = detail::load_n(param + at, k);
                B out;
                if constexpr (Mode == weight_decay::independent)
                {
                    out = th - xsimd::fma(lr, mi, wd * th);
                }
                else if constexpr (Mode == weight_decay::coupled)
                {
                    out = xsimd::fnma(lr, xsimd::fma(wd, th, mi), th);
                }
                else
                {
                    out = xsimd::fnma(lr, mi, th);
                }
                detail::store_n(m + at, k, mi);
                detail::store_n(param + at, k, out);
            };
            double usq = 0;
            if (factored)
            {
                T* r = v;
                T* c = v + rows;
                aligned_vector<T> colsum(cols, T(0));
                // Pass 1: row sums of g² (registers, then a horizontal sum) and column sums (across rows).
                // Padding lanes load g = 0 and add nothing; ε1 is added once per sum: cols·ε1, rows·ε1.
                double rsum = 0;
                for (std::size_t i = 0; i < rows; ++i)
                {
                    B acc(T(0));
                    detail::for_each_batch<T>(0, cols,
                                              [&](std::size_t j, std::size_t k)
                                              {
                                                  const B g = detail::load_n(grad + i * cols + j, k) * gs;
                                                  const B g2 = g * g;
                                                  acc += g2;
                                                  detail::store_n(colsum.data() + j, k,
                                                                  detail::load_n(colsum.data() + j, k) + g2);
                                              });
                    const T rs = simd::reduce_add(acc) + static_cast<T>(cols) * static_cast<T>(h.eps1);
                    r[i] = b2 * r[i] + omb2 * rs;
                    rsum += static_cast<double>(r[i]);
                }
                const B row_eps(static_cast<T>(rows) * static_cast<T>(h.eps1));
                detail::for_each_batch<T>(
                  0, cols,
                  [&](std::size_t j, std::size_t k)
                  {
                      const B cs = detail::load_n(colsum.data() + j, k) + row_eps;
                      detail::store_n(c + j, k, xsimd::fma(vb2, detail::load_n(c + j, k), vomb2 * cs));
                  });
                const T inv_rsum = static_cast<T>(1.0 / rsum);
                // U_ij = g_ij / √(R_i/ΣR · C_j); padding lanes load C = 1 and g = 0, so U = 0 there.
                const auto u_row = [&](std::size_t i, std::size_t j, std::size_t k)
                {
                    const B ri(r[i] * inv_rsum);
                    const B g = detail::load_n(grad + i * cols + j, k) * gs;
                    return g / xsimd::sqrt(ri * detail::load_n(c + j, k, T(1)));
                };
                // Pass 2: Σ U² (per row in registers, rows summed in double in order).
                for (std::size_t i = 0; i < rows; ++i)
                {
                    B acc(T(0));
                    detail::for_each_batch<T>(0, cols,
                                              [&](std::size_t j, std::size_t k)
                                              {
                                                  const B u = u_row(i, j, k);
                                                  acc = xsimd::fma(u, u, acc);
                                              });
                    usq += static_cast<double>(simd::reduce_add(acc));
                }
                const double denom =
                  std::max(1.0, std::sqrt(usq / static_cast<double>(n)) / h.clip_threshold);
                const B inv_denom(static_cast<T>(1.0 / denom));
                // Pass 3: clip, momentum, update.
                for (std::size_t i = 0; i < rows; ++i)
                {
                    detail::for_each_batch<T>(0, cols,
                                              [&](std::size_t j, std::size_t k)
                                              { finish(i * cols + j, k, u_row(i, j, k), inv_denom); });
                }
            }
            else
            {
                // Pass 1: v and Σ U² (padding lanes divide g = 0 by 1, so U = 0 there).
                constexpr std::size_t L = simd::lanes<T>;
                alignas(simd::arch::alignment()) T iota[L];
                for (std::size_t l = 0; l < L; ++l)
                {
                    iota[l] = static_cast<T>(l);
                }
                const B lane = B::load_aligned(iota);
                B acc(T(0));
                detail::for_each_batch<T>(
                  0, n,
                  [&](std::size_t i, std::size_t k)
                  {
                      const B g = detail::load_n(grad + i, k) * gs;
                      const B vi = xsimd::fma(vb2, detail::load_n(v + i, k), vomb2 * xsimd::fma(g, g, e1));
                      detail::store_n(v + i, k, vi);
                      const B root = k == L
                                       ? xsimd::sqrt(vi)
                                       : xsimd::select(lane < B(static_cast<T>(k)), xsimd::sqrt(vi), B(T(1)));
                      const B u = g / root;
                      acc = xsimd::fma(u, u, acc);
                  });
                usq = static_cast<double>(simd::reduce_add(acc));
                const double denom =
                  std::max(1.0, std::sqrt(usq / static_cast<double>(n)) / h.clip_threshold);
                const B inv_denom(static_cast<T>(1.0 / denom));
                // Pass 2: clip, momentum, update.
                detail::for_each_batch<T>(0, n,
                                          [&](std::size_t i, std::size_t k)
                                          {
                                              const B g = detail::load_n(grad + i, k) * gs;
                                              finish(i, k, g / xsimd::sqrt(detail::load_n(v + i, k, T(1))),
                                                     inv_denom);
                                          });
            }
        }
    }
} // namespace ballast::kernels

#endif
