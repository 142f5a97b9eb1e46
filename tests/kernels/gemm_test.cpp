// Tests for ballast::kernels::gemm (SIMD, packed, threaded) against its scalar twin ref::gemm.
#include <atomic>
#include <thread>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/core/aligned.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/kernels/gemm.hpp>
#include <ballast/kernels/ref/gemm.hpp>

#include "support/random.hpp"
#include "support/tolerance.hpp"

namespace
{
    using ballast::kernels::gemm_layout;
    namespace bk = ballast::kernels;
    namespace bt = ballast::test;

    constexpr gemm_layout all_layouts[] = { gemm_layout::nn, gemm_layout::nt, gemm_layout::tn };

    /// Value written into the padding between rows (ld > row length): gemm must never touch it.
    constexpr double pad_sentinel = 12345.0;

    const char* layout_name(gemm_layout l)
    {
        return l == gemm_layout::nn ? "nn" : l == gemm_layout::nt ? "nt" : "tn";
    }

    /// One GEMM problem with stored operands: rows × cols of the stored A and B follow the layout,
    /// every leading dimension is the row length + `pad`, every buffer starts `misalign` elements
    /// past an aligned address.
    template <class T>
    struct problem
    {
        gemm_layout layout;
        std::size_t M, N, K, lda, ldb, ldc, misalign;
        std::size_t a_rows, b_rows;
        ballast::aligned_vector<T> A, B, C;

        problem(gemm_layout l, std::size_t m, std::size_t n, std::size_t k, std::size_t pad, std::size_t mis,
                std::uint64_t salt)
          : layout(l)
          , M(m)
          , N(n)
          , K(k)
          , misalign(mis)
        {
            a_rows = l == gemm_layout::tn ? K : M;
            b_rows = l == gemm_layout::nt ? N : K;
            lda = (l == gemm_layout::tn ? M : K) + pad;
            ldb = (l == gemm_layout::nt ? K : N) + pad;
            ldc = N + pad;
            auto g = bt::rng(salt);
            A = bt::uniform<T>(g, a_rows * lda, -1.0, 1.0, mis);
            B = bt::uniform<T>(g, b_rows * ldb, -1.0, 1.0, mis);
            C = bt::uniform<T>(g, M * ldc, -1.0, 1.0, mis);
            for (std::size_t i = 0; i < M; ++i)
            {
                for (std::size_t j = N; j < ldc; ++j)
                {
                    c()[i * ldc + j] = static_cast<T>(pad_sentinel);
                }
            }
        }

        T* a() { return A.data() + misalign; }
        T* b() { return B.data() + misalign; }
        T* c() { return C.data() + misalign; }

        /// Fill the M×N part of C with NaN (beta = 0 must not read it).
        void poison_c()
        {
            for (std::size_t i = 0; i < M; ++i)
            {
                for (std::size_t j = 0; j < N; ++j)
                {
                    c()[i * ldc + j] = std::numeric_limits<T>::quiet_NaN();
                }
            }
        }

        void run(T beta, T* out) const
        {
            bk::gemm<T>(layout, M, N, K, A.data() + misalign, lda, B.data() + misalign, ldb, beta, out, ldc);
        }
    };

    /// Compare `actual` with the double-accumulated oracle. Error model: every kernel output is a sum of
    /// K products (plus C when beta = 1) accumulated in T in a different order than the oracle; its
    /// rounding error is bounded by ~K·eps·Σ|terms| in the worst case and behaves like a random walk,
    /// ~sqrt(K)·eps·Σ|terms|, in practice. So the bound is relative to the magnitude
    /// mag = Σ_k |a||b| (+ |C0|), not to the result (which may cancel to ~0):
    ///     |actual − expected| <= rel_per_sqrt_len · sqrt(K + 1) · mag + abs.
    /// rel_per_sqrt_len = 8 eps leaves a wide margin over the random-walk estimate while still catching
    /// any wrong or missing term (an error of O(1/K)·mag at least). NaN must match NaN, Inf the same Inf.
    template <class T>
    void check_against_ref(const problem<T>& p, const T* actual, const T* expected, const T* mag)
    {
        const double rel = bt::tolerance<T>::rel_per_sqrt_len * std::sqrt(static_cast<double>(p.K + 1));
        std::size_t bad = p.M * p.ldc;
        for (std::size_t i = 0; i < p.M && bad == p.M * p.ldc; ++i)
        {
            for (std::size_t j = 0; j < p.ldc; ++j)
            {
                const std::size_t idx = i * p.ldc + j;
                const double a = actual[idx], e = expected[idx];
                bool ok;
                if (j >= p.N)
                {
                    ok = a == pad_sentinel; // padding untouched
                }
                else if (std::isnan(a) || std::isnan(e) || std::isinf(a) || std::isinf(e))
                {
                    ok = bt::close(a, e, 0.0, 0.0);
                }
                else
                {
                    ok = std::fabs(a - e) <= rel * static_cast<double>(mag[idx]) + bt::tolerance<T>::abs;
                }
                if (!ok)
                {
                    bad = idx;
                    break;
                }
            }
        }
        if (bad != p.M * p.ldc)
        {
            UNSCOPED_INFO("layout " << layout_name(p.layout) << " M=" << p.M << " N=" << p.N << " K=" << p.K
                                    << " lda=" << p.lda << " ldb=" << p.ldb << " ldc=" << p.ldc
                                    << " misalign=" << p.misalign << ": first mismatch at (" << bad / p.ldc
                                    << ", " << bad % p.ldc << "): actual " << static_cast<double>(actual[bad])
                                    << " expected " << static_cast<double>(expected[bad]) << " magnitude "
                                    << static_cast<double>(mag[bad]));
        }
        CHECK(bad == p.M * p.ldc);
    }

    /// Run gemm and ref::gemm on the same problem for beta 0 (C poisoned with NaN) and beta 1.
    template <class T>
    void check_problem(problem<T>& p)
    {
        const std::size_t n = p.M * p.ldc;
        // Magnitudes: ref::gemm on |A|, |B| (padding included, it is never read).
        problem<T> abs_p = p;
        for (auto& v : abs_p.A)
        {
            v = std::fabs(v);
        }
        for (auto& v : abs_p.B)
        {
            v = std::fabs(v);
        }
        std::vector<T> mag(abs_p.C.begin() + static_cast<std::ptrdiff_t>(p.misalign), abs_p.C.end());
        bk::ref::gemm<T>(p.layout, p.M, p.N, p.K, abs_p.a(), p.lda, abs_p.b(), p.ldb, T(0), mag.data(),
                         p.ldc);

        for (const T beta : { T(0), T(1) })
        {
            std::vector<T> expected(p.c(), p.c() + n);
            std::vector<T> mag_beta(mag);
            if (beta == T(1))
            {
                for (std::size_t i = 0; i < n; ++i)
                {
                    mag_beta[i] += std::fabs(expected[i]);
                }
            }
            bk::ref::gemm<T>(p.layout, p.M, p.N, p.K, p.a(), p.lda, p.b(), p.ldb, beta, expected.data(),
                             p.ldc);
            ballast::aligned_vector<T> actual_buf(p.C);
            T* actual = actual_buf.data() + p.misalign;
            if (beta == T(0))
            {
                for (std::size_t i = 0; i < p.M; ++i)
                {
                    for (std::size_t j = 0; j < p.N; ++j)
                    {
                        actual[i * p.ldc + j] = std::numeric_limits<T>::quiet_NaN();
                    }
                }
            }
            p.run(beta, actual);
            check_against_ref(p, actual, expected.data(), mag_beta.data());
        }
    }

    template <class T>
    using blk = bk::gemm_blocking<T>;
} // namespace

TEMPLATE_TEST_CASE("gemm matches ref::gemm on awkward sizes, all layouts, beta 0 and 1", "[kernels][gemm]",
                   float, double)
{
    using T = TestType;
    constexpr std::size_t L = ballast::simd::lanes<T>;
    constexpr std::size_t MR = blk<T>::mr, NR = blk<T>::nr;
    // Edges of every vector/micro-tile boundary plus odd sizes; 1 = degenerate vector / row.
    const std::vector<std::size_t> sizes = { 1, L - 1, L, L + 1, MR - 1, MR + 1, NR - 1, NR + 1, 13, 37 };
    std::uint64_t salt = 1;
    for (const gemm_layout layout : all_layouts)
    {
        // Dense & aligned, and misaligned by one element with ld > row length.
        for (const auto& [pad, mis] : { std::pair<std::size_t, std::size_t>{ 0, 0 }, { 3, 1 } })
        {
            for (const std::size_t M : sizes)
            {
                for (const std::size_t N : sizes)
                {
                    for (const std::size_t K : { std::size_t(1), L + 1, std::size_t(13), std::size_t(37) })
                    {
                        problem<T> p(layout, M, N, K, pad, mis, salt++);
                        check_problem(p);
                    }
                }
            }
        }
    }
}

TEMPLATE_TEST_CASE("gemm matches ref::gemm across cache-block boundaries", "[kernels][gemm]", float, double)
{
    using T = TestType;
    constexpr std::size_t MC = blk<T>::mc, KC = blk<T>::kc, NC = blk<T>::nc;
    // (M, N, K): above MC, KC (several K blocks, ragged last one), NC (two N blocks), primes.
    const std::vector<std::tuple<std::size_t, std::size_t, std::size_t>> shapes = {
        { 300, 70, 530 },     { MC + 7, 37, KC + 1 }, { 2 * MC + 1, 19, 2 * KC + 3 }, { 11, NC + 5, 3 },
        { 101, 103, 2 * KC }, { 127, 61, 257 },       { 5, 17, 3 * KC + 11 },         { 13, NC + 5, KC + 3 },
    };
    std::uint64_t salt = 1000;
    for (const gemm_layout layout : all_layouts)
    {
        for (const auto& [M, N, K] : shapes)
        {
            for (const std::size_t threads : { 1, 2 })
            {
                ballast::thread_scope scope(static_cast<int>(threads));
                problem<T> p(layout, M, N, K, 2, 1, salt++);
                check_problem(p);
            }
        }
    }
}

TEMPLATE_TEST_CASE("gemm with M, N or K = 0", "[kernels][gemm]", float, double)
{
    using T = TestType;
    for (const gemm_layout layout : all_layouts)
    {
        // K = 0: beta 0 writes zeros (over NaN garbage), beta 1 leaves C alone; padding untouched.
        problem<T> p(layout, 7, 19, 0, 2, 1, 77);
        std::vector<T> before(p.c(), p.c() + p.M * p.ldc);
        p.run(T(1), p.c());
        CHECK(std::memcmp(before.data(), p.c(), before.size() * sizeof(T)) == 0);
        p.poison_c();
        p.run(T(0), p.c());
        for (std::size_t i = 0; i < p.M; ++i)
        {
            for (std::size_t j = 0; j < p.ldc; ++j)
            {
                CHECK(p.c()[i * p.ldc + j] == (j < p.N ? T(0) : static_cast<T>(pad_sentinel)));
            }
        }
        // M = 0 or N = 0: nothing is read or written (null pointers are fine).
        CHECK_NOTHROW(bk::gemm<T>(layout, 0, 5, 3, nullptr, 5, nullptr, 5, T(0), nullptr, 5));
        CHECK_NOTHROW(bk::gemm<T>(layout, 5, 0, 3, nullptr, 5, nullptr, 5, T(1), nullptr, 5));
        CHECK_NOTHROW(bk::gemm<T>(layout, 0, 0, 0, nullptr, 0, nullptr, 0, T(0), nullptr, 0));
    }
}

TEMPLATE_TEST_CASE("gemm propagates NaN and Inf from A and B to exactly the right outputs", "[kernels][gemm]",
                   float, double)
{
    using T = TestType;
    const T nan = std::numeric_limits<T>::quiet_NaN();
    const T inf = std::numeric_limits<T>::infinity();
    for (const gemm_layout layout : all_layouts)
    {
        // M, N not multiples of MR, NR; K spans two K blocks.
        problem<T> p(layout, 29, 35, blk<T>::kc + 9, 1, 1, 4242);
        const std::size_t ai = 13, ak = 200, bj = 20, bk_ = 7; // NaN at A(ai, ak), Inf at B(bk_, bj)
        const auto a_at = [&](std::size_t i, std::size_t k) -> T&
        { return layout == gemm_layout::tn ? p.a()[k * p.lda + i] : p.a()[i * p.lda + k]; };
        const auto b_at = [&](std::size_t k, std::size_t j) -> T&
        { return layout == gemm_layout::nt ? p.b()[j * p.ldb + k] : p.b()[k * p.ldb + j]; };
        a_at(ai, ak) = nan;
        b_at(bk_, bj) = inf;
        check_problem(p);

        ballast::aligned_vector<T> out(p.C);
        T* c = out.data() + p.misalign;
        p.run(T(0), c);
        for (std::size_t i = 0; i < p.M; ++i)
        {
            for (std::size_t j = 0; j < p.N; ++j)
            {
                const T v = c[i * p.ldc + j];
                if (i == ai)
                {
                    CHECK(std::isnan(v)); // row of the NaN: every column
                }
                else if (j == bj)
                {
                    CHECK(std::isinf(v)); // column of the Inf (A has no zeros: uniform(-1, 1))
                }
                else
                {
                    CHECK(std::isfinite(v));
                }
            }
        }
    }
}

TEMPLATE_TEST_CASE("gemm is bit-identical for 1 and 2 threads and inside a parallel region",
                   "[kernels][gemm]", float, double)
{
    using T = TestType;
    // Large enough to be split (M·N·K >> gemm_parallel_min_macs, several MC and KC blocks per thread).
    const std::size_t M = 2 * blk<T>::mc + 77, N = 3 * blk<T>::nr + 5, K = 2 * blk<T>::kc + 31;
    REQUIRE(M * N * K >= bk::gemm_parallel_min_macs);
    for (const gemm_layout layout : all_layouts)
    {
        problem<T> p(layout, M, N, K, 1, 1, 99);
        for (const T beta : { T(0), T(1) })
        {
            ballast::aligned_vector<T> one(p.C), two(p.C), nested(p.C);
            {
                ballast::thread_scope scope(1);
                p.run(beta, one.data() + p.misalign);
            }
            {
                ballast::thread_scope scope(2);
                p.run(beta, two.data() + p.misalign);
                // Nested call: inside a chunk of a parallel loop the GEMM runs serially on that thread
                // (only chunk 0 keeps its result).
                ballast::parallel_chunks(2,
                                         [&](std::size_t c, std::size_t)
                                         {
                                             ballast::aligned_vector<T> mine(p.C);
                                             p.run(beta, mine.data() + p.misalign);
                                             if (c == 0)
                                             {
                                                 nested = mine;
                                             }
                                         });
            }
            CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(T)) == 0);
            CHECK(std::memcmp(one.data(), nested.data(), one.size() * sizeof(T)) == 0);
        }
    }
}

TEST_CASE("gemm gives the same bits on 1, 2 and 3 threads while busy threads take the cores", "[kernels][gemm]")
{
    // A shared machine: every core runs a busy loop while the team works, so workers are preempted in the
    // middle of their blocks and blocks are taken by whichever thread is running.
    std::atomic<bool> stop{ false };
    std::vector<std::thread> hogs;
    for (unsigned i = 0; i < std::max(1u, std::thread::hardware_concurrency()); ++i)
    {
        hogs.emplace_back(
          [&]
          {
              while (!stop.load(std::memory_order_relaxed))
              {
              }
          });
    }
    problem<float> p(gemm_layout::nt, 384, 320, 96, 0, 0, 7);
    ballast::aligned_vector<float> ref(p.C);
    {
        ballast::thread_scope scope(1);
        p.run(0.0f, ref.data());
    }
    bool same = true;
    for (int round = 0; round < 40; ++round)
    {
        for (const int threads : { 2, 3 })
        {
            ballast::thread_scope scope(threads);
            ballast::aligned_vector<float> c(p.C);
            p.run(0.0f, c.data());
            same = same && std::memcmp(ref.data(), c.data(), ref.size() * sizeof(float)) == 0;
        }
    }
    stop = true;
    for (auto& h : hogs)
    {
        h.join();
    }
    CHECK(same);
}

TEMPLATE_TEST_CASE("gemm splits short-M, wide-N products by columns, with the same bits", "[kernels][gemm]",
                   float, double)
{
    using T = TestType;
    constexpr std::size_t MR = blk<T>::mr, NR = blk<T>::nr;
    // The weight-gradient shape (tn, M = d_model, N = 4·d_model) scaled down: M < N, so 2 threads split
    // the columns (each packs half of B). N is ragged and spans more than one NC block, K two KC blocks.
    const std::size_t M = 10 * MR + 1, N = blk<T>::nc + 2 * NR + 3, K = blk<T>::kc + 9;
    const std::size_t m_slivers = (M + MR - 1) / MR, n_slivers = (N + NR - 1) / NR;
    const auto grid = bk::detail::gemm_thread_grid(2, m_slivers, MR, n_slivers, NR);
    REQUIRE(grid.rows == 1);
    REQUIRE(grid.cols == 2);
    for (const gemm_layout layout : all_layouts)
    {
        problem<T> p(layout, M, N, K, 1, 1, 123);
        for (const T beta : { T(0), T(1) })
        {
            ballast::aligned_vector<T> one(p.C), two(p.C);
            {
                ballast::thread_scope scope(1);
                p.run(beta, one.data() + p.misalign);
            }
            {
                ballast::thread_scope scope(2);
                p.run(beta, two.data() + p.misalign);
            }
            CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(T)) == 0);
        }
        ballast::thread_scope scope(2);
        check_problem(p);
    }
}

TEST_CASE("gemm_thread_grid packs the least per thread and prefers rows on ties", "[kernels][gemm]")
{
    using bk::detail::gemm_thread_grid;
    // Tall C (M >> N): rows. Square: tie -> rows. Wide C: columns. One thread: 1 x 1.
    CHECK(gemm_thread_grid(2, 400, 6, 20, 16).rows == 2);
    CHECK(gemm_thread_grid(2, 16, 6, 6, 16).rows == 2); // 8·6 + 6·16 = 144 vs 16·6 + 3·16 = 144
    const auto wide = gemm_thread_grid(2, 43, 6, 128, 16);
    CHECK((wide.rows == 1 && wide.cols == 2));
    const auto one = gemm_thread_grid(1, 43, 6, 128, 16);
    CHECK((one.rows == 1 && one.cols == 1));
    // A team larger than the slivers in one direction never gets an empty share there.
    const auto thin = gemm_thread_grid(4, 1, 6, 128, 16);
    CHECK((thin.rows == 1 && thin.cols == 4));
}

TEMPLATE_TEST_CASE("gemm refuses beta other than 0/1 and too-small leading dimensions", "[kernels][gemm]",
                   float, double)
{
    using T = TestType;
    std::vector<T> buf(64, T(1));
    const T* a = buf.data();
    const T* b = buf.data();
    T* c = buf.data();
    for (const gemm_layout layout : all_layouts)
    {
        // M = 3, N = 4, K = 5: rows of stored A / B.
        const std::size_t lda = layout == gemm_layout::tn ? 3 : 5;
        const std::size_t ldb = layout == gemm_layout::nt ? 5 : 4;
        CHECK_NOTHROW(bk::gemm<T>(layout, 3, 4, 5, a, lda, b, ldb, T(0), c, 4));
        CHECK_THROWS_AS(bk::gemm<T>(layout, 3, 4, 5, a, lda, b, ldb, T(0.5), c, 4), ballast::error);
        CHECK_THROWS_AS(bk::gemm<T>(layout, 3, 4, 5, a, lda, b, ldb, T(-1), c, 4), ballast::error);
        CHECK_THROWS_AS(bk::gemm<T>(layout, 3, 4, 5, a, lda - 1, b, ldb, T(0), c, 4), ballast::error);
        CHECK_THROWS_AS(bk::gemm<T>(layout, 3, 4, 5, a, lda, b, ldb - 1, T(0), c, 4), ballast::error);
        CHECK_THROWS_AS(bk::gemm<T>(layout, 3, 4, 5, a, lda, b, ldb, T(0), c, 3), ballast::error);
        CHECK_THROWS_AS(bk::ref::gemm<T>(layout, 3, 4, 5, a, lda, b, ldb, T(2), c, 4), ballast::error);
        CHECK_THROWS_AS(bk::ref::gemm<T>(layout, 3, 4, 5, a, lda - 1, b, ldb, T(1), c, 4), ballast::error);
    }
}

TEST_CASE("gemm convenience wrappers match the layout enum", "[kernels][gemm]")
{
    problem<float> p(gemm_layout::nn, 9, 10, 11, 0, 0, 5);
    std::vector<float> x(p.c(), p.c() + p.M * p.ldc), y(x);
    bk::gemm_nn<float>(p.M, p.N, p.K, p.a(), p.lda, p.b(), p.ldb, 0.0f, x.data(), p.ldc);
    bk::gemm<float>(gemm_layout::nn, p.M, p.N, p.K, p.a(), p.lda, p.b(), p.ldb, 0.0f, y.data(), p.ldc);
    CHECK(x == y);
    // Same for nt and tn, each with operands stored as its layout requires.
    problem<float> q(gemm_layout::nt, 9, 10, 11, 0, 0, 6);
    std::vector<float> u(q.M * q.ldc), v(u);
    bk::gemm_nt<float>(q.M, q.N, q.K, q.a(), q.lda, q.b(), q.ldb, 0.0f, u.data(), q.ldc);
    bk::gemm<float>(gemm_layout::nt, q.M, q.N, q.K, q.a(), q.lda, q.b(), q.ldb, 0.0f, v.data(), q.ldc);
    CHECK(u == v);
    problem<float> r(gemm_layout::tn, 9, 10, 11, 0, 0, 7);
    std::vector<float> s(r.M * r.ldc), t(s);
    bk::gemm_tn<float>(r.M, r.N, r.K, r.a(), r.lda, r.b(), r.ldb, 0.0f, s.data(), r.ldc);
    bk::gemm<float>(gemm_layout::tn, r.M, r.N, r.K, r.a(), r.lda, r.b(), r.ldb, 0.0f, t.data(), r.ldc);
    CHECK(s == t);
}
