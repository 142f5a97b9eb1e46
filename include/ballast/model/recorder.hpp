#ifndef BALLAST_MODEL_RECORDER_HPP
#define BALLAST_MODEL_RECORDER_HPP

/// @file
/// The model's diagnostics recorder: the scratch and reductions behind diagnostics::forward_stats
/// (model/diagnostics.hpp). With `diagnostics::none` the recorder is an empty type and the layers compile
/// no diagnostic code; with `diagnostics::forward` the layers feed it on recording passes only.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>
#include <vector>

#include <ballast/core/aligned.hpp>
#include <ballast/kernels/reduce.hpp>
#include <ballast/model/diagnostics.hpp>

namespace ballast::diagnostics
{
    /// Scratch and statistics of the recorded forward pass (Diag::enabled).
    template <class T>
    struct recorder
    {
        bool recording = false;
        forward_stats stats;
        aligned_vector<T> row_max, row_entropy, q_norm, k_norm; // per (batch, head, row) / (token, head)
        std::vector<double> pair_cos;                           // per (batch, head): Σ cos over causal pairs

        void prepare(std::size_t batch, std::size_t seq, std::size_t heads, std::size_t layers)
        {
            row_max.resize(batch * heads * seq);
            row_entropy.resize(batch * heads * seq);
            q_norm.resize(batch * seq * heads);
            k_norm.resize(batch * seq * heads);
            pair_cos.resize(batch * heads);
            stats.valid = false;
            stats.layers.assign(layers, {});
        }

        /// ‖q‖ and ‖k‖ of every (token, head), as used in the logits: out[row·H + h].
        void head_norms(const T* qkv, std::size_t ld, std::size_t n, std::size_t H, std::size_t dh)
        {
            const std::size_t d = H * dh;
            for (std::size_t r = 0; r < n; ++r)
            {
                for (std::size_t h = 0; h < H; ++h)
                {
                    const T* q = qkv + r * ld + h * dh;
                    q_norm[r * H + h] = std::sqrt(kernels::sum_squares(q, dh));
                    k_norm[r * H + h] = std::sqrt(kernels::sum_squares(q + d, dh));
                }
            }
        }

        /// Σ over causal pairs (t ≥ u) of cos(q_t, k_u) = z[t, u] / (s·‖q_t‖·‖k_u‖), from the scaled logits
        /// before any cap; pairs with a zero norm count as 0. qn, kn point at head h of the pair's batch.
        static double causal_cosine_sum(const T* z, double s, const T* qn, const T* kn, std::size_t H,
                                        std::size_t seq)
        {
            double sum = 0;
            for (std::size_t t = 0; t < seq; ++t)
            {
                const double a = s * static_cast<double>(qn[t * H]);
                for (std::size_t u = 0; u <= t; ++u)
                {
                    const double den = a * static_cast<double>(kn[u * H]);
                    sum += den > 0 ? static_cast<double>(z[t * seq + u]) / den : 0.0;
                }
            }
            return sum;
        }

        /// Reduce the attention statistics of layer l (serially: deterministic) and the RMS of the block
        /// output `out` ([N][d]).
        void record_layer(std::size_t l, std::size_t batch, std::size_t seq, std::size_t H, std::size_t d,
                          const T* out)
        {
            const std::size_t n = batch * seq;
            auto& st = stats.layers[l];
            st.max_logit_head.assign(H, -std::numeric_limits<double>::infinity());
            double ent_sum = 0, ent_min = std::numeric_limits<double>::infinity(), cos_sum = 0;
            for (std::size_t bi = 0; bi < batch; ++bi)
            {
                for (std::size_t h = 0; h < H; ++h)
                {
                    const std::size_t bh = bi * H + h;
                    for (std::size_t t = 0; t < seq; ++t)
                    {
                        const double mx = row_max[bh * seq + t], e = row_entropy[bh * seq + t];
                        st.max_logit_head[h] = std::isnan(mx) ? mx : std::max(st.max_logit_head[h], mx);
                        ent_sum += e;
                        ent_min = std::min(ent_min, e);
                    }
                    cos_sum += pair_cos[bh];
                }
            }
            st.max_logit = -std::numeric_limits<double>::infinity();
            for (const double m : st.max_logit_head)
            {
                st.max_logit = std::isnan(m) ? m : std::max(st.max_logit, m);
            }
            st.entropy_mean = ent_sum / static_cast<double>(batch * H * seq);
            st.entropy_min = ent_min;
            st.qk_cos_mean =
              cos_sum / (static_cast<double>(batch * H) * static_cast<double>(seq * (seq + 1) / 2));
            double qs = 0, ks = 0;
            for (std::size_t i = 0; i < n * H; ++i)
            {
                qs += q_norm[i];
                ks += k_norm[i];
            }
            st.q_norm_mean = qs / static_cast<double>(n * H);
            st.k_norm_mean = ks / static_cast<double>(n * H);
            st.residual_rms =
              std::sqrt(static_cast<double>(kernels::sum_squares(out, n * d)) / static_cast<double>(n * d));
        }

        /// log Z statistics per token ([N]) and the mean output logit ([N][V]).
        void record_output(const T* lse, const T* logits, std::size_t n, std::size_t v)
        {
            double sum = 0, mn = std::numeric_limits<double>::infinity();
            for (std::size_t r = 0; r < n; ++r)
            {
                sum += lse[r];
                mn = std::min<double>(mn, lse[r]);
            }
            const double mean = sum / static_cast<double>(n);
            double sq = 0;
            for (std::size_t r = 0; r < n; ++r)
            {
                sq += (lse[r] - mean) * (lse[r] - mean);
            }
            stats.log_z_mean = mean;
            stats.log_z_min = mn;
            stats.log_z_std = std::sqrt(sq / static_cast<double>(n));
            stats.logit_mean = static_cast<double>(kernels::sum(logits, n * v)) / static_cast<double>(n * v);
            stats.valid = true;
        }
    };

    /// Without diagnostics: no state. Layers test Diag::enabled before touching a recorder.
    struct no_recorder
    {
    };

    /// The recorder a model with diagnostics policy Diag keeps.
    template <class T, class Diag>
    using recorder_for = std::conditional_t<Diag::enabled, recorder<T>, no_recorder>;
} // namespace ballast::diagnostics

#endif
