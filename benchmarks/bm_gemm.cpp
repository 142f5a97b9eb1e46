// GEMM benchmarks: ballast::kernels::gemm vs OpenBLAS cblas_sgemm (when BALLAST_HAVE_OPENBLAS) vs the
// scalar twin (one small shape), at the model shapes, all three layouts, 1 and 2 threads.
//
// Shapes (M = 2048 rows = batch·sequence tokens; d ∈ {256, 512, 768}): every forward projection
// X(2048×Kf)·W(Kf×Nf) with (Nf, Kf) ∈ {(d,d), (3d,d), (4d,d), (d,4d)} and its two backward GEMMs:
//   nn  forward       Y  = X·W      M = 2048, N = Nf, K = Kf
//   nt  backward data dX = dY·Wᵀ    M = 2048, N = Kf, K = Nf   (W stored Kf×Nf = N×K)
//   tn  backward wgt  dW = Xᵀ·dY    M = Kf,   N = Nf, K = 2048
//
// Names: gemm/<layout>/<M>x<N>x<K>/<impl>/threads:<t> with impl ∈ {ballast, openblas, scalar}, so
// tools/gemm_ratio.py pairs rows by swapping the impl field. Counter GFLOPS = 2·M·N·K / wall time.
// Real (wall) time is measured because the work runs on several threads.
#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include <ballast/core/aligned.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/kernels/gemm.hpp>
#include <ballast/kernels/ref/gemm.hpp>

#ifdef BALLAST_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace
{
    using ballast::kernels::gemm_layout;

    /// Token rows of the model's activations (batch × sequence).
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

    /// Operands with the stored (not logical) extents of the layout, dense leading dimensions.
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
            // Deterministic, O(1), sign-mixed values (no denormals, no cancellation to zero).
            for (std::size_t i = 0; i < A.size(); ++i)
            {
                A[i] = static_cast<float>(static_cast<int>(i % 17) - 8) * 0.125f;
            }
            for (std::size_t i = 0; i < B.size(); ++i)
            {
                B[i] = static_cast<float>(static_cast<int>(i % 13) - 6) * 0.25f;
            }
        }
    };

    void set_flops(benchmark::State& state, const shape& s)
    {
        state.counters["GFLOPS"] = benchmark::Counter(2.0 * static_cast<double>(s.M * s.N * s.K) / 1e9,
                                                      benchmark::Counter::kIsIterationInvariantRate);
    }

    void bm_ballast(benchmark::State& state, shape s)
    {
        ballast::thread_scope threads(static_cast<int>(state.range(0)));
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

    void bm_scalar(benchmark::State& state, shape s)
    {
        operands o(s);
        for (auto _ : state)
        {
            ballast::kernels::ref::gemm<float>(s.layout, s.M, s.N, s.K, o.A.data(), o.lda, o.B.data(), o.ldb,
                                               0.0f, o.C.data(), o.ldc);
            benchmark::DoNotOptimize(o.C.data());
            benchmark::ClobberMemory();
        }
        set_flops(state, s);
    }

#ifdef BALLAST_HAVE_OPENBLAS
    void bm_openblas(benchmark::State& state, shape s)
    {
        openblas_set_num_threads(static_cast<int>(state.range(0)));
        operands o(s);
        const CBLAS_TRANSPOSE ta = s.layout == gemm_layout::tn ? CblasTrans : CblasNoTrans;
        const CBLAS_TRANSPOSE tb = s.layout == gemm_layout::nt ? CblasTrans : CblasNoTrans;
        const auto M = static_cast<blasint>(s.M), N = static_cast<blasint>(s.N),
                   K = static_cast<blasint>(s.K);
        for (auto _ : state)
        {
            cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, 1.0f, o.A.data(), static_cast<blasint>(o.lda),
                        o.B.data(), static_cast<blasint>(o.ldb), 0.0f, o.C.data(),
                        static_cast<blasint>(o.ldc));
            benchmark::DoNotOptimize(o.C.data());
            benchmark::ClobberMemory();
        }
        set_flops(state, s);
    }
#endif

    std::string name(const shape& s, const char* impl)
    {
        return std::string("gemm/") + layout_name(s.layout) + "/" + std::to_string(s.M) + "x" +
               std::to_string(s.N) + "x" + std::to_string(s.K) + "/" + impl;
    }

    /// The 36 model GEMMs (3 widths × 4 projections × 3 layouts).
    std::vector<shape> model_shapes()
    {
        std::vector<shape> out;
        for (const std::size_t d : { 256, 512, 768 })
        {
            const std::size_t nk[4][2] = { { d, d }, { 3 * d, d }, { 4 * d, d }, { d, 4 * d } }; // (Nf, Kf)
            for (const auto& p : nk)
            {
                const std::size_t nf = p[0], kf = p[1];
                out.push_back({ gemm_layout::nn, model_rows, nf, kf });
                out.push_back({ gemm_layout::nt, model_rows, kf, nf });
                out.push_back({ gemm_layout::tn, kf, nf, model_rows });
            }
        }
        return out;
    }

    /// Registration at static-initialisation time (benchmarks/main.cpp runs them). Each shape's
    /// ballast and OpenBLAS rows are adjacent so both see the same background load.
    const int registered = []
    {
        for (const shape& s : model_shapes())
        {
            benchmark::RegisterBenchmark(name(s, "ballast").c_str(), bm_ballast, s)
              ->ArgName("threads")
              ->Arg(1)
              ->Arg(2)
              ->UseRealTime()
              ->Unit(benchmark::kMillisecond);
#ifdef BALLAST_HAVE_OPENBLAS
            benchmark::RegisterBenchmark(name(s, "openblas").c_str(), bm_openblas, s)
              ->ArgName("threads")
              ->Arg(1)
              ->Arg(2)
              ->UseRealTime()
              ->Unit(benchmark::kMillisecond);
#endif
        }
        // The scalar twin is ~100x slower: one small shape, one thread, for the record.
        for (const gemm_layout l : { gemm_layout::nn, gemm_layout::nt, gemm_layout::tn })
        {
            const shape s{ l, 128, 128, 128 };
            benchmark::RegisterBenchmark(name(s, "scalar").c_str(), bm_scalar, s)
              ->ArgName("threads")
              ->Arg(1)
              ->Unit(benchmark::kMillisecond);
            benchmark::RegisterBenchmark(name(s, "ballast").c_str(), bm_ballast, s)
              ->ArgName("threads")
              ->Arg(1)
              ->Unit(benchmark::kMillisecond);
        }
        return 0;
    }();
} // namespace
