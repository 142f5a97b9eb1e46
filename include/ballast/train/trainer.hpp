#ifndef BALLAST_TRAIN_TRAINER_HPP
#define BALLAST_TRAIN_TRAINER_HPP

/// @file
/// `trainer<PolicySet, Optimizer, T>`: the training loop a study runs thousands of times.
///
/// One step: draw batch `step` from (seed, step) → forward and backward → global gradient norm →
/// divergence check → clipping factor → one fused optimizer pass. Around it: evaluation on the fixed
/// validation set (ℓ0 at initialisation, then every `eval_interval` steps and at the end), the JSONL
/// metrics log (train/metrics_log.hpp), checkpoints (every `checkpoint_interval` steps, every
/// `checkpoint_seconds` of training by default, at the end and on SIGINT/SIGTERM; train/checkpoint.hpp),
/// signals (core/signals.hpp) and callbacks (train/callbacks.hpp).
///
/// - **Stops** (a signal, or a callback's stop) are honoured after the step, and between the batches of
///   an evaluation: the evaluation in progress is abandoned, the checkpoint is of its step, and the
///   resumed run does that evaluation first, so the result is that of an uninterrupted run.
///
/// - **Divergence** (a NaN/Inf loss or gradient norm, a training loss above `divergence_factor·ln V`, a
///   non-finite validation loss) ends the run cleanly: `run_result` says diverged, at which step and why,
///   and the metrics log gets an "end" line. Nothing is thrown; the last good checkpoint stays.
/// - **Resume** is bit-identical: everything a step depends on is the weights, the optimizer state, the
///   step count and (seed, step), and all of it is in the checkpoint.
/// - **Callbacks** are a compile-time pack passed to `run`; each may define any of on_step_end,
///   on_eval and on_gradients and may return `callback_action::stop` (train/callbacks.hpp). A hook no
///   callback defines costs nothing.
///
/// - **Gradient accumulation and data parallelism** (train_config::microbatches = M, a communicator of
///   K ranks, K | M): rank r computes microbatches r·M/K … (r+1)·M/K − 1 of every step. The step's gradient
///   is, per element, ((g_0 + g_1) + … + g_{M−1}) / M, summed in m order whatever K is: each rank sends
///   the chunk c of its microbatch gradients to the rank owning chunk c (alltoallv of bytes), the owner
///   sums in m order, and an allgather of bytes gives every rank the same gradient. The loss is summed the
///   same way. So a run gives the same bits on 1 process with M microbatches and on any K | M ranks; the
///   norm, the clipping factor, the update, evaluation (every rank evaluates the whole validation set) and
///   every decision follow. Rank 0 alone writes the metrics log and checkpoints, in the single-process
///   format; a run resumes at any K. With M = 1 and no communicator the step is exactly the plain one.
///
/// docs/training.md documents the metrics schema, the checkpoint layout and the microbatch arithmetic.

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <ballast/core/aligned.hpp>
#include <ballast/core/comm.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/file.hpp>
#include <ballast/core/json.hpp>
#include <ballast/core/lock.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/core/reflect.hpp>
#include <ballast/core/signals.hpp>
#include <ballast/kernels/reduce.hpp>
#include <ballast/model/diagnostics.hpp>
#include <ballast/model/transformer.hpp>
#include <ballast/train/callbacks.hpp>
#include <ballast/train/checkpoint.hpp>
#include <ballast/train/data.hpp>
#include <ballast/train/metrics_log.hpp>
#include <ballast/train/microbatch_sum.hpp>
#include <ballast/train/optimizer.hpp>
#include <ballast/train/run_checks.hpp>
#include <ballast/train/run_result.hpp>
#include <ballast/train/schedule.hpp>
#include <ballast/train/step_diagnostics.hpp>
#include <ballast/train/train_config.hpp>
#include <ballast/train/warnings.hpp>
#include <ballast/version.hpp>

namespace ballast
{
    /// Trains a `transformer<P, T>` with optimizer policy `O` on a token split.
    template <policy_set P, optim::optimizer_policy O = optim::adamw<>, class T = float,
              diagnostics::diagnostics_policy Diag = diagnostics::none>
    class trainer
    {
    public:
        using model_type = transformer<P, T, Diag>;
        using optimizer_type = optimizer<O, T>;

        /// Builds and initialises the model from `train.seed`. `data` must outlive the trainer and must have
        /// been split with `train.seq`. With a communicator `comm` (its K ranks each construct a trainer with
        /// the same arguments) the run is data-parallel: the ranks first exchange a fingerprint of their
        /// configs, data and build, and every rank throws the same ballast::error when they differ or when
        /// K does not divide train.microbatches. `comm` must outlive the trainer.
        trainer(const model_config& model, const train_config& train, const optimizer_config& opt,
                const token_splits& data, communicator* comm = nullptr)
          : m_comm(comm != nullptr && comm->size() > 1 ? comm : nullptr)
          , m_ranks_agree(check_data_parallel_ranks(m_comm, rank_fingerprint(model, train, opt, data), train,
                                                    Diag::enabled))
          , m_fits(check_run_memory<model_type, optimizer_type::state_count, T>(m_comm, model, train))
          , m_train(train)
          , m_data(data)
          , m_model(model)
          , m_opt(m_model.layout(), opt)
          , m_log(m_comm != nullptr && m_comm->rank() != 0 ? std::string() : m_train.metrics_path)
        {
            m_train.validate(model);
            BALLAST_CHECK(data.seq() == train.seq, "trainer", "data was split for seq ", data.seq(),
                          ", the run uses seq ", train.seq);
            m_model.init(train.seed);
            m_result.policy_set = std::string(P::name);
            m_result.optimizer = std::string(O::name);
            if (m_comm != nullptr || m_train.microbatches > 1)
            {
                m_sum = microbatch_sum<T>(m_comm, m_train.microbatches, m_model.layout().total());
            }
        }

        /// Number of data-parallel ranks (1 without a communicator) and this trainer's rank.
        std::size_t ranks() const noexcept { return m_comm ? static_cast<std::size_t>(m_comm->size()) : 1; }
        std::size_t rank() const noexcept { return m_comm ? static_cast<std::size_t>(m_comm->rank()) : 0; }
        /// Whether this trainer writes the metrics log and checkpoints (rank 0).
        bool is_writer() const noexcept { return rank() == 0; }

        /// Fingerprint of what data-parallel ranks must agree on: the run's identity (policy set, optimizer,
        /// dtype, model, train and optimizer configs, data) and the build (train/run_checks.hpp).
        static std::uint64_t rank_fingerprint(const model_config& model, const train_config& train,
                                              const optimizer_config& opt, const token_splits& data)
        {
            return run_fingerprint({ { "policy_set", std::string(P::name) },
                                     { "optimizer", std::string(O::name) },
                                     { "dtype", std::is_same_v<T, float> ? "float32" : "float64" },
                                     { "diagnostics", Diag::enabled },
                                     { "model", to_json(model) },
                                     { "train", identity_json(train) },
                                     { "handle_signals", train.handle_signals },
                                     { "optimizer_config", to_json(opt) },
                                     { "data", data.identity() } });
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
                     { "data", m_data.identity() } };
        }

        /// The metrics log's header line: every config value (reflected), the policy-set and optimizer
        /// names, and the build.
        nlohmann::json header_json() const
        {
            auto j = identity();
            j["type"] = "header";
            j["train"] = to_json(m_train);
            if (m_train.microbatches == 1)
            {
                j["train"].erase("microbatches"); // as before the field existed (identity_json too)
            }
            j["ballast_version"] = version_string;
            j["threads"] = num_threads();
            j["parameters"] = m_model.layout().count();
            return j;
        }

        /// Evaluate on the fixed validation set (mean over `eval_batches` batches).
        loss_parts evaluate()
        {
            return *evaluate_unless([] { return false; });
        }

        /// Save a checkpoint of the current state into `dir` (default: the config's checkpoint_dir).
        /// With a communicator only rank 0 writes (the others return at once).
        void save_checkpoint(std::filesystem::path dir = {}) const
        {
            if (!is_writer())
            {
                return;
            }
            if (dir.empty())
            {
                dir = m_train.checkpoint_dir;
            }
            BALLAST_CHECK(!dir.empty(), "trainer", "no checkpoint directory configured");
            std::array<std::span<const T>, optimizer_type::state_count> state;
            for (std::size_t s = 0; s < optimizer_type::state_count; ++s)
            {
                state[s] = m_opt.state(s);
            }
            auto w = run_checkpoint_tensors<T>(m_model.layout(), m_model.parameters(), O::state_names, state);
            w.set_metadata("format", "ballast-checkpoint-tensors-v1");
            w.set_metadata("policy_set", std::string(P::name));
            auto m = identity();
            m["rng"] = { { "seed", m_train.seed },
                         { "scheme",
                           "init: splitmix64(seed, tensor); batch t: splitmix64(seed ^ salt, t)" } };
            m["progress"] = progress_json(m_result);
            write_checkpoint(dir, m_step, std::move(m), std::move(w));
        }

        /// Resume from the checkpoint in `dir`. Throws ballast::error (and changes nothing) when it is
        /// corrupt or belongs to a different run (the message lists the differing settings).
        void resume(const std::filesystem::path& dir)
        {
            const auto ck = read_checkpoint(dir);
            const std::size_t step = check_run_checkpoint(ck, identity(), dir, m_train.steps);
            // Read into copies first, so a failure leaves the trainer untouched.
            aligned_vector<T> params(m_model.parameters().begin(), m_model.parameters().end());
            std::array<aligned_vector<T>, optimizer_type::state_count> state;
            std::array<std::span<T>, optimizer_type::state_count> state_spans;
            for (std::size_t s = 0; s < optimizer_type::state_count; ++s)
            {
                state[s].assign(m_opt.state(s).begin(), m_opt.state(s).end());
                state_spans[s] = state[s];
            }
            read_run_checkpoint_tensors<T>(ck.tensors, m_model.layout(), O::state_names, std::span<T>(params),
                                           state_spans);
            run_result r = restore_progress(m_result, ck.manifest["progress"], step);
            std::ranges::copy(params, m_model.parameters().begin());
            for (std::size_t s = 0; s < optimizer_type::state_count; ++s)
            {
                std::ranges::copy(state[s], m_opt.state(s).begin());
            }
            m_opt.set_steps_taken(static_cast<std::int64_t>(step));
            m_step = step;
            m_result = std::move(r);
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
            stop_signal_scope signals(m_train.handle_signals);
            std::optional<directory_lock> lock; // one writer per checkpoint directory
            if (!m_train.checkpoint_dir.empty() && is_writer())
            {
                lock.emplace(m_train.checkpoint_dir);
            }
            m_clock.start();
            if (m_log.enabled() && m_resumed)
            {
                m_log.resume(header_json(), m_step, num_threads());
            }
            else if (m_log.enabled())
            {
                m_log.start(header_json());
            }
            // The evaluation owed at this step: ℓ0 of a fresh run, or one a stop abandoned before the
            // checkpoint this run resumed from was written. Every rank takes the same branch.
            if (eval_owed())
            {
                bool stop = false;
                const auto e = evaluate_now(signals, stop, callbacks...);
                if (e == eval_end::diverged)
                {
                    return finish_diverged(m_step - 1, "non-finite validation loss");
                }
                if (any_rank(e == eval_end::stopped || stop || signals.pending()))
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
                [[maybe_unused]] const bool record =
                  Diag::enabled && m_train.diag_interval != 0 && t % m_train.diag_interval == 0;
                loss_parts loss;
                std::span<T> grads;
                if (!m_sum.active())
                {
                    m_data.train_batch(m_train.seed, t, m_train.batch, m_batch);
                    if constexpr (Diag::enabled)
                    {
                        m_model.set_recording(record);
                    }
                    loss =
                      m_model.forward_backward(m_batch.inputs, m_batch.targets, m_batch.batch, m_batch.seq);
                    grads = m_model.gradients();
                }
                else
                {
                    loss = accumulated_step(t, record);
                    grads = m_sum.gradient();
                }
                const double norm =
                  std::sqrt(static_cast<double>(kernels::sum_squares(grads.data(), grads.size())));
                bool stop = false;
                if constexpr ((has_gradient_hook<std::remove_cvref_t<Callbacks>, T> || ... || false))
                {
                    stop = notify_callbacks(
                      on_gradients_hook,
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
                        diag = tensor_stats_before<optimizer_type>(m_model.layout(), std::span<const T>(m_model.parameters()),
                                                                 std::span<const T>(grads));
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
                    m_log.step(info);
                }
                stop = notify_callbacks(on_step_end_hook, info, callbacks...) || stop;
                if (is_eval_step(m_step))
                {
                    const auto e = evaluate_now(signals, stop, callbacks...);
                    if (e == eval_end::diverged)
                    {
                        return finish_diverged(t, "non-finite validation loss");
                    }
                    stop = stop || e == eval_end::stopped;
                }
                if (!stop && m_step < m_train.steps && is_writer() && !m_train.checkpoint_dir.empty() &&
                    m_clock.due(m_step))
                {
                    m_clock.write([this] { save_checkpoint(); });
                }
                if (any_rank(signals.pending() || stop))
                {
                    return finish_interrupted();
                }
            }
            m_result.interrupted = false;
            if (!m_train.checkpoint_dir.empty() && is_writer())
            {
                save_checkpoint();
            }
            m_log.end(m_result);
            return m_result;
        }

        /// Thresholds of the early-warning rules (with a diagnostics policy; defaults from the paper).
        void set_warning_config(const warning_config& c)
        {
            m_warnings = early_warnings(c, m_opt.config().adamw.eps);
        }

        /// The early warnings fired so far (with a diagnostics policy), oldest first; callbacks read it to
        /// report a warning as it fires.
        const std::vector<early_warning>& warnings() const noexcept { return m_result.warnings; }

        /// Interval checkpoints (by steps or by time) this trainer has written; the end-of-run and
        /// interruption checkpoints are not counted.
        std::size_t checkpoints_written() const noexcept { return m_clock.written(); }

    private:
        // Tag of the trainer's own collective (run_checks.hpp uses 1701, microbatch_sum.hpp 1702-1704).
        static constexpr int tag_stop = 1705;

        /// True on every rank when `flag` is true on any rank (a no-op without a communicator).
        bool any_rank(bool flag)
        {
            if (m_comm == nullptr)
            {
                return flag;
            }
            const auto all = allgather_value(*m_comm, tag_stop, static_cast<std::uint8_t>(flag ? 1 : 0));
            return std::ranges::any_of(all, [](std::uint8_t f) { return f != 0; });
        }

        /// One step's forward/backward as M microbatches (this rank's block of them), combined by m_sum
        /// into the step's gradient and loss (train/microbatch_sum.hpp: the same bits on any K).
        loss_parts accumulated_step(std::size_t t, [[maybe_unused]] bool record)
        {
            const std::size_t mb = m_train.microbatches, local = m_sum.local(), first = m_sum.first();
            for (std::size_t j = 0; j < local; ++j)
            {
                m_data.train_microbatch(m_train.seed, t, m_train.batch, first + j, mb, m_batch);
                if constexpr (Diag::enabled)
                {
                    m_model.set_recording(record && j + 1 == local); // the forward statistics of the last one
                }
                const auto loss =
                  m_model.forward_backward(m_batch.inputs, m_batch.targets, m_batch.batch, m_batch.seq);
                m_sum.add(j, m_model.gradients(), loss);
            }
            return m_sum.finish();
        }

        /// The diagnostics of a recorded step after the update (train/step_diagnostics.hpp), kept in the
        /// result, and the early-warning rules checked against them.
        void complete_diagnostics(nlohmann::json& diag) requires(Diag::enabled)
        {
            m_result.diag_history.push_back(complete_step_diagnostics(diag, m_model.layout(), m_opt,
                                                                      m_model.forward_diagnostics(), m_step));
            m_result.last_diagnostics = diag;
            for (auto& w : m_warnings.check(m_step, diag))
            {
                m_log.write(w.to_json());
                m_result.warnings.push_back(std::move(w));
            }
        }

        /// Is there a validation after `step` steps? (Every eval_interval steps, and at the end; ℓ0 at
        /// step 0 is `eval_owed`'s business.)
        bool is_eval_step(std::size_t step) const noexcept
        {
            return (m_train.eval_interval && step % m_train.eval_interval == 0) || step == m_train.steps;
        }

        /// Is the evaluation of the current step still to do? True for a fresh run (ℓ0), and after a resume
        /// from a checkpoint written when a stop abandoned the evaluation of its step.
        bool eval_owed() const noexcept
        {
            if (m_result.evals.empty())
            {
                return true;
            }
            return m_step > 0 && is_eval_step(m_step) && m_result.evals.back().first != m_step;
        }

        enum class eval_end
        {
            recorded, ///< evaluated, recorded, logged and handed to the callbacks
            stopped,  ///< a stop request came between two validation batches: nothing recorded
            diverged  ///< the validation loss is not finite (not checked for ℓ0)
        };

        /// The validation loss, asking `stop()` before each batch; nullopt when it said stop.
        template <class Stop>
        std::optional<loss_parts> evaluate_unless(Stop&& stop)
        {
            loss_parts sum;
            for (std::size_t i = 0; i < m_train.eval_batches; ++i)
            {
                if (stop())
                {
                    return std::nullopt;
                }
                m_data.validation_batch(i, m_train.eval_batches, m_train.batch, m_batch);
                const auto l = m_model.evaluate(m_batch.inputs, m_batch.targets, m_batch.batch, m_batch.seq);
                sum.loss += l.loss;
                sum.ce += l.ce;
                sum.aux += l.aux;
            }
            const double k = static_cast<double>(m_train.eval_batches);
            return loss_parts{ sum.loss / k, sum.ce / k, sum.aux / k };
        }

        /// Evaluate at the current step, polling the stop requests (the signal scope and every callback's
        /// `stop_requested`) before each validation batch. On success record the result (ℓ0 at a fresh
        /// start) and notify on_eval; `stop` is or-ed with the callbacks' answer.
        template <class... Callbacks>
        eval_end evaluate_now(const stop_signal_scope& signals, bool& stop, Callbacks&... callbacks)
        {
            const auto done =
              evaluate_unless([&] { return signals.pending() != 0 || any_stop_requested(callbacks...); });
            if (!done)
            {
                return eval_end::stopped;
            }
            const loss_parts ev = *done;
            if (m_result.evals.empty())
            {
                m_result.l0 = ev.ce;
                m_result.best_val_loss = ev.ce;
                m_result.final_val_loss = ev.ce;
            }
            else
            {
                if (!std::isfinite(ev.ce))
                {
                    return eval_end::diverged;
                }
                m_result.best_val_loss = std::min(m_result.best_val_loss, ev.ce);
                m_result.final_val_loss = ev.ce;
            }
            m_result.evals.emplace_back(m_step, ev.ce);
            m_log.eval(m_step, ev);
            stop = notify_callbacks(on_eval_hook, eval_info{ m_step, ev }, callbacks...) || stop;
            return eval_end::recorded;
        }

        run_result finish_diverged(std::size_t step, std::string reason)
        {
            m_result.diverged = true;
            m_result.diverged_step = step;
            m_result.diverged_reason = std::move(reason);
            m_result.final_val_loss = m_result.l0; // the LR-sensitivity metric counts a diverged run as ℓ0
            m_step = m_train.steps;                // a diverged run is finished
            m_log.end(m_result);
            return m_result;
        }

        run_result finish_interrupted()
        {
            m_result.interrupted = true;
            if (!m_train.checkpoint_dir.empty() && is_writer())
            {
                save_checkpoint();
            }
            m_log.end(m_result);
            return m_result;
        }

        communicator* m_comm = nullptr;
        bool m_ranks_agree = true;
        bool m_fits = true;
        train_config m_train;
        const token_splits& m_data;
        model_type m_model;
        optimizer_type m_opt;
        token_batch m_batch;
        run_result m_result;
        std::size_t m_step = 0;
        bool m_resumed = false;
        checkpoint_clock m_clock{ m_train.checkpoint_interval, m_train.checkpoint_seconds };
        metrics_log m_log;
        early_warnings m_warnings{ warning_config{}, m_opt.config().adamw.eps };
        microbatch_sum<T> m_sum; ///< gradient accumulation / data parallelism (inactive: M = 1, one process)
    };
} // namespace ballast

#endif
