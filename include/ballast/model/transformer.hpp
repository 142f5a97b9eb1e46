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
/// kernels, one forward/backward pair per layer family: model/embedding.hpp, model/attention.hpp,
/// model/mlp.hpp, model/output.hpp. Every matrix product is a packed GEMM; attention runs one
/// (batch, head) pair per thread.
///
/// Memory: parameters and gradients are each one flat aligned buffer (see param_layout), whose named
/// tensors are also shaped xtensor views (`tensor(name)`, `grad_tensor(name)`); activations are laid out
/// by the activation table (model/activations.hpp), allocated once per (B, T) shape and reused, so a
/// training step allocates nothing.

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
#include <utility>
#include <vector>

#include <boost/hana/accessors.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/second.hpp>
#include <boost/hana/string.hpp>
#include <nlohmann/json.hpp>
#include <xtensor/xadapt.hpp>

#include <ballast/core/aligned.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/memory.hpp>
#include <ballast/core/profile.hpp>
#include <ballast/core/rng.hpp>
#include <ballast/io/safetensors.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/model/activations.hpp>
#include <ballast/model/attention.hpp>
#include <ballast/model/config.hpp>
#include <ballast/model/diagnostics.hpp>
#include <ballast/model/embedding.hpp>
#include <ballast/model/layer.hpp>
#include <ballast/model/mlp.hpp>
#include <ballast/model/output.hpp>
#include <ballast/model/parameters.hpp>
#include <ballast/model/recorder.hpp>
#include <ballast/model/tensors.hpp>
#include <ballast/policies/policy_set.hpp>

namespace ballast
{
    template <policy_set P, class T = float, diagnostics::diagnostics_policy Diag = diagnostics::none>
    class transformer
    {
        static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                      "transformer<P, T>: T must be float or double");
        static_assert(policy_set_checks<P>::ok);

    public:
        using policy_set_type = P;
        using value_type = T;
        /// One alias per slot of the policy set, from the slot list (policies/policy_set.hpp):
        /// `norm_policy`, `position_policy`, …, `activation_policy`.
#define BALLAST_TRANSFORMER_SLOT_ALIAS(slot, concept_) using slot##_policy = typename P::slot;
        BALLAST_POLICY_SLOTS(BALLAST_TRANSFORMER_SLOT_ALIAS)
#undef BALLAST_TRANSFORMER_SLOT_ALIAS
        static constexpr bool has_bias = P::bias::enabled;
        static constexpr bool tied = P::head::tied;
        static constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();
        /// See layers::attention_parallel_work and layers::attention_panel (model/attention.hpp).
        static constexpr std::size_t attention_parallel_work = layers::attention_parallel_work;
        static constexpr std::size_t attention_panel = layers::attention_panel;

        /// Build the parameter layout for `cfg` (validated; throws ballast::error naming the bad field).
        /// Parameters start at zero: call init(seed) or load(path).
        explicit transformer(const model_config& cfg)
          : m_cfg(validated(cfg))
          , m_rope(position_policy::template make_state<T>(m_cfg))
          , m_qk(qk_policy::template make_state<T>(m_cfg))
          , m_tensors(m_cfg)
        {
            m_params.assign(m_tensors.layout().total(), T(0));
            m_grads.assign(m_tensors.layout().total(), T(0));
        }

        const model_config& config() const noexcept { return m_cfg; }
        const param_layout& layout() const noexcept { return m_tensors.layout(); }
        static constexpr std::string_view policy_set_name() noexcept { return P::name; }

        /// The flat parameter and gradient buffers (layout().total() elements; padding stays 0).
        std::span<T> parameters() noexcept { return m_params; }
        std::span<const T> parameters() const noexcept { return m_params; }
        std::span<T> gradients() noexcept { return m_grads; }
        std::span<const T> gradients() const noexcept { return m_grads; }

        /// One named tensor of the parameters / gradients, flat.
        std::span<T> parameter(std::string_view name)
        {
            const auto& e = m_tensors.layout().at(name);
            return { m_params.data() + e.offset, e.size };
        }
        std::span<T> gradient(std::string_view name)
        {
            const auto& e = m_tensors.layout().at(name);
            return { m_grads.data() + e.offset, e.size };
        }

        /// One named tensor of the parameters / gradients as a shaped xtensor view over the flat buffer
        /// (shape as in layout(), e.g. [3d, d] for "blocks.0.attn.qkv.weight"), usable in xtensor
        /// expressions. Zero-copy: valid as long as the model lives. Throws ballast::error for an unknown
        /// name. xtensor views (xt::view, xt::row) hold a reference to their argument: keep the returned
        /// view in a variable before viewing into it.
        tensor_view<T> tensor(std::string_view name) { return view(m_params.data(), name); }
        tensor_view<const T> tensor(std::string_view name) const { return view(m_params.data(), name); }
        tensor_view<T> grad_tensor(std::string_view name) { return view(m_grads.data(), name); }
        tensor_view<const T> grad_tensor(std::string_view name) const { return view(m_grads.data(), name); }

        /// Initialise every parameter from `seed` as the parameterisation prescribes (docs/model.md):
        /// each tensor draws from its own stream (seed, tensor index), so the result does not depend on
        /// the thread count or on other tensors' sizes.
        void init(std::uint64_t seed) { m_tensors.init(m_params, seed); }

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
        std::span<const T> logits() const noexcept { return { m_act(act::logits), m_n * m_cfg.vocab }; }
        /// log Z per token of the last forward pass, [N].
        std::span<const T> log_z() const noexcept { return { m_act(act::lse), m_n }; }

        /// Elements of T the activations take at (batch, seq) with the current OpenMP thread count: the
        /// sum over the activation table (model/activations.hpp; docs/model.md gives the closed form).
        /// This is exactly what is allocated (tested).
        std::size_t activation_elements(std::size_t batch, std::size_t seq) const noexcept
        {
            return ballast::activation_elements(dims(batch, seq));
        }

        /// The activation shape of `cfg` at (batch, seq) with `threads` threads.
        static activation_dims dims_of(const model_config& cfg, std::size_t batch, std::size_t seq,
                                       std::size_t threads) noexcept
        {
            activation_dims s;
            s.batch = batch;
            s.seq = seq;
            s.d = cfg.d_model;
            s.f = layers::mlp_hidden<P>(cfg);
            s.up = P::activation::up_factor;
            s.v = cfg.vocab;
            s.heads = cfg.n_heads;
            s.layers = cfg.n_layers;
            s.threads = threads;
            s.attn_cap = attention_cap_policy::active;
            return s;
        }

        /// What a model of `cfg` needs before it is built, so that a caller can refuse it up front.
        struct memory_estimate
        {
            std::size_t parameters = 0;  ///< elements of the parameter buffer (layout().total(), padded)
            std::size_t activations = 0; ///< elements of the activations at the given shape
            std::size_t tables = 0;      ///< elements of the position policy's tables (RoPE cos and sin)
            /// Bytes of parameters, gradients, tables and activations.
            std::uint64_t bytes() const noexcept
            {
                return (2 * std::uint64_t(parameters) + tables + activations + 64) * sizeof(T);
            }
        };

        /// The memory of a model of `cfg` at (batch, seq) and `threads` threads. Throws ballast::error
        /// naming the field for an invalid config, and when a size overflows.
        static memory_estimate estimate_memory(const model_config& cfg, std::size_t batch, std::size_t seq,
                                               std::size_t threads)
        {
            cfg.validate();
            memory_estimate e;
            e.parameters = model_tensors<P, T>(cfg).layout().total();
            e.activations = checked_activation_elements(dims_of(cfg, batch, seq, threads));
            e.tables = cfg.context * cfg.head_dim();
            return e;
        }

        /// Activation buffer `name` (a row of the activation table, model/activations.hpp; docs/model.md) of
        /// block or residual `slice` as a shaped, zero-copy xtensor view: what the last forward (and
        /// backward) pass left there, e.g. `activation_tensor("probs", 0)` is block 0's attention
        /// probabilities [B, H, T, T]. Valid until the next pass. Throws ballast::error for an unknown
        /// name, a slice out of range, or a buffer this policy set does not allocate (e.g. "capped"
        /// without an attention cap) or no pass has filled yet.
        tensor_view<const T> activation_tensor(std::string_view name, std::size_t slice = 0) const
        {
            const activation_buffer* row = nullptr;
            for (const auto& b : activation_table)
            {
                row = b.name == name ? &b : row;
            }
            BALLAST_CHECK(row != nullptr, "transformer", "no activation buffer '", name,
                          "' (docs/model.md lists the activation table)");
            const auto id = row->id;
            const std::size_t slices = activation_slice_count(row->slices, m_cfg.n_layers);
            BALLAST_CHECK(slice < slices, "transformer", "activation '", name, "' has ", slices,
                          " slice(s), asked for slice ", slice);
            BALLAST_CHECK(m_act.slice_size(id) > 0, "transformer", "activation '", name,
                          "' is empty (not used by this policy set, or no forward pass yet)");
            const auto shape = activation_slice_shape(*row, m_act.dims());
            return make_tensor_view(static_cast<const T*>(m_act(id, slice)), m_act.slice_size(id), shape);
        }

        /// Elements of T currently allocated for activations (equals activation_elements for the last shape).
        std::size_t allocated_activation_elements() const noexcept { return m_act.elements(); }

        /// Write parameters as safetensors (names and shapes as in docs/model.md), with the policy-set name
        /// and the model config in the metadata. Atomic.
        void save(const std::filesystem::path& path) const
        {
            io::safetensors_writer w;
            for (const auto& e : m_tensors.layout().entries())
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
            const auto names = m_tensors.layout().names();
            f.require_exactly(names);
            for (const auto& e : m_tensors.layout().entries())
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
        /// `cfg`, validated, and refused when its parameters, gradients and tables do not fit in memory.
        static model_config validated(const model_config& cfg)
        {
            const auto m = estimate_memory(cfg, 0, 0, 0); // validates; no activations yet
            check_fits(m.bytes(), "the model (parameters, gradients and position tables)");
            return cfg;
        }

        // ------------------------------------------------------------------------------------------------
        // Forward and backward: one call per layer

        using context = layers::pass_context<P, T, Diag>;

        activation_dims dims(std::size_t batch, std::size_t seq) const noexcept
        {
            return dims_of(m_cfg, batch, seq, static_cast<std::size_t>(num_threads()));
        }

        context make_context(std::size_t batch, std::size_t seq)
        {
            return context{ .cfg = m_cfg,
                            .batch = batch,
                            .seq = seq,
                            .n = batch * seq,
                            .d = m_cfg.d_model,
                            .f = layers::mlp_hidden<P>(m_cfg),
                            .v = m_cfg.vocab,
                            .heads = m_cfg.n_heads,
                            .head_dim = m_cfg.head_dim(),
                            .layers = m_cfg.n_layers,
                            .eps = static_cast<T>(m_cfg.norm_eps),
                            .act = m_act,
                            .rope = m_rope,
                            .qk = m_qk,
                            .diag = m_diag };
        }

        /// Parameter / gradient pointers of block l and of the non-block tensors (null when absent).
        layers::block_tensors<const T*> block_params(std::size_t l) const
        {
            return m_tensors.block(l).map([this](std::size_t off) { return p(off); });
        }
        layers::block_tensors<T*> block_grads(std::size_t l)
        {
            return m_tensors.block(l).map([this](std::size_t off) { return g(off); });
        }
        layers::outer_tensors<const T*> outer_params() const
        {
            return m_tensors.outer().map([this](std::size_t off) { return p(off); });
        }
        layers::outer_tensors<T*> outer_grads()
        {
            return m_tensors.outer().map([this](std::size_t off) { return g(off); });
        }

        loss_parts run_forward(std::span<const std::int32_t> tokens, std::span<const std::int32_t> targets,
                               std::size_t batch, std::size_t seq, bool want_grad)
        {
            check_inputs(tokens, targets, batch, seq);
            m_act.ensure(dims(batch, seq));
            m_n = batch * seq;
            if constexpr (Diag::enabled)
            {
                if (m_diag.recording)
                {
                    m_diag.prepare(batch, seq, m_cfg.n_heads, m_cfg.n_layers);
                }
            }
            auto c = make_context(batch, seq);
            layers::embedding_forward(c, outer_params(), tokens);
            for (std::size_t l = 0; l < m_cfg.n_layers; ++l)
            {
                const auto w = block_params(l);
                layers::attention_forward(c, l, w);
                layers::mlp_forward(c, l, w);
                if constexpr (Diag::enabled)
                {
                    if (m_diag.recording)
                    {
                        BALLAST_PROFILE_MARK("diagnostics");
                        m_diag.record_layer(l, batch, seq, m_cfg.n_heads, m_cfg.d_model,
                                            m_act(act::res, l + 1));
                    }
                }
            }
            const loss_parts loss = layers::output_forward(c, outer_params(), targets, want_grad);
            BALLAST_PROFILE_MARK("end");
            return loss;
        }

        /// Backward of the last forward pass (which must have had want_grad).
        void run_backward(std::span<const std::int32_t> tokens)
        {
            BALLAST_PROFILE_MARK("grad_zero");
            for (const std::size_t i :
                 m_tensors.accumulated_grads()) // the other tensors are overwritten below
            {
                const auto& e = m_tensors.layout().entries()[i];
                kernels::fill(m_grads.data() + e.offset, T(0), e.size);
            }
            auto c = make_context(m_act.dims().batch, m_act.dims().seq);
            layers::output_backward(c, outer_params(), outer_grads());
            for (std::size_t l = m_cfg.n_layers; l-- > 0;)
            {
                const auto w = block_params(l);
                const auto gr = block_grads(l);
                layers::mlp_backward(c, l, w, gr);
                layers::attention_backward(c, l, w, gr);
            }
            layers::embedding_backward(c, outer_grads(), tokens);
            BALLAST_PROFILE_MARK("end");
        }

        // ------------------------------------------------------------------------------------------------
        // Helpers

        const T* p(std::size_t off) const noexcept { return off == npos ? nullptr : m_params.data() + off; }
        T* g(std::size_t off) noexcept { return off == npos ? nullptr : m_grads.data() + off; }

        template <class U>
        tensor_view<U> view(U* base, std::string_view name) const
        {
            const auto& e = m_tensors.layout().at(name);
            return make_tensor_view(base + e.offset, e.size, e.shape);
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

        model_config m_cfg;
        typename position_policy::template state<T> m_rope;
        typename qk_policy::template state<T> m_qk;
        model_tensors<P, T> m_tensors;
        aligned_vector<T> m_params, m_grads;
        activation_store<T> m_act;
        std::size_t m_n = 0;
        [[no_unique_address]] diagnostics::recorder_for<T, Diag> m_diag;
    };
} // namespace ballast

#endif
