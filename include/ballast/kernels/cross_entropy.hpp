#ifndef BALLAST_KERNELS_CROSS_ENTROPY_HPP
#define BALLAST_KERNELS_CROSS_ENTROPY_HPP

/// @file
/// Row log-sum-exp and fused softmax cross-entropy (forward + backward in one sweep over each row),
/// with an optional z-loss (PaLM): loss_z = z·lse².
///
/// Dims legend:
///   rows × vocab  logits, row r starts at logits + r·ld (ld >= vocab, e.g. a padded vocabulary;
///                 columns vocab..ld−1 are never read or written); dlogits uses the same ld
///   targets       rows ids, each in [0, vocab) (checked before any computation: ballast::error)
///
/// Per row (x = logits[r], t = targets[r]):
///   m = max_j x_j,  S = Σ_j exp(x_j − m),  lse = m + log S,  p_j = exp(x_j − m) / S
///   loss[r]   = lse − x_t + z·lse²                 (the CE part is lse − x_t; lse is also returned)
///   dlogits_j = scale·(p_j·(1 + 2·z·lse) − [j = t])  = scale · ∂loss[r]/∂x_j
/// `scale` is the weight of each row's loss in the objective (1/rows for a mean).
/// dlogits is an activation gradient: overwritten, not accumulated; it may equal logits exactly
/// (in-place, as in llm.c's fused classifier). Passing dlogits = nullptr skips the backward, lse =
/// nullptr skips storing lse.
///
/// Sweeps per row: (1) max, (2) exp, sum and (if dlogits) store e_j into dlogits, (3) scale dlogits and
/// subtract the one-hot. Sums use the fixed block order of `reduce.hpp`; rows are split across threads
/// in chunks of whole rows, so results are bit-identical for any thread count.
/// NaN/Inf: a NaN logit in a row makes that row's loss, lse and dlogits NaN; other rows are unaffected.
///
/// With `BALLAST_FORCE_SCALAR` every public kernel forwards to its twin in `ballast::kernels::ref`.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include <ballast/core/config.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/kernels/reduce.hpp>
#include <ballast/kernels/ref/cross_entropy.hpp>
#include <ballast/kernels/softmax.hpp>

namespace ballast::kernels
{
    namespace detail
    {
        /// Returns S = Σ exp(x_j − m) (in double, block order), m = NaN-propagating row max; with
        /// `Store`, also writes e_j = exp(x_j − m) to `e` (which may equal x).
        template <class T, bool Store>
        inline double row_expsum(T* e, const T* x, std::size_t n, T& m)
        {
            using B = simd::batch<T>;
            m = row_max<T, false>(x, n);
            const B vm(m);
            // Padding lanes load −∞ so that exp(−∞ − m) = 0 leaves the sum unchanged.
            const T pad = -std::numeric_limits<T>::infinity();
            return blocked_sum<T, false>(n,
                                         [&](std::size_t i, std::size_t k)
                                         {
                                             const B v = xsimd::exp(load_n(x + i, k, pad) - vm);
                                             if constexpr (Store)
                                             {
                                                 store_n(e + i, k, v);
                                             }
                                             return v;
                                         });
        }

        /// Throw ballast::error naming `where` unless every target is in [0, vocab).
        inline void check_targets(const char* where, const std::int32_t* targets, std::size_t rows,
                                  std::size_t vocab)
        {
            for (std::size_t r = 0; r < rows; ++r)
            {
                BALLAST_CHECK(targets[r] >= 0 && static_cast<std::size_t>(targets[r]) < vocab, where,
                              "target id ", targets[r], " of row ", r, " is outside [0, ", vocab, ")");
            }
        }
    } // namespace detail

    /// lse[r] = log Σ_j exp(logits[r, j]) = m + log Σ_j exp(logits[r, j] − m), m the row max
    /// (−∞ for vocab = 0). Overwrites lse.
    template <class T>
    inline void logsumexp_rows(T* lse, const T* logits, std::size_t rows, std::size_t vocab, std::size_t ld)
    {
        if constexpr (simd::force_scalar)
        {
            ref::logsumexp_rows(lse, logits, rows, vocab, ld);
        }
        else
        {
            BALLAST_CHECK(ld >= vocab, "logsumexp_rows", "ld (", ld, ") must be >= vocab (", vocab, ")");
            parallel_for(rows, detail::rows_per_chunk(vocab),
                         [&](std::size_t r0, std::size_t r1)
                         {
                             for (std::size_t r = r0; r < r1; ++r)
                             {
                                 T m;
                                 const double s =
                                   detail::row_expsum<T, false>(nullptr, logits + r * ld, vocab, m);
                                 lse[r] = static_cast<T>(static_cast<double>(m) + std::log(s));
                             }
                         });
        }
    }

    /// Fused cross-entropy rows with optional z-loss (see the file comment for the math):
    ///   loss[r] = lse_r − x_t + z_coef·lse_r²,   lse[r] = lse_r (if lse != nullptr),
    ///   dlogits[r, j] = scale·(p_j·(1 + 2·z_coef·lse_r) − [j = t])   (if dlogits != nullptr; overwrites).
    /// Throws ballast::error before touching any output if a target is outside [0, vocab).
    template <class T>
    inline void cross_entropy_rows(T* loss, T* lse, T* dlogits, const T* logits, const std::int32_t* targets,
                                   T scale, T z_coef, std::size_t rows, std::size_t vocab, std::size_t ld)
    {
        if constexpr (simd::force_scalar)
        {
            ref::cross_entropy_rows(loss, lse, dlogits, logits, targets, scale, z_coef, rows, vocab, ld);
        }
        else
        {
            using B = simd::batch<T>;
            BALLAST_CHECK(ld >= vocab, "cross_entropy_rows", "ld (", ld, ") must be >= vocab (", vocab, ")");
            detail::check_targets("cross_entropy_rows", targets, rows, vocab);
            const double sc = scale, z = z_coef;
            parallel_for(rows, detail::rows_per_chunk(vocab),
                         [&](std::size_t r0, std::size_t r1)
                         {
                             for (std::size_t r = r0; r < r1; ++r)
                             {
                                 const T* x = logits + r * ld;
                                 const std::size_t t = static_cast<std::size_t>(targets[r]);
                                 const double xt =
                                   x[t]; // read before dlogits (which may alias logits) is written
                                 T m;
                                 T* d = dlogits != nullptr ? dlogits + r * ld : nullptr;
                                 const double s = d != nullptr
                                                    ? detail::row_expsum<T, true>(d, x, vocab, m)
                                                    : detail::row_expsum<T, false>(nullptr, x, vocab, m);
                                 const double l = static_cast<double>(m) + std::log(s);
                                 loss[r] = static_cast<T>(l - xt + z * l * l);
                                 if (lse != nullptr)
                                 {
                                     lse[r] = static_cast<T>(l);
                                 }
                                 if (d != nullptr)
                                 {
                                     const B k(static_cast<T>(sc * (1 + 2 * z * l) / s));
                                     detail::for_each_batch<T>(
                                       0, vocab,
                                       [&](std::size_t i, std::size_t c)
                                       { detail::store_n(d + i, c, detail::load_n(d + i, c) * k); });
                                     d[t] -= scale;
                                 }
                             }
                         });
        }
    }
} // namespace ballast::kernels

#endif
