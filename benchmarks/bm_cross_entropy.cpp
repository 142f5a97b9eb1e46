// Fused cross-entropy forward+backward (with z-loss) and row log-sum-exp: SIMD kernel vs scalar twin
// (double arithmetic), at a byte-level vocabulary (256, 2048 rows) and GPT-2's padded vocabulary
// (50257 in ld 50304, 32 rows). Counter: bytes moved per second (logits read, dlogits written).
#include <cstddef>
#include <cstdint>
#include <random>
#include <type_traits>
#include <vector>

#include <benchmark/benchmark.h>

#include <ballast/core/aligned.hpp>
#include <ballast/kernels/cross_entropy.hpp>

#include "support.hpp"

namespace
{
    namespace bk = ballast::kernels;

    using ballast::bench::ref;
    using ballast::bench::simd;

    struct problem
    {
        std::size_t rows, vocab, ld;
        ballast::aligned_vector<float> logits, dlogits;
        std::vector<float> loss, lse;
        std::vector<std::int32_t> targets;

        problem(std::size_t r, std::size_t v, std::size_t l)
          : rows(r)
          , vocab(v)
          , ld(l)
          , logits(r * l)
          , dlogits(r * l)
          , loss(r)
          , lse(r)
          , targets(r)
        {
            std::mt19937 g(7);
            std::uniform_real_distribution<float> d(-6.f, 6.f);
            for (auto& x : logits)
            {
                x = d(g);
            }
            std::uniform_int_distribution<std::int32_t> t(0, static_cast<std::int32_t>(v) - 1);
            for (auto& x : targets)
            {
                x = t(g);
            }
        }
    };

    /// range(0) = vocab; the row count keeps each iteration ~ 0.5-6 Mi logits.
    problem make_problem(std::int64_t vocab)
    {
        return vocab <= 256 ? problem(2048, 256, 256) : problem(32, 50257, 50304);
    }

    template <class Impl>
    void BM_cross_entropy_fwd_bwd(benchmark::State& st)
    {
        auto p = make_problem(st.range(0));
        const float scale = 1.f / static_cast<float>(p.rows), z = 1e-4f;
        for (auto _ : st)
        {
            if constexpr (std::is_same_v<Impl, simd>)
            {
                bk::cross_entropy_rows(p.loss.data(), p.lse.data(), p.dlogits.data(), p.logits.data(),
                                       p.targets.data(), scale, z, p.rows, p.vocab, p.ld);
            }
            else
            {
                bk::ref::cross_entropy_rows(p.loss.data(), p.lse.data(), p.dlogits.data(), p.logits.data(),
                                            p.targets.data(), scale, z, p.rows, p.vocab, p.ld);
            }
            benchmark::ClobberMemory();
        }
        st.SetBytesProcessed(
          static_cast<std::int64_t>(st.iterations() * 2 * p.rows * p.vocab * sizeof(float)));
    }

    template <class Impl>
    void BM_logsumexp(benchmark::State& st)
    {
        auto p = make_problem(st.range(0));
        for (auto _ : st)
        {
            if constexpr (std::is_same_v<Impl, simd>)
            {
                bk::logsumexp_rows(p.lse.data(), p.logits.data(), p.rows, p.vocab, p.ld);
            }
            else
            {
                bk::ref::logsumexp_rows(p.lse.data(), p.logits.data(), p.rows, p.vocab, p.ld);
            }
            benchmark::ClobberMemory();
        }
        st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * p.rows * p.vocab * sizeof(float)));
    }
} // namespace

BENCHMARK_TEMPLATE(BM_cross_entropy_fwd_bwd, simd)->Arg(256)->Arg(50304)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_cross_entropy_fwd_bwd, ref)->Arg(256)->Arg(50304)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_logsumexp, simd)->Arg(256)->Arg(50304)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_logsumexp, ref)->Arg(256)->Arg(50304)->Unit(benchmark::kMicrosecond);
