#ifndef BALLAST_EXAMPLES_SUPPORT_ESTIMATE_HPP
#define BALLAST_EXAMPLES_SUPPORT_ESTIMATE_HPP

// How long a run takes, before it starts (`study --dry-run`): a cost model fitted on measured step times.
//
//   seconds per run = steps * batch * seq * (a * flops_per_token + b)      (training)
//                   + evals * eval_batches * batch * seq * (a * flops_per_token + b) / 3   (forward only)
//   flops_per_token = 6 * N + 12 * L * seq * d                             (Kaplan-style: matmuls forward
//                                                                           and backward, plus attention)
//   N = L * (4 + 2 * mlp_ratio) * d^2 + 2 * vocab * d                      (blocks, embedding, unembedding)
//
// `a` (seconds per FLOP) and `b` (seconds per token: data, norms, softmax, optimizer per token) were
// fitted by least squares on 1-thread `train` runs (tools/fit_step_cost.py measures and fits them):
// paper_default + AdamW, batch 8 x seq 64, 60 steps, sizes d32_L2_H2, d64_L2_H4, d128_L2_H8, d128_L4_H8
// (fit errors +3%, -11%, +7%, -2%). Measured on 2026-12-01 on the project's development machine (a
// 2-core AMD EPYC VM with AVX-512, GCC 12 -O3 -march=native) while ~5 other engineers were compiling on
// it: the machine was loaded, so the fit uses each run's CPU time (user + system), which for one thread
// approximates its time alone; the wall-clock estimate assumes the cores are free. Check: the default
// study (56 runs) is estimated at about 2 min on 2 cores; it took 2 min 20 s on the idle machine (README).

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <string>
#include <thread>

#include <ballast/model/config.hpp>
#include <ballast/train/train_config.hpp>

namespace ballast::cli
{
    struct step_cost_model
    {
        double seconds_per_flop = 7.59e-12; ///< a
        double seconds_per_token = 1.44e-6; ///< b
    };

    /// The constants measured on the development machine (see the file comment).
    inline constexpr step_cost_model measured_step_cost{};

    /// FLOPs per trained token (forward and backward) of a model at sequence length `seq`.
    inline double flops_per_token(const model_config& m, std::size_t seq)
    {
        const double d = static_cast<double>(m.d_model), l = static_cast<double>(m.n_layers);
        const double n =
          l * (4.0 + 2.0 * static_cast<double>(m.mlp_ratio)) * d * d + 2.0 * static_cast<double>(m.vocab) * d;
        return 6.0 * n + 12.0 * l * static_cast<double>(seq) * d;
    }

    /// Estimated seconds of one run on one thread.
    inline double run_seconds(const model_config& m, const train_config& t,
                              const step_cost_model& c = measured_step_cost)
    {
        const double tokens = static_cast<double>(t.batch * t.seq);
        const double per_token = c.seconds_per_flop * flops_per_token(m, t.seq) + c.seconds_per_token;
        const double evals = 2.0 + (t.eval_interval ? static_cast<double>(t.steps / t.eval_interval)
                                                    : 0.0); // start, end, interval
        return static_cast<double>(t.steps) * tokens * per_token +
               evals * static_cast<double>(t.eval_batches) * tokens * per_token / 3.0;
    }

    /// Wall-clock seconds of `runs` one-thread runs totalling `cpu_seconds`, `jobs` at a time (0: one per
    /// hardware thread), each with `threads_per_run` threads (assumed to scale perfectly).
    inline double study_wall_seconds(double cpu_seconds, std::size_t runs, int jobs, int threads_per_run)
    {
        const int hw = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
        const std::size_t slots = static_cast<std::size_t>(jobs > 0 ? jobs : hw);
        const double concurrent = static_cast<double>(std::max<std::size_t>(1, std::min(slots, runs)));
        const double cores = std::min<double>(hw, concurrent * std::max(1, threads_per_run));
        return cpu_seconds / cores;
    }

    /// "0.4 s", "42 s", "7.5 min", "3.2 h".
    inline std::string human_duration(double s)
    {
        char buf[32];
        if (s < 10)
        {
            std::snprintf(buf, sizeof buf, "%.1f s", s);
        }
        else if (s < 90)
        {
            std::snprintf(buf, sizeof buf, "%.0f s", s);
        }
        else if (s < 5400)
        {
            std::snprintf(buf, sizeof buf, "%.1f min", s / 60);
        }
        else
        {
            std::snprintf(buf, sizeof buf, "%.1f h", s / 3600);
        }
        return buf;
    }
} // namespace ballast::cli

#endif
