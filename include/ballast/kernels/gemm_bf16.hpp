#ifndef BALLAST_KERNELS_GEMM_BF16_HPP
#define BALLAST_KERNELS_GEMM_BF16_HPP

/// @file
/// bf16-input GEMM with fp32 accumulation: C (fp32) = round_bf16(op(A))·round_bf16(op(B)) (beta = 0) or
/// C += … (beta = 1), the arithmetic of a TPU matmul and of `torch.matmul` on bf16 tensors with fp32
/// accumulation. A and B are fp32 buffers; they are rounded to bf16 (round to nearest even, exactly as
/// `round_to_bf16` in kernels/bf16.hpp) while being packed, so callers never store bf16 copies.
///
/// Dims legend (as kernels/gemm.hpp; row-major, leading dimensions in elements):
///   M = rows of C, N = columns of C, K = reduction length.
///   nn: C(M×N) = A(M×K)·B(K×N)         lda >= K, ldb >= N
///   nt: C(M×N) = A(M×K)·B(N×K)ᵀ        lda >= K, ldb >= K
///   tn: C(M×N) = A(K×M)ᵀ·B(K×N)        lda >= M, ldb >= N
///   ldc >= N always. MR×NR = micro-tile; KC, MC, NC = cache blocks.
///
/// Two paths, chosen at compile time (`bf16_gemm_path`, template argument, no runtime dispatch):
///   emulated  portable (any xsimd arch): packs the rounded values as floats and runs an fp32 FMA
///             micro-kernel (MR×NR = 6 × 2 registers, as kernels/gemm.hpp).
///   native    AVX512_BF16 only (`__AVX512BF16__`, e.g. -march=native on Zen 4/5, Cooper Lake, Sapphire
///             Rapids): packs pairs of consecutive k into one 32-bit lane (bf16 of k in the upper half,
///             of k+1 in the lower half) and runs `_mm512_dpbf16_ps` (VDPBF16PS), 8×32 tile in 16 zmm
///             accumulators; one instruction does 16 lanes × 2 multiply-adds.
///
/// Summation order (both paths, fixed, independent of thread count and tile position): K is cut into
/// blocks of `gemm_bf16_kc` = 256 in increasing order; per block, each C element is one fp32 FMA chain
/// over k in increasing order starting from +0; the block value is then added to C in fp32 (or stored,
/// for the first block when beta = 0). `ref::gemm_bf16_fp32_chain` is this sequence written out per
/// element, and both paths equal it bit for bit (NaN payloads aside; tested).
///
/// How VDPBF16PS rounds (Intel SDM; verified on this Zen 5 on 3.2 M random lanes, subnormals included):
/// per 32-bit lane i, two fp32 FMAs in sequence, each rounded to nearest even, MXCSR neither read nor
/// written, with DAZ on the inputs and FTZ on the result:
///   acc ← fma(a[2i+1], b[2i+1], acc); acc ← fma(a[2i], b[2i], acc)      (the upper bf16 of the pair first)
/// The product of two bf16 values (8-bit significands) is exact in fp32, so each step is one rounding of
/// acc + exact product. With k in the upper half, the native chain is exactly the emulated chain, except:
///   - DAZ: a subnormal bf16 input (|x| < 2^-126 after rounding) counts as ±0 (the emulated path uses it);
///   - FTZ: a partial sum that would be subnormal becomes ±0 (the emulated path keeps it);
///   - an odd K pads the last pair with (0, 0), adding +0 (can only turn a flushed −0 into +0);
///   - NaN: both give NaN, possibly with different payloads.
/// So the two paths agree bit for bit whenever no bf16 input and no partial sum is subnormal, i.e. for
/// all data of normal magnitude (tested), and otherwise differ by at most the flushed subnormal amounts
/// (each < 2^-126 ≈ 1.2e-38 per FMA). Both are deterministic and thread-count independent.
///
/// Threads: the calling thread's team (core/parallel.hpp; serial below `gemm_bf16_parallel_min_macs` or
/// inside a parallel loop); C's MR-row slivers are split into `gemm_blocks_per_thread` even contiguous
/// row blocks per thread, handed out dynamically, each block packing its own B (no barrier). Which thread
/// computes an element never changes its order, so results are bit-identical for any thread count.
/// (The column split of kernels/gemm.hpp is not mirrored here.)
///
/// With `BALLAST_FORCE_SCALAR` the public `gemm_bf16` forwards to `ref::gemm_bf16` (double accumulation).

#include <algorithm>
#include <cstddef>
#include <cstdint>


#include <ballast/core/aligned.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/core/xsimd.hpp>
#include <ballast/kernels/bf16.hpp>
#include <ballast/kernels/gemm.hpp>
#include <ballast/kernels/ref/bf16.hpp>
#include <ballast/kernels/ref/gemm.hpp>
#include <ballast/kernels/ref/gemm_bf16.hpp>

namespace ballast::kernels
{
    /// Which implementation of the bf16 GEMM to compile.
    enum class bf16_gemm_path
    {
        emulated, ///< portable: bf16-rounded floats, fp32 FMA micro-kernel
        native    ///< AVX512_BF16 VDPBF16PS (only where `bf16_native_available`)
    };

    /// True when the compiler may emit AVX512_BF16 instructions (and the kernels are not forced scalar).
    inline constexpr bool bf16_native_available =
#if defined(__AVX512BF16__) && defined(__AVX512F__)
      !simd::force_scalar;
#else
      false;
#endif

    /// The path `gemm_bf16` uses unless told otherwise: native where available, emulated elsewhere.
    inline constexpr bf16_gemm_path bf16_gemm_default_path =
      bf16_native_available ? bf16_gemm_path::native : bf16_gemm_path::emulated;

    /// K block of both paths: it defines the summation order (see the file comment), so it is shared;
    /// even, so a bf16 pair never straddles two blocks. 256 as in kernels/gemm.hpp (one KC×NR sliver of
    /// packed B in L1: 16 KiB of bf16 pairs for the native tile, 32 KiB of floats for the emulated one).
    inline constexpr std::size_t gemm_bf16_kc = 256;

    /// M block (rows of packed A per block, a multiple of MR = 6 and 8) and N block (columns of packed B per
    /// block, a multiple of every NR): as kernels/gemm.hpp, A block in L2, B block in L3.
    inline constexpr std::size_t gemm_bf16_mc = 240;
    inline constexpr std::size_t gemm_bf16_nc = 4096;

    /// Below this many multiply-adds the call runs on one thread (as kernels/gemm.hpp).
    inline constexpr std::size_t gemm_bf16_parallel_min_macs = std::size_t(1) << 19;

    namespace detail
    {
        /// Per-thread growable aligned scratch (`Tag` separates buffers); grows, never shrinks.
        template <class T, int Tag>
        inline T* gemm_bf16_scratch(std::size_t n)
        {
            thread_local aligned_vector<T> buf;
            if (buf.size() < n)
            {
                buf.resize(n);
            }
            return buf.data();
        }

        /// The emulated path: packed operands are bf16-rounded floats, one k per packed row.
        template <class Arch>
        struct gemm_bf16_emulated
        {
            using packed = float;
            using V = xsimd::batch<float, Arch>;
            static constexpr std::size_t lanes = V::size;
            static constexpr std::size_t mr = 6;
            static constexpr std::size_t nr = 2 * lanes;

            /// Packed rows for `kc` steps of k.
            static constexpr std::size_t rows(std::size_t kc) noexcept { return kc; }

            /// Pack a `w`-wide panel of `kc` steps into slivers of W: dst[s·W·kc + k·W + c] =
            /// round_bf16(src(s·W + c, k)), zero past w. Source element (c, k) is src[c·cs + k·ks]. A plain
            /// copy (row copies or a transpose) followed by one SIMD rounding pass over the packed panel,
            /// which is contiguous and aligned: the copy loops stay simple enough to vectorise.
            template <std::size_t W>
            static void pack(const float* __restrict src, std::size_t cs, std::size_t ks, std::size_t kc,
                             std::size_t w, float* __restrict dst) noexcept
            {
                const std::size_t slivers = (w + W - 1) / W;
                if (cs == 1)
                {
                    // Width contiguous: stream each source row across the panel.
                    for (std::size_t k = 0; k < kc; ++k)
                    {
                        const float* s = src + k * ks;
                        for (std::size_t sl = 0; sl < slivers; ++sl)
                        {
                            float* d = dst + sl * W * kc + k * W;
                            const std::size_t c0 = sl * W, n = std::min(W, w - c0);
                            if (n == W)
                            {
#pragma GCC unroll 32
                                for (std::size_t c = 0; c < W; ++c)
                                {
                                    d[c] = s[c0 + c];
                                }
                                continue;
                            }
                            for (std::size_t c = 0; c < W; ++c)
                            {
                                d[c] = c < n ? s[c0 + c] : 0.0f;
                            }
                        }
                    }
                }
                else
                {
                    // K contiguous: each of the W rows of a sliver is read front to back.
                    for (std::size_t sl = 0; sl < slivers; ++sl)
                    {
                        float* d = dst + sl * W * kc;
                        for (std::size_t c = 0; c < W; ++c)
                        {
                            const float* s = src + (sl * W + c) * cs;
                            const bool in = sl * W + c < w;
                            for (std::size_t k = 0; k < kc; ++k)
                            {
                                d[k * W + c] = in ? s[k * ks] : 0.0f;
                            }
                        }
                    }
                }
                const std::size_t total = slivers * W * kc;
                std::size_t i = 0;
                for (; i + lanes <= total; i += lanes)
                {
                    round_to_bf16_batch(V::load_aligned(dst + i)).store_aligned(dst + i);
                }
                for (; i < total; ++i)
                {
                    dst[i] = round_to_bf16(dst[i]);
                }
            }

            /// a·b + c with one rounding. xsimd 8.1 has no AVX-512 `fma` (its generic `x * y + z` is fused
            /// only when the compiler contracts it, which GCC does at -O2 and above but not at -O1: the
            /// sanitize preset's emulated results then differed from the chain twin on subnormal data), so
            /// AVX-512 calls the instruction directly; FMA3 targets get it from xsimd. Without FMA
            /// instructions it is a multiply then an add: the same bits (products of bf16 values are exact in
            /// fp32) unless a product underflows.
            static V fused(const V& a, const V& b, const V& c) noexcept
            {
#if defined(__AVX512F__)
                if constexpr (lanes == 16)
                {
                    return V(_mm512_fmadd_ps(a, b, c));
                }
                else
#endif
                {
                    return xsimd::fma(a, b, c);
                }
            }

            /// tile(MR×NR) = Σ_k a[k·MR + r]·b[k·NR + c], one FMA chain per output from +0, then stored
            /// to c (accumulate = false) or added to it. `b` aligned to the SIMD width.
            static void kernel(std::size_t kc, const float* __restrict a, const float* __restrict b,
                               float* __restrict c, std::size_t ldc, bool accumulate) noexcept
            {
                V acc[mr][2];
#pragma GCC unroll 6
                for (std::size_t r = 0; r < mr; ++r)
                {
                    acc[r][0] = V(0.0f);
                    acc[r][1] = V(0.0f);
                }
#pragma GCC unroll 4
                for (std::size_t k = 0; k < kc; ++k)
                {
                    const V b0 = V::load_aligned(b);
                    const V b1 = V::load_aligned(b + lanes);
#pragma GCC unroll 6
                    for (std::size_t r = 0; r < mr; ++r)
                    {
                        const V ar(a[r]);
                        acc[r][0] = fused(ar, b0, acc[r][0]);
                        acc[r][1] = fused(ar, b1, acc[r][1]);
                    }
                    a += mr;
                    b += nr;
                }
#pragma GCC unroll 6
                for (std::size_t r = 0; r < mr; ++r)
                {
                    float* cr = c + r * ldc;
                    if (accumulate)
                    {
                        acc[r][0] += V::load_unaligned(cr);
                        acc[r][1] += V::load_unaligned(cr + lanes);
                    }
                    acc[r][0].store_unaligned(cr);
                    acc[r][1].store_unaligned(cr + lanes);
                }
            }
        };

#if defined(__AVX512BF16__) && defined(__AVX512F__)
        /// The native path: packed operands are bf16 pairs in 32-bit lanes, (k, k+1) = (upper, lower) half.
        struct gemm_bf16_native
        {
            using packed = std::uint32_t;
            static constexpr std::size_t lanes = 16;
            /// 8 rows: 16 accumulator chains. VDPBF16PS issues 2 per cycle here and a lane's two FMAs are
            /// dependent, so it needs more chains in flight than the fp32 FMA: a probe on this Zen 5 reached
            /// 92% of its peak with 12 independent chains and 99.6% with 16, and MR = 8 ran 12-18% faster
            /// than MR = 6 (CPU time, 1 thread, 2048×256×256 nn/nt, 2048×768×768 nn, 768×768×2048 tn).
            /// 16 accumulators + 2 B registers + 1 broadcast = 19 of the 32 zmm.
            static constexpr std::size_t mr = 8;
            static constexpr std::size_t nr = 2 * lanes;

            /// Packed rows (pairs of k) for `kc` steps of k; an odd kc pads the last pair with 0.
            static constexpr std::size_t rows(std::size_t kc) noexcept { return (kc + 1) / 2; }

            /// bf16(k) in the upper half (VDPBF16PS multiplies it first), bf16(k+1) in the lower half.
            static std::uint32_t pair(float first, float second) noexcept
            {
                return (static_cast<std::uint32_t>(float_to_bf16_bits(first)) << 16) |
                       static_cast<std::uint32_t>(float_to_bf16_bits(second));
            }

            /// Permutation tables of the W-row transpose in `pack` (W = 6 or 8): output word e (of 8·W) is
            /// pair p = e / W of row c = e % W. Rows 0-3 sit in z0 = [row0 | row1], z1 = [row2 | row3]
            /// (permutex2var index (c / 2)·16 + (c % 2)·8 + p), rows 4-7 in z2 = [row4 | row5],
            /// z3 = [row6 | row7] (the same index with c − 4), selected by `upper`.
            template <std::size_t W>
            struct transpose_tables
            {
                static constexpr std::size_t vectors = W / 2; // 8·W words, 16 per zmm
                alignas(64) std::int32_t lower[vectors][16];
                alignas(64) std::int32_t higher[vectors][16];
                __mmask16 upper[vectors];
            };

            template <std::size_t W>
            static const transpose_tables<W>& transpose() noexcept
            {
                static const transpose_tables<W> t = []
                {
                    transpose_tables<W> r{};
                    for (std::size_t j = 0; j < transpose_tables<W>::vectors; ++j)
                    {
                        r.upper[j] = 0;
                        for (std::size_t q = 0; q < 16; ++q)
                        {
                            const std::size_t e = 16 * j + q, p = e / W, c = e % W, cc = c % 4;
                            const auto idx = static_cast<std::int32_t>((cc / 2) * 16 + (cc % 2) * 8 + p);
                            r.lower[j][q] = c < 4 ? idx : 0;
                            r.higher[j][q] = c < 4 ? 0 : idx;
                            if (c >= 4)
                            {
                                r.upper[j] = static_cast<__mmask16>(r.upper[j] | (1u << q));
                            }
                        }
                    }
                    return r;
                }();
                return t;
            }

            /// 16 floats rounded to bf16: the rounded values' bit patterns (low halves zero, NaN quieted),
            /// the rule of `float_to_bf16_bits` on 32-bit lanes.
            static __m512i round_bits(__m512 x) noexcept
            {
                const __m512i u = _mm512_castps_si512(x);
                const __m512i high = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
                const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
                const __m512i rounded = _mm512_and_si512(
                  _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), odd), high);
                const __m512i nan_bits =
                  _mm512_or_si512(_mm512_and_si512(u, high), _mm512_set1_epi32(0x00400000));
                return _mm512_mask_mov_epi32(rounded, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), nan_bits);
            }

            /// Lanes [0, n) set (n <= 16).
            static __mmask16 first(std::size_t n) noexcept { return static_cast<__mmask16>((1u << n) - 1u); }

            /// Pack a `w`-wide panel of `kc` steps into slivers of W: dst[s·W·P + p·W + c] =
            /// pair(src(s·W + c, 2p), src(s·W + c, 2p + 1)) with P = rows(kc), zero past w and past kc.
            /// Source element (c, k) is src[c·cs + k·ks]; the layouts give cs = 1 (width contiguous: B in
            /// nn/tn, A in tn) or ks = 1 (k contiguous: A in nn/nt, B in nt), both vectorised.
            template <std::size_t W>
            static void pack(const float* __restrict src, std::size_t cs, std::size_t ks, std::size_t kc,
                             std::size_t w, std::uint32_t* __restrict dst) noexcept
            {
                const std::size_t slivers = (w + W - 1) / W;
                const std::size_t np = rows(kc);
                if (cs == 1)
                {
                    // Rows 2p and 2p+1 side by side: lane c of the pair is (bits(row 2p) & high) | bits(row
                    // 2p+1) >> 16, no shuffles. Masked loads zero the lanes past w (bf16 of 0 is 0).
                    for (std::size_t p = 0; p < np; ++p)
                    {
                        const float* s0 = src + 2 * p * ks;
                        const float* s1 = 2 * p + 1 < kc ? s0 + ks : nullptr;
                        for (std::size_t sl = 0; sl < slivers; ++sl)
                        {
                            std::uint32_t* d = dst + sl * W * np + p * W;
                            const std::size_t c0 = sl * W, n = std::min(W, w - c0);
                            for (std::size_t c = 0; c < W; c += 16)
                            {
                                const std::size_t valid = n > c ? std::min<std::size_t>(16, n - c) : 0;
                                const __mmask16 lm = first(valid);
                                const __m512i r0 = round_bits(_mm512_maskz_loadu_ps(lm, s0 + c0 + c));
                                const __m512i r1 = s1 ? round_bits(_mm512_maskz_loadu_ps(lm, s1 + c0 + c))
                                                      : _mm512_setzero_si512();
                                const __m512i v = _mm512_or_si512(r0, _mm512_srli_epi32(r1, 16));
                                _mm512_mask_storeu_epi32(d + c, first(std::min<std::size_t>(16, W - c)), v);
                            }
                        }
                    }
                    return;
                }
                if (ks == 1)
                {
                    // Each row of the sliver, 8 pairs (16 floats) at a time: round, then fold each 64-bit
                    // lane (k, k+1) to one 32-bit pair, (lo & 0xFFFF0000) | (hi >> 16) = (x & high) |
                    // x >> 48, and narrow with VPMOVQD: 8 pairs of row c. W = MR = 8 (A in nn/nt, repacked
                    // for every MC×KC block; W = 6 also works): the W rows' vectors are transposed in
                    // registers into the 8·W consecutive packed words (W / 2 zmm, two permutes and a blend
                    // each). W = 32 (B in nt): the same 8-row transpose per group of 8 rows.
                    const __m512i high64 = _mm512_set1_epi64(0xFFFF0000);
                    const auto row_pairs = [&](const float* s, std::size_t p0) -> __m256i
                    {
                        const std::size_t k0 = 2 * p0;
                        const __mmask16 lm = first(std::min<std::size_t>(16, kc - k0));
                        const __m512i r = round_bits(_mm512_maskz_loadu_ps(lm, s + k0));
                        return _mm512_cvtepi64_epi32(
                          _mm512_or_si512(_mm512_and_si512(r, high64), _mm512_srli_epi64(r, 48)));
                    };
                    for (std::size_t sl = 0; sl < slivers; ++sl)
                    {
                        std::uint32_t* d = dst + sl * W * np;
                        const std::size_t n = std::min(W, w - sl * W);
                        if constexpr (W == 6 || W == 8)
                        {
                            const auto& t = transpose<W>();
                            for (std::size_t p0 = 0; p0 < np; p0 += 8)
                            {
                                __m256i r[8];
                                for (std::size_t c = 0; c < 8; ++c)
                                {
                                    r[c] =
                                      c < n ? row_pairs(src + (sl * W + c) * cs, p0) : _mm256_setzero_si256();
                                }
                                __m512i z[4];
                                for (std::size_t h = 0; h < 4; ++h)
                                {
                                    z[h] =
                                      _mm512_inserti64x4(_mm512_castsi256_si512(r[2 * h]), r[2 * h + 1], 1);
                                }
                                const std::size_t words = W * std::min<std::size_t>(8, np - p0);
                                for (std::size_t j = 0; j < W / 2; ++j)
                                {
                                    const __m512i lo =
                                      _mm512_permutex2var_epi32(z[0], _mm512_load_si512(t.lower[j]), z[1]);
                                    const __m512i hi =
                                      _mm512_permutex2var_epi32(z[2], _mm512_load_si512(t.higher[j]), z[3]);
                                    const __m512i v = _mm512_mask_blend_epi32(t.upper[j], lo, hi);
                                    const std::size_t valid =
                                      words > 16 * j ? std::min<std::size_t>(16, words - 16 * j) : 0;
                                    _mm512_mask_storeu_epi32(d + p0 * W + 16 * j, first(valid), v);
                                }
                            }
                        }
                        else
                        {
                            // W a multiple of 8 (B in nt, W = NR = 32): groups of 8 rows through the 8-row
                            // transpose; zmm j then holds pairs p0 + 2j and p0 + 2j + 1 of the group's 8
                            // rows, stored as two 8-word runs W apart.
                            static_assert(W % 8 == 0,
                                          "the k-contiguous packing handles W = 6 or a multiple of 8");
                            const auto& t = transpose<8>();
                            for (std::size_t g = 0; g < W; g += 8)
                            {
                                for (std::size_t p0 = 0; p0 < np; p0 += 8)
                                {
                                    __m256i r[8];
                                    for (std::size_t c = 0; c < 8; ++c)
                                    {
                                        r[c] = g + c < n ? row_pairs(src + (sl * W + g + c) * cs, p0)
                                                         : _mm256_setzero_si256();
                                    }
                                    __m512i z[4];
                                    for (std::size_t h = 0; h < 4; ++h)
                                    {
                                        z[h] = _mm512_inserti64x4(_mm512_castsi256_si512(r[2 * h]),
                                                                  r[2 * h + 1], 1);
                                    }
                                    const std::size_t pairs = std::min<std::size_t>(8, np - p0);
                                    for (std::size_t j = 0; j < 4 && 2 * j < pairs; ++j)
                                    {
                                        const __m512i lo = _mm512_permutex2var_epi32(
                                          z[0], _mm512_load_si512(t.lower[j]), z[1]);
                                        const __m512i hi = _mm512_permutex2var_epi32(
                                          z[2], _mm512_load_si512(t.higher[j]), z[3]);
                                        const __m512i v = _mm512_mask_blend_epi32(t.upper[j], lo, hi);
                                        std::uint32_t* o = d + (p0 + 2 * j) * W + g;
                                        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o),
                                                            _mm512_castsi512_si256(v));
                                        if (2 * j + 1 < pairs)
                                        {
                                            _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + W),
                                                                _mm512_extracti64x4_epi64(v, 1));
                                        }
                                    }
                                }
                            }
                        }
                    }
                    return;
                }
                // Neither stride is 1 (no layout produces this): element by element.
                for (std::size_t sl = 0; sl < slivers; ++sl)
                {
                    std::uint32_t* d = dst + sl * W * np;
                    for (std::size_t c = 0; c < W; ++c)
                    {
                        const bool in = sl * W + c < w;
                        const float* s = src + (sl * W + c) * cs;
                        for (std::size_t p = 0; p < np; ++p)
                        {
                            const float second = in && 2 * p + 1 < kc ? s[(2 * p + 1) * ks] : 0.0f;
                            d[p * W + c] = in ? pair(s[2 * p * ks], second) : 0u;
                        }
                    }
                }
            }

            /// tile(MR×NR) over `np` pairs: per pair, two zmm loads of B, MR 32-bit broadcasts of A, 2·MR
            /// VDPBF16PS into 2·MR accumulators started at +0; then stored to c or added to it (fp32 add).
            static void kernel(std::size_t np, const std::uint32_t* __restrict a,
                               const std::uint32_t* __restrict b, float* __restrict c, std::size_t ldc,
                               bool accumulate) noexcept
            {
                __m512 acc[mr][2];
#pragma GCC unroll 8
                for (std::size_t r = 0; r < mr; ++r)
                {
                    acc[r][0] = _mm512_setzero_ps();
                    acc[r][1] = _mm512_setzero_ps();
                }
#pragma GCC unroll 4
                for (std::size_t p = 0; p < np; ++p)
                {
                    const __m512bh b0 = (__m512bh)_mm512_load_si512(b);
                    const __m512bh b1 = (__m512bh)_mm512_load_si512(b + lanes);
#pragma GCC unroll 8
                    for (std::size_t r = 0; r < mr; ++r)
                    {
                        const __m512bh ar = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[r]));
                        acc[r][0] = _mm512_dpbf16_ps(acc[r][0], ar, b0);
                        acc[r][1] = _mm512_dpbf16_ps(acc[r][1], ar, b1);
                    }
                    a += mr;
                    b += nr;
                }
#pragma GCC unroll 8
                for (std::size_t r = 0; r < mr; ++r)
                {
                    float* cr = c + r * ldc;
                    if (accumulate)
                    {
                        acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_loadu_ps(cr));
                        acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_loadu_ps(cr + lanes));
                    }
                    _mm512_storeu_ps(cr, acc[r][0]);
                    _mm512_storeu_ps(cr + lanes, acc[r][1]);
                }
            }
        };
#endif

        /// The blocked, threaded driver shared by both paths (arguments validated, M, N, K > 0).
        template <class P>
        inline void gemm_bf16_blocked(gemm_layout layout, std::size_t M, std::size_t N, std::size_t K,
                                      const float* A, std::size_t lda, const float* B, std::size_t ldb,
                                      bool beta_one, float* C, std::size_t ldc)
        {
            using packed = typename P::packed;
            constexpr std::size_t MR = P::mr, NR = P::nr;
            constexpr std::size_t KC = gemm_bf16_kc, MC = gemm_bf16_mc, NC = gemm_bf16_nc;
            static_assert(KC % 2 == 0 && MC % MR == 0 && NC % NR == 0,
                          "blocks must be whole tiles and pairs");

            // Strides of op(A)(i, k) and op(B)(k, j) in the stored arrays.
            const std::size_t a_is = layout == gemm_layout::tn ? 1 : lda;
            const std::size_t a_ks = layout == gemm_layout::tn ? lda : 1;
            const std::size_t b_js = layout == gemm_layout::nt ? ldb : 1;
            const std::size_t b_ks = layout == gemm_layout::nt ? 1 : ldb;

            const std::size_t m_slivers = (M + MR - 1) / MR;
            const std::size_t rows_max = P::rows(std::min(K, KC));
            std::size_t team = 1;
            if (!in_parallel() && M * N * K >= gemm_bf16_parallel_min_macs)
            {
                team = std::min(static_cast<std::size_t>(num_threads()), m_slivers);
            }
            // Row blocks handed out dynamically (core/parallel.hpp): gemm_blocks_per_thread per thread.
            const std::size_t blocks = team == 1 ? 1 : std::min(m_slivers, team * gemm_blocks_per_thread);

            const auto share = [&](std::size_t nt, std::size_t tid)
            {
                const std::size_t row0 = std::min(M, (m_slivers * tid / nt) * MR);
                const std::size_t row1 = std::min(M, (m_slivers * (tid + 1) / nt) * MR);
                if (row1 <= row0)
                {
                    return;
                }
                packed* const a_pack = gemm_bf16_scratch<packed, 0>(MC * rows_max);
                packed* const b_pack =
                  gemm_bf16_scratch<packed, 1>(rows_max * ((std::min(NC, N) + NR - 1) / NR * NR));
                alignas(64) float tile[MR * NR];
                for (std::size_t jc = 0; jc < N; jc += NC)
                {
                    const std::size_t nc = std::min(NC, N - jc);
                    const std::size_t n_slivers = (nc + NR - 1) / NR;
                    for (std::size_t pc = 0; pc < K; pc += KC)
                    {
                        const std::size_t kc = std::min(KC, K - pc);
                        const std::size_t kr = P::rows(kc);
                        const bool accumulate = beta_one || pc > 0;
                        P::template pack<NR>(B + jc * b_js + pc * b_ks, b_js, b_ks, kc, nc, b_pack);
                        for (std::size_t ic = row0; ic < row1; ic += MC)
                        {
                            const std::size_t mc = std::min(MC, row1 - ic);
                            const std::size_t mc_slivers = (mc + MR - 1) / MR;
                            P::template pack<MR>(A + ic * a_is + pc * a_ks, a_is, a_ks, kc, mc, a_pack);
                            for (std::size_t sj = 0; sj < n_slivers; ++sj)
                            {
                                const std::size_t j = jc + sj * NR;
                                const std::size_t n = std::min(NR, N - j);
                                const packed* bs = b_pack + sj * NR * kr;
                                for (std::size_t si = 0; si < mc_slivers; ++si)
                                {
                                    const std::size_t i = ic + si * MR;
                                    const std::size_t m = std::min(MR, M - i);
                                    const packed* as = a_pack + si * MR * kr;
                                    float* ct = C + i * ldc + j;
                                    if (m == MR && n == NR)
                                    {
                                        P::kernel(kr, as, bs, ct, ldc, accumulate);
                                        continue;
                                    }
                                    // Edge tile: full tile into scratch, then the valid part (same order).
                                    P::kernel(kr, as, bs, tile, NR, false);
                                    for (std::size_t r = 0; r < m; ++r)
                                    {
                                        for (std::size_t q = 0; q < n; ++q)
                                        {
                                            float& dst = ct[r * ldc + q];
                                            dst = accumulate ? dst + tile[r * NR + q] : tile[r * NR + q];
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            };
            if (team == 1)
            {
                share(1, 0);
                return;
            }
            parallel_chunks(blocks, [&](std::size_t c, std::size_t) { share(blocks, c); });
        }
    } // namespace detail

    /// C = round_bf16(op(A))·round_bf16(op(B)) (beta = 0: C is only written) or C += … (beta = 1), fp32
    /// accumulation in the fixed order of the file comment; layouts and leading dimensions as `gemm`. Any
    /// other beta or a too-short leading dimension throws ballast::error. M, N or K may be 0 (K = 0 with
    /// beta = 0 zeroes C). `Path = native` requires `bf16_native_available`. Bit-identical for any thread
    /// count; serial inside an enclosing parallel region.
    template <bf16_gemm_path Path = bf16_gemm_default_path>
    inline void gemm_bf16(gemm_layout layout, std::size_t M, std::size_t N, std::size_t K, const float* A,
                          std::size_t lda, const float* B, std::size_t ldb, float beta, float* C,
                          std::size_t ldc)
    {
        static_assert(Path == bf16_gemm_path::emulated || bf16_native_available,
                      "gemm_bf16<native> needs AVX512_BF16 (compile with -march=native on a CPU that has it, "
                      "or -mavx512bf16); use bf16_gemm_path::emulated or bf16_gemm_default_path");
        if constexpr (simd::force_scalar)
        {
            ref::gemm_bf16(layout, M, N, K, A, lda, B, ldb, beta, C, ldc);
        }
        else
        {
            detail::gemm_check_args("gemm_bf16", layout, M, N, K, lda, ldb, beta, ldc);
            if (M == 0 || N == 0)
            {
                return;
            }
            if (K == 0)
            {
                if (beta == 0.0f)
                {
                    for (std::size_t i = 0; i < M; ++i)
                    {
                        std::fill(C + i * ldc, C + i * ldc + N, 0.0f);
                    }
                }
                return;
            }
            if constexpr (Path == bf16_gemm_path::emulated)
            {
                detail::gemm_bf16_blocked<detail::gemm_bf16_emulated<simd::arch>>(layout, M, N, K, A, lda, B,
                                                                                  ldb, beta == 1.0f, C, ldc);
            }
#if defined(__AVX512BF16__) && defined(__AVX512F__)
            else
            {
                detail::gemm_bf16_blocked<detail::gemm_bf16_native>(layout, M, N, K, A, lda, B, ldb,
                                                                    beta == 1.0f, C, ldc);
            }
#endif
        }
    }
} // namespace ballast::kernels

#endif
