// bf16-input GEMM benchmarks: ballast::kernels::gemm_bf16 on its two paths (native: AVX512_BF16
// VDPBF16PS, where compiled in; emulated: bf16-rounded inputs, fp32 FMA micro-kernel) against the fp32
// ballast::kernels::gemm, at the model shapes of bm_gemm.cpp, 1 thread.
//
// Shapes (M = 2048 token rows; d ∈ {256, 512, 768}): every forward projection X(2048×Kf)·W(Kf×Nf) with
// (Nf, Kf) ∈ {(d,d), (3d,d), (4d,d), (d,4d)} and its two backward GEMMs:
//   nn  forward       Y  = X·W      M = 2048, N = Nf, K = Kf
//   nt  backward data dX = dY·Wᵀ    M = 2048, N = Kf, K = Nf
//   tn  backward wgt  dW = Xᵀ·dY    M = Kf,   N = Nf, K = 2048
//
// Names: gemm_bf16/<layout>/<M>x<N>x<K>/<impl>/threads:1 with impl ∈ {native, emulated, fp32}; the rows
// of a shape are adjacent. Counter GFLOPS = 2·M·N·K / wall time. Both bf16 paths read fp32 operands and
// round them while packing (the cost of the rounding is included). For ratios on a shared machine run
// with --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true and compare medians.
#include <cstddef>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include <ballast/core/aligned.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/kernels/gemm.hpp>
#include <ballast/kernels/gemm_bf16.hpp>

namespace
{
    using ballast::kernels::bf16_gemm_path;
    using ballast::kernels::gemm_layout;

    constexpr std::size_t model_rows = 2048;

    struct shape
    {
        gemm_layout layout;
        std::size_t M, N, K;
    };

    const char* layout_name(gemm_layout l)
    {
        return l == gemm_layout::nn ? "nn" : l == gemm_layout::nt ? "nt" : "tn";
    }

    /// Operands with the stored extents of the layout, dense leading dimensions, O(1) sign-mixed values.
    struct operands
    {
        std::size_t lda, ldb, ldc;
        ballast::aligned_vector<float> A, B, C;

        explicit operands(const shape& s)
          : lda(s.layout == gemm_layout::tn ? s.M : s.K)
          , ldb(s.layout == gemm_layout::nt ? s.K : s.N)
          , ldc(s.N)
          , A(s.M * s.K)
          , B(s.K * s.N)
          , C(s.M * s.N)
        {
            for (std::size_t i = 0; i < A.size(); ++i)
            {
                A[i] = static_cast<float>(static_cast<int>(i % 17) - 8) * 0.123f;
            }
            for (std::size_t i = 0; i < B.size(); ++i)
            {
                B[i] = static_cast<float>(static_cast<int>(i % 13) - 6) * 0.257f;
            }
        }
    };

    void set_flops(benchmark::State& state, const shape& s)
    {
        state.counters["GFLOPS"] = benchmark::Counter(2.0 * static_cast<double>(s.M * s.N * s.K) / 1e9,
                                                      benchmark::Counter::kIsIterationInvariantRate);
    }

    void bm_fp32(benchmark::State& state, shape s)
    {
        ballast::thread_scope threads(1);
        operands o(s);
        for (auto _ : state)
        {
            ballast::kernels::gemm<float>(s.layout, s.M, s.N, s.K, o.A.data(), o.lda, o.B.data(), o.ldb, 0.0f,
                                          o.C.data(), o.ldc);
            benchmark::DoNotOptimize(o.C.data());
            benchmark::ClobberMemory();
        }
        set_flops(state, s);
    }

    template <bf16_gemm_path P>
    void bm_bf16(benchmark::State& state, shape s)
    {
        ballast::thread_scope threads(1);
        operands o(s);
        for (auto _ : state)
        {
            ballast::kernels::gemm_bf16<P>(s.layout, s.M, s.N, s.K, o.A.data(), o.lda, o.B.data(), o.ldb,
                                           0.0f, o.C.data(), o.ldc);
            benchmark::DoNotOptimize(o.C.data());
            benchmark::ClobberMemory();
        }
        set_flops(state, s);
    }

    std::string name(const shape& s, const char* impl)
    {
        return std::string("gemm_bf16/") + layout_name(s.layout) + "/" + std::to_string(s.M) + "x" +
               std::to_string(s.N) + "x" + std::to_string(s.K) + "/" + impl;
    }

    std::vector<shape> model_shapes()
    {
        std::vector<shape> out;
        for (const std::size_t d : { 256, 512, 768 })
        {
            const std::size_t nk[4][2] = { { d, d }, { 3 * d, d }, { 4 * d, d }, { d, 4 * d } }; // (Nf, Kf)
            for (const auto& p : nk)
            {
                out.push_back({ gemm_layout::nn, model_rows, p[0], p[1] });
                out.push_back({ gemm_layout::nt, model_rows, p[1], p[0] });
                out.push_back({ gemm_layout::tn, p[1], p[0], model_rows });
            }
        }
        return out;
    }

    template <class F>
    void add(const shape& s, const char* impl, F f)
    {
        benchmark::RegisterBenchmark(name(s, impl).c_str(), f, s)
          ->ArgName("threads")
          ->Arg(1)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }

    const int registered = []
    {
        for (const shape& s : model_shapes())
        {
#if defined(__AVX512BF16__) && !defined(BALLAST_FORCE_SCALAR)
            add(s, "native", bm_bf16<bf16_gemm_path::native>);
#endif
            add(s, "emulated", bm_bf16<bf16_gemm_path::emulated>);
            add(s, "fp32", bm_fp32);
        }
        return 0;
    }();
} // namespace
