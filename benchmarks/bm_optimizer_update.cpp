// Fused optimizer updates over flat float parameter buffers of 1 Mi and 10 M elements: SIMD kernel vs
// scalar twin (double arithmetic). Counter: bytes moved per second (AdamW: reads θ, g, m, v and writes
// θ, m, v = 7 floats per parameter; SGD: 5; Lion: 5; axpy: 3; Adafactor on a [n/1024, 1024] matrix: its three
// passes read g three times, θ and m once and write θ and m: 7 floats per parameter).
#include <cstddef>
#include <random>
#include <type_traits>

#include <benchmark/benchmark.h>

#include <ballast/core/aligned.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/kernels/optimizer.hpp>

#include "support.hpp"

namespace
{
    namespace bk = ballast::kernels;

    using ballast::bench::ref;
    using ballast::bench::simd;

    using ballast::bench::random_buffer;

    template <class Impl>
    void BM_adamw(benchmark::State& st)
    {
        const auto n = static_cast<std::size_t>(st.range(0));
        auto th = random_buffer(n, 1, -1.f, 1.f), g = random_buffer(n, 2, -1e-2f, 1e-2f);
        auto m = random_buffer(n, 3, -1e-3f, 1e-3f), v = random_buffer(n, 4, 0.f, 1e-4f);
        bk::adamw_hparams h;
        h.lr = 1e-4; // tiny steps keep the parameters in range over millions of iterations
        h.weight_decay = 1e-6;
        h = h.with_step(100);
        for (auto _ : st)
        {
            if constexpr (std::is_same_v<Impl, simd>)
            {
                bk::adamw_update<bk::weight_decay::independent>(th.data(), m.data(), v.data(), g.data(), h,
                                                                n);
            }
            else
            {
                bk::ref::adamw_update<bk::weight_decay::independent>(th.data(), m.data(), v.data(), g.data(),
                                                                     h, n);
            }
            benchmark::ClobberMemory();
        }
        st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * 7 * n * sizeof(float)));
    }

    template <class Impl>
    void BM_sgd_momentum(benchmark::State& st)
    {
        const auto n = static_cast<std::size_t>(st.range(0));
        auto th = random_buffer(n, 1, -1.f, 1.f), g = random_buffer(n, 2, -1e-2f, 1e-2f);
        auto b = random_buffer(n, 3, -1e-3f, 1e-3f);
        const bk::sgd_hparams h{ 1e-5, 0.9, 1e-6 };
        for (auto _ : st)
        {
            if constexpr (std::is_same_v<Impl, simd>)
            {
                bk::sgd_momentum_update<bk::weight_decay::coupled>(th.data(), b.data(), g.data(), h, n);
            }
            else
            {
                bk::ref::sgd_momentum_update<bk::weight_decay::coupled>(th.data(), b.data(), g.data(), h, n);
            }
            benchmark::ClobberMemory();
        }
        st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * 5 * n * sizeof(float)));
    }

    template <class Impl>
    void BM_lion(benchmark::State& st)
    {
        const auto n = static_cast<std::size_t>(st.range(0));
        auto th = random_buffer(n, 1, -1.f, 1.f), g = random_buffer(n, 2, -1e-2f, 1e-2f);
        auto m = random_buffer(n, 3, -1e-3f, 1e-3f);
        const bk::lion_hparams h{ 1e-7, 0.9, 0.99, 1e-6 };
        for (auto _ : st)
        {
            if constexpr (std::is_same_v<Impl, simd>)
            {
                bk::lion_update(th.data(), m.data(), g.data(), h, n);
            }
            else
            {
                bk::ref::lion_update(th.data(), m.data(), g.data(), h, n);
            }
            benchmark::ClobberMemory();
        }
        st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * 5 * n * sizeof(float)));
    }

    template <class Impl>
    void BM_adafactor(benchmark::State& st)
    {
        const auto n = static_cast<std::size_t>(st.range(0));
        const std::size_t cols = 1024, rows = n / cols;
        auto th = random_buffer(n, 1, -1.f, 1.f), g = random_buffer(n, 2, -1e-2f, 1e-2f);
        auto m = random_buffer(n, 3, -1e-3f, 1e-3f), v = random_buffer(n, 4, 1e-6f, 1e-4f);
        bk::adafactor_hparams h;
        h.lr = 1e-7;
        h.beta1 = 0.9;
        h.beta2 = 0.99;
        for (auto _ : st)
        {
            if constexpr (std::is_same_v<Impl, simd>)
            {
                bk::adafactor_update(th.data(), m.data(), v.data(), g.data(), h, rows, cols);
            }
            else
            {
                bk::ref::adafactor_update(th.data(), m.data(), v.data(), g.data(), h, rows, cols);
            }
            benchmark::ClobberMemory();
        }
        st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * 7 * rows * cols * sizeof(float)));
    }

    template <class Impl>
    void BM_axpy(benchmark::State& st)
    {
        const auto n = static_cast<std::size_t>(st.range(0));
        auto y = random_buffer(n, 1, -1.f, 1.f);
        const auto x = random_buffer(n, 2, -1.f, 1.f);
        for (auto _ : st)
        {
            if constexpr (std::is_same_v<Impl, simd>)
            {
                bk::axpy(y.data(), x.data(), 1e-7f, n);
            }
            else
            {
                bk::ref::axpy(y.data(), x.data(), 1e-7f, n);
            }
            benchmark::ClobberMemory();
        }
        st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * 3 * n * sizeof(float)));
    }

    constexpr std::int64_t n_1m = std::int64_t{ 1 } << 20;
    constexpr std::int64_t n_10m = 10'000'000;
} // namespace

BENCHMARK_TEMPLATE(BM_adamw, simd)->Arg(n_1m)->Arg(n_10m)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_adamw, ref)->Arg(n_1m)->Arg(n_10m)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_sgd_momentum, simd)->Arg(n_1m)->Arg(n_10m)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_sgd_momentum, ref)->Arg(n_1m)->Arg(n_10m)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_lion, simd)->Arg(n_1m)->Arg(n_10m)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_lion, ref)->Arg(n_1m)->Arg(n_10m)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_axpy, simd)->Arg(n_1m)->Arg(n_10m)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_axpy, ref)->Arg(n_1m)->Arg(n_10m)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_adafactor, simd)->Arg(n_1m)->Arg(n_10m)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_adafactor, ref)->Arg(n_1m)->Unit(benchmark::kMillisecond);
