// GELU forward and backward, tanh and erf forms, at MLP shapes (n = B*T * 4C with B*T = 2048,
// C in {128, 256, 512, 768}), each SIMD kernel next to its scalar twin. Bytes processed: x, y in
// forward; dy, x, dx in backward. Wall time (UseRealTime) because the SIMD kernels are threaded; run
// with OMP_NUM_THREADS=1 for single-core numbers.
#include <cstddef>
#include <cstdint>
#include <random>
#include <type_traits>

#include <benchmark/benchmark.h>

#include <ballast/core/aligned.hpp>
#include <ballast/kernels/gelu.hpp>
#include <ballast/kernels/ref/gelu.hpp>

#include "support.hpp"

namespace
{
    namespace bk = ballast::kernels;
    using form = bk::gelu_form;

    using ballast::bench::ref;
    using ballast::bench::simd;

    /// Pre-activations of a trained MLP are roughly N(0, 1); uniform [-4, 4) covers both tails.
    struct gelu_data
    {
        std::size_t n;
        ballast::aligned_vector<float> x, y, dy, dx;

        explicit gelu_data(std::size_t count)
          : n(count)
          , x(count)
          , y(count)
          , dy(count)
          , dx(count)
        {
            std::mt19937_64 g(20230919u);
            std::uniform_real_distribution<float> u(-4.0f, 4.0f);
            for (std::size_t i = 0; i < n; ++i)
            {
                x[i] = u(g);
                dy[i] = 0.25f * u(g);
            }
        }
    };

    /// n = tokens * 4 * C (the MLP hidden width is 4C).
    constexpr std::int64_t tokens = 2048, mlp_ratio = 4;

    void set_counters(benchmark::State& st, const gelu_data& d, std::size_t streams)
    {
        const auto elems = static_cast<std::int64_t>(d.n);
        st.SetItemsProcessed(st.iterations() * elems);
        st.SetBytesProcessed(st.iterations() * elems * static_cast<std::int64_t>(streams * sizeof(float)));
    }

    template <form F, class Impl>
    void BM_gelu_fwd(benchmark::State& st)
    {
        gelu_data d(static_cast<std::size_t>(tokens * mlp_ratio * st.range(0)));
        for (auto _ : st)
        {
            if constexpr (std::is_same_v<Impl, simd>)
            {
                bk::gelu_forward<F>(d.y.data(), d.x.data(), d.n);
            }
            else
            {
                bk::ref::gelu_forward<F>(d.y.data(), d.x.data(), d.n);
            }
            benchmark::DoNotOptimize(d.y.data());
            benchmark::ClobberMemory();
        }
        set_counters(st, d, 2);
    }

    template <form F, class Impl>
    void BM_gelu_bwd(benchmark::State& st)
    {
        gelu_data d(static_cast<std::size_t>(tokens * mlp_ratio * st.range(0)));
        for (auto _ : st)
        {
            if constexpr (std::is_same_v<Impl, simd>)
            {
                bk::gelu_backward<F>(d.dx.data(), d.dy.data(), d.x.data(), d.n);
            }
            else
            {
                bk::ref::gelu_backward<F>(d.dx.data(), d.dy.data(), d.x.data(), d.n);
            }
            benchmark::DoNotOptimize(d.dx.data());
            benchmark::ClobberMemory();
        }
        set_counters(st, d, 3);
    }

    void model_shapes(benchmark::internal::Benchmark* b)
    {
        b->ArgsProduct({ { 128, 256, 512, 768 } })->ArgNames({ "C" })->UseRealTime();
    }
} // namespace

BENCHMARK_TEMPLATE(BM_gelu_fwd, form::tanh, simd)->Apply(model_shapes);
BENCHMARK_TEMPLATE(BM_gelu_fwd, form::tanh, ref)->Apply(model_shapes);
BENCHMARK_TEMPLATE(BM_gelu_fwd, form::erf, simd)->Apply(model_shapes);
BENCHMARK_TEMPLATE(BM_gelu_fwd, form::erf, ref)->Apply(model_shapes);
BENCHMARK_TEMPLATE(BM_gelu_bwd, form::tanh, simd)->Apply(model_shapes);
BENCHMARK_TEMPLATE(BM_gelu_bwd, form::tanh, ref)->Apply(model_shapes);
BENCHMARK_TEMPLATE(BM_gelu_bwd, form::erf, simd)->Apply(model_shapes);
BENCHMARK_TEMPLATE(BM_gelu_bwd, form::erf, ref)->Apply(model_shapes);
