// Benchmark driver: prints what was compiled (SIMD architecture, xsimd version, threads) before
// running, so every result says what it measured.
#include <cstdio>

#include <benchmark/benchmark.h>

#include <ballast/core/parallel.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/version.hpp>

int main(int argc, char** argv)
{
    std::printf("ballast %s benchmarks | simd: %s (xsimd %d.%d) | threads: %d%s\n", ballast::version_string,
                ballast::simd::arch_name(), XSIMD_VERSION_MAJOR, XSIMD_VERSION_MINOR, ballast::num_threads(),
#ifdef BALLAST_HAVE_OPENBLAS
                " | peer: OpenBLAS cblas_sgemm"
#else
                ""
#endif
    );
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
    {
        return 1;
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
