#ifndef BALLAST_TRAIN_RUN_RESULT_HPP
#define BALLAST_TRAIN_RUN_RESULT_HPP

/// @file
/// `run_result`: how a training run ended, what the trainer returns and the study records. The part a
/// resumed run carries on from (ℓ0, the best and last validation loss, the evaluations, the training time)
/// is the checkpoint manifest's "progress" object, written and read here (`progress_json`,
/// `restore_progress`).

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <ballast/train/warnings.hpp>

namespace ballast
{
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

    /// The checkpoint manifest's "progress" object: {"l0", "best_val_loss", "final_val_loss", "evals",
    /// "train_seconds"}.
    inline nlohmann::json progress_json(const run_result& r)
    {
        return { { "l0", r.l0 },
                 { "best_val_loss", r.best_val_loss },
                 { "final_val_loss", r.final_val_loss },
                 { "evals", r.evals },
                 { "train_seconds", r.train_seconds } };
    }

    /// `r` carried on from a checkpoint's "progress" object at `step` steps: the fields `progress_json`
    /// writes, and `steps_done`. Throws (nlohmann::json's out_of_range) when a field is missing; leaves
    /// every other field of `r` as it was.
    inline run_result restore_progress(run_result r, const nlohmann::json& progress, std::size_t step)
    {
        r.l0 = progress.at("l0").get<double>();
        r.best_val_loss = progress.at("best_val_loss").get<double>();
        r.final_val_loss = progress.at("final_val_loss").get<double>();
        r.evals = progress.at("evals").get<std::vector<std::pair<std::size_t, double>>>();
        r.steps_done = step;
        r.train_seconds = progress.at("train_seconds").get<double>();
        return r;
    }
} // namespace ballast

#endif
