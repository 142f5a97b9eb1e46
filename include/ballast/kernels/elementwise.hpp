#ifndef BALLAST_KERNELS_ELEMENTWISE_HPP
#define BALLAST_KERNELS_ELEMENTWISE_HPP

/// @file
/// Elementwise SIMD kernels over flat buffers: BLAS-1 style helpers (axpy, scale, add, copy, fill) and
/// the fused optimizer update loops (AdamW, SGD with momentum, Lion), plus the batch-loop helpers the
/// other kernel headers share (`detail::load_n`, `detail::store_n`, `detail::for_each_batch`).
///
/// Dims legend: n = number of elements of every buffer passed to a call.
/// Argument order (llm.c): outputs, then state buffers (caches), then inputs, then scalars, then dims.
/// Every pointer may be unaligned; no buffer may partially overlap another (exact aliasing of an
/// output with an input of the same call is allowed where stated).
///
/// Gradient conventions: these kernels never write gradients; optimizers read `grad` and update
/// `param` and their state in place.
///
/// Determinism: every element is computed independently by the same batch code whether it lies in
/// the vector body or in the tail (the tail is padded into a full register), so results do not depend
/// on the thread count, on the chunking, or on the element's position. Threads split `[0, n)` into
/// `elementwise_grain`-sized chunks via `ballast::parallel_for`.
///
/// With `BALLAST_FORCE_SCALAR` every public kernel forwards to its twin in `ballast::kernels::ref`.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include <ballast/core/config.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/kernels/ref/elementwise.hpp>

namespace ballast::kernels
{
    /// Elements per parallel chunk of an elementwise loop: 32 Ki elements (128 KiB per float buffer)
    /// amortises the OpenMP fork on loops that are memory-bound at ~10 GB/s; a multiple of every
    /// register width, so chunk boundaries never split a register.
    inline constexpr std::size_t elementwise_grain = std::size_t{ 1 } << 15;

    namespace detail
    {
#if defined(__AVX2__)
        /// AVX2: lane mask (all ones) for lanes < count, as an integer vector of T's width.
        template <class T>
        inline __m256i avx2_lane_mask(std::size_t count) noexcept
        {
            if constexpr (sizeof(T) == 4)
            {
                return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)),
                                          _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            }
            else
            {
                return _mm256_cmpgt_epi64(_mm256_set1_epi64x(static_cast<long long>(count)),
                                          _mm256_setr_epi64x(0, 1, 2, 3));
            }
        }

        /// True when the partial-register paths below may use AVX2 masked loads/stores (which never
        /// touch, and so never fault on, masked-off lanes).
        template <class T>
        inline constexpr bool use_avx2_mask = std::is_base_of_v<xsimd::avx2, simd::arch>&& simd::lanes<T> *
                                                sizeof(T) ==
                                              32;
#endif

        /// Load `count` (<= lanes) elements from `p`; lanes past `count` are `fill` and the memory past
        /// `p + count` is never read. A full count is a plain unaligned load; the compiler folds the test
        /// when `count` is the constant `lanes`.
        template <class T>
        inline simd::batch<T> load_n(const T* p, std::size_t count, T fill = T(0)) noexcept
        {
            constexpr std::size_t L = simd::lanes<T>;
            if (count == L)
            {
                return simd::batch<T>::load_unaligned(p);
            }
#if defined(__AVX2__)
            if constexpr (use_avx2_mask<T>)
            {
                const __m256i mask = avx2_lane_mask<T>(count);
                if constexpr (sizeof(T) == 4)
                {
                    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, mask),
                                            _mm256_castsi256_ps(mask));
                }
                else
                {
                    return _mm256_blendv_pd(_mm256_set1_pd(fill), _mm256_maskload_pd(p, mask),
                                            _mm256_castsi256_pd(mask));
                }
            }
#endif
            alignas(simd::arch::alignment()) T buf[L];
            for (std::size_t i = 0; i < L; ++i)
            {
                buf[i] = i < count ? p[i] : fill;
            }
            return simd::batch<T>::load_aligned(buf);
        }

        /// Store the first `count` (<= lanes) lanes of `x` to `p`; memory past `p + count` is untouched.
        template <class T>
        inline void store_n(T* p, std::size_t count, const simd::batch<T>& x) noexcept
        {
            constexpr std::size_t L = simd::lanes<T>;
            if (count == L)
            {
                x.store_unaligned(p);
                return;
            }
#if defined(__AVX2__)
            if constexpr (use_avx2_mask<T>)
            {
                if constexpr (sizeof(T) == 4)
                {
                    _mm256_maskstore_ps(p, avx2_lane_mask<T>(count), x);
                }
                else
                {
                    _mm256_maskstore_pd(p, avx2_lane_mask<T>(count), x);
                }
                return;
            }
#endif
            alignas(simd::arch::alignment()) T buf[L];
            x.store_aligned(buf);
            std::memcpy(p, buf, count * sizeof(T));
        }

        /// Call `f(i, count)` for consecutive registers covering `[begin, end)`: `count == lanes`
        /// except for a final partial register. Serial.
        template <class T, class F>
        inline void for_each_batch(std::size_t begin, std::size_t end, F&& f)
        {
            constexpr std::size_t L = simd::lanes<T>;
            std::size_t i = begin;
            for (; i + L <= end; i += L)
            {
                f(i, L);
            }
            if (i < end)
            {
                f(i, end - i);
            }
        }

        /// `for_each_batch` over `[0, n)`, threaded in `elementwise_grain` chunks.
        template <class T, class F>
        inline void parallel_for_each_batch(std::size_t n, F&& f)
        {
            static_assert(elementwise_grain % simd::lanes<T> == 0, "chunks must not split a register");
            parallel_for(n, elementwise_grain,
                         [&](std::size_t begin, std::size_t end) { for_each_batch<T>(begin, end, f); });
        }

        /// sign(x) as in torch.sign: -1, 0 (keeping the sign of zero), +1, NaN for NaN.
        template <class T>
        inline simd::batch<T> sign_nan(const simd::batch<T>& x) noexcept
        {
            const simd::batch<T> one(T(1));
            return xsimd::select(x > T(0), one, xsimd::select(x < T(0), -one, x));
        }
    } // namespace detail

    // -------------------------------------------------------------------------------------------------
    // BLAS-1 style helpers

    /// y[i] += a * x[i]  (accumulates into y).
    template <class T>
    inline void axpy(T* y, const T* x, T a, std::size_t n)
    {
        if constexpr (simd::force_scalar)
        {
            ref::axpy(y, x, a, n);
        }
        else
        {
            const simd::batch<T> va(a);
            detail::parallel_for_each_batch<T>(
              n,
              [&](std::size_t i, std::size_t k) {
                  detail::store_n(y + i, k,
                                  xsimd::fma(va, detail::load_n(x + i, k), detail::load_n(y + i, k)));
              });
        }
    }

    /// x[i] *= a  (in place).
    template <class T>
    inline void scale(T* x, T a, std::size_t n)
    {
        if constexpr (simd::force_scalar)
        {
            ref::scale(x, a, n);
        }
        else
        {
            const simd::batch<T> va(a);
            detail::parallel_for_each_batch<T>(n, [&](std::size_t i, std::size_t k)
                                               { detail::store_n(x + i, k, va * detail::load_n(x + i, k)); });
        }
    }

    /// out[i] = a[i] + b[i]  (overwrites out; out may alias a or b exactly).
    template <class T>
    inline void add(T* out, const T* a, const T* b, std::size_t n)
    {
        if constexpr (simd::force_scalar)
        {
            ref::add(out, a, b, n);
        }
        else
        {
            detail::parallel_for_each_batch<T>(
              n, [&](std::size_t i, std::size_t k)
              { detail::store_n(out + i, k, detail::load_n(a + i, k) + detail::load_n(b + i, k)); });
        }
    }

    /// out[i] = in[i]  (buffers must not overlap).
    template <class T>
    inline void copy(T* out, const T* in, std::size_t n)
    {
        if constexpr (simd::force_scalar)
        {
            ref::copy(out, in, n);
        }
        else
        {
            // memcpy is already the fastest copy; threading it splits the bandwidth-bound stream.
            parallel_for(n, elementwise_grain,
                         [&](std::size_t begin, std::size_t end)
                         { std::memcpy(out + begin, in + begin, (end - begin) * sizeof(T)); });
        }
    }

    /// out[i] = value.
    template <class T>
    inline void fill(T* out, T value, std::size_t n)
    {
        if constexpr (simd::force_scalar)
        {
            ref::fill(out, value, n);
        }
        else
        {
            const simd::batch<T> v(value);
            detail::parallel_for_each_batch<T>(n, [&](std::size_t i, std::size_t k)
                                               { detail::store_n(out + i, k, v); });
        }
    }

    // -------------------------------------------------------------------------------------------------
    // Fused optimizer updates (one pass over param, state and grad)

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
} // namespace ballast::kernels

#endif
