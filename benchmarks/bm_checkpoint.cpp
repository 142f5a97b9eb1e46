// The cost of crash safety: one checkpoint write through the real trainer (`trainer::save_checkpoint`:
// parameters + both AdamW moments into a fresh safetensors file, fsynced, then the manifest, fsynced, and
// the directory fsynced), for the configs of bm_train_step and a 100 M-parameter model. The files go to a
// directory under the current one, so run the benchmark from the disk the runs write to.
//
// Configs (paper_default, byte vocab 256):
//   P1    d 128, 2 layers, 2 heads (the `train` default size)
//   P3    d 512, 8 layers, 8 heads
//   M100  d 1024, 8 layers, 16 heads (about 100 M parameters, 1.2 GB per checkpoint)
//
// Counters:
//   bytes_per_s    checkpoint bytes written per second
//   MB             size of one checkpoint
//   cost_pct       the share of training time spent writing under the default time-based interval:
//                  t / max(checkpoint_seconds = 300, 100 t) × 100 (train/trainer.hpp stretches the wait to
//                  100 × the last write, so this is at most 1 whatever the disk)
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include <benchmark/benchmark.h>

#include <ballast/policies/policy_set.hpp>
#include <ballast/train/trainer.hpp>

namespace
{
    struct config
    {
        const char* name;
        std::size_t d, layers, heads;
    };

    const ballast::token_splits& random_corpus()
    {
        static const ballast::token_splits s = []
        {
            std::vector<std::uint16_t> t(1 << 16);
            std::mt19937 rng(7);
            for (auto& x : t)
            {
                x = static_cast<std::uint16_t>(rng() % 256);
            }
            return ballast::token_splits(std::move(t), 256, 0.1, 16, "random");
        }();
        return s;
    }

    void BM_checkpoint(benchmark::State& st, config c)
    {
        ballast::model_config m;
        m.d_model = c.d;
        m.n_layers = c.layers;
        m.n_heads = c.heads;
        m.context = 16;
        ballast::train_config t;
        t.steps = 10;
        t.batch = 1;
        t.seq = 16;
        t.warmup = 0;
        using trainer_t = ballast::trainer<ballast::paper_default, ballast::optim::adamw<>, float>;
        trainer_t tr(m, t, ballast::optimizer_config{}, random_corpus());
        const auto dir = std::filesystem::current_path() / ("bm_checkpoint." + std::to_string(::getpid()));
        std::uintmax_t bytes = 0;
        double seconds = 0; // write time alone, summed over the iterations
        for (auto _ : st)
        {
            const auto t0 = std::chrono::steady_clock::now();
            tr.save_checkpoint(dir);
            seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            st.PauseTiming();
            bytes = 0;
            for (const auto& e : std::filesystem::directory_iterator(dir))
            {
                bytes += e.is_regular_file() ? e.file_size() : 0;
            }
            st.ResumeTiming();
        }
        std::filesystem::remove_all(dir);
        const double mean =
          seconds / static_cast<double>(std::max<benchmark::IterationCount>(st.iterations(), 1));
        st.counters["MB"] = static_cast<double>(bytes) / 1e6;
        st.counters["bytes_per_s"] = static_cast<double>(bytes) / mean;
        st.counters["cost_pct"] =
          100.0 * mean / std::max(ballast::train_config{}.checkpoint_seconds, 100.0 * mean);
    }

    const config configs[] = { { "P1", 128, 2, 2 }, { "P3", 512, 8, 8 }, { "M100", 1024, 8, 16 } };

    const int registered = []
    {
        for (const auto& c : configs)
        {
            benchmark::RegisterBenchmark((std::string("checkpoint/") + c.name).c_str(), BM_checkpoint, c)
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime()
              ->MinTime(c.d >= 1024 ? 5.0 : 1.0);
        }
        return 0;
    }();
} // namespace
