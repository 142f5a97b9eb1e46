#ifndef BALLAST_KERNELS_REF_GEMM_HPP
#define BALLAST_KERNELS_REF_GEMM_HPP

/// @file
/// Scalar reference twin of the GEMM kernel (`ballast/kernels/gemm.hpp`): a plain triple loop that
/// accumulates every output in double and rounds once to T. It is the test oracle and the
/// `BALLAST_FORCE_SCALAR` fallback. Also defines `gemm_layout` and the argument validation shared by
/// both implementations, so the twin and the SIMD kernel refuse exactly the same inputs.
///
/// Dims legend (row-major, leading dimensions in elements):
///   M = rows of C, N = columns of C, K = reduction length.
///   nn: C(M×N) = A(M×K)·B(K×N)         lda >= K, ldb >= N
///   nt: C(M×N) = A(M×K)·B(N×K)ᵀ        lda >= K, ldb >= K
///   tn: C(M×N) = A(K×M)ᵀ·B(K×N)        lda >= M, ldb >= N
///   ldc >= N always. beta ∈ {0, 1}: 0 overwrites C without reading it, 1 accumulates into C.

#include <cstddef>

#include <ballast/core/config.hpp>

namespace ballast::kernels
{
    /// Storage of the operands; the output C is always row-major M×N.
    enum class gemm_layout
    {
        nn, ///< C = A·B,  A stored M×K, B stored K×N (forward: Y = X·W).
        nt, ///< C = A·Bᵀ, A stored M×K, B stored N×K (backward data: dX = dY·Wᵀ).
        tn  ///< C = Aᵀ·B, A stored K×M, B stored K×N (backward weights: dW = Xᵀ·dY).
    };

    namespace detail
    {
        /// Validate a GEMM call (both implementations); throws ballast::error naming `where`.
        template <class T>
        inline void gemm_check_args(const char* where, gemm_layout layout, std::size_t M, std::size_t N,
                                    std::size_t K, std::size_t lda, std::size_t ldb, T beta, std::size_t ldc)
        {
            BALLAST_CHECK(beta == T(0) || beta == T(1), where, "beta must be 0 or 1, got ", beta);
            BALLAST_CHECK(layout == gemm_layout::nn || layout == gemm_layout::nt || layout == gemm_layout::tn,
                          where, "unknown gemm_layout ", static_cast<int>(layout));
            const std::size_t a_row = layout == gemm_layout::tn ? M : K;
            const std::size_t b_row = layout == gemm_layout::nt ? K : N;
            BALLAST_CHECK(lda >= a_row, where, "lda = ", lda, " is smaller than a row of A (", a_row, ")");
            BALLAST_CHECK(ldb >= b_row, where, "ldb = ", ldb, " is smaller than a row of B (", b_row, ")");
            BALLAST_CHECK(ldc >= N, where, "ldc = ", ldc, " is smaller than a row of C (", N, ")");
        }
    } // namespace detail
} // namespace ballast::kernels

namespace ballast::kernels::ref
{
    /// C = op(A)·op(B) (beta = 0, C is never read) or C += op(A)·op(B) (beta = 1); see the dims legend.
    /// Every output is one double sum over k = 0..K-1 in increasing order, rounded once to T.
    template <class T>
    inline void gemm(gemm_layout layout, std::size_t M, std::size_t N, std::size_t K, const T* A,
                     std::size_t lda, const T* B, std::size_t ldb, T beta, T* C, std::size_t ldc)
    {
        detail::gemm_check_args("ref::gemm", layout, M, N, K, lda, ldb, beta, ldc);
        const bool a_trans = layout == gemm_layout::tn;
        const bool b_trans = layout == gemm_layout::nt;
        for (std::size_t i = 0; i < M; ++i)
        {
            for (std::size_t j = 0; j < N; ++j)
            {
                double s = 0;
                for (std::size_t k = 0; k < K; ++k)
                {
                    const T a = a_trans ? A[k * lda + i] : A[i * lda + k];
                    const T b = b_trans ? B[j * ldb + k] : B[k * ldb + j];
                    s += static_cast<double>(a) * static_cast<double>(b);
                }
                T& c = C[i * ldc + j];
                c = beta == T(0) ? static_cast<T>(s) : static_cast<T>(static_cast<double>(c) + s);
            }
        }
    }

    /// C (+)= A·B with A M×K, B K×N.
    template <class T>
    inline void gemm_nn(std::size_t M, std::size_t N, std::size_t K, const T* A, std::size_t lda, const T* B,
                        std::size_t ldb, T beta, T* C, std::size_t ldc)
    {
        gemm(gemm_layout::nn, M, N, K, A, lda, B, ldb, beta, C, ldc);
    }

    /// C (+)= A·Bᵀ with A M×K, B N×K.
    template <class T>
    inline void gemm_nt(std::size_t M, std::size_t N, std::size_t K, const T* A, std::size_t lda, const T* B,
                        std::size_t ldb, T beta, T* C, std::size_t ldc)
    {
        gemm(gemm_layout::nt, M, N, K, A, lda, B, ldb, beta, C, ldc);
    }

    /// C (+)= Aᵀ·B with A K×M, B K×N.
    template <class T>
    inline void gemm_tn(std::size_t M, std::size_t N, std::size_t K, const T* A, std::size_t lda, const T* B,
                        std::size_t ldb, T beta, T* C, std::size_t ldc)
    {
        gemm(gemm_layout::tn, M, N, K, A, lda, B, ldb, beta, C, ldc);
    }
} // namespace ballast::kernels::ref

#endif
