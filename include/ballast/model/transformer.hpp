#ifndef BALLAST_MODEL_TRANSFORMER_HPP
#define BALLAST_MODEL_TRANSFORMER_HPP

/// @file
/// The decoder-only transformer language model, specialised at compile time by a policy set.
///
/// Dims legend: B batch, T sequence length (≤ context), N = B·T rows, V vocab, d width, L layers,
/// H heads, dh = d/H, F = mlp_ratio·d.
///
/// The exact computation is specified in docs/model.md (the contract with the PyTorch reference):
/// pre-norm blocks `x += attn(norm(x)); x += mlp(norm(x))`, a final norm, and a linear head; every
/// stability choice is a policy of the set `P`. Forward and backward are written by hand on ballast's
/// kernels: every matrix product is a packed GEMM, attention runs one (batch, head) pair per thread.
///
/// Memory: parameters and gradients are each one flat aligned buffer (see param_layout); activations
/// are allocated once per (B, T) shape and reused, so a training step allocates nothing.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <boost/hana/accessors.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/second.hpp>
#include <boost/hana/string.hpp>
#include <nlohmann/json.hpp>

#include <ballast/core/aligned.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/core/profile.hpp>
#include <ballast/core/rng.hpp>
#include <ballast/io/safetensors.hpp>
#include <ballast/kernels/cross_entropy.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/kernels/gelu.hpp>
#include <ballast/kernels/gemm.hpp>
#include <ballast/kernels/softmax.hpp>
#include <ballast/model/config.hpp>
#include <ballast/model/diagnostics.hpp>
#include <ballast/model/parameters.hpp>
#include <ballast/policies/policy_set.hpp>

namespace ballast
{
    /// The loss of one forward pass, averaged over tokens. `loss = ce + aux`; `aux` is the z-loss part
    /// (0 when the policy set has none).
    struct loss_parts
    {
        double loss = 0;
        double ce = 0;
        double aux = 0;
    };

    template <policy_set P, class T = float, diagnostics::diagnostics_policy Diag = diagnostics::none>
    class transformer
    {
        static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                      "transformer<P, T>: T must be float or "
                      "double");
        static_assert(policy_set_checks<P>::ok);

    public:
        using policy_set_type = P;
        using value_type = T;
        using Norm = typename P::norm;
        using Position = typename P::position;
        using QK = typename P::qk;
        using AttnCap = typename P::attention_cap;
        using OutLoss = typename P::output_loss;
        using OutCap = typename P::output_cap;
        using Param = typename P::parameterisation;
        static constexpr bool has_bias = P::bias::enabled;
        static constexpr bool tied = P::head::tied;
        static constexpr kernels::gelu_form gelu = P::activation::form;
        static constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();
        /// Attention runs (batch, head) pairs in parallel only above this many multiply-adds per layer:
        /// below it, waking the thread team costs more than the work (tiny test models).
        static constexpr std::size_t attention_parallel_work = 1u << 15;
        /// Attention computes only the causal part of each (batch, head) pair's T×T products, in row panels
        /// of this many queries: panel [i0, i1) needs keys [0, i1) only, so about half of the T×T work of
        /// the logits, P·V and the four backward products is skipped for long sequences. A multiple of the
        /// GEMM's micro-tile rows (6) and of the AVX2 tile width (16). The panel does not change any result
        /// (the skipped terms are exact zeros); 48 was the fastest of 24, 32, 48 and 64 on the AVX-512
        /// machine too (docs/performance.md).
        static constexpr std::size_t attention_panel = 48;

        /// Build the parameter layout for `cfg` (validated; throws ballast::error naming the bad field).
        /// Parameters start at zero: call init(seed) or load(path).
        explicit transformer(const model_config& cfg)
          : m_cfg(validated(cfg))
          , m_rope(Position::template make_state<T>(m_cfg))
          , m_qk(QK::template make_state<T>(m_cfg))
        {
            build_layout();
            m_params.assign(m_layout.total(), T(0));
            m_grads.assign(m_layout.total(), T(0));
        }

        const model_config& config() const noexcept { return m_cfg; }
        const param_layout& layout() const noexcept { return m_layout; }
        static constexpr std::string_view policy_set_name() noexcept { return P::name; }

        /// The flat parameter and gradient buffers (layout().total() elements; padding stays 0).
        std::span<T> parameters() noexcept { return m_params; }
        std::span<const T> parameters() const noexcept { return m_params; }
        std::span<T> gradients() noexcept { return m_grads; }
        std::span<const T> gradients() const noexcept { return m_grads; }

        /// One named tensor of the parameters / gradients.
        std::span<T> parameter(std::string_view name)
        {
            const auto& e = m_layout.at(name);
            return { m_params.data() + e.offset, e.size };
        }
        std::span<T> gradient(std::string_view name)
        {
            const auto& e = m_layout.at(name);
            return { m_grads.data() + e.offset, e.size };
        }

        /// Initialise every parameter from `seed` as the parameterisation prescribes (docs/model.md):
        /// each tensor draws from its own stream (seed, tensor index), so the result does not depend on
        /// the thread count or on other tensors' sizes.
        void init(std::uint64_t seed)
        {
            std::ranges::fill(m_params, T(0));
            const auto& entries = m_layout.entries();
            for (std::size_t i = 0; i < entries.size(); ++i)
            {
                const auto& e = entries[i];
                T* p = m_params.data() + e.offset;
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
            if constexpr (Param::zero_queries)
            {
                const std::size_t d = m_cfg.d_model;
                for (const auto& b : m_blocks)
                {
                    std::fill_n(m_params.data() + b.qkv_w, d * d, T(0)); // rows [0, d) of [3d, d] produce q
                }
            }
        }

        /// Forward pass without gradients: returns the loss; logits() and log_z() are valid afterwards.
        /// tokens and targets are [batch][seq] row-major; ids must be in [0, vocab).
        loss_parts evaluate(std::span<const std::int32_t> tokens, std::span<const std::int32_t> targets,
                            std::size_t batch, std::size_t seq)
        {
            return run_forward(tokens, targets, batch, seq, false);
        }

        /// Forward and backward: gradients() is OVERWRITTEN with d loss / d parameters.
        loss_parts forward_backward(std::span<const std::int32_t> tokens,
                                    std::span<const std::int32_t> targets, std::size_t batch, std::size_t seq)
        {
            const loss_parts l = run_forward(tokens, targets, batch, seq, true);
            run_backward(tokens);
            return l;
        }

        /// Diagnostics (only with a diagnostics policy): record the statistics of the following forward
        /// passes (`forward_diagnostics()`), or stop recording. Off by default.
        void set_recording(bool on) noexcept requires(Diag::enabled) { m_diag.recording = on; }

        /// The statistics of the last recorded forward pass (model/diagnostics.hpp).
        const diagnostics::forward_stats& forward_diagnostics() const noexcept requires(Diag::enabled)
        {
            return m_diag.stats;
        }

        /// Output logits of the last forward pass, [N][V] (after the output cap).
        std::span<const T> logits() const noexcept { return { m_act.logits.data(), m_n * m_cfg.vocab }; }
        /// log Z per token of the last forward pass, [N].
        std::span<const T> log_z() const noexcept { return { m_act.lse.data(), m_n }; }

        /// Elements of T the activations take at (batch, seq), N = batch·seq, P = threads:
        ///   L·(11·N·d + 2·N·F + 4·N + 4·H·N + c·B·H·T²)      per block: residuals, norms, qkv, attention,
        ///   MLP;
        ///                                                   c = 2 with an attention soft-cap, else 1
        /// + 2·N·d + 2·N·V + 4·N                             final residual and norm, logits and dlogits, log
        /// Z
        /// + 9·N·d + N·F + P·T²                              backward scratch
        /// This is exactly what is allocated (tested); docs/model.md explains each term.
        std::size_t activation_elements(std::size_t batch, std::size_t seq) const noexcept
        {
            const std::size_t n = batch * seq, d = m_cfg.d_model, f = m_cfg.mlp_width(), v = m_cfg.vocab,
                              h = m_cfg.n_heads, l = m_cfg.n_layers;
            const std::size_t threads = static_cast<std::size_t>(num_threads());
            const std::size_t c = AttnCap::active ? 2 : 1;
            return l * (11 * n * d + 2 * n * f + 4 * n + 4 * h * n + c * batch * h * seq * seq) + 2 * n * d +
                   2 * n * v + 4 * n + 9 * n * d + n * f + threads * seq * seq;
        }

        /// Elements of T currently allocated for activations (equals activation_elements for the last shape).
        std::size_t allocated_activation_elements() const noexcept
        {
            const auto& a = m_act;
            std::size_t total = 0;
            for (const auto* v :
                 { &a.res,   &a.mid,     &a.a,      &a.a_stats,  &a.qkv_raw, &a.qkv,      &a.qk_stats,
                   &a.probs, &a.capped,  &a.att,    &a.m,        &a.m_stats, &a.up,       &a.act,
                   &a.f,     &a.f_stats, &a.logits, &a.dlogits,  &a.lse,     &a.row_loss, &a.dres,
                   &a.dtmp,  &a.datt,    &a.dqkv,   &a.dqkv_raw, &a.dup,     &a.dscratch })
            {
                total += v->size();
            }
            return total;
        }

        /// Write parameters as safetensors (names and shapes as in docs/model.md), with the policy-set name
        /// and the model config in the metadata. Atomic.
        void save(const std::filesystem::path& path) const
        {
            io::safetensors_writer w;
            for (const auto& e : m_layout.entries())
            {
                w.add<T>(e.name, std::span<const std::size_t>(e.shape), m_params.data() + e.offset);
            }
            w.set_metadata("policy_set", std::string(P::name));
            w.set_metadata("model_config", config_json().dump());
            w.set_metadata("format", "ballast-weights-v1");
            w.write(path);
        }

        /// Read parameters from safetensors: every tensor must be present with the right shape (F32 or F64),
        /// and no other tensor may be present. Throws ballast::error naming the problem.
        void load(const std::filesystem::path& path) { load(io::safetensors_file::load(path)); }

        void load(const io::safetensors_file& f)
        {
            const auto names = m_layout.names();
            f.require_exactly(names);
            for (const auto& e : m_layout.entries())
            {
                f.read<T>(e.name, std::span<const std::size_t>(e.shape), m_params.data() + e.offset);
            }
        }

        /// The model config as JSON (every field, reflected).
        nlohmann::json config_json() const
        {
            nlohmann::json j;
            boost::hana::for_each(boost::hana::accessors<model_config>(),
                                  [&](auto pair) {
                                      j[boost::hana::to<const char*>(boost::hana::first(pair))] =
                                        boost::hana::second(pair)(m_cfg);
                                  });
            return j;
        }

    private:
        // ------------------------------------------------------------------------------------------------
        // Layout

        struct block_offsets
        {
            std::size_t attn_scale = npos, attn_bias = npos, qkv_w = npos, qkv_b = npos, q_scale = npos,
                        k_scale = npos, out_w = npos, out_b = npos, mlp_scale = npos, mlp_bias = npos,
                        up_w = npos, up_b = npos, down_w = npos, down_b = npos;
        };

        static model_config validated(const model_config& cfg)
        {
            cfg.validate();
            return cfg;
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
            e.init_std = Param::init_std(role, fan_in, m_cfg);
            e.lr_multiplier = Param::lr_multiplier(role, fan_in, m_cfg);
            const std::size_t idx = m_layout.add(std::move(e), param_layout::align_elems<T>);
            return m_layout.entries()[idx].offset;
        }

        void add_norm(const std::string& prefix, std::size_t layer, std::size_t& scale, std::size_t& bias)
        {
            const std::size_t d = m_cfg.d_model;
            if constexpr (Norm::has_scale)
            {
                scale = add(prefix + ".scale", { d }, policies::param_role::scale, 0, layer);
            }
            if constexpr (Norm::has_bias)
            {
                bias = add(prefix + ".bias", { d }, policies::param_role::bias, 0, layer);
            }
        }

        void build_layout()
        {
            using policies::param_role;
            const std::size_t d = m_cfg.d_model, f = m_cfg.mlp_width(), v = m_cfg.vocab, L = m_cfg.n_layers;
            m_embed = add("embed", { v, d }, param_role::embedding, 0, L);
            if constexpr (Position::has_table)
            {
                m_pos = add("pos_embed", { m_cfg.context, d }, param_role::position, 0, L);
            }
            m_blocks.resize(L);
            const std::size_t qk_size = QK::scale_size(d, m_cfg.head_dim());
            for (std::size_t l = 0; l < L; ++l)
            {
                auto& b = m_blocks[l];
                const std::string p = "blocks." + std::to_string(l);
                add_norm(p + ".attn_norm", l, b.attn_scale, b.attn_bias);
                b.qkv_w = add(p + ".attn.qkv.weight", { 3 * d, d }, param_role::matrix, d, l);
                if constexpr (has_bias)
                {
                    b.qkv_b = add(p + ".attn.qkv.bias", { 3 * d }, param_role::bias, 0, l);
                }
                if (qk_size > 0)
                {
                    b.q_scale = add(p + ".attn.q_norm.scale", { qk_size }, param_role::scale, 0, l);
                    b.k_scale = add(p + ".attn.k_norm.scale", { qk_size }, param_role::scale, 0, l);
                }
                b.out_w = add(p + ".attn.out.weight", { d, d }, param_role::matrix, d, l);
                if constexpr (has_bias)
                {
                    b.out_b = add(p + ".attn.out.bias", { d }, param_role::bias, 0, l);
                }
                add_norm(p + ".mlp_norm", l, b.mlp_scale, b.mlp_bias);
                b.up_w = add(p + ".mlp.up.weight", { f, d }, param_role::matrix, d, l);
                if constexpr (has_bias)
                {
                    b.up_b = add(p + ".mlp.up.bias", { f }, param_role::bias, 0, l);
                }
                b.down_w = add(p + ".mlp.down.weight", { d, f }, param_role::matrix, f, l);
                if constexpr (has_bias)
                {
                    b.down_b = add(p + ".mlp.down.bias", { d }, param_role::bias, 0, l);
                }
            }
            add_norm("final_norm", L, m_final_scale, m_final_bias);
            if constexpr (!tied)
            {
                m_head = add("head.weight", { v, d }, param_role::head, d, L);
            }
            else
            {
                m_head = m_embed;
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
            if constexpr (!tied)
            {
                overwritten.push_back(m_head);
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

        // ------------------------------------------------------------------------------------------------
        // Activations

        struct activations
        {
            std::size_t batch = 0, seq = 0;
            aligned_vector<T> res, mid, a, a_stats, qkv_raw, qkv, qk_stats, probs, capped, att, m, m_stats,
              up, act;
            aligned_vector<T> f, f_stats, logits, dlogits, lse, row_loss;
            aligned_vector<T> dres, dtmp, datt, dqkv, dqkv_raw, dup, dscratch;
        };

        void ensure_shape(std::size_t batch, std::size_t seq)
        {
            const std::size_t threads = static_cast<std::size_t>(num_threads());
            if (m_act.batch == batch && m_act.seq == seq && m_act.dscratch.size() >= threads * seq * seq)
            {
                return;
            }
            const std::size_t n = batch * seq, d = m_cfg.d_model, f = m_cfg.mlp_width(), v = m_cfg.vocab,
                              h = m_cfg.n_heads, L = m_cfg.n_layers;
            auto& a = m_act;
            a.batch = batch;
            a.seq = seq;
            a.res.assign((L + 1) * n * d, T(0));
            a.mid.assign(L * n * d, T(0));
            a.a.assign(L * n * d, T(0));
            a.a_stats.assign(L * 2 * n, T(0));
            a.qkv_raw.assign(L * n * 3 * d, T(0));
            a.qkv.assign(L * n * 3 * d, T(0));
            a.qk_stats.assign(L * 4 * h * n, T(0));
            a.probs.assign(L * batch * h * seq * seq, T(0));
            a.capped.assign(AttnCap::active ? L * batch * h * seq * seq : 0, T(0));
            a.att.assign(L * n * d, T(0));
            a.m.assign(L * n * d, T(0));
            a.m_stats.assign(L * 2 * n, T(0));
            a.up.assign(L * n * f, T(0));
            a.act.assign(L * n * f, T(0));
            a.f.assign(n * d, T(0));
            a.f_stats.assign(2 * n, T(0));
            a.logits.assign(n * v, T(0));
            a.dlogits.assign(n * v, T(0));
            a.lse.assign(n, T(0));
            a.row_loss.assign(n, T(0));
            a.dres.assign(n * d, T(0));
            a.dtmp.assign(n * d, T(0));
            a.datt.assign(n * d, T(0));
            a.dqkv.assign(n * 3 * d, T(0));
            a.dqkv_raw.assign(n * 3 * d, T(0));
            a.dup.assign(n * f, T(0));
            a.dscratch.assign(threads * seq * seq, T(0));
        }

        // ------------------------------------------------------------------------------------------------
        // Helpers

        const T* p(std::size_t off) const noexcept { return off == npos ? nullptr : m_params.data() + off; }
        T* g(std::size_t off) noexcept { return off == npos ? nullptr : m_grads.data() + off; }

        /// y[r, :] += bias for every row.
        static void add_bias(T* y, const T* bias, std::size_t rows, std::size_t cols)
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

        /// db[j] += Σ_r dy[r, j], rows summed in order (deterministic), columns split across threads.
        static void accumulate_column_sums(T* db, const T* dy, std::size_t rows, std::size_t cols)
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

        void check_inputs(std::span<const std::int32_t> tokens, std::span<const std::int32_t> targets,
                          std::size_t batch, std::size_t seq) const
        {
            constexpr const char* where = "transformer";
            BALLAST_CHECK(batch >= 1 && seq >= 1, where, "batch and seq must be >= 1, got ", batch, " x ",
                          seq);
            BALLAST_CHECK(seq <= m_cfg.context, where, "sequence length ", seq, " exceeds the context ",
                          m_cfg.context);
            BALLAST_CHECK(tokens.size() == batch * seq, where, "tokens hold ", tokens.size(),
                          " ids, expected batch*seq = ", batch * seq);
            BALLAST_CHECK(targets.size() == batch * seq, where, "targets hold ", targets.size(),
                          " ids, expected batch*seq = ", batch * seq);
            for (std::size_t i = 0; i < tokens.size(); ++i)
            {
                BALLAST_CHECK(tokens[i] >= 0 && static_cast<std::size_t>(tokens[i]) < m_cfg.vocab, where,
                              "token id ", tokens[i], " at position ", i, " is outside the vocabulary [0, ",
                              m_cfg.vocab, ")");
                BALLAST_CHECK(targets[i] >= 0 && static_cast<std::size_t>(targets[i]) < m_cfg.vocab, where,
                              "target id ", targets[i], " at position ", i, " is outside the vocabulary [0, ",
                              m_cfg.vocab, ")");
            }
        }

        // ------------------------------------------------------------------------------------------------
        // Forward

        loss_parts run_forward(std::span<const std::int32_t> tokens, std::span<const std::int32_t> targets,
                               std::size_t batch, std::size_t seq, bool want_grad)
        {
            check_inputs(tokens, targets, batch, seq);
            ensure_shape(batch, seq);
            m_n = batch * seq;
            if constexpr (Diag::enabled)
            {
                if (m_diag.recording)
                {
                    m_diag.prepare(batch, seq, m_cfg.n_heads, m_cfg.n_layers);
                }
            }
            const std::size_t n = m_n, d = m_cfg.d_model, f = m_cfg.mlp_width(), v = m_cfg.vocab,
                              L = m_cfg.n_layers, H = m_cfg.n_heads;
            const T eps = static_cast<T>(m_cfg.norm_eps);
            auto& A = m_act;

            BALLAST_PROFILE_MARK("embed");
            // Embedding (+ learned positions).
            T* x0 = A.res.data();
            const T* E = p(m_embed);
            parallel_for(n, 64,
                         [&](std::size_t r0, std::size_t r1)
                         {
                             for (std::size_t r = r0; r < r1; ++r)
                             {
                                 kernels::copy(x0 + r * d, E + static_cast<std::size_t>(tokens[r]) * d, d);
                             }
                         });
            Position::embed_forward(x0, p(m_pos), batch, seq, d);

            for (std::size_t l = 0; l < L; ++l)
            {
                const auto& b = m_blocks[l];
                const T* x = A.res.data() + l * n * d;
                T* mid = A.mid.data() + l * n * d;
                T* a = A.a.data() + l * n * d;
                T* a_stats = A.a_stats.data() + l * 2 * n;
                T* qkv_raw = A.qkv_raw.data() + l * n * 3 * d;
                T* qkv = A.qkv.data() + l * n * 3 * d;
                T* qk_stats = A.qk_stats.data() + l * 4 * H * n;
                T* att = A.att.data() + l * n * d;

                // Attention.
                BALLAST_PROFILE_MARK("norm");
                Norm::forward(a, d, a_stats, a_stats + n, x, d, p(b.attn_scale), p(b.attn_bias), n, d, eps);
                BALLAST_PROFILE_MARK("attn.proj");
                kernels::gemm(kernels::gemm_layout::nt, n, 3 * d, d, a, d, p(b.qkv_w), d, T(0), qkv_raw,
                              3 * d);
                if constexpr (has_bias)
                {
                    add_bias(qkv_raw, p(b.qkv_b), n, 3 * d);
                }
                BALLAST_PROFILE_MARK("attn.qk_rope");
                qk_rope_forward(qkv, qk_stats, qkv_raw, b, batch, seq);
                BALLAST_PROFILE_MARK("attn.core");
                attention_forward(l, batch, seq);
                BALLAST_PROFILE_MARK("attn.proj");
                kernels::copy(mid, x, n * d);
                kernels::gemm(kernels::gemm_layout::nt, n, d, d, att, d, p(b.out_w), d, T(1), mid, d);
                if constexpr (has_bias)
                {
                    add_bias(mid, p(b.out_b), n, d);
                }

                // MLP.
                T* m = A.m.data() + l * n * d;
                T* m_stats = A.m_stats.data() + l * 2 * n;
                T* up = A.up.data() + l * n * f;
                T* act = A.act.data() + l * n * f;
                T* out = A.res.data() + (l + 1) * n * d;
                BALLAST_PROFILE_MARK("norm");
                Norm::forward(m, d, m_stats, m_stats + n, mid, d, p(b.mlp_scale), p(b.mlp_bias), n, d, eps);
                BALLAST_PROFILE_MARK("mlp.gemm");
                kernels::gemm(kernels::gemm_layout::nt, n, f, d, m, d, p(b.up_w), d, T(0), up, f);
                if constexpr (has_bias)
                {
                    add_bias(up, p(b.up_b), n, f);
                }
                BALLAST_PROFILE_MARK("mlp.gelu");
                kernels::gelu_forward<gelu>(act, up, n * f);
                BALLAST_PROFILE_MARK("mlp.gemm");
                kernels::copy(out, mid, n * d);
                kernels::gemm(kernels::gemm_layout::nt, n, d, f, act, f, p(b.down_w), f, T(1), out, d);
                if constexpr (has_bias)
                {
                    add_bias(out, p(b.down_b), n, d);
                }
                if constexpr (Diag::enabled)
                {
                    if (m_diag.recording)
                    {
                        BALLAST_PROFILE_MARK("diagnostics");
                        record_layer(l, batch, seq, out);
                    }
                }
            }

            // Final norm, head, loss.
            const T* xl = A.res.data() + L * n * d;
            BALLAST_PROFILE_MARK("norm");
            Norm::forward(A.f.data(), d, A.f_stats.data(), A.f_stats.data() + n, xl, d, p(m_final_scale),
                          p(m_final_bias), n, d, eps);
            BALLAST_PROFILE_MARK("head");
            kernels::gemm(kernels::gemm_layout::nt, n, v, d, A.f.data(), d, p(m_head), d, T(0),
                          A.logits.data(), v);
            BALLAST_PROFILE_MARK("loss");
            OutCap::forward(A.logits.data(), n * v, m_cfg.output_soft_cap);

            const double coef = OutLoss::zloss_coef(m_cfg);
            kernels::cross_entropy_rows(
              A.row_loss.data(), A.lse.data(), want_grad ? A.dlogits.data() : nullptr, A.logits.data(),
              targets.data(), static_cast<T>(1.0 / static_cast<double>(n)), static_cast<T>(coef), n, v, v);
            double total = 0, zsum = 0;
            for (std::size_t r = 0; r < n; ++r) // fixed order: deterministic
            {
                total += static_cast<double>(A.row_loss[r]);
                zsum += static_cast<double>(A.lse[r]) * static_cast<double>(A.lse[r]);
            }
            if constexpr (Diag::enabled)
            {
                if (m_diag.recording)
                {
                    BALLAST_PROFILE_MARK("diagnostics");
                    record_output(n, v);
                }
            }
            BALLAST_PROFILE_MARK("end");
            loss_parts out;
            out.loss = total / static_cast<double>(n);
            out.aux = coef * zsum / static_cast<double>(n);
            out.ce = out.loss - out.aux;
            return out;
        }

        /// q/k control, then RoPE, on the q and k blocks of one layer's qkv activations (rows N = batch·seq,
        /// row stride 3d). The statistics are at qk_stats: [q mean | q rstd | k mean | k rstd], each [H][N]
        /// (only the backward below reads them).
        ///
        /// One policy call over all N rows, not one per sequence. A per-sequence split keeps a sequence's
        /// rows in cache across heads (this whole pass is 1–8% of a step, docs/performance.md), but it sums
        /// the q/k-norm scale gradients in another order, which changes the bits of every qk-norm run
        /// against the published study numbers (docs/reproduction.md). Kept whole-block until the norm
        /// kernels can hand back their row-block partials, so a per-sequence form can make the same sums.
        void qk_rope_forward(T* qkv, T* qk_stats, const T* qkv_raw, const block_offsets& b, std::size_t batch,
                             std::size_t seq)
        {
            const std::size_t d = m_cfg.d_model, H = m_cfg.n_heads, dh = m_cfg.head_dim(), ld = 3 * d;
            const std::size_t n = batch * seq, hn = H * n;
            QK::forward(qkv, qk_stats, qk_stats + hn, qkv_raw, p(b.q_scale), ld, n, H, dh, m_qk);
            QK::forward(qkv + d, qk_stats + 2 * hn, qk_stats + 3 * hn, qkv_raw + d, p(b.k_scale), ld, n, H,
                        dh, m_qk);
            Position::rotate(qkv, ld, batch, seq, H, dh, m_rope, false);
            Position::rotate(qkv + d, ld, batch, seq, H, dh, m_rope, false);
        }

        /// Backward of qk_rope_forward: dqkv (q, k blocks, post-RoPE) → dqkv_raw (q, k blocks); the q/k scale
        /// gradients accumulate in the policy's fixed order (independent of the thread count). Rotates dqkv
        /// in place.
        void qk_rope_backward(T* dqkv_raw, T* dqkv, const T* qkv_raw, const T* qk_stats,
                              const block_offsets& b, std::size_t batch, std::size_t seq)
        {
            const std::size_t d = m_cfg.d_model, H = m_cfg.n_heads, dh = m_cfg.head_dim(), ld = 3 * d;
            const std::size_t n = batch * seq, hn = H * n;
            Position::rotate(dqkv, ld, batch, seq, H, dh, m_rope, true);
            Position::rotate(dqkv + d, ld, batch, seq, H, dh, m_rope, true);
            QK::backward(dqkv_raw, g(b.q_scale), dqkv, qkv_raw, p(b.q_scale), qk_stats, qk_stats + hn, ld, n,
                         H, dh, m_qk);
            QK::backward(dqkv_raw + d, g(b.k_scale), dqkv + d, qkv_raw + d, p(b.k_scale), qk_stats + 2 * hn,
                         qk_stats + 3 * hn, ld, n, H, dh, m_qk);
        }

        /// Causal multi-head attention of layer l, one (batch, head) pair per iteration.
        void attention_forward(std::size_t l, std::size_t batch, std::size_t seq)
        {
            const std::size_t n = m_n, d = m_cfg.d_model, H = m_cfg.n_heads, dh = m_cfg.head_dim();
            const std::size_t ld = 3 * d, tt = seq * seq;
            const T s = static_cast<T>(Param::attention_scale(m_cfg));
            const T* qkv = m_act.qkv.data() + l * n * ld;
            const T* qkv_raw = m_act.qkv_raw.data() + l * n * ld;
            T* probs = m_act.probs.data() + l * batch * H * tt;
            T* capped = AttnCap::active ? m_act.capped.data() + l * batch * H * tt : nullptr;
            T* att = m_act.att.data() + l * n * d;
            const double cap = m_cfg.attn_soft_cap;
            const std::ptrdiff_t pairs = static_cast<std::ptrdiff_t>(batch * H);
            if constexpr (Diag::enabled)
            {
                if (m_diag.recording)
                {
                    head_norms(qkv, ld, batch * seq, H, dh, m_diag.q_norm.data(), m_diag.k_norm.data());
                }
            }
            // One chunk per (batch, head) pair, handed out dynamically; each pair writes only its own
            // outputs (and its worker's scratch), so any assignment of pairs to threads gives the same bits.
            const auto pair_body = [&](std::size_t pair, [[maybe_unused]] std::size_t worker)
            {
                const std::ptrdiff_t bh = static_cast<std::ptrdiff_t>(pair);
                const std::size_t bi = static_cast<std::size_t>(bh) / H, h = static_cast<std::size_t>(bh) % H;
                const T* q = qkv + bi * seq * ld + h * dh;
                const T* k = q + d;
                const T* vv = qkv_raw + bi * seq * ld + 2 * d + h * dh;
                T* z = probs + static_cast<std::size_t>(bh) * tt;
                for (std::size_t i0 = 0; i0 < seq; i0 += attention_panel)
                {
                    // z[i0:i1, 0:i1] = s·q[i0:i1]·k[0:i1]ᵀ: keys from i1 on are masked for the whole panel.
                    const std::size_t i1 = std::min(seq, i0 + attention_panel);
                    kernels::gemm(kernels::gemm_layout::nt, i1 - i0, i1, dh, q + i0 * ld, ld, k, ld, T(0),
                                  z + i0 * seq, seq);
                    for (std::size_t i = i0; i < i1; ++i)
                    {
                        kernels::scale(z + i * seq, s, i + 1);
                    }
                }
                T* row_max = nullptr;
                T* row_entropy = nullptr;
                if constexpr (Diag::enabled)
                {
                    if (m_diag.recording)
                    {
                        row_max = m_diag.row_max.data() + static_cast<std::size_t>(bh) * seq;
                        row_entropy = m_diag.row_entropy.data() + static_cast<std::size_t>(bh) * seq;
                        m_diag.pair_cos[static_cast<std::size_t>(bh)] = causal_cosine_sum(
                          z, static_cast<double>(s), m_diag.q_norm.data() + bi * seq * H + h,
                          m_diag.k_norm.data() + bi * seq * H + h, H, seq);
                    }
                }
                if constexpr (AttnCap::active)
                {
                    AttnCap::forward(z, tt, cap);
                    kernels::copy(capped + static_cast<std::size_t>(bh) * tt, z, tt);
                }
                kernels::softmax_causal_forward(z, z, seq, seq, row_max, row_entropy);
                for (std::size_t i0 = 0; i0 < seq; i0 += attention_panel)
                {
                    // o[i0:i1] = P[i0:i1, 0:i1]·v[0:i1] (P is 0 right of the diagonal).
                    const std::size_t i1 = std::min(seq, i0 + attention_panel);
                    kernels::gemm(kernels::gemm_layout::nn, i1 - i0, dh, i1, z + i0 * seq, seq, vv, ld, T(0),
                                  att + (bi * seq + i0) * d + h * dh, d);
                }
            };
            if (pairs > 1 && pairs * seq * seq * dh >= attention_parallel_work)
            {
                parallel_chunks(static_cast<std::size_t>(pairs), pair_body);
            }
            else
            {
                for (std::size_t pair = 0; pair < static_cast<std::size_t>(pairs); ++pair)
                {
                    pair_body(pair, 0);
                }
            }
        }

        // ------------------------------------------------------------------------------------------------
        // Backward

        void run_backward(std::span<const std::int32_t> tokens)
        {
            const std::size_t n = m_n, d = m_cfg.d_model, f = m_cfg.mlp_width(), v = m_cfg.vocab,
                              L = m_cfg.n_layers, H = m_cfg.n_heads;
            auto& A = m_act;
            BALLAST_PROFILE_MARK("grad_zero");
            for (const std::size_t i : m_accumulated_grads) // the other tensors are overwritten below
            {
                const auto& e = m_layout.entries()[i];
                kernels::fill(m_grads.data() + e.offset, T(0), e.size);
            }
            T* dres = A.dres.data();
            T* dtmp = A.dtmp.data();

            // Head and final norm.
            BALLAST_PROFILE_MARK("loss");
            OutCap::backward(A.dlogits.data(), A.logits.data(), n * v, m_cfg.output_soft_cap);
            BALLAST_PROFILE_MARK("head");
            kernels::gemm(kernels::gemm_layout::tn, v, d, n, A.dlogits.data(), v, A.f.data(), d,
                          tied ? T(1) : T(0), g(m_head), d); // a tied head adds to the embedding gradient
            kernels::gemm(kernels::gemm_layout::nn, n, d, v, A.dlogits.data(), v, p(m_head), d, T(0), dtmp,
                          d);
            BALLAST_PROFILE_MARK("norm");
            Norm::backward(dres, d, g(m_final_scale), g(m_final_bias), dtmp, d, A.res.data() + L * n * d, d,
                           p(m_final_scale), A.f_stats.data(), A.f_stats.data() + n, n, d);

            for (std::size_t li = L; li-- > 0;)
            {
                const auto& b = m_blocks[li];
                const T* x = A.res.data() + li * n * d;
                const T* mid = A.mid.data() + li * n * d;

                // MLP: dres is d loss / d res[l+1].
                const T* m = A.m.data() + li * n * d;
                const T* m_stats = A.m_stats.data() + li * 2 * n;
                const T* up = A.up.data() + li * n * f;
                const T* act = A.act.data() + li * n * f;
                T* dup = A.dup.data();
                BALLAST_PROFILE_MARK("mlp.gemm");
                kernels::gemm(kernels::gemm_layout::nn, n, f, d, dres, d, p(b.down_w), f, T(0), dup, f);
                kernels::gemm(kernels::gemm_layout::tn, d, f, n, dres, d, act, f, T(0), g(b.down_w), f);
                if constexpr (has_bias)
                {
                    accumulate_column_sums(g(b.down_b), dres, n, d);
                }
                BALLAST_PROFILE_MARK("mlp.gelu");
                kernels::gelu_backward<gelu>(dup, dup, up, n * f);
                BALLAST_PROFILE_MARK("mlp.gemm");
                kernels::gemm(kernels::gemm_layout::tn, f, d, n, dup, f, m, d, T(0), g(b.up_w), d);
                if constexpr (has_bias)
                {
                    accumulate_column_sums(g(b.up_b), dup, n, f);
                }
                kernels::gemm(kernels::gemm_layout::nn, n, d, f, dup, f, p(b.up_w), d, T(0), dtmp, d);
                BALLAST_PROFILE_MARK("norm");
                Norm::backward(dtmp, d, g(b.mlp_scale), g(b.mlp_bias), dtmp, d, mid, d, p(b.mlp_scale),
                               m_stats, m_stats + n, n, d);
                BALLAST_PROFILE_MARK("residual");
                kernels::axpy(dres, dtmp, T(1), n * d); // dres = d loss / d mid

                // Attention.
                const T* a = A.a.data() + li * n * d;
                const T* a_stats = A.a_stats.data() + li * 2 * n;
                const T* qkv_raw = A.qkv_raw.data() + li * n * 3 * d;
                const T* qk_stats = A.qk_stats.data() + li * 4 * H * n;
                const T* att = A.att.data() + li * n * d;
                T* datt = A.datt.data();
                T* dqkv = A.dqkv.data();
                T* dqkv_raw = A.dqkv_raw.data();
                BALLAST_PROFILE_MARK("attn.proj");
                kernels::gemm(kernels::gemm_layout::nn, n, d, d, dres, d, p(b.out_w), d, T(0), datt, d);
                kernels::gemm(kernels::gemm_layout::tn, d, d, n, dres, d, att, d, T(0), g(b.out_w), d);
                if constexpr (has_bias)
                {
                    accumulate_column_sums(g(b.out_b), dres, n, d);
                }
                BALLAST_PROFILE_MARK("attn.core");
                attention_backward(li, A.batch, A.seq); // fills dqkv (q, k parts) and dqkv_raw (v part)
                BALLAST_PROFILE_MARK("attn.qk_rope");
                qk_rope_backward(dqkv_raw, dqkv, qkv_raw, qk_stats, b, A.batch, A.seq);
                BALLAST_PROFILE_MARK("attn.proj");
                kernels::gemm(kernels::gemm_layout::tn, 3 * d, d, n, dqkv_raw, 3 * d, a, d, T(0), g(b.qkv_w),
                              d);
                if constexpr (has_bias)
                {
                    accumulate_column_sums(g(b.qkv_b), dqkv_raw, n, 3 * d);
                }
                kernels::gemm(kernels::gemm_layout::nn, n, d, 3 * d, dqkv_raw, 3 * d, p(b.qkv_w), d, T(0),
                              dtmp, d);
                BALLAST_PROFILE_MARK("norm");
                Norm::backward(dtmp, d, g(b.attn_scale), g(b.attn_bias), dtmp, d, x, d, p(b.attn_scale),
                               a_stats, a_stats + n, n, d);
                BALLAST_PROFILE_MARK("residual");
                kernels::axpy(dres, dtmp, T(1), n * d); // dres = d loss / d res[l]
            }

            // Embedding: rows scattered in token order (deterministic), columns split across threads.
            BALLAST_PROFILE_MARK("embed");
            Position::embed_backward(g(m_pos), dres, A.batch, A.seq, d);
            T* dE = g(m_embed);
            parallel_for(d, 256,
                         [&](std::size_t c0, std::size_t c1)
                         {
                             for (std::size_t r = 0; r < n; ++r)
                             {
                                 kernels::axpy(dE + static_cast<std::size_t>(tokens[r]) * d + c0,
                                               dres + r * d + c0, T(1), c1 - c0);
                             }
                         });
            BALLAST_PROFILE_MARK("end");
        }

        /// Backward of attention_forward for layer l: datt → dqkv (q, k blocks, post-RoPE) and dqkv_raw (v).
        void attention_backward(std::size_t l, std::size_t batch, std::size_t seq)
        {
            const std::size_t n = m_n, d = m_cfg.d_model, H = m_cfg.n_heads, dh = m_cfg.head_dim();
            const std::size_t ld = 3 * d, tt = seq * seq;
            const T s = static_cast<T>(Param::attention_scale(m_cfg));
            const T* qkv = m_act.qkv.data() + l * n * ld;
            const T* qkv_raw = m_act.qkv_raw.data() + l * n * ld;
            const T* probs = m_act.probs.data() + l * batch * H * tt;
            const T* capped = AttnCap::active ? m_act.capped.data() + l * batch * H * tt : nullptr;
            const T* datt = m_act.datt.data();
            T* dqkv = m_act.dqkv.data();
            T* dqkv_raw = m_act.dqkv_raw.data();
            T* scratch = m_act.dscratch.data();
            const double cap = m_cfg.attn_soft_cap;
            const std::ptrdiff_t pairs = static_cast<std::ptrdiff_t>(batch * H);
            if constexpr (Diag::enabled)
            {
                if (m_diag.recording)
                {
                    head_norms(qkv, ld, batch * seq, H, dh, m_diag.q_norm.data(), m_diag.k_norm.data());
                }
            }
            // One chunk per (batch, head) pair, handed out dynamically; each pair writes only its own
            // outputs (and its worker's scratch), so any assignment of pairs to threads gives the same bits.
            const auto pair_body = [&](std::size_t pair, [[maybe_unused]] std::size_t worker)
            {
                const std::ptrdiff_t bh = static_cast<std::ptrdiff_t>(pair);
                const std::size_t bi = static_cast<std::size_t>(bh) / H, h = static_cast<std::size_t>(bh) % H;
                const std::size_t row0 = bi * seq;
                const T* q = qkv + row0 * ld + h * dh;
                const T* k = q + d;
                const T* vv = qkv_raw + row0 * ld + 2 * d + h * dh;
                const T* prob = probs + static_cast<std::size_t>(bh) * tt;
                const T* dout = datt + row0 * d + h * dh;
                T* dz = scratch + static_cast<std::size_t>(worker) * tt;
                T* dq = dqkv + row0 * ld + h * dh;
                T* dk = dq + d;
                T* dv = dqkv_raw + row0 * ld + 2 * d + h * dh;
                // Only the causal part is computed: row panels [i0, i1) of dP, dQ (columns/keys < i1) and of
                // dV, dK (rows/keys j0 ≤ j < j1 receive from queries i ≥ j0 only).
                for (std::size_t i0 = 0; i0 < seq; i0 += attention_panel)
                {
                    const std::size_t i1 = std::min(seq, i0 + attention_panel);
                    kernels::gemm(kernels::gemm_layout::nt, i1 - i0, i1, dh, dout + i0 * d, d, vv, ld, T(0),
                                  dz + i0 * seq, seq); // dP = dO·Vᵀ
                    kernels::gemm(kernels::gemm_layout::tn, i1 - i0, dh, seq - i0, prob + i0 * seq + i0, seq,
                                  dout + i0 * d, d, T(0), dv + i0 * ld, ld); // dV = Pᵀ·dO, keys [i0, i1)
                }
                kernels::softmax_causal_backward(dz, prob, dz, seq, seq); // zero right of the diagonal
                if constexpr (AttnCap::active)
                {
                    AttnCap::backward(dz, capped + static_cast<std::size_t>(bh) * tt, tt, cap);
                }
                for (std::size_t i = 0; i < seq; ++i)
                {
                    kernels::scale(dz + i * seq, s, i + 1);
                }
                for (std::size_t i0 = 0; i0 < seq; i0 += attention_panel)
                {
                    const std::size_t i1 = std::min(seq, i0 + attention_panel);
                    kernels::gemm(kernels::gemm_layout::nn, i1 - i0, dh, i1, dz + i0 * seq, seq, k, ld, T(0),
                                  dq + i0 * ld, ld); // dQ = dZ·K
                    kernels::gemm(kernels::gemm_layout::tn, i1 - i0, dh, seq - i0, dz + i0 * seq + i0, seq,
                                  q + i0 * ld, ld, T(0), dk + i0 * ld, ld); // dK = dZᵀ·Q, keys [i0, i1)
                }
            };
            if (pairs > 1 && pairs * seq * seq * dh >= attention_parallel_work)
            {
                parallel_chunks(static_cast<std::size_t>(pairs), pair_body);
            }
            else
            {
                for (std::size_t pair = 0; pair < static_cast<std::size_t>(pairs); ++pair)
                {
                    pair_body(pair, 0);
                }
            }
        }

        model_config m_cfg;
        typename Position::template state<T> m_rope;
        typename QK::template state<T> m_qk;
        param_layout m_layout;
        std::vector<block_offsets> m_blocks;
        std::size_t m_embed = npos, m_pos = npos, m_final_scale = npos, m_final_bias = npos, m_head = npos;
        aligned_vector<T> m_params, m_grads;
        /// Layout entries backward accumulates into, zeroed before each pass (build_layout).
        std::vector<std::size_t> m_accumulated_grads;
        activations m_act;
        std::size_t m_n = 0;

        // ------------------------------------------------------------------------------------------------
        // Diagnostics (compiled only with a diagnostics policy)

        struct diag_state
        {
            bool recording = false;
            diagnostics::forward_stats stats;
            aligned_vector<T> row_max, row_entropy, q_norm, k_norm; // per (batch, head, row) / (token, head)
            std::vector<double> pair_cos; // per (batch, head): Σ cos over causal pairs

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
        };
        struct no_diag_state
        {
        };
        [[no_unique_address]] std::conditional_t<Diag::enabled, diag_state, no_diag_state> m_diag;

        /// ‖q‖ and ‖k‖ of every (token, head), as used in the logits: out[row·H + h].
        static void head_norms(const T* qkv, std::size_t ld, std::size_t n, std::size_t H, std::size_t dh,
                               T* qn, T* kn)
        {
            const std::size_t d = H * dh;
            for (std::size_t r = 0; r < n; ++r)
            {
                for (std::size_t h = 0; h < H; ++h)
                {
                    const T* q = qkv + r * ld + h * dh;
                    qn[r * H + h] = std::sqrt(kernels::sum_squares(q, dh));
                    kn[r * H + h] = std::sqrt(kernels::sum_squares(q + d, dh));
                }
            }
        }

        /// Σ over causal pairs (t ≥ u) of cos(q_t, k_u) = z[t, u] / (s·‖q_t‖·‖k_u‖), from the scaled logits
        /// before any cap; pairs with a zero norm count as 0.
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

        /// Reduce the attention statistics of layer l (serially: deterministic) and the residual RMS.
        void record_layer(std::size_t l, std::size_t batch, std::size_t seq, const T* out)
        {
            const std::size_t H = m_cfg.n_heads, n = batch * seq;
            auto& st = m_diag.stats.layers[l];
            st.max_logit_head.assign(H, -std::numeric_limits<double>::infinity());
            double ent_sum = 0, ent_min = std::numeric_limits<double>::infinity(), cos_sum = 0;
            for (std::size_t bi = 0; bi < batch; ++bi)
            {
                for (std::size_t h = 0; h < H; ++h)
                {
                    const std::size_t bh = bi * H + h;
                    for (std::size_t t = 0; t < seq; ++t)
                    {
                        const double mx = m_diag.row_max[bh * seq + t], e = m_diag.row_entropy[bh * seq + t];
                        st.max_logit_head[h] = std::isnan(mx) ? mx : std::max(st.max_logit_head[h], mx);
                        ent_sum += e;
                        ent_min = std::min(ent_min, e);
                    }
                    cos_sum += m_diag.pair_cos[bh];
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
                qs += m_diag.q_norm[i];
                ks += m_diag.k_norm[i];
            }
            st.q_norm_mean = qs / static_cast<double>(n * H);
            st.k_norm_mean = ks / static_cast<double>(n * H);
            st.residual_rms = std::sqrt(static_cast<double>(kernels::sum_squares(out, n * m_cfg.d_model)) /
                                        static_cast<double>(n * m_cfg.d_model));
        }

        /// log Z statistics per token and the mean output logit.
        void record_output(std::size_t n, std::size_t v)
        {
            auto& st = m_diag.stats;
            double sum = 0, mn = std::numeric_limits<double>::infinity();
            for (std::size_t r = 0; r < n; ++r)
            {
                sum += m_act.lse[r];
                mn = std::min<double>(mn, m_act.lse[r]);
            }
            const double mean = sum / static_cast<double>(n);
            double sq = 0;
            for (std::size_t r = 0; r < n; ++r)
            {
                sq += (m_act.lse[r] - mean) * (m_act.lse[r] - mean);
            }
            st.log_z_mean = mean;
            st.log_z_min = mn;
            st.log_z_std = std::sqrt(sq / static_cast<double>(n));
            st.logit_mean =
              static_cast<double>(kernels::sum(m_act.logits.data(), n * v)) / static_cast<double>(n * v);
            st.valid = true;
        }
    };
} // namespace ballast

#endif
