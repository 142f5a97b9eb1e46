// Causal attention of one batch row (all H = 8 heads, one (batch, head) pair after another, as the model's
// pair loop runs them on one thread): the fused kernel pair (kernels/attention.hpp) against the composed
// path the model runs today (model/attention.hpp: GEMM on 48-query panels, scale, causal softmax, GEMM;
// backward dP, dV GEMMs, softmax backward, scale, dQ, dK GEMMs). No soft cap (paper_default). One thread.
//
// Names: attention/<fwd|bwd>/<fused|composed>/T:<T>/d:<d_h>. Counter GFLOPS counts the causal multiply-adds
// actually needed (forward 2 products, backward 4, each T(T+1)/2·d_h MACs per pair, 2 flops per MAC), so the
// two implementations are compared on the same work. Inputs live in [T, 3·d_model] qkv and [T, d_model]
// output buffers with d_model = 8·d_h, so every operand is strided like in the model.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>

#include <benchmark/benchmark.h>

#include <ballast/core/aligned.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/kernels/attention.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/kernels/gemm.hpp>
#include <ballast/kernels/softmax.hpp>

#include "support.hpp"

namespace
{
    namespace bk = ballast::kernels;

    constexpr std::size_t heads = 8;
    constexpr std::size_t panel = 48; // model/attention.hpp: attention_panel

    struct fused
    {
    };
    struct composed
    {
    };

    /// One batch row of activations and the per-pair caches.
    struct problem
    {
        std::size_t n, d, dm, ld;
        ballast::aligned_vector<float> qkv, out, dout, dqkv, probs, scratch;

        problem(std::size_t t_len, std::size_t dh)
          : n(t_len)
          , d(dh)
          , dm(heads * dh)
          , ld(3 * heads * dh)
          , qkv(ballast::bench::random_buffer(t_len * 3 * heads * dh, 11, -1.5f, 1.5f))
          , out(t_len * heads * dh)
          , dout(ballast::bench::random_buffer(t_len * heads * dh, 12, -1.f, 1.f))
          , dqkv(t_len * 3 * heads * dh)
          , probs(heads * t_len * t_len)
          , scratch(std::max(bk::attention_backward_scratch<float>(shape()), t_len * t_len))
        {
        }

        bk::attention_shape shape() const { return { .t_len = n, .head_dim = d, .ld_qkv = ld, .ld_o = dm }; }
        float scale() const { return 1.f / std::sqrt(static_cast<float>(d)); }
    };

    void composed_forward(problem& p, std::size_t h)
    {
        const std::size_t seq = p.n, dh = p.d, ld = p.ld;
        const float* q = p.qkv.data() + h * dh;
        const float* k = q + p.dm;
        const float* v = q + 2 * p.dm;
        float* z = p.probs.data() + h * seq * seq;
        for (std::size_t i0 = 0; i0 < seq; i0 += panel)
        {
            const std::size_t i1 = std::min(seq, i0 + panel);
            bk::gemm(bk::gemm_layout::nt, i1 - i0, i1, dh, q + i0 * ld, ld, k, ld, 0.f, z + i0 * seq, seq);
            for (std::size_t i = i0; i < i1; ++i)
            {
                bk::scale(z + i * seq, p.scale(), i + 1);
            }
        }
        bk::softmax_causal_forward(z, z, seq, seq);
        for (std::size_t i0 = 0; i0 < seq; i0 += panel)
        {
            const std::size_t i1 = std::min(seq, i0 + panel);
            bk::gemm(bk::gemm_layout::nn, i1 - i0, dh, i1, z + i0 * seq, seq, v, ld, 0.f,
                     p.out.data() + i0 * p.dm + h * dh, p.dm);
        }
    }

    void composed_backward(problem& p, std::size_t h)
    {
        const std::size_t seq = p.n, dh = p.d, ld = p.ld;
        const float* q = p.qkv.data() + h * dh;
        const float* k = q + p.dm;
        const float* v = q + 2 * p.dm;
        const float* prob = p.probs.data() + h * seq * seq;
        const float* dout = p.dout.data() + h * dh;
        float* dz = p.scratch.data();
        float* dq = p.dqkv.data() + h * dh;
        float* dk = dq + p.dm;
        float* dv = dq + 2 * p.dm;
        for (std::size_t i0 = 0; i0 < seq; i0 += panel)
        {
            const std::size_t i1 = std::min(seq, i0 + panel);
            bk::gemm(bk::gemm_layout::nt, i1 - i0, i1, dh, dout + i0 * p.dm, p.dm, v, ld, 0.f, dz + i0 * seq,
                     seq);
            bk::gemm(bk::gemm_layout::tn, i1 - i0, dh, seq - i0, prob + i0 * seq + i0, seq, dout + i0 * p.dm,
                     p.dm, 0.f, dv + i0 * ld, ld);
        }
        bk::softmax_causal_backward(dz, prob, dz, seq, seq);
        for (std::size_t i = 0; i < seq; ++i)
        {
            bk::scale(dz + i * seq, p.scale(), i + 1);
        }
        for (std::size_t i0 = 0; i0 < seq; i0 += panel)
        {
            const std::size_t i1 = std::min(seq, i0 + panel);
            bk::gemm(bk::gemm_layout::nn, i1 - i0, dh, i1, dz + i0 * seq, seq, k, ld, 0.f, dq + i0 * ld, ld);
            bk::gemm(bk::gemm_layout::tn, i1 - i0, dh, seq - i0, dz + i0 * seq + i0, seq, q + i0 * ld, ld,
                     0.f, dk + i0 * ld, ld);
        }
    }

    void fused_forward(problem& p, std::size_t h)
    {
        const float* q = p.qkv.data() + h * p.d;
        bk::attention_forward(p.out.data() + h * p.d, p.probs.data() + h * p.n * p.n, {}, p.scratch.data(), q,
                              q + p.dm, q + 2 * p.dm, p.scale(), 0.0, p.shape());
    }

    void fused_backward(problem& p, std::size_t h)
    {
        const float* q = p.qkv.data() + h * p.d;
        float* dq = p.dqkv.data() + h * p.d;
        bk::attention_backward(dq, dq + p.dm, dq + 2 * p.dm, p.scratch.data(), p.dout.data() + h * p.d,
                               p.probs.data() + h * p.n * p.n, q, q + p.dm, q + 2 * p.dm, p.scale(), 0.0,
                               p.shape());
    }

    template <class Impl, bool Backward>
    void BM_attention(benchmark::State& st)
    {
        const ballast::thread_scope one(1);
        problem p(static_cast<std::size_t>(st.range(0)), static_cast<std::size_t>(st.range(1)));
        for (std::size_t h = 0; h < heads; ++h)
        {
            fused_forward(p, h); // probabilities for the backward benchmarks
        }
        for (auto _ : st)
        {
            for (std::size_t h = 0; h < heads; ++h)
            {
                if constexpr (std::is_same_v<Impl, fused>)
                {
                    Backward ? fused_backward(p, h) : fused_forward(p, h);
                }
                else
                {
                    Backward ? composed_backward(p, h) : composed_forward(p, h);
                }
            }
            benchmark::ClobberMemory();
        }
        const double macs = static_cast<double>(p.n * (p.n + 1) / 2 * p.d) * (Backward ? 4 : 2) * heads;
        st.counters["GFLOPS"] = benchmark::Counter(2 * macs * static_cast<double>(st.iterations()) * 1e-9,
                                                   benchmark::Counter::kIsRate);
    }

    /// T ∈ {64, 128, 256} × d_h ∈ {16, 32, 64}.
    void shapes(benchmark::internal::Benchmark* b)
    {
        b->ArgsProduct({ { 64, 128, 256 }, { 16, 32, 64 } })
          ->ArgNames({ "T", "d" })
          ->Unit(benchmark::kMicrosecond);
    }
} // namespace

BENCHMARK_TEMPLATE(BM_attention, fused, false)->Name("attention/fwd/fused")->Apply(shapes);
BENCHMARK_TEMPLATE(BM_attention, composed, false)->Name("attention/fwd/composed")->Apply(shapes);
BENCHMARK_TEMPLATE(BM_attention, fused, true)->Name("attention/bwd/fused")->Apply(shapes);
BENCHMARK_TEMPLATE(BM_attention, composed, true)->Name("attention/bwd/composed")->Apply(shapes);
