#ifndef BALLAST_POLICIES_STRUCTURE_HPP
#define BALLAST_POLICIES_STRUCTURE_HPP

/// @file
/// Structural choices that are not stability interventions but change the parameter set: biases and
/// head tying (the MLP activation, which also changes it, has its own header: policies/activation.hpp).
///
/// Both families are policies with behaviour: a bias policy says whether the bias tensors exist
/// (`enabled`, read by model/tensors.hpp) and adds them and their gradients (`forward` / `backward`, called
/// by the layers); a head policy says whether `head.weight` exists (`tied`) and computes the logits and
/// the head's backward (`forward` / `backward`, called by model/output.hpp).

#include <concepts>
#include <cstddef>
#include <string_view>

#include <ballast/core/parallel.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/kernels/gemm.hpp>
#include <ballast/policies/activation.hpp>

namespace ballast::policies
{
    /// Bias family: `no_bias` (PaLM and the paper: no biases anywhere) or `with_bias` (GPT-2: biases on
    /// the qkv, attention-out, MLP-up and MLP-down layers).
    ///   forward(y, b, rows, cols):   y[r, :] += b for every row (b is null when disabled)
    ///   backward(db, dy, rows, cols): db[j] += Σ_r dy[r, j] (rows summed in order: deterministic)
    template <class P>
    concept bias_policy = requires(float* yf, const float* cf, double* yd, const double* cd, std::size_t n)
    {
        {
            P::name
            } -> std::convertible_to<std::string_view>;
        {
            P::enabled
            } -> std::convertible_to<bool>;
        P::forward(yf, cf, n, n);
        P::backward(yf, cf, n, n);
        P::forward(yd, cd, n, n);
        P::backward(yd, cd, n, n);
    };

    struct no_bias
    {
        static constexpr std::string_view name = "no_bias";
        static constexpr bool enabled = false;
        template <class T>
        static void forward(T*, const T*, std::size_t, std::size_t) noexcept
        {
        }
        template <class T>
        static void backward(T*, const T*, std::size_t, std::size_t) noexcept
        {
        }
    };

    struct with_bias
    {
        static constexpr std::string_view name = "with_bias";
        static constexpr bool enabled = true;
        template <class T>
        static void forward(T* y, const T* b, std::size_t rows, std::size_t cols)
        {
            parallel_for(rows, 64,
                         [&](std::size_t r0, std::size_t r1)
                         {
                             for (std::size_t r = r0; r < r1; ++r)
                             {
                                 kernels::axpy(y + r * cols, b, T(1), cols);
                             }
                         });
        }
        /// Columns split across threads, each column's rows summed in order.
        template <class T>
        static void backward(T* db, const T* dy, std::size_t rows, std::size_t cols)
        {
            parallel_for(cols, 256,
                         [&](std::size_t c0, std::size_t c1)
                         {
                             for (std::size_t r = 0; r < rows; ++r)
                             {
                                 kernels::axpy(db + c0, dy + r * cols + c0, T(1), c1 - c0);
                             }
                         });
        }
    };

    /// Head family: `untied_head` (the paper: a separate [V, d] head) or `tied_head` (logits = f·embedᵀ;
    /// the model passes the embedding as the head, and its gradient as the head's gradient).
    ///   forward(logits, f, head, n, v, d):   logits[N, V] = f[N, d] · head[V, d]ᵀ
    ///   backward(ghead, df, dlogits, f, head, n, v, d): ghead = dlogitsᵀ·f (overwritten when untied,
    ///     added to the embedding gradient when tied), df[N, d] = dlogits · head (overwritten)
    template <class P>
    concept head_policy = requires(float* pf, const float* cf, double* pd, const double* cd, std::size_t n)
    {
        {
            P::name
            } -> std::convertible_to<std::string_view>;
        {
            P::tied
            } -> std::convertible_to<bool>;
        P::forward(pf, cf, cf, n, n, n);
        P::backward(pf, pf, cf, cf, cf, n, n, n);
        P::forward(pd, cd, cd, n, n, n);
        P::backward(pd, pd, cd, cd, cd, n, n, n);
    };

    namespace detail
    {
        /// A linear head [V, d]; `Accumulate`: its gradient adds to what is there (a tied head shares the
        /// embedding's gradient, which the embedding's backward also adds to).
        template <bool Accumulate>
        struct linear_head
        {
            template <class T>
            static void forward(T* logits, const T* f, const T* head, std::size_t n, std::size_t v,
                                std::size_t d)
            {
                kernels::gemm(kernels::gemm_layout::nt, n, v, d, f, d, head, d, T(0), logits, v);
            }
            template <class T>
            static void backward(T* ghead, T* df, const T* dlogits, const T* f, const T* head, std::size_t n,
                                 std::size_t v, std::size_t d)
            {
                kernels::gemm(kernels::gemm_layout::tn, v, d, n, dlogits, v, f, d, Accumulate ? T(1) : T(0),
                              ghead, d);
                kernels::gemm(kernels::gemm_layout::nn, n, d, v, dlogits, v, head, d, T(0), df, d);
            }
        };
    } // namespace detail

    struct untied_head : detail::linear_head<false>
    {
        static constexpr std::string_view name = "untied_head";
        static constexpr bool tied = false;
    };
    struct tied_head : detail::linear_head<true>
    {
        static constexpr std::string_view name = "tied_head";
        static constexpr bool tied = true;
    };

    static_assert(bias_policy<no_bias> && bias_policy<with_bias> && head_policy<untied_head> &&
                  head_policy<tied_head>);
} // namespace ballast::policies

#endif
