// Row softmax forward/backward (rows 2048 × cols 64..1024) and causal attention blocks (T = 64..256):
// SIMD kernel vs scalar twin (double arithmetic). Counter: bytes moved per second (forward reads x and
// writes y; backward reads y, dy and writes dx).
#include <cstddef>
#include <random>
#include <type_traits>

#include <benchmark/benchmark.h>

#include <ballast/core/aligned.hpp>
#include <ballast/kernels/softmax.hpp>

#include "support.hpp"

namespace
{
    namespace bk = ballast::kernels;

    using ballast::bench::ref;
    using ballast::bench::simd;

    using ballast::bench::random_buffer;

    constexpr std::size_t rows = 2048;

    template <class Impl>
    void BM_softmax(benchmark::State& st)
    {
        const auto cols = static_cast<std::size_t>(st.range(0));
        const auto x = random_buffer(rows * cols, 1, -8.f, 8.f);
        ballast::aligned_vector<float> y(rows * cols);
        for (auto _ : st)
        {
            if constexpr (std::is_same_v<Impl, simd>)
            {
                bk::softmax_forward(y.data(), x.data(), rows, cols, cols);
            }
            else
            {
                bk::ref::softmax_forward(y.data(), x.data(), rows, cols, cols);
            }
            benchmark::ClobberMemory();
        }
        st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * 2 * rows * cols * sizeof(float)));
    }

    template <class Impl>
    void BM_softmax_backward(benchmark::State& st)
    {
        const auto cols = static_cast<std::size_t>(st.range(0));
        const auto y = random_buffer(rows * cols, 2, 0.f, 1.f);
        const auto dy = random_buffer(rows * cols, 3, -1.f, 1.f);
        ballast::aligned_vector<float> dx(rows * cols);
        for (auto _ : st)
        {
            if constexpr (std::is_same_v<Impl, simd>)
            {
                bk::softmax_backward(dx.data(), y.data(), dy.data(), rows, cols, cols);
            }
            else
            {
                bk::ref::softmax_backward(dx.data(), y.data(), dy.data(), rows, cols, cols);
            }
            benchmark::ClobberMemory();
        }
        st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * 3 * rows * cols * sizeof(float)));
    }

    /// Causal attention: (batch·heads) = 32 independent T × T score blocks per iteration.
    constexpr std::size_t causal_blocks = 32;

    template <class Impl>
    void BM_softmax_causal(benchmark::State& st)
    {
        const auto tl = static_cast<std::size_t>(st.range(0));
        const auto x = random_buffer(causal_blocks * tl * tl, 4, -8.f, 8.f);
        ballast::aligned_vector<float> y(causal_blocks * tl * tl);
        for (auto _ : st)
        {
            for (std::size_t b = 0; b < causal_blocks; ++b)
            {
                if constexpr (std::is_same_v<Impl, simd>)
                {
                    bk::softmax_causal_forward(y.data() + b * tl * tl, x.data() + b * tl * tl, tl, tl);
                }
                else
                {
                    bk::ref::softmax_causal_forward(y.data() + b * tl * tl, x.data() + b * tl * tl, tl, tl);
                }
            }
            benchmark::ClobberMemory();
        }
        st.SetBytesProcessed(
          static_cast<std::int64_t>(st.iterations() * causal_blocks * 2 * tl * tl * sizeof(float)));
    }

    template <class Impl>
    void BM_softmax_causal_backward(benchmark::State& st)
    {
        const auto tl = static_cast<std::size_t>(st.range(0));
        const auto y = random_buffer(causal_blocks * tl * tl, 5, 0.f, 1.f);
        const auto dy = random_buffer(causal_blocks * tl * tl, 6, -1.f, 1.f);
        ballast::aligned_vector<float> dx(causal_blocks * tl * tl);
        for (auto _ : st)
        {
            for (std::size_t b = 0; b < causal_blocks; ++b)
            {
                const std::size_t o = b * tl * tl;
                if constexpr (std::is_same_v<Impl, simd>)
                {
                    bk::softmax_causal_backward(dx.data() + o, y.data() + o, dy.data() + o, tl, tl);
                }
                else
                {
                    bk::ref::softmax_causal_backward(dx.data() + o, y.data() + o, dy.data() + o, tl, tl);
                }
            }
            benchmark::ClobberMemory();
        }
        st.SetBytesProcessed(
          static_cast<std::int64_t>(st.iterations() * causal_blocks * 3 * tl * tl * sizeof(float)));
    }
} // namespace

BENCHMARK_TEMPLATE(BM_softmax, simd)->RangeMultiplier(4)->Range(64, 1024);
BENCHMARK_TEMPLATE(BM_softmax, ref)->RangeMultiplier(4)->Range(64, 1024);
BENCHMARK_TEMPLATE(BM_softmax_backward, simd)->RangeMultiplier(4)->Range(64, 1024);
BENCHMARK_TEMPLATE(BM_softmax_backward, ref)->RangeMultiplier(4)->Range(64, 1024);
BENCHMARK_TEMPLATE(BM_softmax_causal, simd)->RangeMultiplier(2)->Range(64, 256);
BENCHMARK_TEMPLATE(BM_softmax_causal, ref)->RangeMultiplier(2)->Range(64, 256);
BENCHMARK_TEMPLATE(BM_softmax_causal_backward, simd)->RangeMultiplier(2)->Range(64, 256);
BENCHMARK_TEMPLATE(BM_softmax_causal_backward, ref)->RangeMultiplier(2)->Range(64, 256);
