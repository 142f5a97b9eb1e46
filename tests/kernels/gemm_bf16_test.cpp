// Tests for ballast::kernels::gemm_bf16 (both paths: emulated everywhere, native where AVX512_BF16 is
// compiled in) against its scalar twins: ref::gemm_bf16 (bf16 inputs, double accumulation: accuracy) and
// ref::gemm_bf16_fp32_chain (the documented fp32 operation sequence: bit-exact, which pins the order).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/core/aligned.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/kernels/gemm_bf16.hpp>
#include <ballast/kernels/ref/bf16.hpp>
#include <ballast/kernels/ref/gemm.hpp>
#include <ballast/kernels/ref/gemm_bf16.hpp>

#include "support/random.hpp"
#include "support/tolerance.hpp"

namespace
{
    using ballast::kernels::bf16_gemm_path;
    using ballast::kernels::gemm_layout;
    namespace bk = ballast::kernels;
    namespace bt = ballast::test;

    constexpr gemm_layout all_layouts[] = { gemm_layout::nn, gemm_layout::nt, gemm_layout::tn };
    constexpr float pad_sentinel = 12345.0f;

    /// Whether xsimd::fma is a fused multiply-add on the compiled arch.
    constexpr bool has_fma =
#if defined(__FMA__) || defined(__AVX512F__)
      true;
#else
      false;
#endif

    const char* layout_name(gemm_layout l)
    {
        return l == gemm_layout::nn ? "nn" : l == gemm_layout::nt ? "nt" : "tn";
    }

    const char* path_name(bf16_gemm_path p)
    {
        return p == bf16_gemm_path::native ? "native" : "emulated";
    }

    /// Calls f(std::integral_constant<bf16_gemm_path, P>) for every path compiled in.
    template <class F>
    void for_each_path(F&& f)
    {
        f(std::integral_constant<bf16_gemm_path, bf16_gemm_path::emulated>{});
        if constexpr (bk::bf16_native_available)
        {
            f(std::integral_constant<bf16_gemm_path, bf16_gemm_path::native>{});
        }
    }

    /// A problem with stored operands (extents follow the layout), ld = row + pad, buffers misaligned by
    /// `mis` elements, values uniform in [-scale, scale).
    struct problem
    {
        gemm_layout layout;
        std::size_t M, N, K, lda, ldb, ldc, misalign;
        ballast::aligned_vector<float> A, B, C;

        problem(gemm_layout l, std::size_t m, std::size_t n, std::size_t k, std::size_t pad, std::size_t mis,
                std::uint64_t salt, double scale = 1.0)
          : layout(l)
          , M(m)
          , N(n)
          , K(k)
          , misalign(mis)
        {
            const std::size_t a_rows = l == gemm_layout::tn ? K : M;
            const std::size_t b_rows = l == gemm_layout::nt ? N : K;
            lda = (l == gemm_layout::tn ? M : K) + pad;
            ldb = (l == gemm_layout::nt ? K : N) + pad;
            ldc = N + pad;
            auto g = bt::rng(salt);
            A = bt::uniform<float>(g, a_rows * lda, -scale, scale, mis);
            B = bt::uniform<float>(g, b_rows * ldb, -scale, scale, mis);
            C = bt::uniform<float>(g, M * ldc, -1.0, 1.0, mis);
            for (std::size_t i = 0; i < M; ++i)
            {
                for (std::size_t j = N; j < ldc; ++j)
                {
                    c()[i * ldc + j] = pad_sentinel;
                }
            }
        }

        float* a() { return A.data() + misalign; }
        float* b() { return B.data() + misalign; }
        float* c() { return C.data() + misalign; }
        float& a_at(std::size_t i, std::size_t k)
        {
            return layout == gemm_layout::tn ? a()[k * lda + i] : a()[i * lda + k];
        }
        float& b_at(std::size_t k, std::size_t j)
        {
            return layout == gemm_layout::nt ? b()[j * ldb + k] : b()[k * ldb + j];
        }

        /// A copy of C (with its misalignment) whose M×N part is NaN for beta = 0 (it must not be read).
        ballast::aligned_vector<float> c_for(float beta) const
        {
            ballast::aligned_vector<float> out(C);
            if (beta == 0.0f)
            {
                for (std::size_t i = 0; i < M; ++i)
                {
                    for (std::size_t j = 0; j < N; ++j)
                    {
                        out[misalign + i * ldc + j] = std::numeric_limits<float>::quiet_NaN();
                    }
                }
            }
            return out;
        }

        template <bf16_gemm_path P>
        void run(float beta, float* out) const
        {
            bk::gemm_bf16<P>(layout, M, N, K, A.data() + misalign, lda, B.data() + misalign, ldb, beta, out,
                             ldc);
        }

        void chain(float beta, float* out, bool native) const
        {
            bk::ref::gemm_bf16_fp32_chain(layout, M, N, K, A.data() + misalign, lda, B.data() + misalign, ldb,
                                          beta, out, ldc, bk::gemm_bf16_kc, native);
        }

        void twin(float beta, float* out) const
        {
            bk::ref::gemm_bf16(layout, M, N, K, A.data() + misalign, lda, B.data() + misalign, ldb, beta, out,
                               ldc);
        }

        std::string describe() const
        {
            return std::string(layout_name(layout)) + " M=" + std::to_string(M) + " N=" + std::to_string(N) +
                   " K=" + std::to_string(K) + " lda=" + std::to_string(lda) + " ldb=" + std::to_string(ldb) +
                   " ldc=" + std::to_string(ldc) + " misalign=" + std::to_string(misalign);
        }
    };

    /// Index of the first element (over M×ldc, padding included) where the two differ bitwise, NaN
    /// matching any NaN; M·ldc when none.
    std::size_t first_bit_difference(const problem& p, const float* x, const float* y)
    {
        for (std::size_t idx = 0; idx < p.M * p.ldc; ++idx)
        {
            const bool both_nan = std::isnan(x[idx]) && std::isnan(y[idx]);
            if (!both_nan && std::memcmp(x + idx, y + idx, sizeof(float)) != 0)
            {
                return idx;
            }
        }
        return p.M * p.ldc;
    }

    /// Accuracy against the double twin. The products of bf16 values are exact in fp32, so the only error
    /// is the fp32 accumulation of K terms (plus C for beta = 1) in blocks of 256: bounded by ~K·eps·mag
    /// in the worst case, ~sqrt(K)·eps·mag as a random walk, with mag = Σ_k |a_k b_k| (+ |C0|) of the
    /// bf16-rounded inputs. Bound: 8 eps·sqrt(K + 1)·mag + 1e-6 abs (the tolerance trait of the fp32 GEMM
    /// test); a missing bf16 rounding of the inputs alone costs ~2^-9·mag, far outside it.
    void check_accuracy(const problem& p, const char* path, const float* actual, const float* expected,
                        const float* mag)
    {
        const double rel = bt::tolerance<float>::rel_per_sqrt_len * std::sqrt(static_cast<double>(p.K + 1));
        std::size_t bad = p.M * p.ldc;
        for (std::size_t idx = 0; idx < p.M * p.ldc && bad == p.M * p.ldc; ++idx)
        {
            const double a = actual[idx], e = expected[idx];
            bool ok;
            if (idx % p.ldc >= p.N)
            {
                ok = a == pad_sentinel;
            }
            else if (!std::isfinite(a) || !std::isfinite(e))
            {
                ok = bt::close(a, e, 0.0, 0.0);
            }
            else
            {
                ok = std::fabs(a - e) <= rel * static_cast<double>(mag[idx]) + bt::tolerance<float>::abs;
            }
            if (!ok)
            {
                bad = idx;
            }
        }
        if (bad != p.M * p.ldc)
        {
            UNSCOPED_INFO(path << " " << p.describe() << ": first mismatch at (" << bad / p.ldc << ", "
                               << bad % p.ldc << "): actual " << actual[bad] << " expected " << expected[bad]
                               << " magnitude " << mag[bad]);
        }
        CHECK(bad == p.M * p.ldc);
    }

    /// Every compiled path on `p`, beta 0 (C poisoned with NaN) and 1: bit-exact against the fp32 chain
    /// (native with DAZ/FTZ), within the K-derived bound of the double twin, and, when `normal_data`
    /// (no subnormal can appear), native bit-identical to emulated.
    void check_problem(const problem& p, bool normal_data = true)
    {
        const std::size_t n = p.M * p.ldc;
        problem abs_p = p;
        for (auto& v : abs_p.A)
        {
            v = std::fabs(v);
        }
        for (auto& v : abs_p.B)
        {
            v = std::fabs(v);
        }
        for (const float beta : { 0.0f, 1.0f })
        {
            std::vector<float> mag(n, 0.0f);
            abs_p.twin(0.0f, mag.data());
            std::vector<float> expected(p.C.begin() + static_cast<std::ptrdiff_t>(p.misalign), p.C.end());
            if (beta == 1.0f)
            {
                for (std::size_t i = 0; i < n; ++i)
                {
                    mag[i] += std::fabs(expected[i]);
                }
            }
            p.twin(beta, expected.data());
            ballast::aligned_vector<float> emulated;
            for_each_path(
              [&](auto path)
              {
                  constexpr bf16_gemm_path P = decltype(path)::value;
                  auto out = p.c_for(beta);
                  float* got = out.data() + p.misalign;
                  p.run<P>(beta, got);
                  auto chain = p.c_for(beta);
                  p.chain(beta, chain.data() + p.misalign, P == bf16_gemm_path::native);
                  // Forced scalar forwards to the double twin. Without FMA instructions xsimd::fma is a
                  // multiply then an add: the same bits (bf16 products are exact in fp32) unless a product
                  // underflows, which only the subnormal data can do.
                  if (!ballast::simd::force_scalar && (normal_data || has_fma || P == bf16_gemm_path::native))
                  {
                      const std::size_t d = first_bit_difference(p, got, chain.data() + p.misalign);
                      if (d != n)
                      {
                          UNSCOPED_INFO(path_name(P)
                                        << " vs fp32 chain, " << p.describe() << " beta " << beta
                                        << ": first bit difference at (" << d / p.ldc << ", " << d % p.ldc
                                        << "): " << got[d] << " vs " << chain[p.misalign + d]);
                      }
                      CHECK(d == n);
                  }
                  if (normal_data)
                  {
                      check_accuracy(p, path_name(P), got, expected.data(), mag.data());
                  }
                  if constexpr (P == bf16_gemm_path::emulated)
                  {
                      emulated = out;
                  }
                  else if (normal_data)
                  {
                      CHECK(first_bit_difference(p, got, emulated.data() + p.misalign) == n);
                  }
              });
        }
    }
} // namespace

TEST_CASE("gemm_bf16 matches its twins on awkward sizes, all layouts, beta 0 and 1", "[kernels][gemm_bf16]")
{
    constexpr std::size_t L = ballast::simd::lanes<float>;
    // Edges of the emulated tile (6 × 2L) and the native tile (6 × 32), odd K (the native path pads the last
    // bf16 pair), K across one pair and one vector.
    const std::vector<std::size_t> sizes = { 1, 5, 7, L - 1, L + 1, 2 * L + 1, 31, 33, 37 };
    std::uint64_t salt = 1;
    for (const gemm_layout layout : all_layouts)
    {
        for (const auto& [pad, mis] : { std::pair<std::size_t, std::size_t>{ 0, 0 }, { 3, 1 } })
        {
            for (const std::size_t M : sizes)
            {
                for (const std::size_t N : sizes)
                {
                    for (const std::size_t K : { 1, 2, 3, 17, 38 })
                    {
                        check_problem(problem(layout, M, N, K, pad, mis, salt++));
                    }
                }
            }
        }
    }
}

TEST_CASE("gemm_bf16 matches its twins across cache-block boundaries, 1 and 2 threads",
          "[kernels][gemm_bf16]")
{
    constexpr std::size_t KC = bk::gemm_bf16_kc, MC = bk::gemm_bf16_mc, NC = bk::gemm_bf16_nc;
    // Several K blocks with a ragged (odd) last one, more than one MC block, N > NC.
    const std::vector<std::tuple<std::size_t, std::size_t, std::size_t>> shapes = {
        { 300, 70, 531 },  { MC + 7, 37, KC + 1 }, { 2 * MC + 1, 19, 2 * KC + 3 },
        { 11, NC + 5, 3 }, { 101, 103, 2 * KC },   { 13, NC + 33, KC + 3 },
    };
    std::uint64_t salt = 1000;
    for (const gemm_layout layout : all_layouts)
    {
        for (const auto& [M, N, K] : shapes)
        {
            for (const int threads : { 1, 2 })
            {
                ballast::thread_scope scope(threads);
                check_problem(problem(layout, M, N, K, 2, 1, salt++));
            }
        }
    }
}

TEST_CASE("gemm_bf16 rounds its inputs: the result is the product of the bf16 values, not of the floats",
          "[kernels][gemm_bf16]")
{
    // A = 1 + 2^-8 (a tie: bf16 1.0), B = 1 + 3·2^-8 (a tie: bf16 1 + 2^-6), K = 4: exact bf16 result
    // 4·(1 + 2^-6) = 4.0625, while the fp32 product would be 4·(1 + 2^-8)(1 + 3·2^-8) ≈ 4.0628.
    const std::size_t M = 3, N = 5, K = 4;
    std::vector<float> A(M * K, 1.0f + 0x1p-8f), B(K * N, 1.0f + 3 * 0x1p-8f), C(M * N);
    for_each_path(
      [&](auto path)
      {
          constexpr bf16_gemm_path P = decltype(path)::value;
          bk::gemm_bf16<P>(gemm_layout::nn, M, N, K, A.data(), K, B.data(), N, 0.0f, C.data(), N);
          for (const float c : C)
          {
              CHECK(c == 4.0625f);
          }
      });
}

TEST_CASE("gemm_bf16 with subnormal data: the native path flushes, the emulated path does not",
          "[kernels][gemm_bf16]")
{
    // Values ~1e-19: products ~1e-38, partial sums near and below 2^-126 ≈ 1.18e-38, some bf16 inputs
    // rounded into the subnormal range too. Each path must equal its own chain twin bit for bit; the two
    // differ (DAZ/FTZ), by at most the flushed amounts: < 2^-126 per FMA, so ≤ K·2^-126 per element.
    for (const gemm_layout layout : all_layouts)
    {
        problem p(layout, 23, 41, 37, 1, 1, 555, 2e-19);
        for (std::size_t i = 0; i < p.M; ++i)
        {
            p.a_at(i, 3) = 3e-39f; // subnormal input (bf16-representable range)
        }
        check_problem(p, false);
        if constexpr (bk::bf16_native_available)
        {
            auto em = p.c_for(0.0f), na = p.c_for(0.0f);
            p.run<bf16_gemm_path::emulated>(0.0f, em.data() + p.misalign);
            p.run<bf16_gemm_path::native>(0.0f, na.data() + p.misalign);
            std::size_t differ = 0;
            double worst = 0;
            for (std::size_t i = 0; i < p.M; ++i)
            {
                for (std::size_t j = 0; j < p.N; ++j)
                {
                    const std::size_t idx = p.misalign + i * p.ldc + j;
                    differ += em[idx] != na[idx] ? 1 : 0;
                    worst = std::max(worst, std::fabs(static_cast<double>(em[idx]) - na[idx]));
                }
            }
            CAPTURE(layout_name(layout), differ, worst);
            CHECK(differ > 0);
            CHECK(worst <= static_cast<double>(p.K) * 0x1p-126);
        }
    }
}

TEST_CASE("gemm_bf16 with M, N or K = 0", "[kernels][gemm_bf16]")
{
    for_each_path(
      [&](auto path)
      {
          constexpr bf16_gemm_path P = decltype(path)::value;
          for (const gemm_layout layout : all_layouts)
          {
              problem p(layout, 7, 19, 0, 2, 1, 77);
              std::vector<float> before(p.c(), p.c() + p.M * p.ldc);
              p.run<P>(1.0f, p.c());
              CHECK(std::memcmp(before.data(), p.c(), before.size() * sizeof(float)) == 0);
              auto z = p.c_for(0.0f);
              p.run<P>(0.0f, z.data() + p.misalign);
              for (std::size_t i = 0; i < p.M; ++i)
              {
                  for (std::size_t j = 0; j < p.ldc; ++j)
                  {
                      CHECK(z[p.misalign + i * p.ldc + j] == (j < p.N ? 0.0f : pad_sentinel));
                  }
              }
              CHECK_NOTHROW(bk::gemm_bf16<P>(layout, 0, 5, 3, nullptr, 5, nullptr, 5, 0.0f, nullptr, 5));
              CHECK_NOTHROW(bk::gemm_bf16<P>(layout, 5, 0, 3, nullptr, 5, nullptr, 5, 1.0f, nullptr, 5));
          }
      });
}

TEST_CASE("gemm_bf16 propagates NaN and Inf from A and B to exactly the right outputs",
          "[kernels][gemm_bf16]")
{
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    for (const gemm_layout layout : all_layouts)
    {
        // Two K blocks; NaN at A(13, 200), Inf at B(7, 20), a NaN whose payload is only in the low 16 bits
        // (rounding it like a number would give Inf) at A(2, 300), a float above max bf16 + half an ulp
        // (rounds to Inf) at B(301, 3).
        problem p(layout, 29, 35, bk::gemm_bf16_kc + 90, 1, 1, 4242);
        p.a_at(13, 200) = nan;
        p.b_at(7, 20) = inf;
        p.a_at(2, 300) = std::bit_cast<float>(0x7F800001u);
        p.b_at(301, 3) = std::bit_cast<float>(0x7F7F8000u);
        check_problem(p);
        for_each_path(
          [&](auto path)
          {
              constexpr bf16_gemm_path P = decltype(path)::value;
              auto out = p.c_for(0.0f);
              const float* c = out.data() + p.misalign;
              p.run<P>(0.0f, out.data() + p.misalign);
              std::size_t bad = 0;
              for (std::size_t i = 0; i < p.M; ++i)
              {
                  for (std::size_t j = 0; j < p.N; ++j)
                  {
                      const float v = c[i * p.ldc + j];
                      // NaN rows 13 and 2 everywhere; column 20 and 3: ±Inf (A has no zeros), except that
                      // row 2's NaN wins; everything else finite.
                      const bool want_nan = i == 13 || i == 2;
                      const bool want_inf = !want_nan && (j == 20 || j == 3);
                      bad += (want_nan ? std::isnan(v) : want_inf ? std::isinf(v) : std::isfinite(v)) ? 0 : 1;
                  }
              }
              CAPTURE(path_name(P), layout_name(layout));
              CHECK(bad == 0);
          });
    }
}

TEST_CASE("gemm_bf16 is bit-identical for 1 and 2 threads and inside a parallel region",
          "[kernels][gemm_bf16]")
{
    const std::size_t M = 2 * bk::gemm_bf16_mc + 77, N = 101, K = 2 * bk::gemm_bf16_kc + 31;
    REQUIRE(M * N * K >= bk::gemm_bf16_parallel_min_macs);
    for (const gemm_layout layout : all_layouts)
    {
        const problem p(layout, M, N, K, 1, 1, 99);
        for (const float beta : { 0.0f, 1.0f })
        {
            for_each_path(
              [&](auto path)
              {
                  constexpr bf16_gemm_path P = decltype(path)::value;
                  ballast::aligned_vector<float> one(p.C), two(p.C), nested(p.C);
                  {
                      ballast::thread_scope scope(1);
                      p.run<P>(beta, one.data() + p.misalign);
                  }
                  {
                      ballast::thread_scope scope(2);
                      p.run<P>(beta, two.data() + p.misalign);
                      ballast::parallel_chunks(2,
                                               [&](std::size_t c, std::size_t)
                                               {
                                                   ballast::aligned_vector<float> mine(p.C);
                                                   p.run<P>(beta, mine.data() + p.misalign);
                                                   if (c == 0)
                                                   {
                                                       nested = mine;
                                                   }
                                               });
                  }
                  CAPTURE(path_name(P), layout_name(layout), beta);
                  CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)) == 0);
                  CHECK(std::memcmp(one.data(), nested.data(), one.size() * sizeof(float)) == 0);
              });
        }
    }
}

TEST_CASE("gemm_bf16 refuses beta other than 0/1 and too-small leading dimensions", "[kernels][gemm_bf16]")
{
    std::vector<float> buf(64, 1.0f);
    const float* a = buf.data();
    float* c = buf.data();
    for (const gemm_layout layout : all_layouts)
    {
        const std::size_t lda = layout == gemm_layout::tn ? 3 : 5;
        const std::size_t ldb = layout == gemm_layout::nt ? 5 : 4;
        for_each_path(
          [&](auto path)
          {
              constexpr bf16_gemm_path P = decltype(path)::value;
              CHECK_NOTHROW(bk::gemm_bf16<P>(layout, 3, 4, 5, a, lda, a, ldb, 0.0f, c, 4));
              CHECK_THROWS_AS(bk::gemm_bf16<P>(layout, 3, 4, 5, a, lda, a, ldb, 0.5f, c, 4), ballast::error);
              CHECK_THROWS_AS(bk::gemm_bf16<P>(layout, 3, 4, 5, a, lda - 1, a, ldb, 0.0f, c, 4),
                              ballast::error);
              CHECK_THROWS_AS(bk::gemm_bf16<P>(layout, 3, 4, 5, a, lda, a, ldb - 1, 0.0f, c, 4),
                              ballast::error);
              CHECK_THROWS_AS(bk::gemm_bf16<P>(layout, 3, 4, 5, a, lda, a, ldb, 0.0f, c, 3), ballast::error);
          });
        CHECK_THROWS_AS(bk::ref::gemm_bf16(layout, 3, 4, 5, a, lda, a, ldb, 2.0f, c, 4), ballast::error);
        CHECK_THROWS_AS(bk::ref::gemm_bf16_fp32_chain(layout, 3, 4, 5, a, lda, a, ldb, 0.0f, c, 4, 0, false),
                        ballast::error);
    }
}

TEST_CASE("the default bf16 path is native exactly where AVX512_BF16 is compiled in", "[kernels][gemm_bf16]")
{
#if defined(__AVX512BF16__) && !defined(BALLAST_FORCE_SCALAR)
    CHECK(bk::bf16_native_available);
    CHECK(bk::bf16_gemm_default_path == bf16_gemm_path::native);
#else
    CHECK_FALSE(bk::bf16_native_available);
    CHECK(bk::bf16_gemm_default_path == bf16_gemm_path::emulated);
#endif
}
