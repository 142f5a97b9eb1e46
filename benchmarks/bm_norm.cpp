// LayerNorm / RMSNorm forward and backward at model shapes (rows = B*T = 2048, cols = C), each SIMD
// kernel next to its scalar twin. Bytes processed count the row matrices streamed once (x, y in
// forward; dy, x, dx in backward); the per-column parameters and per-row caches are negligible.
// Run with OMP_NUM_THREADS=1 to compare single-core kernels; wall time (UseRealTime) is reported
// because the SIMD kernels are threaded.
#include <cstddef>
#include <cstdint>
#include <random>
#include <type_traits>

#include <benchmark/benchmark.h>

#include <ballast/core/aligned.hpp>
#include <ballast/kernels/norm.hpp>
#include <ballast/kernels/ref/norm.hpp>

#include "support.hpp"

namespace
{
    namespace bk = ballast::kernels;

    using ballast::bench::ref;
    using ballast::bench::simd;

    /// Inputs and outputs of one norm call, filled deterministically.
    struct norm_data
    {
        std::size_t rows, cols;
        ballast::aligned_vector<float> x, y, dy, dx, gain, bias, dgain, dbias, mean, rstd;

        norm_data(std::size_t r, std::size_t c)
          : rows(r)
          , cols(c)
          , x(r * c)
          , y(r * c)
          , dy(r * c)
          , dx(r * c)
          , gain(c)
          , bias(c)
          , dgain(c)
          , dbias(c)
          , mean(r)
          , rstd(r)
        {
            std::mt19937_64 g(20230919u);
            std::uniform_real_distribution<float> u(-1.0f, 1.0f);
            for (std::size_t i = 0; i < r * c; ++i)
            {
                x[i] = 2.0f * u(g) + 0.5f;
                dy[i] = u(g);
            }
            for (std::size_t j = 0; j < c; ++j)
            {
                gain[j] = 1.0f + 0.1f * u(g);
                bias[j] = 0.1f * u(g);
            }
        }
    };

    constexpr float eps = 1e-5f;

    void set_counters(benchmark::State& st, const norm_data& d, std::size_t matrices)
    {
        const auto elems = static_cast<std::int64_t>(d.rows * d.cols);
        st.SetItemsProcessed(st.iterations() * elems);
        st.SetBytesProcessed(st.iterations() * elems * static_cast<std::int64_t>(matrices * sizeof(float)));
    }

    template <class Impl>
    void BM_layer_norm_fwd(benchmark::State& st)
    {
        norm_data d(static_cast<std::size_t>(st.range(0)), static_cast<std::size_t>(st.range(1)));
        for (auto _ : st)
        {
            if constexpr (std::is_same_v<Impl, simd>)
            {
                bk::layer_norm_forward(d.y.data(), d.mean.data(), d.rstd.data(), d.x.data(), d.gain.data(),
                                       d.bias.data(), d.rows, d.cols, eps);
            }
            else
            {
                bk::ref::layer_norm_forward(d.y.data(), d.mean.data(), d.rstd.data(), d.x.data(),
                                            d.gain.data(), d.bias.data(), d.rows, d.cols, eps);
            }
            benchmark::DoNotOptimize(d.y.data());
            benchmark::ClobberMemory();
        }
        set_counters(st, d, 2);
    }

    template <class Impl>
    void BM_layer_norm_bwd(benchmark::State& st)
    {
        norm_data d(static_cast<std::size_t>(st.range(0)), static_cast<std::size_t>(st.range(1)));
        bk::layer_norm_forward(d.y.data(), d.mean.data(), d.rstd.data(), d.x.data(), d.gain.data(),
                               d.bias.data(), d.rows, d.cols, eps);
        for (auto _ : st)
        {
            if constexpr (std::is_same_v<Impl, simd>)
            {
                bk::layer_norm_backward(d.dx.data(), d.dgain.data(), d.dbias.data(), d.dy.data(), d.x.data(),
                                        d.gain.data(), d.mean.data(), d.rstd.data(), d.rows, d.cols);
            }
            else
            {
                bk::ref::layer_norm_backward(d.dx.data(), d.dgain.data(), d.dbias.data(), d.dy.data(),
                                             d.x.data(), d.gain.data(), d.mean.data(), d.rstd.data(), d.rows,
                                             d.cols);
            }
            benchmark::DoNotOptimize(d.dx.data());
            benchmark::ClobberMemory();
        }
        set_counters(st, d, 3);
    }

    template <class Impl>
    void BM_rms_norm_fwd(benchmark::State& st)
    {
        norm_data d(static_cast<std::size_t>(st.range(0)), static_cast<std::size_t>(st.range(1)));
        for (auto _ : st)
        {
            if constexpr (std::is_same_v<Impl, simd>)
            {
                bk::rms_norm_forward(d.y.data(), d.rstd.data(), d.x.data(), d.gain.data(), d.rows, d.cols,
                                     eps);
            }
            else
            {
                bk::ref::rms_norm_forward(d.y.data(), d.rstd.data(), d.x.data(), d.gain.data(), d.rows,
                                          d.cols, eps);
            }
            benchmark::DoNotOptimize(d.y.data());
            benchmark::ClobberMemory();
        }
        set_counters(st, d, 2);
    }

    template <class Impl>
    void BM_rms_norm_bwd(benchmark::State& st)
    {
        norm_data d(static_cast<std::size_t>(st.range(0)), static_cast<std::size_t>(st.range(1)));
        bk::rms_norm_forward(d.y.data(), d.rstd.data(), d.x.data(), d.gain.data(), d.rows, d.cols, eps);
        for (auto _ : st)
        {
            if constexpr (std::is_same_v<Impl, simd>)
            {
                bk::rms_norm_backward(d.dx.data(), d.dgain.data(), d.dy.data(), d.x.data(), d.gain.data(),
                                      d.rstd.data(), d.rows, d.cols);
            }
            else
            {
                bk::ref::rms_norm_backward(d.dx.data(), d.dgain.data(), d.dy.data(), d.x.data(),
                                           d.gain.data(), d.rstd.data(), d.rows, d.cols);
            }
            benchmark::DoNotOptimize(d.dx.data());
            benchmark::ClobberMemory();
        }
        set_counters(st, d, 3);
    }

    /// Model shapes: B*T = 2048 tokens, C in {128, 256, 512, 768}.
    void model_shapes(benchmark::internal::Benchmark* b)
    {
        b->ArgsProduct({ { 2048 }, { 128, 256, 512, 768 } })->ArgNames({ "rows", "cols" })->UseRealTime();
    }
} // namespace

BENCHMARK_TEMPLATE(BM_layer_norm_fwd, simd)->Apply(model_shapes);
BENCHMARK_TEMPLATE(BM_layer_norm_fwd, ref)->Apply(model_shapes);
BENCHMARK_TEMPLATE(BM_layer_norm_bwd, simd)->Apply(model_shapes);
BENCHMARK_TEMPLATE(BM_layer_norm_bwd, ref)->Apply(model_shapes);
BENCHMARK_TEMPLATE(BM_rms_norm_fwd, simd)->Apply(model_shapes);
BENCHMARK_TEMPLATE(BM_rms_norm_fwd, ref)->Apply(model_shapes);
BENCHMARK_TEMPLATE(BM_rms_norm_bwd, simd)->Apply(model_shapes);
BENCHMARK_TEMPLATE(BM_rms_norm_bwd, ref)->Apply(model_shapes);
