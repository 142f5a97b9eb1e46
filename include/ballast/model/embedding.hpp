#ifndef BALLAST_MODEL_EMBEDDING_HPP
#define BALLAST_MODEL_EMBEDDING_HPP

/// @file
/// Token embedding (+ the position policy's embedding hook): tokens → the residual stream x[0].

#include <cstddef>
#include <cstdint>
#include <span>

#include <ballast/core/parallel.hpp>
#include <ballast/core/profile.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/model/layer.hpp>

namespace ballast::layers
{
    /// x[0][r] = embed[tokens[r]] (+ learned position of r's place in its sequence).
    template <policy_set P, class T, class Diag>
    void embedding_forward(pass_context<P, T, Diag>& c, const outer_tensors<const T*>& w,
                           std::span<const std::int32_t> tokens)
    {
        BALLAST_PROFILE_MARK("embed");
        const std::size_t d = c.d;
        T* x0 = c.act(act::res, 0);
        const T* E = w.embed;
        parallel_for(c.n, 64,
                     [&](std::size_t r0, std::size_t r1)
                     {
                         for (std::size_t r = r0; r < r1; ++r)
                         {
                             kernels::copy(x0 + r * d, E + static_cast<std::size_t>(tokens[r]) * d, d);
                         }
                     });
        P::position::embed_forward(x0, w.pos, c.batch, c.seq, d);
    }

    /// Backward of embedding_forward from d loss / d x[0] (act::dres): accumulates into the embedding (and
    /// position) gradients. Rows are scattered in token order (deterministic), columns split across threads.
    template <policy_set P, class T, class Diag>
    void embedding_backward(pass_context<P, T, Diag>& c, const outer_tensors<T*>& g,
                            std::span<const std::int32_t> tokens)
    {
        BALLAST_PROFILE_MARK("embed");
        const std::size_t n = c.n, d = c.d;
        const T* dres = c.act(act::dres);
        P::position::embed_backward(g.pos, dres, c.batch, c.seq, d);
        T* dE = g.embed;
        parallel_for(d, 256,
                     [&](std::size_t c0, std::size_t c1)
                     {
                         for (std::size_t r = 0; r < n; ++r)
                         {
                             kernels::axpy(dE + static_cast<std::size_t>(tokens[r]) * d + c0,
                                           dres + r * d + c0, T(1), c1 - c0);
                         }
                     });
    }
} // namespace ballast::layers

#endif
