// The full training step as users run it: `ballast::trainer::run` (batch draw → forward/backward →
// global gradient norm → divergence checks → clipping factor → fused AdamW pass, plus the diagnostics
// work on recorded steps), for the benchmark configs of docs/performance.md and two policy sets.
//
// Configs (byte vocab 256 unless noted; pre-norm, GELU MLP 4d):
//   P1    d 128, 2 layers, 2 heads, context 64, batch 16
//   P2    d 256, 4 layers, 4 heads, context 128, batch 16
//   P3    d 512, 8 layers, 8 heads, context 256, batch 8
//   G124  GPT-2 small shape: vocab 50257 padded to 50304, d 768, 12 layers, 12 heads, context 64, batch 4
// Policy sets: `paper_default` (RoPE, per-head qk-LayerNorm, z-loss, no biases, untied head) and the
// library's GPT-2-like set `gpt2_like` (LayerNorm with bias, learned positions, no qk-norm, plain
// cross-entropy, biases, tied head).
//
// One benchmark iteration is one optimizer step through the real trainer: `trainer::run` with a callback
// that stops it after the step (the trainer has no single-step API; run() resumes where it stopped and
// evaluates ℓ0 only on its first call, which happens during set-up). Warm-up steps run during set-up and
// are not timed. The trainer is built once per process and benchmark (Google Benchmark re-enters the
// function while it sizes the iteration count), so the extra calls only add warm-up steps.
//
// Counters (wall-clock rates; `UseRealTime`):
//   tokens_per_s   batch·seq tokens per step / wall time
//   GFLOPS         model FLOPs per step / wall time, PaLM-style with attention counted as full T×T:
//                    F = tokens × (6 × (12·L·d² + d·V) + 12·L·T·d)
//                  (docs/performance.md; the same formula for every policy set, tied head or not)
//   params         parameters of the model (`layout().count()`), to check a peer implementation
//   loss           training loss of the last step (a sanity value: ~ln V on the random corpus)
//   threads        the thread count the benchmark ran with
//
// Benchmarks:
//   train_step/<policy>/<config>/threads:<t>             one step per iteration
//   diag10/<policy>/<config>/diag:<none|forward>/threads:<t>
//                  ten steps per iteration (train_config::diag_interval = 10), starting at a multiple of
//                  10, so with diagnostics::forward exactly one of them records the forward statistics,
//                  the per-tensor gradient/parameter RMS, the AdamW direction statistics and the
//                  early-warning checks (everything trainer.hpp computes on a diagnostics step; the
//                  metrics file is off, so nothing is written). The none/forward pair gives the overhead;
//                  each step is also timed alone (counters ms_first_step, the recorded one with
//                  diagnostics::forward, and ms_other_steps, medians), for an estimate within one process.
//   params/<policy>/<config>                             parameter count only (no step; fast)
//
// Thread count: the `threads` argument, applied through train_config::threads (the trainer's
// thread_scope). The corpus is random tokens (uniform over the vocabulary, 2^20 of them), so the loss
// stays near ln V and no run diverges; throughput does not depend on the token values.
//
// Environment: BALLAST_BENCH_STEPS=n fixes the timed iterations (Google Benchmark 1.7 has no flag for it);
// otherwise each config has a minimum time (P1 1 s … G124 6 s). BALLAST_BENCH_WARMUP=n sets the untimed
// warm-up steps of train_step (default 2).
//
// Profiling build (docs/performance.md): compiled with -DBALLAST_BENCH_PROFILE, the library's
// BALLAST_PROFILE_MARK points (model/transformer.hpp, train/optimizer.hpp) call `mark` below, which charges
// the wall time between consecutive marks to the family just entered, and the profile/... benchmarks report
// it per step. A normal build defines nothing: the marks compile to nothing and the profile benchmarks do
// not exist.
#ifdef BALLAST_BENCH_PROFILE
namespace ballast_bench_profile
{
    void mark(const char* family) noexcept;
}
#define BALLAST_PROFILE_MARK(family) ::ballast_bench_profile::mark(family)
#endif

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include <ballast/model/diagnostics.hpp>
#include <ballast/model/transformer.hpp>
#include <ballast/policies/policy_set.hpp>
#include <ballast/train/data.hpp>
#include <ballast/train/optimizer.hpp>
#include <ballast/train/trainer.hpp>

#ifdef BALLAST_BENCH_PROFILE
namespace ballast_bench_profile
{
    using clock = std::chrono::steady_clock;
    std::map<std::string_view, double> g_seconds; // family -> wall seconds since the last reset
    const char* g_current = nullptr;              // the family being timed (nullptr: none)
    clock::time_point g_since;

    void mark(const char* family) noexcept
    {
        const auto now = clock::now();
        if (g_current != nullptr)
        {
            g_seconds[g_current] += std::chrono::duration<double>(now - g_since).count();
        }
        g_current = std::strcmp(family, "end") == 0 ? nullptr : family;
        g_since = now;
    }

    void reset()
    {
        g_seconds.clear();
        g_current = nullptr;
    }
} // namespace ballast_bench_profile
#endif

namespace
{
    struct bench_config
    {
        const char* name;
        std::size_t vocab, d_model, n_layers, n_heads, context, batch;
        std::size_t real_vocab; ///< token ids are drawn below this (G124: GPT-2's 50257, the rest is padding)
        double min_time;        ///< seconds of timed steps when BALLAST_BENCH_STEPS is unset
    };

    constexpr std::array<bench_config, 4> configs{ {
      { "P1", 256, 128, 2, 2, 64, 16, 256, 1.0 },
      { "P2", 256, 256, 4, 4, 128, 16, 256, 2.0 },
      { "P3", 256, 512, 8, 8, 256, 8, 256, 6.0 },
      { "G124", 50304, 768, 12, 12, 64, 4, 50257, 6.0 },
    } };

    /// Model FLOPs of one training step (see the file comment).
    double step_flops(const bench_config& c)
    {
        const double tokens = static_cast<double>(c.batch * c.context);
        const double L = static_cast<double>(c.n_layers), d = static_cast<double>(c.d_model);
        const double V = static_cast<double>(c.vocab), T = static_cast<double>(c.context);
        return tokens * (6.0 * (12.0 * L * d * d + d * V) + 12.0 * L * T * d);
    }

    ballast::model_config model_of(const bench_config& c)
    {
        return { .vocab = c.vocab,
                 .d_model = c.d_model,
                 .n_layers = c.n_layers,
                 .n_heads = c.n_heads,
                 .context = c.context };
    }

    std::size_t env_size(const char* name, std::size_t fallback)
    {
        const char* v = std::getenv(name);
        if (v == nullptr || *v == '\0')
        {
            return fallback;
        }
        const long long x = std::atoll(v);
        return x > 0 ? static_cast<std::size_t>(x) : fallback;
    }

    /// Uniform random token ids in [0, real_vocab): enough windows for any batch, the same every run.
    std::vector<std::uint16_t> random_corpus(const bench_config& c)
    {
        std::mt19937_64 g(20240520);
        std::uniform_int_distribution<std::uint32_t> d(0, static_cast<std::uint32_t>(c.real_vocab - 1));
        std::vector<std::uint16_t> t(std::size_t(1) << 20);
        for (auto& x : t)
        {
            x = static_cast<std::uint16_t>(d(g));
        }
        return t;
    }

    double median(std::vector<double> v)
    {
        if (v.empty())
        {
            return 0;
        }
        std::sort(v.begin(), v.end());
        const std::size_t m = v.size() / 2;
        return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
    }

    /// Stops trainer::run after `remaining` steps (the benchmark's single-step API).
    struct stop_after
    {
        std::size_t remaining = 1;
        ballast::loss_parts last;

        ballast::callback_action on_step_end(const ballast::step_info& s)
        {
            last = s.loss;
            return --remaining == 0 ? ballast::callback_action::stop : ballast::callback_action::proceed;
        }
    };

    /// The data and the trainer of one benchmark, kept while that benchmark runs. Only one is alive at a
    /// time: a process running every benchmark would otherwise hold every model (G124 alone is ~3 GB).
    template <class P, class Diag>
    struct bench_state
    {
        using trainer_type = ballast::trainer<P, ballast::optim::adamw<>, float, Diag>;

        ballast::token_splits data;
        trainer_type trainer;

        bench_state(const bench_config& c, const ballast::train_config& run)
          : data(random_corpus(c), c.vocab, 0.1, c.context, "random")
          , trainer(model_of(c), run, ballast::optimizer_config{}, data)
        {
        }
    };

    std::shared_ptr<void> g_state;
    std::string g_state_key;

    template <class P, class Diag>
    bench_state<P, Diag>& state_for(const std::string& key, const bench_config& c, int threads,
                                    std::size_t warmup_steps)
    {
        if (g_state_key != key || !g_state)
        {
            g_state.reset(); // free the previous benchmark's model first
            g_state_key.clear();
            ballast::train_config run;
            run.steps = std::size_t(1) << 40; // never reached: every run() call is stopped by a callback
            run.batch = c.batch;
            run.seq = c.context;
            run.lr = 1e-3;
            run.warmup = 10;
            run.eval_batches = 1; // ℓ0 is evaluated once, during set-up
            run.threads = threads;
            run.log_interval = 10; // the default: the trainer assembles its step line (no file is written)
            run.diag_interval = 10;
            auto s = std::make_shared<bench_state<P, Diag>>(c, run);
            stop_after warm{ warmup_steps, {} };
            s->trainer.run(warm);
            g_state = s;
            g_state_key = key;
        }
        return *static_cast<bench_state<P, Diag>*>(g_state.get());
    }

    void set_counters(benchmark::State& st, const bench_config& c, std::size_t steps_per_iter,
                      std::size_t params, double loss)
    {
        const double steps = static_cast<double>(steps_per_iter);
        st.counters["tokens_per_s"] = benchmark::Counter(steps * static_cast<double>(c.batch * c.context),
                                                         benchmark::Counter::kIsIterationInvariantRate);
        st.counters["GFLOPS"] =
          benchmark::Counter(steps * step_flops(c) / 1e9, benchmark::Counter::kIsIterationInvariantRate);
        st.counters["params"] = static_cast<double>(params);
        st.counters["loss"] = loss;
        st.counters["threads"] = static_cast<double>(st.range(0));
    }

    /// The trainer of a one-step-per-iteration benchmark (`train_step/`, `profile/`): no diagnostics,
    /// BALLAST_BENCH_WARMUP (default 2) untimed steps, st.range(0) threads.
    template <class P>
    bench_state<P, ballast::diagnostics::none>& one_step_state(const char* prefix, const bench_config& c,
                                                               const benchmark::State& st)
    {
        const int threads = static_cast<int>(st.range(0));
        const std::string key = prefix + std::string(P::name) + "/" + c.name + "/" + std::to_string(threads);
        return state_for<P, ballast::diagnostics::none>(key, c, threads, env_size("BALLAST_BENCH_WARMUP", 2));
    }

    /// One training step per iteration.
    template <class P>
    void bm_train_step(benchmark::State& st, std::size_t cfg_index)
    {
        const bench_config& c = configs[cfg_index];
        auto& s = one_step_state<P>("train_step/", c, st);
        stop_after cb;
        for (auto _ : st)
        {
            cb.remaining = 1;
            s.trainer.run(cb);
        }
        if (s.trainer.result().diverged)
        {
            st.SkipWithError("the run diverged: the timings are meaningless");
        }
        set_counters(st, c, 1, s.trainer.model().layout().count(), cb.last.loss);
    }

    /// Ten steps per iteration, one of which records diagnostics when Diag is diagnostics::forward.
    template <class P, class Diag>
    void bm_diag10(benchmark::State& st, std::size_t cfg_index)
    {
        const bench_config& c = configs[cfg_index];
        const int threads = static_cast<int>(st.range(0));
        const std::string key = "diag10/" + std::string(P::name) + "/" + c.name + "/" +
                                (Diag::enabled ? "forward/" : "none/") + std::to_string(threads);
        // Ten warm-up steps: every timed iteration then starts at a multiple of diag_interval.
        auto& s = state_for<P, Diag>(key, c, threads, 10);
        // The ten steps run one run() call each, timed separately: with diagnostics::forward the recorded
        // step (the first of the ten) can then be compared with the other nine of the same process, which
        // is far less noisy on a shared host than comparing two processes.
        stop_after cb;
        std::vector<double> recorded, other;
        for (auto _ : st)
        {
            for (std::size_t k = 0; k < 10; ++k)
            {
                const auto t0 = std::chrono::steady_clock::now();
                cb.remaining = 1;
                s.trainer.run(cb);
                const double dt =
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                (k == 0 ? recorded : other).push_back(dt);
            }
        }
        if (s.trainer.result().diverged)
        {
            st.SkipWithError("the run diverged: the timings are meaningless");
        }
        // ms_first_step: median of the first step of each ten (the recorded one with diagnostics::forward);
        // ms_other_steps: median of the other nine. Overhead per ten steps ~ (first − other) / (10·other).
        st.counters["ms_first_step"] = 1e3 * median(recorded);
        st.counters["ms_other_steps"] = 1e3 * median(other);
        if constexpr (Diag::enabled)
        {
            if (s.trainer.result().last_diagnostics.is_null())
            {
                st.SkipWithError("no step recorded diagnostics");
            }
        }
        set_counters(st, c, 10, s.trainer.model().layout().count(), cb.last.loss);
    }

#ifdef BALLAST_BENCH_PROFILE
    /// One step per iteration, with the wall time of the step split by family (counters ms_<family> per
    /// step; ms_trainer_rest is the part outside the marked model and optimizer code: batch draw, gradient
    /// norm, divergence checks, bookkeeping).
    template <class P>
    void bm_profile(benchmark::State& st, std::size_t cfg_index)
    {
        const bench_config& c = configs[cfg_index];
        auto& s = one_step_state<P>("profile/", c, st);
        stop_after cb;
        ballast_bench_profile::reset();
        const auto t0 = std::chrono::steady_clock::now();
        for (auto _ : st)
        {
            cb.remaining = 1;
            s.trainer.run(cb);
        }
        const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double iters = static_cast<double>(st.iterations());
        double marked = 0;
        for (const auto& [family, seconds] : ballast_bench_profile::g_seconds)
        {
            st.counters["ms_" + std::string(family)] = 1e3 * seconds / iters;
            marked += seconds;
        }
        st.counters["ms_trainer_rest"] = 1e3 * (total - marked) / iters;
        st.counters["ms_step"] = 1e3 * total / iters;
        set_counters(st, c, 1, s.trainer.model().layout().count(), cb.last.loss);
    }
#endif

    /// The parameter count alone (builds the model's layout; no step).
    template <class P>
    void bm_params(benchmark::State& st, std::size_t cfg_index)
    {
        const bench_config& c = configs[cfg_index];
        std::size_t count = 0;
        for (auto _ : st)
        {
            ballast::transformer<P> model(model_of(c));
            count = model.layout().count();
            benchmark::DoNotOptimize(count);
        }
        st.counters["params"] = static_cast<double>(count);
    }

    template <class P>
    void register_policy()
    {
        const std::string policy(P::name);
        for (std::size_t i = 0; i < configs.size(); ++i)
        {
            const bench_config& c = configs[i];
            const std::size_t fixed = env_size("BALLAST_BENCH_STEPS", 0);
            auto timed = [&](benchmark::internal::Benchmark* b, std::size_t steps_per_iter)
            {
                b->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
                if (fixed > 0)
                {
                    b->Iterations(static_cast<benchmark::IterationCount>(fixed));
                }
                else
                {
                    b->MinTime(c.min_time * (steps_per_iter > 1 ? 2.0 : 1.0));
                }
            };
            timed(benchmark::RegisterBenchmark(("train_step/" + policy + "/" + c.name).c_str(),
                                               bm_train_step<P>, i),
                  1);
            // The diagnostics pair for the two small configs (10 steps per iteration).
            if (i < 2)
            {
                timed(benchmark::RegisterBenchmark(("diag10/" + policy + "/" + c.name + "/diag:none").c_str(),
                                                   bm_diag10<P, ballast::diagnostics::none>, i),
                      10);
                timed(
                  benchmark::RegisterBenchmark(("diag10/" + policy + "/" + c.name + "/diag:forward").c_str(),
                                               bm_diag10<P, ballast::diagnostics::forward>, i),
                  10);
            }
            benchmark::RegisterBenchmark(("params/" + policy + "/" + c.name).c_str(), bm_params<P>, i)
              ->Iterations(1);
#ifdef BALLAST_BENCH_PROFILE
            timed(
              benchmark::RegisterBenchmark(("profile/" + policy + "/" + c.name).c_str(), bm_profile<P>, i),
              1);
#endif
        }
    }

    [[maybe_unused]] const bool registered = []
    {
        register_policy<ballast::paper_default>();
        register_policy<ballast::gpt2_like>();
        return true;
    }();
} // namespace
