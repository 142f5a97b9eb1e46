#ifndef BALLAST_KERNELS_GEMM_HPP
#define BALLAST_KERNELS_GEMM_HPP

/// @file
/// SIMD GEMM: C = op(A)·op(B) (beta = 0) or C += op(A)·op(B) (beta = 1), row-major with explicit
/// leading dimensions, in the Goto/BLIS structure: packed panels + one register-blocked FMA
/// micro-kernel written once over `xsimd::batch<T, Arch>`.
///
/// Dims legend (row-major, leading dimensions in elements):
///   M = rows of C, N = columns of C, K = reduction length.
///   nn: C(M×N) = A(M×K)·B(K×N)         lda >= K, ldb >= N
///   nt: C(M×N) = A(M×K)·B(N×K)ᵀ        lda >= K, ldb >= K
///   tn: C(M×N) = A(K×M)ᵀ·B(K×N)        lda >= M, ldb >= N
///   ldc >= N always. L = SIMD lanes of T; MR×NR = micro-tile; MC, KC, NC = cache blocks.
///
/// Loop nest (outermost first). A threaded call splits C into a rows × cols grid of blocks
/// (`gemm_thread_grid`: rows only, unless M < N, as in the short-M weight gradients), `gemm_blocks_per_thread`
/// blocks per thread, handed out dynamically by `parallel_chunks` (core/parallel.hpp): a thread slowed by
/// another process simply takes fewer blocks. Each block is a contiguous, even share of the MR-row slivers
/// times the NR-column slivers of C and runs without ever waiting for another thread (no barrier inside
/// the call, only the end of the job):
///   jc: the block's columns in blocks of NC
///     pc: K in blocks of KC, in increasing order (fixed K-blocking order → fixed summation order)
///       pack B[pc, jc] into NR-column slivers (k-major: NR values per k), private to the thread
///                                            (KC×NC block in L3; every thread packs its own copy;
///                                             row-contiguous sources are read k-tile by k-tile across
///                                             the whole panel, see gemm_pack_panel)
///       ic: the block's rows in blocks of <= MC (packed A block MC×KC lives in L2)
///         pack A[ic, pc] into MR-row slivers (k-major: MR values per k)
///         jr: NR-column slivers of B[pc]     (one KC×NR B sliver stays in L1 across ir)
///           ir: MR-row slivers of the A block → micro-kernel: MR×NR tile (+)= A sliver · B sliver
/// Private B packing costs each block a copy of its columns of B (K·N loads/stores against
/// 2·(M/blocks)·N·K flops: ~6% at M = 2048, 8 blocks split by rows), but a shared B needs a barrier
/// after packing, and on a loaded host a barrier costs up to a scheduler time slice whenever the partner
/// thread is preempted (measured: 2-thread 2048×256×256 ran at 1/3 of the 1-thread rate with shared B under
/// load). Packing absorbs the transposes, so nn, nt and tn share one micro-kernel; packing also zero-pads
/// edge slivers, and edge tiles go through a small MR×NR scratch tile, so any M, N, K, alignment and
/// leading dimension works.
///
/// Determinism: every C element belongs to exactly one block (whichever thread runs it) and is
/// computed as: per KC block, one FMA chain over k in increasing order starting from 0 in T; the block
/// value is then added to C (or stored, for the first block when beta = 0). Nothing in that order
/// depends on the thread count, the grid or on where the element sits inside a tile, so the result is
/// bit-identical for any number of threads.
///
/// With `BALLAST_FORCE_SCALAR` the public `gemm` forwards to `ballast::kernels::ref::gemm`.

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include <ballast/core/aligned.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/core/xsimd.hpp>
#include <ballast/kernels/ref/gemm.hpp>

namespace ballast::kernels
{
    /// Cache/register blocking of the GEMM for element type T on `Arch`.
    template <class T, class Arch = simd::arch>
    struct gemm_blocking
    {
        /// SIMD lanes of T (8 floats / 4 doubles on AVX2).
        static constexpr std::size_t lanes = xsimd::batch<T, Arch>::size;

        /// Micro-tile rows. The micro-tile holds MR×2 accumulator registers; with 16 architectural
        /// vector registers (AVX2, SSE) MR = 6 uses 12 accumulators + 2 B registers + 1 broadcast = 15.
        /// Latency × throughput: Zen3 (and Haswell..Alder Lake) issue 2 FMAs/cycle with 4-cycle latency,
        /// so >= 8 independent accumulators are needed to keep both FMA pipes busy; 12 gives margin.
        /// Per k: 2 vector loads + 6 broadcasts (8 loads, Zen3 does 3/cycle) for 12 FMAs (6 cycles).
        static constexpr std::size_t mr = 6;

        /// Micro-tile columns: two registers (16 floats / 8 doubles on AVX2).
        static constexpr std::size_t nr = 2 * lanes;

        /// K block: one KC×NR B sliver = 256·16·4 B = 16 KiB (float) occupies half of the 32 KiB L1d,
        /// leaving the other half for the streaming A sliver (MR·KC·4 = 6 KiB) and the C tile.
        /// Long enough that the C tile load/store per block (MR×NR) is amortised over 256 FMAs each.
        static constexpr std::size_t kc = 256;

        /// M block: the packed A block MC×KC = 240·256·4 B = 240 KiB (float) sits in the 512 KiB L2,
        /// leaving room for the B slivers streaming through. Multiple of MR. Double: same bytes.
        static constexpr std::size_t mc = sizeof(T) == 4 ? 240 : 120;

        /// N block: the packed B block KC×NC = 256·4096·4 B = 4 MiB (float) sits in the 32 MiB L3 and is
        /// re-read by every MC block of the thread. Covers every model width (<= 4·768 = 3072) in one
        /// block, so each thread packs B once per call. Multiple of NR. An L2-sized NC (256-512) measured
        /// slower on the wide shapes: every extra N block repacks all of A, and the wide-N shapes have
        /// only 1-3 MC blocks per thread re-reading the L3-resident B block.
        static constexpr std::size_t nc = sizeof(T) == 4 ? 4096 : 2048;

        static_assert(mc % mr == 0 && nc % nr == 0, "cache blocks must be whole micro-tiles");
    };

    /// Below this many multiply-adds (M·N·K) the call runs on one thread: ~2^19 MACs take ~15 µs on one
    /// core, and waking the team would eat most of the gain.
    inline constexpr std::size_t gemm_parallel_min_macs = std::size_t(1) << 19;

    /// A threaded GEMM splits C into this many blocks per thread, handed out dynamically. More blocks
    /// balance better when a thread is slowed by another process; each block packs its own columns of B,
    /// so more blocks also cost more packing.
    inline constexpr std::size_t gemm_blocks_per_thread = 4;

    /// Rows per pass when packing a panel whose width is contiguous in memory (`gemm_pack_panel`): a pass
    /// reads 8 source rows front to back (8 sequential streams, few enough for the hardware prefetchers
    /// to track) and gives each sliver 8 consecutive packed rows (8·NR·4 B = 512 B for a float B sliver:
    /// whole cache lines, written contiguously).
    inline constexpr std::size_t gemm_pack_k_tile = 8;

    namespace detail
    {
        /// Per-thread growable aligned scratch; `Tag` separates the A and B buffers. Grows, never
        /// shrinks, so steady-state calls allocate nothing.
        template <class T, int Tag>
        inline T* gemm_scratch(std::size_t n)
        {
            thread_local aligned_vector<T> buf;
            if (buf.size() < n)
            {
                buf.resize(n);
            }
            return buf.data();
        }

        /// Pack `kc` steps of a `w`-wide (w <= W) sliver into dst[k·W + c], zero-padding c in [w, W).
        /// Element (c, k) of the source is src[c·c_stride + k·k_stride]; one of the two strides is 1.
        template <std::size_t W, class T>
        inline void gemm_pack_sliver(const T* __restrict src, std::size_t c_stride, std::size_t k_stride,
                                     std::size_t kc, std::size_t w, T* __restrict dst)
        {
            if (c_stride == 1)
            {
                // Width contiguous (B in nn/tn, A in tn): row copies.
                if (w == W)
                {
                    for (std::size_t k = 0; k < kc; ++k)
                    {
                        const T* s = src + k * k_stride;
#pragma GCC unroll 16
                        for (std::size_t c = 0; c < W; ++c)
                        {
                            dst[k * W + c] = s[c];
                        }
                    }
                    return;
                }
                for (std::size_t k = 0; k < kc; ++k)
                {
                    const T* s = src + k * k_stride;
                    for (std::size_t c = 0; c < W; ++c)
                    {
                        dst[k * W + c] = c < w ? s[c] : T(0);
                    }
                }
                return;
            }
            // K contiguous (A in nn/nt, B in nt): transpose W rows, reading them as W parallel streams.
            const T* rows[W];
            for (std::size_t c = 0; c < W; ++c)
            {
                rows[c] = src + std::min(c, w - 1) * c_stride;
            }
            if (w == W)
            {
                std::size_t k0 = 0;
#if defined(__AVX__)
                if constexpr (std::is_same_v<T, float> && W == 6)
                {
                    // The A sliver of nn/nt (the one transpose on the hot path: it is repacked for every
                    // MC×KC block and costs ~1 cycle/element as scalar code, ~14% of a 2048×256×256 GEMM).
                    // 8 k-steps at a time: 6 row registers, in-lane 2×2 and 4×4 transposes, then per k one
                    // 128-bit store (rows 0-3) and one 64-bit store (rows 4-5).
                    for (; k0 + 8 <= kc; k0 += 8)
                    {
                        const __m256 r0 = _mm256_loadu_ps(rows[0] + k0), r1 = _mm256_loadu_ps(rows[1] + k0);
                        const __m256 r2 = _mm256_loadu_ps(rows[2] + k0), r3 = _mm256_loadu_ps(rows[3] + k0);
                        const __m256 r4 = _mm256_loadu_ps(rows[4] + k0), r5 = _mm256_loadu_ps(rows[5] + k0);
                        const __m256 t0 = _mm256_unpacklo_ps(r0, r1); // a0 b0 a1 b1 | a4 b4 a5 b5
                        const __m256 t1 = _mm256_unpackhi_ps(r0, r1); // a2 b2 a3 b3 | a6 b6 a7 b7
                        const __m256 t2 = _mm256_unpacklo_ps(r2, r3);
                        const __m256 t3 = _mm256_unpackhi_ps(r2, r3);
                        const __m256 t4 = _mm256_unpacklo_ps(r4, r5); // e0 f0 e1 f1 | e4 f4 e5 f5
                        const __m256 t5 = _mm256_unpackhi_ps(r4, r5); // e2 f2 e3 f3 | e6 f6 e7 f7
                        // s[j] = a_k b_k c_k d_k for k = j (low lane) and k = j + 4 (high lane).
                        const __m256 s[4] = { _mm256_shuffle_ps(t0, t2, 0x44),
                                              _mm256_shuffle_ps(t0, t2, 0xEE),
                                              _mm256_shuffle_ps(t1, t3, 0x44),
                                              _mm256_shuffle_ps(t1, t3, 0xEE) };
                        const __m128 ef[4] = { _mm256_castps256_ps128(t4), _mm256_castps256_ps128(t5),
                                               _mm256_extractf128_ps(t4, 1), _mm256_extractf128_ps(t5, 1) };
                        float* d = dst + k0 * W;
                        for (std::size_t j = 0; j < 4; ++j)
                        {
                            _mm_storeu_ps(d + j * W, _mm256_castps256_ps128(s[j]));
                            _mm_storeu_ps(d + (j + 4) * W, _mm256_extractf128_ps(s[j], 1));
                        }
                        for (std::size_t h = 0; h < 2; ++h) // h = 0: k = 0..3, h = 1: k = 4..7
                        {
                            float* e = d + 4 * h * W + 4;
                            _mm_storel_pi(reinterpret_cast<__m64*>(e), ef[2 * h]);             // k = 4h
                            _mm_storeh_pi(reinterpret_cast<__m64*>(e + W), ef[2 * h]);         // k = 4h+1
                            _mm_storel_pi(reinterpret_cast<__m64*>(e + 2 * W), ef[2 * h + 1]); // k = 4h+2
                            _mm_storeh_pi(reinterpret_cast<__m64*>(e + 3 * W), ef[2 * h + 1]); // k = 4h+3
                        }
                    }
                }
#endif
                for (std::size_t k = k0; k < kc; ++k)
                {
#pragma GCC unroll 16
                    for (std::size_t c = 0; c < W; ++c)
                    {
                        dst[k * W + c] = rows[c][k];
                    }
                }
                return;
            }
            for (std::size_t k = 0; k < kc; ++k)
            {
                for (std::size_t c = 0; c < W; ++c)
                {
                    dst[k * W + c] = c < w ? rows[c][k] : T(0);
                }
            }
        }

        /// Pack a `w`-wide panel, cut into ceil(w / W) slivers of W (the last one zero-padded), of `kc`
        /// steps into consecutive slivers: dst[s·W·kc + k·W + c]. Source element (c, k) is at
        /// src[c·c_stride + k·k_stride], as in `gemm_pack_sliver`.
        template <std::size_t W, class T>
        inline void gemm_pack_panel(const T* __restrict src, std::size_t c_stride, std::size_t k_stride,
                                    std::size_t kc, std::size_t w, T* __restrict dst)
        {
            const std::size_t full = w / W;
            if (c_stride == 1)
            {
                // Width contiguous (B in nn/tn, A in tn). Sliver by sliver, each sliver would read a W-wide
                // strip of each of kc rows: kc lines k_stride apart, a new 4 KiB page per row once a row
                // is >= 4 KiB long (B of the wide-N tn/nn shapes), which the hardware prefetchers do not
                // follow, so each line was a demand miss (B packing was ~16% of a tn 256×1024×2048 call).
                // Instead walk k in short tiles across the whole panel: every source row is then read
                // front to back (prefetchable), and each sliver still receives gemm_pack_k_tile
                // consecutive rows (a contiguous W·k_tile run of its packed block).
                constexpr std::size_t k_tile = gemm_pack_k_tile;
                for (std::size_t k0 = 0; k0 < kc; k0 += k_tile)
                {
                    const std::size_t k1 = std::min(kc, k0 + k_tile);
                    for (std::size_t s = 0; s < full; ++s)
                    {
                        const T* sp = src + s * W;
                        T* dp = dst + s * W * kc;
                        for (std::size_t k = k0; k < k1; ++k)
                        {
#pragma GCC unroll 16
                            for (std::size_t c = 0; c < W; ++c)
                            {
                                dp[k * W + c] = sp[k * k_stride + c];
                            }
                        }
                    }
                }
            }
            else
            {
                for (std::size_t s = 0; s < full; ++s)
                {
                    gemm_pack_sliver<W>(src + s * W * c_stride, c_stride, k_stride, kc, W, dst + s * W * kc);
                }
            }
            if (w % W != 0)
            {
                gemm_pack_sliver<W>(src + full * W * c_stride, c_stride, k_stride, kc, w % W,
                                    dst + full * W * kc);
            }
        }

        /// The micro-kernel: tile(MR×NR) = Σ_k a[k·MR + r] · b[k·NR + c] over `kc` steps, one FMA chain
        /// per output starting from 0, then c[r·ldc + col] = tile (accumulate = false) or += tile.
        /// `b` must be aligned to the SIMD width; `a`, `c` need not be.
        template <class T, class Arch>
        inline void gemm_micro_kernel(std::size_t kc, const T* __restrict a, const T* __restrict b,
                                      T* __restrict c, std::size_t ldc, bool accumulate)
        {
            using V = xsimd::batch<T, Arch>;
            constexpr std::size_t L = V::size;
            constexpr std::size_t MR = gemm_blocking<T, Arch>::mr;
            constexpr std::size_t NR = gemm_blocking<T, Arch>::nr;

            // Pull the C tile towards L1 while the FMA chains run (one line at each end of every row).
            for (std::size_t r = 0; r < MR; ++r)
            {
                __builtin_prefetch(c + r * ldc, 1, 3);
                __builtin_prefetch(c + r * ldc + NR - 1, 1, 3);
            }

            V acc[MR][2];
#pragma GCC unroll 6
            for (std::size_t r = 0; r < MR; ++r)
            {
                acc[r][0] = V(T(0));
                acc[r][1] = V(T(0));
            }
#pragma GCC unroll 4
            for (std::size_t k = 0; k < kc; ++k)
            {
                const V b0 = V::load_aligned(b);
                const V b1 = V::load_aligned(b + L);
#pragma GCC unroll 6
                for (std::size_t r = 0; r < MR; ++r)
                {
                    const V ar(a[r]);
                    acc[r][0] = xsimd::fma(ar, b0, acc[r][0]);
                    acc[r][1] = xsimd::fma(ar, b1, acc[r][1]);
                }
                a += MR;
                b += NR;
            }
#pragma GCC unroll 6
            for (std::size_t r = 0; r < MR; ++r)
            {
                T* cr = c + r * ldc;
                if (accumulate)
                {
                    acc[r][0] += V::load_unaligned(cr);
                    acc[r][1] += V::load_unaligned(cr + L);
                }
                acc[r][0].store_unaligned(cr);
                acc[r][1].store_unaligned(cr + L);
            }
        }

        /// One MR×NR tile of which only m×n is inside C: compute the full tile into scratch, then
        /// store/accumulate the valid part (same per-element order as the full-tile path).
        template <class T, class Arch>
        inline void gemm_edge_tile(std::size_t kc, const T* a, const T* b, T* c, std::size_t ldc,
                                   bool accumulate, std::size_t m, std::size_t n)
        {
            constexpr std::size_t MR = gemm_blocking<T, Arch>::mr;
            constexpr std::size_t NR = gemm_blocking<T, Arch>::nr;
            alignas(Arch::alignment()) T tile[MR * NR];
            gemm_micro_kernel<T, Arch>(kc, a, b, tile, NR, false);
            for (std::size_t r = 0; r < m; ++r)
            {
                for (std::size_t j = 0; j < n; ++j)
                {
                    c[r * ldc + j] = accumulate ? c[r * ldc + j] + tile[r * NR + j] : tile[r * NR + j];
                }
            }
        }

        /// How a team splits C: `rows` × `cols` blocks, thread t owning block (t / cols, t % cols).
        struct gemm_grid
        {
            std::size_t rows, cols;
        };

        /// The rows × cols factorisation of `team` that packs the least per thread. Each thread packs
        /// its own rows of A and its own columns of B for every K step (private packing, no barrier), so
        /// a thread packs (M / rows + N / cols) elements per k: splitting only the rows makes every
        /// thread pack all of B, which for the short-M, wide-N weight gradients (tn 256×1024×2048)
        /// doubles the B traffic on 2 threads while A is tiny; splitting the columns there makes each
        /// thread pack half of B and all of the small A instead. Ties go to the row split. Which thread
        /// computes an element never changes its summation order, so any grid gives the same bits.
        inline gemm_grid gemm_thread_grid(std::size_t team, std::size_t m_slivers, std::size_t mr,
                                          std::size_t n_slivers, std::size_t nr)
        {
            gemm_grid best{ team, 1 };
            std::size_t best_cost = static_cast<std::size_t>(-1);
            for (std::size_t cols = 1; cols <= team; ++cols)
            {
                const std::size_t rows = team / cols;
                if (rows * cols != team || rows > m_slivers || cols > n_slivers)
                {
                    continue;
                }
                const std::size_t cost =
                  (m_slivers + rows - 1) / rows * mr + (n_slivers + cols - 1) / cols * nr;
                if (cost < best_cost)
                {
                    best = { rows, cols };
                    best_cost = cost;
                }
            }
            return best;
        }

        /// The blocked, threaded SIMD GEMM (arguments already validated, M, N, K > 0).
        template <class T, class Arch = simd::arch>
        inline void gemm_blocked(gemm_layout layout, std::size_t M, std::size_t N, std::size_t K, const T* A,
                                 std::size_t lda, const T* B, std::size_t ldb, bool beta_one, T* C,
                                 std::size_t ldc)
        {
            using blk = gemm_blocking<T, Arch>;
            constexpr std::size_t MR = blk::mr;
            constexpr std::size_t NR = blk::nr;
            constexpr std::size_t KC = blk::kc;
            constexpr std::size_t MC = blk::mc;
            constexpr std::size_t NC = blk::nc;

            // Strides of op(A)(i, k) and op(B)(k, j) in the stored arrays.
            const std::size_t a_is = layout == gemm_layout::tn ? 1 : lda; // step in i
            const std::size_t a_ks = layout == gemm_layout::tn ? lda : 1; // step in k
            const std::size_t b_js = layout == gemm_layout::nt ? ldb : 1; // step in j
            const std::size_t b_ks = layout == gemm_layout::nt ? 1 : ldb; // step in k

            const std::size_t m_slivers = (M + MR - 1) / MR;
            const std::size_t n_slivers_all = (N + NR - 1) / NR;
            const std::size_t kc_max = std::min(K, KC);

            std::size_t team = 1;
            if (!in_parallel() && M * N * K >= gemm_parallel_min_macs)
            {
                team = std::min(static_cast<std::size_t>(num_threads()), std::max(m_slivers, n_slivers_all));
            }
            // The blocks of C, handed out dynamically: gemm_blocks_per_thread per thread, so that a
            // thread slowed by another process takes fewer of them. Any grid gives the same bits.
            const std::size_t blocks = team == 1 ? 1 : team * gemm_blocks_per_thread;
            const gemm_grid grid = gemm_thread_grid(blocks, m_slivers, MR, n_slivers_all, NR);

            // Block (tr, tc) of the grid: a contiguous, even share of the MR-row slivers of M times a
            // contiguous, even share of the NR-column slivers of N.
            const auto block = [&](std::size_t tr, std::size_t tc)
            {
                const std::size_t row0 = std::min(M, (m_slivers * tr / grid.rows) * MR);
                const std::size_t row1 = std::min(M, (m_slivers * (tr + 1) / grid.rows) * MR);
                const std::size_t col0 = std::min(N, (n_slivers_all * tc / grid.cols) * NR);
                const std::size_t col1 = std::min(N, (n_slivers_all * (tc + 1) / grid.cols) * NR);
                const std::size_t my_rows = row1 - row0;
                // Even MC blocks over those rows (whole slivers, <= MC each).
                const std::size_t n_ic = (my_rows + MC - 1) / MC;
                const std::size_t mc_step = n_ic == 0 ? MC : ((my_rows + n_ic - 1) / n_ic + MR - 1) / MR * MR;
                if (my_rows > 0 && col1 > col0)
                {
                    // Private packed buffers: no thread ever waits for another inside the call.
                    T* const a_pack = gemm_scratch<T, 0>(std::min(MC, mc_step) * kc_max);
                    T* const b_pack =
                      gemm_scratch<T, 1>(kc_max * ((std::min(NC, col1 - col0) + NR - 1) / NR * NR));
                    for (std::size_t jc = col0; jc < col1; jc += NC)
                    {
                        const std::size_t nc = std::min(NC, col1 - jc);
                        const std::size_t n_slivers = (nc + NR - 1) / NR;
                        for (std::size_t pc = 0; pc < K; pc += KC)
                        {
                            const std::size_t kc = std::min(KC, K - pc);
                            const bool accumulate = beta_one || pc > 0;
                            gemm_pack_panel<NR>(B + jc * b_js + pc * b_ks, b_js, b_ks, kc, nc, b_pack);
                            for (std::size_t ic = row0; ic < row1; ic += mc_step)
                            {
                                const std::size_t mc = std::min(mc_step, row1 - ic);
                                const std::size_t mc_slivers = (mc + MR - 1) / MR;
                                gemm_pack_panel<MR>(A + ic * a_is + pc * a_ks, a_is, a_ks, kc, mc, a_pack);
                                for (std::size_t sj = 0; sj < n_slivers; ++sj)
                                {
                                    const std::size_t j = jc + sj * NR;
                                    const std::size_t n = std::min(NR, N - j);
                                    const T* bs = b_pack + sj * NR * kc;
                                    for (std::size_t si = 0; si < mc_slivers; ++si)
                                    {
                                        const std::size_t i = ic + si * MR;
                                        const std::size_t m = std::min(MR, M - i);
                                        const T* as = a_pack + si * MR * kc;
                                        T* ct = C + i * ldc + j;
                                        if (m == MR && n == NR)
                                        {
                                            gemm_micro_kernel<T, Arch>(kc, as, bs, ct, ldc, accumulate);
                                        }
                                        else
                                        {
                                            gemm_edge_tile<T, Arch>(kc, as, bs, ct, ldc, accumulate, m, n);
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
                // Direct call: even an empty parallel job costs about a microsecond, a third of a small
                // GEMM (the attention products of short sequences, one call per panel and (batch, head)).
                block(0, 0);
                return;
            }
            parallel_chunks(grid.rows * grid.cols,
                            [&](std::size_t c, std::size_t) { block(c / grid.cols, c % grid.cols); });
        }
    } // namespace detail

    /// C = op(A)·op(B) (beta = 0: C is only written, it may hold NaN garbage) or C += op(A)·op(B)
    /// (beta = 1); see the dims legend for the layouts and leading-dimension rules. Any other beta,
    /// or a leading dimension shorter than its row, throws ballast::error. M, N or K may be 0
    /// (K = 0 with beta = 0 zeroes C). Threads: `ballast::num_threads()`, results bit-identical for
    /// any thread count; runs serially inside an enclosing parallel region.
    template <class T>
    inline void gemm(gemm_layout layout, std::size_t M, std::size_t N, std::size_t K, const T* A,
                     std::size_t lda, const T* B, std::size_t ldb, T beta, T* C, std::size_t ldc)
    {
        static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                      "gemm supports float and double");
        if constexpr (simd::force_scalar)
        {
            ref::gemm(layout, M, N, K, A, lda, B, ldb, beta, C, ldc);
        }
        else
        {
            detail::gemm_check_args("gemm", layout, M, N, K, lda, ldb, beta, ldc);
            if (M == 0 || N == 0)
            {
                return;
            }
            if (K == 0)
            {
                if (beta == T(0))
                {
                    for (std::size_t i = 0; i < M; ++i)
                    {
                        std::fill(C + i * ldc, C + i * ldc + N, T(0));
                    }
                }
                return;
            }
            detail::gemm_blocked<T>(layout, M, N, K, A, lda, B, ldb, beta == T(1), C, ldc);
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
} // namespace ballast::kernels

#endif
