#ifndef BALLAST_POLICIES_POSITION_HPP
#define BALLAST_POLICIES_POSITION_HPP

/// @file
/// Position family: how a token's position enters the model.
///
/// | policy             | where                                   | parameters              |
/// |--------------------|-----------------------------------------|-------------------------|
/// | `rope`             | rotates q and k (after qk control)      | none (θ base in config) |
/// | `learned_position` | adds `pos_embed[t]` to the embedding    | `pos_embed` [context, d]|
/// | `no_position`      | nowhere (causal masking alone)          | none                    |
///
/// RoPE: Su et al. 2021 (arXiv:2104.09864), rotate-half pairing (i, i + d_h/2) as in GPT-NeoX/LLaMA:
/// θ_i = base^(−2i/d_h), angle = t·θ_i, (x_i, x_j) → (x_i cos − x_j sin, x_j cos + x_i sin).
/// Laws (tested): rotation preserves norms; the backward is the inverse rotation; `no_position` is the
/// identity.

#include <cmath>
#include <concepts>
#include <cstddef>
#include <string_view>

#include <ballast/core/aligned.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/model/config.hpp>

namespace ballast::policies
{
    /// Every position policy has a (possibly empty) precomputed `state<T>`, a learned table flag, hooks
    /// on the embedding (`embed_forward`/`embed_backward`) and on q/k (`rotate`). Unused hooks are empty.
    template <class P, class T = float>
    concept position_policy = requires(const model_config& cfg, typename P::template state<T>& s, T* p,
                                       const T* c, std::size_t n, bool inverse)
    {
        {
            P::name
            } -> std::convertible_to<std::string_view>;
        {
            P::has_table
            } -> std::convertible_to<bool>;
        {
            P::template make_state<T>(cfg)
            } -> std::same_as<typename P::template state<T>>;
        P::embed_forward(p, c, n, n, n);
        P::embed_backward(p, c, n, n, n);
        P::rotate(p, n, n, n, n, n, s, inverse);
    };

    /// Rotary position embedding on q and k.
    struct rope
    {
        static constexpr std::string_view name = "rope";
        static constexpr bool has_table = false;

        /// cos/sin of t·θ_i for t < context, i < d_h/2, computed in double.
        template <class T>
        struct state
        {
            aligned_vector<T> cos, sin; // [context][d_h/2]
            std::size_t half = 0;
        };

        template <class T>
        static state<T> make_state(const model_config& cfg)
        {
            const std::size_t dh = cfg.head_dim();
            BALLAST_CHECK(dh % 2 == 0, "rope", "needs an even head width, got d_model/n_heads = ", dh);
            state<T> s;
            s.half = dh / 2;
            s.cos.resize(cfg.context * s.half);
            s.sin.resize(cfg.context * s.half);
            for (std::size_t t = 0; t < cfg.context; ++t)
            {
                for (std::size_t i = 0; i < s.half; ++i)
                {
                    const double theta =
                      std::pow(cfg.rope_base, -2.0 * static_cast<double>(i) / static_cast<double>(dh));
                    const double angle = static_cast<double>(t) * theta;
                    s.cos[t * s.half + i] = static_cast<T>(std::cos(angle));
                    s.sin[t * s.half + i] = static_cast<T>(std::sin(angle));
                }
            }
            return s;
        }

        template <class T>
        static void embed_forward(T*, const T*, std::size_t, std::size_t, std::size_t)
        {
        }
        template <class T>
        static void embed_backward(T*, const T*, std::size_t, std::size_t, std::size_t)
        {
        }

        /// Rotate `heads` head vectors of width dh in each of batch·seq rows (row stride ld; row r is at
        /// position r % seq). `inverse` rotates by −angle, which is the backward of the forward rotation.
        template <class T>
        static void rotate(T* x, std::size_t ld, std::size_t batch, std::size_t seq, std::size_t heads,
                           std::size_t dh, const state<T>& s, bool inverse)
        {
            const std::size_t half = dh / 2;
            const T sign = inverse ? T(-1) : T(1);
            const std::size_t rows = batch * seq;
            const auto rotate_rows = [&](std::size_t r0, std::size_t r1)
            {
                for (std::size_t r = r0; r < r1; ++r)
                {
                    const std::size_t t = r % seq;
                    const T* c = s.cos.data() + t * s.half;
                    const T* sn = s.sin.data() + t * s.half;
                    for (std::size_t h = 0; h < heads; ++h)
                    {
                        T* a = x + r * ld + h * dh;
                        T* b = a + half;
                        for (std::size_t i = 0; i < half; ++i)
                        {
                            const T ai = a[i], bi = b[i], si = sign * sn[i];
                            a[i] = ai * c[i] - bi * si;
                            b[i] = bi * c[i] + ai * si;
                        }
                    }
                }
            };
            // Each row is rotated on its own: any split gives the same bits.
            if (rows * heads * dh > (1u << 15))
            {
                parallel_for(rows, 64, rotate_rows);
            }
            else
            {
                rotate_rows(0, rows);
            }
        }
    };

    /// Learned absolute position embeddings added to the token embedding (GPT-2).
    struct learned_position
    {
        static constexpr std::string_view name = "learned_position";
        static constexpr bool has_table = true;

        template <class T>
        struct state
        {
        };
        template <class T>
        static state<T> make_state(const model_config&)
        {
            return {};
        }

        /// x[b, t, :] += table[t, :]
        template <class T>
        static void embed_forward(T* x, const T* table, std::size_t batch, std::size_t seq, std::size_t d)
        {
            for (std::size_t r = 0; r < batch * seq; ++r)
            {
                const T* p = table + (r % seq) * d;
                T* xr = x + r * d;
                for (std::size_t j = 0; j < d; ++j)
                {
                    xr[j] += p[j];
                }
            }
        }

        /// dtable[t, :] += Σ_b dx[b, t, :] (ACCUMULATED, in batch order: deterministic).
        template <class T>
        static void embed_backward(T* dtable, const T* dx, std::size_t batch, std::size_t seq, std::size_t d)
        {
            for (std::size_t r = 0; r < batch * seq; ++r)
            {
                T* p = dtable + (r % seq) * d;
                const T* g = dx + r * d;
                for (std::size_t j = 0; j < d; ++j)
                {
                    p[j] += g[j];
                }
            }
        }

        template <class T>
        static void rotate(T*, std::size_t, std::size_t, std::size_t, std::size_t, std::size_t,
                           const state<T>&, bool)
        {
        }
    };

    /// No positional information beyond the causal mask.
    struct no_position : learned_position
    {
        static constexpr std::string_view name = "no_position";
        static constexpr bool has_table = false;

        template <class T>
        static void embed_forward(T*, const T*, std::size_t, std::size_t, std::size_t)
        {
        }
        template <class T>
        static void embed_backward(T*, const T*, std::size_t, std::size_t, std::size_t)
        {
        }
    };

    static_assert(position_policy<rope> && position_policy<learned_position> && position_policy<no_position>);
    static_assert(position_policy<rope, double>);
} // namespace ballast::policies

#endif
