// FMA throughput peak: 12 independent FMA chains over xsimd batches per thread (enough to cover the
// 4-cycle latency on 2 FMA pipes), 1 and 2 threads. GFLOPS = 2 · lanes · chains · steps · threads /
// wall time; documents what fraction of the machine's peak the GEMM reaches.
#include <cstddef>

#include <benchmark/benchmark.h>

#include <ballast/core/parallel.hpp>
#include <ballast/core/simd.hpp>

namespace
{
    /// Independent accumulators: >= latency (4) × FMA pipes (2), like the GEMM micro-kernel's 12.
    constexpr std::size_t chains = 12;
    /// FMA steps per chain per iteration: 2^21 · 12 FMAs / 2 per cycle ~ 12.6 M cycles (~3.5 ms) per thread,
    /// so waking the second thread (up to a time slice on a loaded host) is amortised.
    constexpr std::size_t steps = std::size_t(1) << 21;

    template <class T>
    T fma_chains(T seed)
    {
        using V = ballast::simd::batch<T>;
        V acc[chains];
        for (std::size_t c = 0; c < chains; ++c)
        {
            acc[c] = V(seed * static_cast<T>(c));
        }
        // x·1 + tiny keeps values finite and the chains data-dependent; the compiler cannot fold it
        // without -ffast-math.
        V x(T(1) - seed * T(1e-7));
        V y(seed * T(1e-9));
        benchmark::DoNotOptimize(x);
        benchmark::DoNotOptimize(y);
        for (std::size_t s = 0; s < steps; ++s)
        {
#pragma GCC unroll 12
            for (std::size_t c = 0; c < chains; ++c)
            {
                acc[c] = xsimd::fma(acc[c], x, y);
            }
        }
        V sum = acc[0];
        for (std::size_t c = 1; c < chains; ++c)
        {
            sum += acc[c];
        }
        return ballast::simd::reduce_add(sum);
    }

    template <class T>
    void bm_fma_peak(benchmark::State& state)
    {
        const int threads = static_cast<int>(state.range(0));
        for (auto _ : state)
        {
            // One chunk per thread on ballast's own team: every thread runs the FMA chains once.
            ballast::thread_scope scope(threads);
            ballast::parallel_chunks(static_cast<std::size_t>(threads),
                                     [](std::size_t, std::size_t)
                                     {
                                         T r = fma_chains<T>(T(0.5));
                                         benchmark::DoNotOptimize(r);
                                     });
        }
        const double flops = 2.0 * static_cast<double>(ballast::simd::lanes<T> * chains * steps) * threads;
        state.counters["GFLOPS"] =
          benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
    }

    BENCHMARK_TEMPLATE(bm_fma_peak, float)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();
    BENCHMARK_TEMPLATE(bm_fma_peak, double)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();
} // namespace
