// Reductions: SIMD kernel vs scalar twin (double accumulation) on flat float buffers from L1-resident
// (4 Ki) to DRAM-resident (4 Mi elements, 16 MiB). Counter: bytes read per second.
#include <cstddef>
#include <random>
#include <type_traits>

#include <benchmark/benchmark.h>

#include <ballast/core/aligned.hpp>
#include <ballast/kernels/reduce.hpp>

#include "support.hpp"

namespace
{
    namespace bk = ballast::kernels;

    using ballast::bench::ref;
    using ballast::bench::simd;

    using ballast::bench::random_buffer;

    template <class Impl>
    void BM_sum(benchmark::State& st)
    {
        const auto n = static_cast<std::size_t>(st.range(0));
        const auto x = random_buffer(n, 1);
        for (auto _ : st)
        {
            float r = std::is_same_v<Impl, simd> ? bk::sum(x.data(), n) : bk::ref::sum(x.data(), n);
            benchmark::DoNotOptimize(r);
        }
        st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * n * sizeof(float)));
    }

    template <class Impl>
    void BM_sum_squares(benchmark::State& st)
    {
        const auto n = static_cast<std::size_t>(st.range(0));
        const auto x = random_buffer(n, 2);
        for (auto _ : st)
        {
            float r =
              std::is_same_v<Impl, simd> ? bk::sum_squares(x.data(), n) : bk::ref::sum_squares(x.data(), n);
            benchmark::DoNotOptimize(r);
        }
        st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * n * sizeof(float)));
    }

    template <class Impl>
    void BM_dot(benchmark::State& st)
    {
        const auto n = static_cast<std::size_t>(st.range(0));
        const auto x = random_buffer(n, 3), y = random_buffer(n, 4);
        for (auto _ : st)
        {
            float r = std::is_same_v<Impl, simd> ? bk::dot(x.data(), y.data(), n)
                                                 : bk::ref::dot(x.data(), y.data(), n);
            benchmark::DoNotOptimize(r);
        }
        st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * 2 * n * sizeof(float)));
    }

    template <class Impl>
    void BM_max(benchmark::State& st)
    {
        const auto n = static_cast<std::size_t>(st.range(0));
        const auto x = random_buffer(n, 5);
        for (auto _ : st)
        {
            float r = std::is_same_v<Impl, simd> ? bk::max(x.data(), n) : bk::ref::max(x.data(), n);
            benchmark::DoNotOptimize(r);
        }
        st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * n * sizeof(float)));
    }

    constexpr std::int64_t small_n = std::int64_t{ 1 } << 12; // 16 KiB: L1
    constexpr std::int64_t large_n = std::int64_t{ 1 } << 22; // 16 MiB: DRAM
} // namespace

BENCHMARK_TEMPLATE(BM_sum, simd)->RangeMultiplier(32)->Range(small_n, large_n);
BENCHMARK_TEMPLATE(BM_sum, ref)->RangeMultiplier(32)->Range(small_n, large_n);
BENCHMARK_TEMPLATE(BM_sum_squares, simd)->RangeMultiplier(32)->Range(small_n, large_n);
BENCHMARK_TEMPLATE(BM_sum_squares, ref)->RangeMultiplier(32)->Range(small_n, large_n);
BENCHMARK_TEMPLATE(BM_dot, simd)->RangeMultiplier(32)->Range(small_n, large_n);
BENCHMARK_TEMPLATE(BM_dot, ref)->RangeMultiplier(32)->Range(small_n, large_n);
BENCHMARK_TEMPLATE(BM_max, simd)->RangeMultiplier(32)->Range(small_n, large_n);
BENCHMARK_TEMPLATE(BM_max, ref)->RangeMultiplier(32)->Range(small_n, large_n);
