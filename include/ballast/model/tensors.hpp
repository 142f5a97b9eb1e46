#ifndef BALLAST_MODEL_TENSORS_HPP
#define BALLAST_MODEL_TENSORS_HPP

/// @file
/// The named tensors of a transformer with policy set P: which tensors exist (names and shapes as in
/// docs/model.md), where each block's and the non-block tensors sit in the flat buffer, which gradients
/// backward accumulates into (and so zeroes first), and the initialisation the parameterisation prescribes.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <ballast/core/rng.hpp>
#include <ballast/model/config.hpp>
#include <ballast/model/layer.hpp>
#include <ballast/model/parameters.hpp>
#include <ballast/policies/policy_set.hpp>

namespace ballast
{
    template <policy_set P, class T>
    class model_tensors
    {
    public:
        static constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();
        using block_offsets = layers::block_tensors<std::size_t>;
        using outer_offsets = layers::outer_tensors<std::size_t>;

        /// The layout of `cfg` (which the caller has validated).
        explicit model_tensors(const model_config& cfg)
          : m_cfg(cfg)
        {
            build();
        }

        const param_layout& layout() const noexcept { return m_layout; }
        /// Element offsets of block l's tensors and of the non-block tensors (npos when absent; a tied
        /// head's offset is the embedding's).
        const block_offsets& block(std::size_t l) const noexcept { return m_blocks[l]; }
        const outer_offsets& outer() const noexcept { return m_outer; }
        /// Layout entries backward accumulates into: zeroed before each backward pass.
        const std::vector<std::size_t>& accumulated_grads() const noexcept { return m_accumulated_grads; }

        /// Initialise every parameter from `seed` as the parameterisation prescribes (docs/model.md):
        /// each tensor draws from its own stream (seed, tensor index), so the result does not depend on
        /// the thread count or on other tensors' sizes.
        void init(std::span<T> params, std::uint64_t seed) const
        {
            std::ranges::fill(params, T(0));
            const auto& entries = m_layout.entries();
            for (std::size_t i = 0; i < entries.size(); ++i)
            {
                const auto& e = entries[i];
                T* p = params.data() + e.offset;
                splitmix64 rng(seed, i);
                switch (e.role)
                {
                    case policies::param_role::scale:
                        std::fill_n(p, e.size, T(1));
                        break;
                    case policies::param_role::bias:
                        break;
                    case policies::param_role::embedding:
                    case policies::param_role::position:
                        for (std::size_t j = 0; j < e.size; ++j)
                        {
                            p[j] = static_cast<T>(e.init_std * rng.normal());
                        }
                        break;
                    case policies::param_role::matrix:
                    case policies::param_role::head:
                        for (std::size_t j = 0; j < e.size; ++j)
                        {
                            p[j] = static_cast<T>(e.init_std * rng.truncated_normal() / truncated_normal_std);
                        }
                        break;
                }
            }
            if constexpr (P::parameterisation::zero_queries)
            {
                const std::size_t d = m_cfg.d_model;
                for (const auto& b : m_blocks)
                {
                    std::fill_n(params.data() + b.qkv_w, d * d, T(0)); // rows [0, d) of [3d, d] produce q
                }
            }
        }

    private:
        static block_offsets absent_block()
        {
            return block_offsets{}.map([](std::size_t) { return npos; });
        }

        std::size_t add(std::string name, std::vector<std::size_t> shape, policies::param_role role,
                        std::size_t fan_in, std::size_t layer)
        {
            param_entry e;
            e.name = std::move(name);
            e.shape = std::move(shape);
            e.role = role;
            e.fan_in = fan_in;
            e.layer = layer;
            e.init_std = P::parameterisation::init_std(role, fan_in, m_cfg);
            e.lr_multiplier = P::parameterisation::lr_multiplier(role, fan_in, m_cfg);
            const std::size_t idx = m_layout.add(std::move(e), param_layout::align_elems<T>);
            return m_layout.entries()[idx].offset;
        }

        void add_norm(const std::string& prefix, std::size_t layer, std::size_t& scale, std::size_t& bias)
        {
            const std::size_t d = m_cfg.d_model;
            if constexpr (P::norm::has_scale)
            {
                scale = add(prefix + ".scale", { d }, policies::param_role::scale, 0, layer);
            }
            if constexpr (P::norm::has_bias)
            {
                bias = add(prefix + ".bias", { d }, policies::param_role::bias, 0, layer);
            }
        }

        void build()
        {
            using policies::param_role;
            const std::size_t d = m_cfg.d_model, f = m_cfg.mlp_width(), v = m_cfg.vocab, L = m_cfg.n_layers;
            m_outer.embed = add("embed", { v, d }, param_role::embedding, 0, L);
            if constexpr (P::position::has_table)
            {
                m_outer.pos = add("pos_embed", { m_cfg.context, d }, param_role::position, 0, L);
            }
            m_blocks.assign(L, absent_block());
            const std::size_t qk_size = P::qk::scale_size(d, m_cfg.head_dim());
            for (std::size_t l = 0; l < L; ++l)
            {
                auto& b = m_blocks[l];
                const std::string p = "blocks." + std::to_string(l);
                add_norm(p + ".attn_norm", l, b.attn_scale, b.attn_bias);
                b.qkv_w = add(p + ".attn.qkv.weight", { 3 * d, d }, param_role::matrix, d, l);
                if constexpr (P::bias::enabled)
                {
                    b.qkv_b = add(p + ".attn.qkv.bias", { 3 * d }, param_role::bias, 0, l);
                }
                if (qk_size > 0)
                {
                    b.q_scale = add(p + ".attn.q_norm.scale", { qk_size }, param_role::scale, 0, l);
                    b.k_scale = add(p + ".attn.k_norm.scale", { qk_size }, param_role::scale, 0, l);
                }
                b.out_w = add(p + ".attn.out.weight", { d, d }, param_role::matrix, d, l);
                if constexpr (P::bias::enabled)
                {
                    b.out_b = add(p + ".attn.out.bias", { d }, param_role::bias, 0, l);
                }
                add_norm(p + ".mlp_norm", l, b.mlp_scale, b.mlp_bias);
                b.up_w = add(p + ".mlp.up.weight", { f, d }, param_role::matrix, d, l);
                if constexpr (P::bias::enabled)
                {
                    b.up_b = add(p + ".mlp.up.bias", { f }, param_role::bias, 0, l);
                }
                b.down_w = add(p + ".mlp.down.weight", { d, f }, param_role::matrix, f, l);
                if constexpr (P::bias::enabled)
                {
                    b.down_b = add(p + ".mlp.down.bias", { d }, param_role::bias, 0, l);
                }
            }
            add_norm("final_norm", L, m_outer.final_scale, m_outer.final_bias);
            if constexpr (!P::head::tied)
            {
                m_outer.head = add("head.weight", { v, d }, param_role::head, d, L);
            }
            else
            {
                m_outer.head = m_outer.embed;
            }
            // Gradients backward accumulates into (norms, biases, embeddings, qk scales, a tied head) are
            // zeroed before each backward pass; the block matrices and an untied head are written whole by
            // one GEMM each (beta = 0) and need no zeroing (~all of the buffer: at GPT-2 size the zeroing
            // pass was 0.5 GB of stores per step).
            std::vector<std::size_t> overwritten;
            for (const auto& b : m_blocks)
            {
                overwritten.insert(overwritten.end(), { b.qkv_w, b.out_w, b.up_w, b.down_w });
            }
            if constexpr (!P::head::tied)
            {
                overwritten.push_back(m_outer.head);
            }
            m_accumulated_grads.clear();
            for (const auto& e : m_layout.entries())
            {
                if (std::ranges::find(overwritten, e.offset) == overwritten.end())
                {
                    m_accumulated_grads.push_back(&e - m_layout.entries().data());
                }
            }
        }

        model_config m_cfg;
        param_layout m_layout;
        std::vector<block_offsets> m_blocks;
        outer_offsets m_outer = outer_offsets{}.map([](std::size_t) { return npos; });
        std::vector<std::size_t> m_accumulated_grads;
    };
} // namespace ballast

#endif
