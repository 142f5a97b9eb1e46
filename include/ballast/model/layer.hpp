#ifndef BALLAST_MODEL_LAYER_HPP
#define BALLAST_MODEL_LAYER_HPP

/// @file
/// What every layer of the model shares: the pass context (dimensions, activations, precomputed policy
/// state, diagnostics recorder), the tensors of a block as pointers, and the bias helpers.
///
/// Each layer family is a header of forward/backward pairs written side by side (llm.c style):
/// model/embedding.hpp, model/attention.hpp (norm, qkv, qk control and RoPE, causal attention, output
/// projection), model/mlp.hpp, model/output.hpp (final norm, head, output cap, loss). A forward reads its
/// inputs and writes its outputs and caches into the activation table's slices (model/activations.hpp); its
/// backward reads those caches, overwrites activation gradients and accumulates (`+=`) or overwrites
/// (beta-0 GEMM) parameter gradients, as each function's comment says.

#include <cstddef>

#include <ballast/core/parallel.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/model/activations.hpp>
#include <ballast/model/config.hpp>
#include <ballast/model/recorder.hpp>
#include <ballast/policies/policy_set.hpp>

namespace ballast::layers
{
    /// Everything a layer needs besides its tensors, for one pass of shape (batch, seq).
    template <policy_set P, class T, class Diag>
    struct pass_context
    {
        const model_config& cfg;
        std::size_t batch, seq, n;                    ///< B, T, N = B·T
        std::size_t d, f, v, heads, head_dim, layers; ///< d, F, V, H, dh, L
        T eps;                                        ///< norm ε in T
        activation_store<T>& act;
        const typename P::position::template state<T>& rope;
        const typename P::qk::template state<T>& qk;
        diagnostics::recorder_for<T, Diag>& diag;
    };

    /// The tensors of one block as `Ptr` (const T* for parameters, T* for gradients; absent tensors are
    /// null), or as element offsets into the flat buffer (std::size_t, absent = npos).
    template <class Ptr>
    struct block_tensors
    {
        Ptr attn_scale{}, attn_bias{}, qkv_w{}, qkv_b{}, q_scale{}, k_scale{}, out_w{}, out_b{}, mlp_scale{},
          mlp_bias{}, up_w{}, up_b{}, down_w{}, down_b{};

        /// The same block with every member mapped through `f`.
        template <class F>
        auto map(F f) const -> block_tensors<decltype(f(attn_scale))>
        {
            return { f(attn_scale), f(attn_bias), f(qkv_w),    f(qkv_b), f(q_scale), f(k_scale), f(out_w),
                     f(out_b),      f(mlp_scale), f(mlp_bias), f(up_w),  f(up_b),    f(down_w),  f(down_b) };
        }
    };

    /// The non-block tensors: embedding, learned positions, final norm, head (`embed` itself when tied).
    template <class Ptr>
    struct outer_tensors
    {
        Ptr embed{}, pos{}, final_scale{}, final_bias{}, head{};

        template <class F>
        auto map(F f) const -> outer_tensors<decltype(f(embed))>
        {
            return { f(embed), f(pos), f(final_scale), f(final_bias), f(head) };
        }
    };

    /// y[r, :] += bias for every row.
    template <class T>
    void add_bias(T* y, const T* bias, std::size_t rows, std::size_t cols)
    {
        parallel_for(rows, 64,
                     [&](std::size_t r0, std::size_t r1)
                     {
                         for (std::size_t r = r0; r < r1; ++r)
                         {
                             kernels::axpy(y + r * cols, bias, T(1), cols);
                         }
                     });
    }

    /// db[j] += Σ_r dy[r, j], rows summed in order (deterministic), columns split across threads: the
    /// backward of add_bias.
    template <class T>
    void accumulate_column_sums(T* db, const T* dy, std::size_t rows, std::size_t cols)
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
} // namespace ballast::layers

#endif
