#ifndef BALLAST_TRAIN_TRAIN_CONFIG_HPP
#define BALLAST_TRAIN_TRAIN_CONFIG_HPP

/// @file
/// `train_config`: the numbers of one training run, as a reflected aggregate (docs/training.md).

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include <boost/hana/adapt_struct.hpp>
#include <nlohmann/json.hpp>

#include <ballast/core/config.hpp>
#include <ballast/core/reflect.hpp>
#include <ballast/model/config.hpp>
#include <ballast/train/schedule.hpp>

namespace ballast
{
    /// The run's numbers, defaults from the paper scaled to a CPU proxy (docs/training.md). Fields under
    /// "run control" may change between a checkpoint and its resume; all others must match.
    struct train_config
    {
        std::size_t steps = 1000; ///< optimizer steps
        std::size_t batch = 16;   ///< sequences per step
        std::size_t seq = 64;     ///< tokens per sequence (≤ model context)
        double lr = 1e-2;         ///< peak learning rate η
        schedule_kind schedule = schedule_kind::cosine;
        std::size_t warmup = 50;        ///< linear warm-up steps
        double min_lr = 1e-5;           ///< absolute LR floor of cosine/linear/WSD (paper: 1e-5)
        double decay_fraction = 0.2;    ///< WSD: fraction of steps spent decaying
        double val_fraction = 0.1;      ///< last fraction of the corpus held out for validation
        std::size_t eval_interval = 0;  ///< evaluate every this many steps (0: at the start and end only)
        std::size_t eval_batches = 8;   ///< validation batches per evaluation (fixed windows)
        double divergence_factor = 3.0; ///< diverged when the training loss exceeds this × ln(vocab)
        std::uint64_t seed = 1;         ///< initialisation and batch order
        /// Gradient accumulation: the step's `batch` sequences (the global batch) are computed as this many
        /// microbatches of batch / microbatches sequences (must divide batch); with K data-parallel ranks,
        /// K must divide it. 1: no accumulation. docs/training.md gives the exact arithmetic.
        std::size_t microbatches = 1;
        // -- run control --------------------------------------------------------------------------------
        int threads = 0;                     ///< worker threads (0: leave as is); results do not depend on it
        std::size_t log_interval = 10;       ///< a metrics line every this many steps (0: none)
        std::size_t checkpoint_interval = 0; ///< checkpoint every this many steps (0: only at end/signal)
        /// Also checkpoint once this many seconds of training have passed since the last one (0: off), so a
        /// SIGKILL loses at most that much work by default. The wait stretches to 100× the last write's
        /// duration, which keeps the time spent writing under 1% of the run (docs/hardening.md).
        double checkpoint_seconds = 300;
        std::string checkpoint_dir;          ///< where checkpoints go (empty: no checkpoints)
        std::string metrics_path;            ///< JSONL metrics log (empty: none)
        bool handle_signals = false;         ///< SIGINT/SIGTERM: checkpoint and stop cleanly
        std::size_t diag_interval =
          10; ///< with a diagnostics policy: record every this many steps (0: never)

        bool operator==(const train_config&) const = default;

        void validate(const model_config& m) const
        {
            constexpr const char* where = "train_config";
            BALLAST_CHECK(steps >= 1, where, "steps must be >= 1");
            BALLAST_CHECK(batch >= 1, where, "batch must be >= 1");
            BALLAST_CHECK(microbatches >= 1 && batch % microbatches == 0, where, "microbatches (",
                          microbatches, ") must be >= 1 and divide batch (", batch, ")");
            BALLAST_CHECK(seq >= 1 && seq <= m.context, where, "seq must be in [1, context = ", m.context,
                          "], got ", seq);
            BALLAST_CHECK(warmup <= steps, where, "warmup (", warmup, ") exceeds steps (", steps, ")");
            BALLAST_CHECK(eval_batches >= 1, where, "eval_batches must be >= 1");
            BALLAST_CHECK(divergence_factor > 0, where, "divergence_factor must be > 0, got ",
                          divergence_factor);
            BALLAST_CHECK(threads >= 0, where, "threads must be >= 0, got ", threads);
            BALLAST_CHECK(std::isfinite(checkpoint_seconds) && checkpoint_seconds >= 0, where,
                          "checkpoint_seconds must be >= 0 and finite, got ", checkpoint_seconds);
            schedule_of().validate();
        }

        lr_schedule schedule_of() const
        {
            return { .kind = schedule,
                     .peak_lr = lr,
                     .min_lr = min_lr,
                     .warmup = warmup,
                     .total = steps,
                     .decay_fraction = decay_fraction };
        }
    };

} // namespace ballast

BOOST_HANA_ADAPT_STRUCT(ballast::train_config, steps, batch, seq, lr, schedule, warmup, min_lr,
                        decay_fraction, val_fraction, eval_interval, eval_batches, divergence_factor, seed,
                        microbatches, threads, log_interval, checkpoint_interval, checkpoint_seconds,
                        checkpoint_dir, metrics_path, handle_signals, diag_interval);

template <>
struct ballast::field_docs<ballast::train_config>
{
    static constexpr std::array<field_doc, 22> fields{ {
      { "steps", "optimizer steps (the run's length); >= 1" },
      { "batch", "sequences per optimizer step; >= 1" },
      { "seq", "tokens per sequence; 1 .. --context" },
      { "lr", "peak learning rate eta, reached at the end of warm-up" },
      { "schedule", "learning-rate schedule after warm-up" },
      { "warmup", "linear warm-up length in steps (the paper uses 5% of --steps); <= --steps" },
      { "min_lr", "absolute LR floor of the cosine, linear and WSD schedules (paper: 1e-5)" },
      { "decay_fraction",
        "warmup_stable_decay only: fraction of the steps spent decaying to --min-lr; 0 .. 1" },
      { "val_fraction", "fraction of the corpus (its end) held out for validation; 0 .. 1" },
      { "eval_interval", "validation every this many steps (0: only at the start and the end)" },
      { "eval_batches", "validation batches per evaluation (fixed windows, the same every time); >= 1" },
      { "divergence_factor", "a run has diverged when its training loss exceeds this x ln(vocab), or is not "
                             "finite; > 0" },
      { "seed", "seed of the initialisation and of the batch order" },
      { "microbatches", "microbatches per step (gradient accumulation): the step's batch is split into this "
                        "many of batch/microbatches sequences, summed in a fixed order; must divide --batch; "
                        "with K data-parallel ranks K must divide it" },
      { "threads",
        "worker threads of the run (0: OMP_NUM_THREADS, else all cores); results do not depend on it" },
      { "log_interval", "a line in metrics.jsonl every this many steps (0: none)" },
      { "checkpoint_interval", "checkpoint every this many steps (0: only at the end and on a signal)" },
      { "checkpoint_seconds", "also checkpoint when this many seconds of training have passed since the last "
                              "checkpoint (0: off); stretched to 100x the last write's time, so writing stays "
                              "under 1% of the run" },
      { "checkpoint_dir", "directory for checkpoints (empty: the program's default, or none)" },
      { "metrics_path", "JSONL metrics log (empty: the program's default, or none)" },
      { "handle_signals", "on SIGINT/SIGTERM, checkpoint and stop cleanly (the programs turn it on)" },
      { "diag_interval", "record diagnostics (max attention logit, log Z, update and gradient RMS) every "
                         "this many steps when diagnostics are on (0: never)" },
    } };
};
static_assert(ballast::documented<ballast::train_config>);

namespace ballast
{
    /// The fields a resume must agree on (everything but run control), as JSON. `microbatches` is left out
    /// when it is 1, so that runs, checkpoints and study lines without accumulation read exactly as before
    /// the field existed.
    inline nlohmann::json identity_json(const train_config& c)
    {
        auto j = to_json(c);
        if (c.microbatches == 1)
        {
            j.erase("microbatches");
        }
        for (const char* k : { "threads", "log_interval", "checkpoint_interval", "checkpoint_seconds",
                               "checkpoint_dir", "metrics_path", "handle_signals", "diag_interval" })
        {
            j.erase(k);
        }
        return j;
    }
} // namespace ballast

#endif
