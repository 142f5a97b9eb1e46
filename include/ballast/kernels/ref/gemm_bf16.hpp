#ifndef BALLAST_KERNELS_REF_GEMM_BF16_HPP
#define BALLAST_KERNELS_REF_GEMM_BF16_HPP

/// @file
/// Scalar twins of the bf16-input GEMM (`ballast/kernels/gemm_bf16.hpp`):
///   - `ref::gemm_bf16`: the oracle. Inputs rounded to bf16 (`round_to_bf16`), every output one double sum
///     over k = 0..K-1 (products of bf16 values are exact in double), rounded once to float.
///   - `ref::gemm_bf16_fp32_chain`: the exact operation sequence of the two SIMD paths, one element at a
///     time with `std::fma`: per block of `kc` steps of k (in increasing order), one fp32 FMA chain over k
///     starting from +0, whose value is then added to C in fp32 (or stored, for the first block when
///     beta = 0). With `native = true` it is the VDPBF16PS sequence of the native path: every FMA treats
///     subnormal inputs (both factors and the running sum) as ±0 and flushes a subnormal result to ±0
///     (DAZ/FTZ), and a block of odd length ends with one more FMA of the zero pad pair, s ← s + 0·0
///     (which turns a flushed −0 into +0 and changes nothing else). The SIMD paths must equal this twin bit
///     for bit (NaN payloads aside), so it pins the summation order, not just the accuracy.
///
/// Dims legend (as kernels/gemm.hpp; row-major, leading dimensions in elements):
///   nn: C(M×N) = A(M×K)·B(K×N)         lda >= K, ldb >= N
///   nt: C(M×N) = A(M×K)·B(N×K)ᵀ        lda >= K, ldb >= K
///   tn: C(M×N) = A(K×M)ᵀ·B(K×N)        lda >= M, ldb >= N
///   ldc >= N always. beta ∈ {0, 1}: 0 overwrites C without reading it, 1 accumulates into C.

#include <algorithm>
#include <cmath>
#include <cstddef>

#include <ballast/core/config.hpp>
#include <ballast/kernels/ref/bf16.hpp>
#include <ballast/kernels/ref/gemm.hpp>

namespace ballast::kernels::ref
{
    namespace ref_detail // not `detail`: inside ref that name would hide kernels::detail for every ref kernel
    {
        /// x, or ±0 when x is subnormal (DAZ on an input, FTZ on a result).
        inline float flush_subnormal(float x) noexcept
        {
            return std::fpclassify(x) == FP_SUBNORMAL ? std::copysign(0.0f, x) : x;
        }
    } // namespace ref_detail

    /// C = round_bf16(op(A))·round_bf16(op(B)) (beta = 0) or C += … (beta = 1), accumulated in double and
    /// rounded once to float.
    inline void gemm_bf16(gemm_layout layout, std::size_t M, std::size_t N, std::size_t K, const float* A,
                          std::size_t lda, const float* B, std::size_t ldb, float beta, float* C,
                          std::size_t ldc)
    {
        ::ballast::kernels::detail::gemm_check_args("ref::gemm_bf16", layout, M, N, K, lda, ldb, beta, ldc);
        const bool a_trans = layout == gemm_layout::tn;
        const bool b_trans = layout == gemm_layout::nt;
        for (std::size_t i = 0; i < M; ++i)
        {
            for (std::size_t j = 0; j < N; ++j)
            {
                double s = 0;
                for (std::size_t k = 0; k < K; ++k)
                {
                    const float a =
                      ::ballast::kernels::round_to_bf16(a_trans ? A[k * lda + i] : A[i * lda + k]);
                    const float b =
                      ::ballast::kernels::round_to_bf16(b_trans ? B[j * ldb + k] : B[k * ldb + j]);
                    s += static_cast<double>(a) * static_cast<double>(b);
                }
                float& c = C[i * ldc + j];
                c = beta == 0.0f ? static_cast<float>(s) : static_cast<float>(static_cast<double>(c) + s);
            }
        }
    }

    /// The SIMD paths' exact fp32 operation sequence (see the file comment): K in blocks of `kc`
    /// (kc >= 1), per block an fp32 FMA chain from +0 over k increasing, then C = block (first block,
    /// beta = 0) or C = C + block. `native`: VDPBF16PS's DAZ/FTZ on every FMA (not on the C addition) and
    /// the zero pad of an odd block.
    inline void gemm_bf16_fp32_chain(gemm_layout layout, std::size_t M, std::size_t N, std::size_t K,
                                     const float* A, std::size_t lda, const float* B, std::size_t ldb,
                                     float beta, float* C, std::size_t ldc, std::size_t kc, bool native)
    {
        ::ballast::kernels::detail::gemm_check_args("ref::gemm_bf16_fp32_chain", layout, M, N, K, lda, ldb,
                                                    beta, ldc);
        BALLAST_CHECK(kc >= 1, "ref::gemm_bf16_fp32_chain", "kc must be >= 1");
        const bool a_trans = layout == gemm_layout::tn;
        const bool b_trans = layout == gemm_layout::nt;
        const auto in = [&](float x)
        {
            const float r = ::ballast::kernels::round_to_bf16(x);
            return native ? ref_detail::flush_subnormal(r) : r;
        };
        for (std::size_t i = 0; i < M; ++i)
        {
            for (std::size_t j = 0; j < N; ++j)
            {
                float& c = C[i * ldc + j];
                if (K == 0 && beta == 0.0f)
                {
                    c = 0.0f;
                }
                for (std::size_t pc = 0; pc < K; pc += kc)
                {
                    float s = 0.0f;
                    const std::size_t k_end = std::min(K, pc + kc);
                    for (std::size_t k = pc; k < k_end; ++k)
                    {
                        const float a = in(a_trans ? A[k * lda + i] : A[i * lda + k]);
                        const float b = in(b_trans ? B[j * ldb + k] : B[k * ldb + j]);
                        s = std::fma(a, b, s);
                        if (native)
                        {
                            s = ref_detail::flush_subnormal(s);
                        }
                    }
                    if (native && (k_end - pc) % 2 == 1)
                    {
                        s = std::fma(0.0f, 0.0f, s); // the zero pad of the last bf16 pair
                    }
                    c = pc == 0 && beta == 0.0f ? s : c + s;
                }
            }
        }
    }
} // namespace ballast::kernels::ref

#endif
