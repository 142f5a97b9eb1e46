#ifndef BALLAST_TRAIN_TRAINER_HPP
#define BALLAST_TRAIN_TRAINER_HPP

/// @file
/// `trainer<PolicySet, Optimizer, T>`: the training loop a study runs thousands of times.
///
/// One step: draw batch `step` from (seed, step) → forward and backward → global gradient norm →
/// divergence check → clipping factor → one fused optimizer pass. Around it: evaluation on the fixed
/// validation set (ℓ0 at initialisation, then every `eval_interval` steps and at the end), the JSONL
/// metrics log, checkpoints (at intervals, at the end and on SIGINT/SIGTERM) and callbacks.
///
/// - **Divergence** (a NaN/Inf loss or gradient norm, a training loss above `divergence_factor·ln V`, a
///   non-finite validation loss) ends the run cleanly: `run_result` says diverged, at which step and why,
///   and the metrics log gets an "end" line. Nothing is thrown; the last good checkpoint stays.
/// - **Resume** is bit-identical: everything a step depends on is the weights, the optimizer state, the
///   step count and (seed, step), and all of it is in the checkpoint.
/// - **Callbacks** are a compile-time pack passed to `run`; each may define any of
///     on_step_end(const step_info&), on_eval(const eval_info&),
///     on_gradients(const gradient_info<T>&)
///   and may return `callback_action::stop` from any of them. A hook no callback defines costs nothing.
///
/// docs/training.md documents the metrics schema and the checkpoint layout.

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/hana/adapt_struct.hpp>
#include <nlohmann/json.hpp>

#include <ballast/core/config.hpp>
#include <ballast/core/file.hpp>
#include <ballast/core/jsonl.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/core/reflect.hpp>
#include <ballast/kernels/reduce.hpp>
#include <ballast/model/diagnostics.hpp>
#include <ballast/model/transformer.hpp>
#include <ballast/train/checkpoint.hpp>
#include <ballast/train/data.hpp>
#include <ballast/train/optimizer.hpp>
#include <ballast/train/schedule.hpp>
#include <ballast/train/train_config.hpp>
#include <ballast/train/warnings.hpp>
#include <ballast/version.hpp>

namespace ballast
{
    /// What a callback may ask for.
    enum class callback_action
    {
        proceed,
        stop
    };

    /// Handed to on_step_end after each optimizer step.
    struct step_info
    {
        std::size_t step = 0;         ///< the step just taken, from 0
        std::size_t steps = 0;        ///< total steps of the run
        double lr = 0;                ///< s_t·η used by this step
        loss_parts loss;              ///< training loss of this step's batch (before the update)
        double grad_norm = 0;         ///< global gradient norm before clipping
        double clip = 1;              ///< clipping factor applied
        double tokens_per_second = 0; ///< training throughput since the run (or resume) started
        double elapsed_seconds = 0;
        /// With a diagnostics policy, on recorded steps: the step's diagnostics (schema in
        /// docs/diagnostics.md); nullptr otherwise.
        const nlohmann::json* diagnostics = nullptr;
    };

    /// Handed to on_eval after each evaluation.
    struct eval_info
    {
        std::size_t step = 0; ///< steps taken when evaluated (0: at initialisation)
        loss_parts loss;      ///< mean over the validation batches
    };

    /// Handed to on_gradients after backward, before clipping and the update.
    template <class T>
    struct gradient_info
    {
        std::size_t step = 0;
        const param_layout* layout = nullptr;
        std::span<const T> params, grads;
        double grad_norm = 0;
    };

    /// The signals of one recorded diagnostics step that the prediction tools read over a run
    /// (study/predict.hpp): attention-logit growth (paper Fig 9) and the gradient and unscaled-update RMS
    /// of the probe tensor, the first MLP weight of block 0 (Figs 11, 13). NaN when not finite.
    struct diag_sample
    {
        std::size_t step = 0;         ///< optimizer steps completed when recorded
        double max_attn_logit = 0;    ///< max attention logit over every layer
        double max_attn_logit_l0 = 0; ///< max attention logit of block 0 (the paper's Fig 9 reads this one)
        double probe_grad_rms = 0;    ///< RMS of the gradient of `probe_tensor`
        double probe_update_rms = 0;  ///< RMS of the optimizer's direction for `probe_tensor` (before × LR)
    };

    /// The tensor whose gradient and update RMS the runs track (paper Fig 11: first MLP layer, block 0).
    inline constexpr const char* probe_tensor = "blocks.0.mlp.up.weight";

    /// How a run ended.
    struct run_result
    {
        std::string policy_set, optimizer;
        double l0 = 0;              ///< validation loss (cross-entropy) at initialisation
        double final_val_loss = 0;  ///< validation cross-entropy at the end (ℓ0 when diverged)
        double best_val_loss = 0;   ///< lowest validation cross-entropy seen
        std::size_t steps_done = 0; ///< optimizer steps completed
        bool diverged = false;
        std::size_t diverged_step = 0;
        std::string diverged_reason;
        bool interrupted = false; ///< stopped by a signal or a callback before the last step
        double train_seconds = 0;
        std::vector<std::pair<std::size_t, double>> evals; ///< (step, validation CE)
        /// With a diagnostics policy: the series the prediction tools fit, one sample per recorded step,
        /// and the last recorded diagnostics in full.
        std::vector<diag_sample> diag_history;
        nlohmann::json last_diagnostics;
        std::vector<early_warning> warnings; ///< early-warning rules that fired (train/warnings.hpp)
    };

    namespace detail
    {
        inline volatile std::sig_atomic_t g_stop_signal = 0;

        extern "C" inline void ballast_on_stop_signal(int sig)
        {
            g_stop_signal = sig;
        }

        /// Installs SIGINT/SIGTERM handlers that only set a flag; restores the previous ones on exit.
        class stop_signal_scope
        {
        public:
            explicit stop_signal_scope(bool enable)
              : m_enabled(enable)
            {
                if (m_enabled)
                {
                    g_stop_signal = 0;
                    m_int = std::signal(SIGINT, ballast_on_stop_signal);
                    m_term = std::signal(SIGTERM, ballast_on_stop_signal);
                }
            }
            ~stop_signal_scope()
            {
                if (m_enabled)
                {
                    std::signal(SIGINT, m_int);
                    std::signal(SIGTERM, m_term);
                }
            }
            stop_signal_scope(const stop_signal_scope&) = delete;
            stop_signal_scope& operator=(const stop_signal_scope&) = delete;
            /// The signal received since this scope began (0: none, or signals not handled).
            int pending() const noexcept { return m_enabled ? static_cast<int>(g_stop_signal) : 0; }

        private:
            bool m_enabled;
            void (*m_int)(int) = SIG_DFL;
            void (*m_term)(int) = SIG_DFL;
        };

        template <class R>
        bool wants_stop(R&& r)
        {
            if constexpr (std::is_same_v<std::remove_cvref_t<R>, callback_action>)
            {
                return r == callback_action::stop;
            }
            else
            {
                return false;
            }
        }

        /// Call `hook(cb, info)` for every callback that defines the hook (detected at compile time: a hook
        /// no callback defines costs nothing); true if any of them returned `callback_action::stop`.
        template <class Hook, class Info, class... Cbs>
        bool notify(Hook hook, const Info& info, Cbs&... cbs)
        {
            bool stop = false;
            (
              [&](auto& cb)
              {
                  if constexpr (requires { hook(cb, info); })
                  {
                      if constexpr (std::is_void_v<decltype(hook(cb, info))>)
                      {
                          hook(cb, info);
                      }
                      else
                      {
                          stop = wants_stop(hook(cb, info)) || stop;
                      }
                  }
              }(cbs),
              ...);
            return stop;
        }

        // The three hooks, SFINAE-friendly (the trailing return type fails for a callback without the
        // member).
        inline constexpr auto on_step_end_hook = [](auto& cb, const auto& i) -> decltype(cb.on_step_end(i))
        { return cb.on_step_end(i); };
        inline constexpr auto on_eval_hook = [](auto& cb, const auto& i) -> decltype(cb.on_eval(i))
        { return cb.on_eval(i); };
        inline constexpr auto on_gradients_hook = [](auto& cb, const auto& i) -> decltype(cb.on_gradients(i))
        { return cb.on_gradients(i); };

        template <class C, class T>
        inline constexpr bool has_gradient_hook = requires(C& c, const gradient_info<T>& g)
        {
            c.on_gradients(g);
        };
    } // namespace detail

    /// Trains a `transformer<P, T>` with optimizer policy `O` on a token split.
    template <policy_set P, optim::optimizer_policy O = optim::adamw<>, class T = float,
              diagnostics::diagnostics_policy Diag = diagnostics::none>
    class trainer
    {
    public:
        using model_type = transformer<P, T, Diag>;
        using optimizer_type = optimizer<O, T>;

        /// Builds and initialises the model from `train.seed`. `data` must outlive the trainer and must have
        /// been split with `train.seq`.
        trainer(const model_config& model, const train_config& train, const optimizer_config& opt,
                const token_splits& data)
          : m_train(train)
          , m_data(data)
          , m_model(model)
          , m_opt(m_model.layout(), opt)
        {
            m_train.validate(model);
            BALLAST_CHECK(data.seq() == train.seq, "trainer", "data was split for seq ", data.seq(),
                          ", the run uses seq ", train.seq);
            m_model.init(train.seed);
            m_result.policy_set = std::string(P::name);
            m_result.optimizer = std::string(O::name);
        }

        model_type& model() noexcept { return m_model; }
        const model_type& model() const noexcept { return m_model; }
        optimizer_type& opt() noexcept { return m_opt; }
        const train_config& config() const noexcept { return m_train; }
        /// Steps completed so far (the next step to run).
        std::size_t step() const noexcept { return m_step; }
        const run_result& result() const noexcept { return m_result; }

        /// Everything that identifies this run (a checkpoint must match it to be resumed).
        nlohmann::json identity() const
        {
            return { { "policy_set", std::string(P::name) },
                     { "optimizer", std::string(O::name) },
                     { "dtype", std::is_same_v<T, float> ? "float32" : "float64" },
                     { "model", to_json(m_model.config()) },
                     { "train", identity_json(m_train) },
                     { "optimizer_config", to_json(m_opt.config()) },
                     { "data",
                       { { "origin", m_data.origin() },
                         { "train_tokens", m_data.train().size() },
                         { "validation_tokens", m_data.validation().size() },
                         { "fnv1a64", detail::hex64(data_fingerprint()) } } } };
        }

        /// The metrics log's header line: every config value (reflected), the policy-set and optimizer
        /// names, and the build.
        nlohmann::json header_json() const
        {
            auto j = identity();
            j["type"] = "header";
            j["train"] = to_json(m_train);
            j["ballast_version"] = version_string;
            j["threads"] = num_threads();
            j["parameters"] = m_model.layout().count();
            return j;
        }

        /// Evaluate on the fixed validation set (mean over `eval_batches` batches).
        loss_parts evaluate()
        {
            loss_parts sum;
            for (std::size_t i = 0; i < m_train.eval_batches; ++i)
            {
                m_data.validation_batch(i, m_train.eval_batches, m_train.batch, m_batch);
                const auto l = m_model.evaluate(m_batch.inputs, m_batch.targets, m_batch.batch, m_batch.seq);
                sum.loss += l.loss;
                sum.ce += l.ce;
                sum.aux += l.aux;
            }
            const double k = static_cast<double>(m_train.eval_batches);
            return { sum.loss / k, sum.ce / k, sum.aux / k };
        }

        /// Save a checkpoint of the current state into `dir` (default: the config's checkpoint_dir).
        void save_checkpoint(std::filesystem::path dir = {}) const
        {
            if (dir.empty())
            {
                dir = m_train.checkpoint_dir;
            }
            BALLAST_CHECK(!dir.empty(), "trainer", "no checkpoint directory configured");
            io::safetensors_writer w;
            for (const auto& e : m_model.layout().entries())
            {
                w.add<T>(e.name, std::span<const std::size_t>(e.shape),
                         m_model.parameters().data() + e.offset);
                for (std::size_t s = 0; s < optimizer_type::state_count; ++s)
                {
                    w.add<T>(state_tensor_name(s, e.name), std::span<const std::size_t>(e.shape),
                             m_opt.state(s).data() + e.offset);
                }
            }
            w.set_metadata("format", "ballast-checkpoint-tensors-v1");
            w.set_metadata("policy_set", std::string(P::name));
            auto m = identity();
            m["rng"] = { { "seed", m_train.seed },
                         { "scheme",
                           "init: splitmix64(seed, tensor); batch t: splitmix64(seed ^ salt, t)" } };
            m["progress"] = progress_json();
            write_checkpoint(dir, m_step, std::move(m), w);
        }

        /// Resume from the checkpoint in `dir`. Throws ballast::error (and changes nothing) when it is
        /// corrupt or belongs to a different run (the message lists the differing settings).
        void resume(const std::filesystem::path& dir)
        {
            const auto ck = read_checkpoint(dir);
            auto expected = identity();
            auto got = ck.manifest;
            for (const char* k : { "format", "version", "step", "tensors", "rng", "progress" })
            {
                got.erase(k);
            }
            const auto diff = json_differences(got, expected);
            BALLAST_CHECK(diff.empty(), "checkpoint", "'", dir.string(),
                          "' belongs to a different run (checkpoint vs this run: ", diff, ")");
            const std::size_t step = ck.manifest["step"].get<std::size_t>();
            BALLAST_CHECK(step <= m_train.steps, "checkpoint", "step ", step, " is past the run's ",
                          m_train.steps, " steps");
            std::vector<std::string> names;
            for (const auto& e : m_model.layout().entries())
            {
                names.push_back(e.name);
                for (std::size_t s = 0; s < optimizer_type::state_count; ++s)
                {
                    names.push_back(state_tensor_name(s, e.name));
                }
            }
            ck.tensors.require_exactly(names);
            // Read into copies first, so a failure leaves the trainer untouched.
            aligned_vector<T> params(m_model.parameters().begin(), m_model.parameters().end());
            std::array<aligned_vector<T>, optimizer_type::state_count> state;
            for (std::size_t s = 0; s < optimizer_type::state_count; ++s)
            {
                state[s].assign(m_opt.state(s).begin(), m_opt.state(s).end());
            }
            for (const auto& e : m_model.layout().entries())
            {
                ck.tensors.read<T>(e.name, std::span<const std::size_t>(e.shape), params.data() + e.offset);
                for (std::size_t s = 0; s < optimizer_type::state_count; ++s)
                {
                    ck.tensors.read<T>(state_tensor_name(s, e.name), std::span<const std::size_t>(e.shape),
                                       state[s].data() + e.offset);
                }
            }
            const auto& p = ck.manifest["progress"];
            run_result r = m_result;
            r.l0 = p.at("l0").get<double>();
            r.best_val_loss = p.at("best_val_loss").get<double>();
            r.final_val_loss = p.at("final_val_loss").get<double>();
            r.evals = p.at("evals").get<std::vector<std::pair<std::size_t, double>>>();
            r.steps_done = step;
            r.train_seconds = p.at("train_seconds").get<double>();
            std::ranges::copy(params, m_model.parameters().begin());
            for (std::size_t s = 0; s < optimizer_type::state_count; ++s)
            {
                std::ranges::copy(state[s], m_opt.state(s).begin());
            }
            m_opt.set_steps_taken(static_cast<std::int64_t>(step));
            m_step = step;
            m_result = std::move(r);
            m_initialised = true;
            m_resumed = true;
        }

        /// Train until `steps`, divergence, a signal or a callback's stop. Returns the result (also kept in
        /// `result()`); never throws for divergence.
        template <class... Callbacks>
        run_result run(Callbacks&&... callbacks)
        {
            std::optional<thread_scope> threads;
            if (m_train.threads > 0)
            {
                threads.emplace(m_train.threads);
            }
            detail::stop_signal_scope signals(m_train.handle_signals);
            if (!m_train.metrics_path.empty())
            {
                prepare_metrics_log();
            }
            if (!m_initialised)
            {
                const auto l0 = evaluate();
                m_result.l0 = l0.ce;
                m_result.best_val_loss = l0.ce;
                m_result.final_val_loss = l0.ce;
                m_result.evals.emplace_back(0, l0.ce);
                m_initialised = true;
                log_eval(0, l0);
                if (detail::notify(detail::on_eval_hook, eval_info{ 0, l0 }, callbacks...))
                {
                    return finish_interrupted();
                }
            }
            const lr_schedule sched = m_train.schedule_of();
            const double max_loss =
              m_train.divergence_factor * std::log(static_cast<double>(m_model.config().vocab));
            const auto t0 = std::chrono::steady_clock::now();
            const double seconds_before = m_result.train_seconds;
            const std::size_t first = m_step;
            while (m_step < m_train.steps)
            {
                const std::size_t t = m_step;
                m_data.train_batch(m_train.seed, t, m_train.batch, m_batch);
                [[maybe_unused]] const bool record =
                  Diag::enabled && m_train.diag_interval != 0 && t % m_train.diag_interval == 0;
                if constexpr (Diag::enabled)
                {
                    m_model.set_recording(record);
                }
                const loss_parts loss =
                  m_model.forward_backward(m_batch.inputs, m_batch.targets, m_batch.batch, m_batch.seq);
                const auto grads = m_model.gradients();
                const double norm =
                  std::sqrt(static_cast<double>(kernels::sum_squares(grads.data(), grads.size())));
                bool stop = false;
                if constexpr ((detail::has_gradient_hook<std::remove_cvref_t<Callbacks>, T> || ... || false))
                {
                    stop = detail::notify(
                      detail::on_gradients_hook,
                      gradient_info<T>{ t, &m_model.layout(), m_model.parameters(), grads, norm },
                      callbacks...);
                }
                if (!std::isfinite(loss.loss))
                {
                    return finish_diverged(t, "non-finite training loss");
                }
                if (!std::isfinite(norm))
                {
                    return finish_diverged(t, "non-finite gradient norm");
                }
                if (loss.loss > max_loss)
                {
                    return finish_diverged(t, "training loss " + std::to_string(loss.loss) +
                                                " above the bound " + std::to_string(max_loss) +
                                                " (divergence_factor x ln vocab)");
                }
                const double lr = sched.lr(t);
                const double clip = clip_factor(norm, m_opt.config().clip);
                nlohmann::json diag;
                if constexpr (Diag::enabled)
                {
                    m_model.set_recording(false); // evaluations are not recorded
                    if (record)
                    {
                        diag = tensor_stats_before(grads);
                    }
                }
                m_opt.step(m_model.parameters(), grads, lr, lr / m_train.lr, clip);
                ++m_step;
                if constexpr (Diag::enabled)
                {
                    if (record)
                    {
                        complete_diagnostics(diag);
                    }
                }
                m_result.steps_done = m_step;
                const double elapsed =
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                m_result.train_seconds = seconds_before + elapsed;
                const step_info info{ t,
                                      m_train.steps,
                                      lr,
                                      loss,
                                      norm,
                                      clip,
                                      static_cast<double>((m_step - first) * m_train.batch * m_train.seq) /
                                        std::max(elapsed, 1e-9),
                                      elapsed,
                                      diag.is_null() ? nullptr : &diag };
                if ((m_train.log_interval &&
                     (m_step % m_train.log_interval == 0 || m_step == m_train.steps)) ||
                    !diag.is_null())
                {
                    log_step(info);
                }
                stop = detail::notify(detail::on_step_end_hook, info, callbacks...) || stop;
                if ((m_train.eval_interval && m_step % m_train.eval_interval == 0) || m_step == m_train.steps)
                {
                    const auto ev = evaluate();
                    if (!std::isfinite(ev.ce))
                    {
                        return finish_diverged(t, "non-finite validation loss");
                    }
                    m_result.evals.emplace_back(m_step, ev.ce);
                    m_result.best_val_loss = std::min(m_result.best_val_loss, ev.ce);
                    m_result.final_val_loss = ev.ce;
                    log_eval(m_step, ev);
                    stop =
                      detail::notify(detail::on_eval_hook, eval_info{ m_step, ev }, callbacks...) || stop;
                }
                if (!m_train.checkpoint_dir.empty() && m_train.checkpoint_interval &&
                    m_step % m_train.checkpoint_interval == 0 && m_step < m_train.steps)
                {
                    save_checkpoint();
                }
                if (signals.pending() || stop)
                {
                    return finish_interrupted();
                }
            }
            m_result.interrupted = false;
            if (!m_train.checkpoint_dir.empty())
            {
                save_checkpoint();
            }
            log_end();
            return m_result;
        }

    private:
        /// Diagnostics, part 1 (before the update): per-tensor gradient and parameter RMS.
        nlohmann::json tensor_stats_before(std::span<const T> grads) const
        {
            nlohmann::json tensors = nlohmann::json::object();
            for (const auto& e : m_model.layout().entries())
            {
                tensors[e.name] = { { "grad_rms", finite_or_null(optimizer_type::tensor_rms(
                                                    grads.data() + e.offset, e.size)) },
                                    { "param_rms", finite_or_null(optimizer_type::tensor_rms(
                                                     m_model.parameters().data() + e.offset, e.size)) } };
            }
            return { { "tensors", std::move(tensors) } };
        }

        /// Diagnostics, part 2 (after the update): the update direction per tensor and the forward pass's
        /// attention, residual and output statistics. Also the flat keys the plots read.
        void complete_diagnostics(nlohmann::json& diag) requires(Diag::enabled)
        {
            for (const auto& e : m_model.layout().entries())
            {
                const auto d = m_opt.direction_stats(e);
                auto& t = diag["tensors"][e.name];
                t["update_rms"] = finite_or_null(d.update_rms);
                t["eps_fraction"] = finite_or_null(d.eps_fraction);
            }
            const auto& f = m_model.forward_diagnostics();
            nlohmann::json layers = nlohmann::json::array();
            double max_logit = -std::numeric_limits<double>::infinity();
            for (const auto& l : f.layers)
            {
                nlohmann::json heads = nlohmann::json::array();
                for (const double h : l.max_logit_head)
                {
                    heads.push_back(finite_or_null(h));
                }
                layers.push_back({ { "max_logit", finite_or_null(l.max_logit) },
                                   { "max_logit_head", heads },
                                   { "entropy_min", finite_or_null(l.entropy_min) },
                                   { "entropy_mean", finite_or_null(l.entropy_mean) },
                                   { "q_norm_mean", finite_or_null(l.q_norm_mean) },
                                   { "k_norm_mean", finite_or_null(l.k_norm_mean) },
                                   { "qk_cos_mean", finite_or_null(l.qk_cos_mean) },
                                   { "residual_rms", finite_or_null(l.residual_rms) } });
                max_logit = std::isnan(l.max_logit) ? l.max_logit : std::max(max_logit, l.max_logit);
            }
            diag["layers"] = std::move(layers);
            diag["max_attn_logit"] = finite_or_null(max_logit);
            diag["log_z_mean"] = finite_or_null(f.log_z_mean);
            diag["log_z_std"] = finite_or_null(f.log_z_std);
            diag["log_z_min"] = finite_or_null(f.log_z_min);
            diag["logit_mean"] = finite_or_null(f.logit_mean);
            diag_sample sample{ m_step, max_logit, f.layers.empty() ? NAN : f.layers.front().max_logit, NAN,
                                NAN };
            if (const auto it = diag["tensors"].find(probe_tensor); it != diag["tensors"].end())
            {
                const auto num = [](const nlohmann::json& v)
                { return v.is_number() ? v.get<double>() : NAN; };
                sample.probe_grad_rms = num((*it)["grad_rms"]);
                sample.probe_update_rms = num((*it)["update_rms"]);
            }
            m_result.diag_history.push_back(sample);
            m_result.last_diagnostics = diag;
            for (auto& w : m_warnings.check(m_step, diag))
            {
                log_line(w.to_json());
                m_result.warnings.push_back(std::move(w));
            }
        }

    public:
        /// Thresholds of the early-warning rules (with a diagnostics policy; defaults from the paper).
        void set_warning_config(const warning_config& c)
        {
            m_warnings = early_warnings(c, m_opt.config().adamw.eps);
        }

    private:
        static std::string state_tensor_name(std::size_t s, const std::string& param)
        {
            return "optimizer." + std::string(O::state_names[s]) + "." + param;
        }

        std::uint64_t data_fingerprint() const
        {
            std::uint64_t h = fnv1a64(std::as_bytes(m_data.train()));
            return fnv1a64(std::as_bytes(m_data.validation()), h);
        }

        nlohmann::json progress_json() const
        {
            return { { "l0", m_result.l0 },
                     { "best_val_loss", m_result.best_val_loss },
                     { "final_val_loss", m_result.final_val_loss },
                     { "evals", m_result.evals },
                     { "train_seconds", m_result.train_seconds } };
        }

        /// A fresh run starts a fresh log (header first). A resumed run keeps the lines up to the
        /// checkpoint's step, drops any logged after it (they will be logged again), and notes the resume.
        void prepare_metrics_log()
        {
            const std::filesystem::path path = m_train.metrics_path;
            if (!m_resumed)
            {
                const std::string text = header_json().dump() + "\n";
                write_file_atomic(path, std::as_bytes(std::span(text)));
                return;
            }
            std::string kept;
            for (const auto& j : read_jsonl(path)) // drops a torn last line from a crash
            {
                const bool after = j.contains("step") && j["step"].is_number() &&
                                   j.value("type", "") != "header" && j["step"].get<std::size_t>() > m_step;
                if (!after && j.value("type", "") != "end")
                {
                    kept += j.dump() + "\n";
                }
            }
            if (kept.empty())
            {
                kept = header_json().dump() + "\n";
            }
            kept +=
              nlohmann::json{
                  { "type", "resume" }, { "step", m_step }, { "threads", num_threads() }
              }.dump() +
              "\n";
            write_file_atomic(path, std::as_bytes(std::span(kept)));
        }

        void log_line(const nlohmann::json& j) const
        {
            if (!m_train.metrics_path.empty())
            {
                append_line(m_train.metrics_path, j.dump(), false);
            }
        }

        static nlohmann::json finite_or_null(double x)
        {
            return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr);
        }

        void log_step(const step_info& s) const
        {
            nlohmann::json line = { { "type", "step" },
                                    { "step", s.step + 1 },
                                    { "lr", s.lr },
                                    { "loss", finite_or_null(s.loss.loss) },
                                    { "ce", finite_or_null(s.loss.ce) },
                                    { "zloss", finite_or_null(s.loss.aux) },
                                    { "grad_norm", finite_or_null(s.grad_norm) },
                                    { "clip", s.clip },
                                    { "tokens_per_s", s.tokens_per_second } };
            if (s.diagnostics) // the headline signals inline; everything in the following "diag" line
            {
                for (const char* k : { "max_attn_logit", "log_z_mean" })
                {
                    line[k] = (*s.diagnostics)[k];
                }
            }
            log_line(line);
            if (s.diagnostics)
            {
                auto j = *s.diagnostics;
                j["type"] = "diag";
                j["step"] = s.step + 1;
                log_line(j);
            }
        }

        void log_eval(std::size_t step, const loss_parts& l) const
        {
            log_line({ { "type", "eval" },
                       { "step", step },
                       { "val_loss", finite_or_null(l.loss) },
                       { "val_ce", finite_or_null(l.ce) },
                       { "val_zloss", finite_or_null(l.aux) } });
        }

        void log_end() const
        {
            log_line({ { "type", "end" },
                       { "step", m_result.steps_done },
                       { "diverged", m_result.diverged },
                       { "diverged_step", m_result.diverged_step },
                       { "reason", m_result.diverged_reason },
                       { "interrupted", m_result.interrupted },
                       { "l0", m_result.l0 },
                       { "final_val_loss", m_result.final_val_loss },
                       { "best_val_loss", m_result.best_val_loss },
                       { "train_seconds", m_result.train_seconds } });
        }

        run_result finish_diverged(std::size_t step, std::string reason)
        {
            m_result.diverged = true;
            m_result.diverged_step = step;
            m_result.diverged_reason = std::move(reason);
            m_result.final_val_loss = m_result.l0; // the LR-sensitivity metric counts a diverged run as ℓ0
            m_step = m_train.steps;                // a diverged run is finished
            log_end();
            return m_result;
        }

        run_result finish_interrupted()
        {
            m_result.interrupted = true;
            if (!m_train.checkpoint_dir.empty())
            {
                save_checkpoint();
            }
            log_end();
            return m_result;
        }

        train_config m_train;
        const token_splits& m_data;
        model_type m_model;
        optimizer_type m_opt;
        token_batch m_batch;
        run_result m_result;
        std::size_t m_step = 0;
        bool m_initialised = false, m_resumed = false;
        early_warnings m_warnings{ warning_config{}, m_opt.config().adamw.eps };
    };
} // namespace ballast

#endif
