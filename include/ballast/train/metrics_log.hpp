#ifndef BALLAST_TRAIN_METRICS_LOG_HPP
#define BALLAST_TRAIN_METRICS_LOG_HPP

/// @file
/// The metrics log of a training run: one JSON object per line (docs/training.md has the schema).
///
///   {"type": "header", …}   every config value (reflected), the names, the build (written by the trainer)
///   {"type": "eval", …}     ℓ0 at initialisation, then every eval_interval steps and at the end
///   {"type": "step", …}     every log_interval steps and on recorded diagnostics steps
///   {"type": "diag", …}     after the step line of a recorded diagnostics step (docs/diagnostics.md)
///   {"type": "warning", …}  an early-warning rule fired (train/warnings.hpp)
///   {"type": "resume", …}   a resumed run continues here
///   {"type": "end", …}      how the run ended
///
/// Every line is appended with one write (core/file.hpp), so a crash can only tear the last line. A
/// resumed run keeps the lines up to its checkpoint's step and drops later ones, which it logs again, so
/// a resumed log holds every step once. Numbers that are not finite are written as `null`.
///
/// The "diag" object's forward-pass part (attention, residual and output-logit statistics) is built here
/// too (`add_forward_diagnostics`); the per-tensor part needs the optimizer and is built by the trainer.

#include <cmath>
#include <cstddef>
#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include <ballast/core/file.hpp>
#include <ballast/core/json.hpp>
#include <ballast/core/jsonl.hpp>
#include <ballast/model/diagnostics.hpp>
#include <ballast/model/transformer.hpp>
#include <ballast/train/callbacks.hpp>
#include <ballast/train/run_result.hpp>

namespace ballast
{
    /// The "step" line of step `s` (its "step" is steps completed, from 1). With diagnostics, the headline
    /// signals `max_attn_logit` and `log_z_mean` are copied in; the rest goes to the "diag" line.
    inline nlohmann::json step_line(const step_info& s)
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
        if (s.diagnostics)
        {
            for (const char* k : { "max_attn_logit", "log_z_mean" })
            {
                line[k] = (*s.diagnostics)[k];
            }
        }
        return line;
    }

    /// The "diag" line of a recorded step: its diagnostics with "type" and "step". Requires
    /// `s.diagnostics`.
    inline nlohmann::json diag_line(const step_info& s)
    {
        auto j = *s.diagnostics;
        j["type"] = "diag";
        j["step"] = s.step + 1;
        return j;
    }

    /// The "eval" line: the validation loss after `step` steps.
    inline nlohmann::json eval_line(std::size_t step, const loss_parts& l)
    {
        return { { "type", "eval" },
                 { "step", step },
                 { "val_loss", finite_or_null(l.loss) },
                 { "val_ce", finite_or_null(l.ce) },
                 { "val_zloss", finite_or_null(l.aux) } };
    }

    /// The "end" line: how the run ended.
    inline nlohmann::json end_line(const run_result& r)
    {
        return { { "type", "end" },
                 { "step", r.steps_done },
                 { "diverged", r.diverged },
                 { "diverged_step", r.diverged_step },
                 { "reason", r.diverged_reason },
                 { "interrupted", r.interrupted },
                 { "l0", r.l0 },
                 { "final_val_loss", r.final_val_loss },
                 { "best_val_loss", r.best_val_loss },
                 { "train_seconds", r.train_seconds } };
    }

    /// The "resume" line: a resumed run continues after `step` steps with `threads` threads.
    inline nlohmann::json resume_line(std::size_t step, int threads)
    {
        return { { "type", "resume" }, { "step", step }, { "threads", threads } };
    }

    /// The max attention logit over every layer of a recorded forward pass (NaN as soon as one layer's
    /// is NaN; −∞ without layers).
    inline double max_attn_logit(const diagnostics::forward_stats& f)
    {
        double m = -std::numeric_limits<double>::infinity();
        for (const auto& l : f.layers)
        {
            m = std::isnan(l.max_logit) ? l.max_logit : std::max(m, l.max_logit);
        }
        return m;
    }

    /// Add a recorded forward pass's statistics to a "diag" object: "layers" (per layer: max_logit,
    /// max_logit_head, entropy_min, entropy_mean, q_norm_mean, k_norm_mean, qk_cos_mean, residual_rms),
    /// "max_attn_logit", "log_z_mean", "log_z_std", "log_z_min" and "logit_mean".
    inline void add_forward_diagnostics(nlohmann::json& diag, const diagnostics::forward_stats& f)
    {
        nlohmann::json layers = nlohmann::json::array();
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
        }
        diag["layers"] = std::move(layers);
        diag["max_attn_logit"] = finite_or_null(max_attn_logit(f));
        diag["log_z_mean"] = finite_or_null(f.log_z_mean);
        diag["log_z_std"] = finite_or_null(f.log_z_std);
        diag["log_z_min"] = finite_or_null(f.log_z_min);
        diag["logit_mean"] = finite_or_null(f.logit_mean);
    }

    /// Writes a run's metrics log. A default-constructed log (or one with an empty path) writes nothing.
    class metrics_log
    {
    public:
        metrics_log() = default;
        explicit metrics_log(std::filesystem::path path)
          : m_path(std::move(path))
        {
        }

        bool enabled() const noexcept { return !m_path.empty(); }
        const std::filesystem::path& path() const noexcept { return m_path; }

        /// A fresh run: the file is replaced by `header` alone (atomically).
        void start(const nlohmann::json& header) const
        {
            if (enabled())
            {
                write_text(header.dump() + "\n");
            }
        }

        /// A run resumed after `step` steps: keep the lines up to that step, drop the ones logged after it
        /// (they will be logged again) and any "end" line, start with `header` if nothing is kept (the
        /// file is missing or empty), and note the resume (`resume_line(step, threads)`). Atomic.
        void resume(const nlohmann::json& header, std::size_t step, int threads) const
        {
            if (!enabled())
            {
                return;
            }
            std::string kept;
            for (const auto& j : read_jsonl(m_path)) // drops a torn last line from a crash
            {
                const bool after = j.contains("step") && j["step"].is_number_unsigned() &&
                                   string_field(j, "type") != "header" && j["step"].get<std::size_t>() > step;
                if (!after && string_field(j, "type") != "end")
                {
                    kept += j.dump() + "\n";
                }
            }
            if (kept.empty())
            {
                kept = header.dump() + "\n";
            }
            kept += resume_line(step, threads).dump() + "\n";
            write_text(kept);
        }

        /// Append one line (not fsynced: a metrics log is not a record of results).
        void write(const nlohmann::json& line) const
        {
            if (enabled())
            {
                append_line(m_path, line.dump(), false);
            }
        }

        /// The step line, then the diag line when the step recorded diagnostics.
        void step(const step_info& s) const
        {
            write(step_line(s));
            if (s.diagnostics)
            {
                write(diag_line(s));
            }
        }

        void eval(std::size_t step, const loss_parts& l) const { write(eval_line(step, l)); }
        void end(const run_result& r) const { write(end_line(r)); }

    private:
        void write_text(const std::string& text) const
        {
            write_file_atomic(m_path, std::as_bytes(std::span(text)));
        }

        std::filesystem::path m_path;
    };
} // namespace ballast

#endif
