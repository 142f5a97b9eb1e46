// Log-sum-exp and fused cross-entropy (with z-loss) against the double scalar twin, closed forms,
// central finite differences, target validation, NaN isolation, aliasing and thread independence.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/core/parallel.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/kernels/cross_entropy.hpp>

#include "support/gradcheck.hpp"
#include "support/random.hpp"
#include "support/sizes.hpp"
#include "support/tolerance.hpp"

namespace
{
    namespace bk = ballast::kernels;
    using ballast::test::check_all_close;
    using ballast::test::tolerance;

    template <class T>
    std::vector<std::size_t> vocab_sizes()
    {
        return ballast::test::awkward_sizes<T>({ 13, 37, 256, 257, 1031 });
    }

    std::vector<std::int32_t> random_targets(std::mt19937_64& g, std::size_t rows, std::size_t vocab)
    {
        std::uniform_int_distribution<std::int32_t> d(0, static_cast<std::int32_t>(vocab) - 1);
        std::vector<std::int32_t> t(rows);
        for (auto& v : t)
        {
            v = d(g);
        }
        return t;
    }

    // lse = m + log S: S is a sum of ≤ V terms in (0, 1] with relative error ~(V/32 + 6) eps (reduce.hpp
    // order) and exp ≤ 2 ulp, so lse and loss (O(1..10)) are within tolerance::rel; p_j·k entries of
    // dlogits are products of ≤ 4 rounded factors, also within rel. tolerance::abs covers the
    // target entry p_t − 1 when it cancels.
    template <class T>
    constexpr double rel = tolerance<T>::rel;
    template <class T>
    constexpr double abs_tol = tolerance<T>::abs;
} // namespace

TEMPLATE_TEST_CASE("logsumexp_rows and cross_entropy_rows match the scalar twin over awkward vocab sizes, ld "
                   "padding, misalignment and z-loss",
                   "[kernels][cross_entropy]", float, double)
{
    using T = TestType;
    auto g = ballast::test::rng(401);
    const std::size_t rows = 3;
    for (const std::size_t vocab : vocab_sizes<T>())
    {
        for (const std::size_t mis : { 0u, 1u })
        {
            for (const T z : { T(0), T(1e-2) })
            {
                CAPTURE(vocab, mis, z);
                const std::size_t ld = vocab + 2 * mis, n = rows * ld; // padded vocabulary when misaligned
                const auto xb = ballast::test::uniform<T>(g, n, -10.0, 10.0, mis);
                const T* x = xb.data() + mis;
                const auto tg = random_targets(g, rows, vocab);
                const T scale = T(1) / T(rows);
                std::vector<T> lse(rows), lse_ref(rows), lse2(rows), loss(rows), loss_ref(rows);
                bk::logsumexp_rows(lse.data(), x, rows, vocab, ld);
                bk::ref::logsumexp_rows(lse_ref.data(), x, rows, vocab, ld);
                check_all_close(lse.data(), lse_ref.data(), rows, rel<T>, abs_tol<T>);
                ballast::aligned_vector<T> d(n + mis, T(-7)), d_ref(n + mis, T(-7));
                bk::cross_entropy_rows(loss.data(), lse2.data(), d.data() + mis, x, tg.data(), scale, z, rows,
                                       vocab, ld);
                bk::ref::cross_entropy_rows(loss_ref.data(), lse_ref.data(), d_ref.data() + mis, x, tg.data(),
                                            scale, z, rows, vocab, ld);
                check_all_close(loss.data(), loss_ref.data(), rows, rel<T>, abs_tol<T>);
                check_all_close(lse2.data(), lse_ref.data(), rows, rel<T>, abs_tol<T>);
                check_all_close(d.data(), d_ref.data(), n + mis, rel<T>, abs_tol<T>); // padding stays -7
            }
        }
    }
}

TEMPLATE_TEST_CASE("cross entropy at GPT-2 vocabulary size matches the scalar twin",
                   "[kernels][cross_entropy]", float, double)
{
    using T = TestType;
    auto g = ballast::test::rng(402);
    const std::size_t rows = 2, vocab = 50257, ld = 50304; // llm.c's padded vocabulary
    const auto x = ballast::test::uniform<T>(g, rows * ld, -5.0, 5.0, 0);
    const auto tg = random_targets(g, rows, vocab);
    std::vector<T> loss(rows), loss_ref(rows), lse(rows), lse_ref(rows), d(rows * ld), d_ref(rows * ld);
    bk::cross_entropy_rows(loss.data(), lse.data(), d.data(), x.data(), tg.data(), T(0.5), T(1e-4), rows,
                           vocab, ld);
    bk::ref::cross_entropy_rows(loss_ref.data(), lse_ref.data(), d_ref.data(), x.data(), tg.data(), T(0.5),
                                T(1e-4), rows, vocab, ld);
    check_all_close(loss.data(), loss_ref.data(), rows, rel<T>, abs_tol<T>);
    check_all_close(lse.data(), lse_ref.data(), rows, rel<T>, abs_tol<T>);
    check_all_close(d.data(), d_ref.data(), rows * ld, rel<T>, abs_tol<T>);
}

TEMPLATE_TEST_CASE("log-sum-exp and cross entropy have closed forms on equal and one-hot logits",
                   "[kernels][cross_entropy]", float, double)
{
    using T = TestType;
    for (const std::size_t vocab : vocab_sizes<T>())
    {
        CAPTURE(vocab);
        const T c = T(2.5);
        std::vector<T> x(vocab, c), d(vocab);
        T lse, loss;
        bk::logsumexp_rows(&lse, x.data(), 1, vocab, vocab);
        const double log_v = std::log(static_cast<double>(vocab));
        BALLAST_CHECK_CLOSE(lse, c + log_v, T);
        // Equal logits: loss = log V and dlogits = scale·(1/V − onehot).
        const std::int32_t t = static_cast<std::int32_t>(vocab / 2);
        const T scale = T(0.25);
        bk::cross_entropy_rows(&loss, &lse, d.data(), x.data(), &t, scale, T(0), 1, vocab, vocab);
        CHECK(ballast::test::close(loss, log_v, rel<T>, abs_tol<T>));
        std::vector<double> expect(vocab, 0.25 / static_cast<double>(vocab));
        expect[static_cast<std::size_t>(t)] -= 0.25;
        check_all_close(d.data(), expect.data(), vocab, rel<T>, abs_tol<T>);
        // One-hot correct with a large margin: p_t = 1/(1 + (V−1)e^−40) → loss ≈ (V−1)e^−40 ≈ 0, grad ≈ 0.
        std::fill(x.begin(), x.end(), T(0));
        x[static_cast<std::size_t>(t)] = T(40);
        bk::cross_entropy_rows(&loss, &lse, d.data(), x.data(), &t, scale, T(0), 1, vocab, vocab);
        CHECK(std::fabs(double(loss)) <= abs_tol<T>);
        CHECK(std::all_of(d.begin(), d.end(), [](T v) { return std::fabs(double(v)) <= abs_tol<T>; }));
    }
}

TEST_CASE("cross entropy and z-loss gradients agree with central finite differences in double",
          "[kernels][cross_entropy][gradcheck]")
{
    // Objective J = Σ_r scale·loss_r; the kernel's dlogits is dJ/dlogits (scale included).
    auto g = ballast::test::rng(403);
    const std::size_t rows = 4, vocab = 11, ld = 13;
    for (const double z : { 0.0, 0.1 })
    {
        CAPTURE(z);
        auto x = ballast::test::uniform<double>(g, rows * ld, -3.0, 3.0, 0);
        const auto tg = random_targets(g, rows, vocab);
        const double scale = 1.0 / rows;
        std::vector<double> loss(rows), d(rows * ld, 0.0);
        const auto objective = [&]
        {
            bk::cross_entropy_rows<double>(loss.data(), nullptr, nullptr, x.data(), tg.data(), scale, z, rows,
                                           vocab, ld);
            double j = 0;
            for (const double l : loss)
            {
                j += scale * l;
            }
            return j;
        };
        bk::cross_entropy_rows<double>(loss.data(), nullptr, d.data(), x.data(), tg.data(), scale, z, rows,
                                       vocab, ld);
        ballast::test::check_gradient(d.data(), objective, x.data(), rows * ld);
    }
}

TEMPLATE_TEST_CASE("an out-of-range target throws before any output is written", "[kernels][cross_entropy]",
                   float, double)
{
    using T = TestType;
    const std::size_t rows = 3, vocab = 10;
    std::vector<T> x(rows * vocab, T(0.5)), loss(rows, T(-1)), d(rows * vocab, T(-1));
    for (const std::int32_t bad : { -1, 10, 1000 })
    {
        CAPTURE(bad);
        std::vector<std::int32_t> tg{ 0, 9, 0 };
        tg[2] = bad;
        CHECK_THROWS_AS(bk::cross_entropy_rows(loss.data(), static_cast<T*>(nullptr), d.data(), x.data(),
                                               tg.data(), T(1), T(0), rows, vocab, vocab),
                        ballast::error);
        CHECK_THROWS_AS(bk::ref::cross_entropy_rows(loss.data(), static_cast<T*>(nullptr), d.data(), x.data(),
                                                    tg.data(), T(1), T(0), rows, vocab, vocab),
                        ballast::error);
        CHECK(std::all_of(loss.begin(), loss.end(), [](T v) { return v == T(-1); }));
        CHECK(std::all_of(d.begin(), d.end(), [](T v) { return v == T(-1); }));
    }
    std::vector<std::int32_t> ok{ 0, 9, 3 };
    CHECK_THROWS_AS(bk::cross_entropy_rows(loss.data(), static_cast<T*>(nullptr), d.data(), x.data(),
                                           ok.data(), T(1), T(0), rows, vocab, vocab - 1),
                    ballast::error); // ld < vocab
}

TEMPLATE_TEST_CASE("a NaN logit makes only its own row's loss, lse and gradient NaN",
                   "[kernels][cross_entropy][nan]", float, double)
{
    using T = TestType;
    auto g = ballast::test::rng(404);
    const std::size_t rows = 4, vocab = 37;
    auto x = ballast::test::uniform<T>(g, rows * vocab, -2.0, 2.0, 0);
    x[2 * vocab + 30] = std::numeric_limits<T>::quiet_NaN();
    const auto tg = random_targets(g, rows, vocab);
    std::vector<T> loss(rows), lse(rows), lse2(rows), d(rows * vocab);
    bk::cross_entropy_rows(loss.data(), lse.data(), d.data(), x.data(), tg.data(), T(0.25), T(1e-3), rows,
                           vocab, vocab);
    bk::logsumexp_rows(lse2.data(), x.data(), rows, vocab, vocab);
    for (std::size_t r = 0; r < rows; ++r)
    {
        CAPTURE(r);
        const bool poisoned = r == 2;
        CHECK(std::isnan(loss[r]) == poisoned);
        CHECK(std::isnan(lse[r]) == poisoned);
        CHECK(std::isnan(lse2[r]) == poisoned);
        for (std::size_t j = 0; j < vocab; ++j)
        {
            if (std::isnan(d[r * vocab + j]) != poisoned)
            {
                FAIL_CHECK("dlogits[" << r << ", " << j << "] = " << d[r * vocab + j]);
                break;
            }
        }
    }
}

TEMPLATE_TEST_CASE("cross entropy in place, forward-only and with lse omitted agree with the full call",
                   "[kernels][cross_entropy]", float, double)
{
    using T = TestType;
    auto g = ballast::test::rng(405);
    const std::size_t rows = 5, vocab = 257;
    const auto x = ballast::test::uniform<T>(g, rows * vocab, -4.0, 4.0, 0);
    const auto tg = random_targets(g, rows, vocab);
    std::vector<T> loss(rows), lse(rows), d(rows * vocab), loss2(rows), lse2(rows);
    bk::cross_entropy_rows(loss.data(), lse.data(), d.data(), x.data(), tg.data(), T(0.2), T(1e-3), rows,
                           vocab, vocab);
    auto inplace = x;
    bk::cross_entropy_rows(loss2.data(), static_cast<T*>(nullptr), inplace.data(), inplace.data(), tg.data(),
                           T(0.2), T(1e-3), rows, vocab, vocab);
    CHECK(std::memcmp(inplace.data(), d.data(), d.size() * sizeof(T)) == 0);
    CHECK(std::memcmp(loss2.data(), loss.data(), loss.size() * sizeof(T)) == 0);
    bk::cross_entropy_rows(loss2.data(), lse2.data(), static_cast<T*>(nullptr), x.data(), tg.data(), T(0.2),
                           T(1e-3), rows, vocab, vocab);
    CHECK(std::memcmp(loss2.data(), loss.data(), loss.size() * sizeof(T)) == 0);
    CHECK(std::memcmp(lse2.data(), lse.data(), lse.size() * sizeof(T)) == 0);
}

TEMPLATE_TEST_CASE("threaded cross entropy is bit-identical for 1 and 2 threads",
                   "[kernels][cross_entropy][threads]", float, double)
{
    using T = TestType;
    auto g = ballast::test::rng(406);
    const std::size_t rows = 64, vocab = 4099; // 3 rows per chunk → 22 chunks
    const auto x = ballast::test::uniform<T>(g, rows * vocab, -6.0, 6.0, 0);
    const auto tg = random_targets(g, rows, vocab);
    const auto run = [&](int threads)
    {
        ballast::thread_scope scope(threads);
        std::vector<T> out(rows * vocab + 3 * rows);
        T* d = out.data();
        T* loss = d + rows * vocab;
        bk::cross_entropy_rows(loss, loss + rows, d, x.data(), tg.data(), T(1) / T(rows), T(1e-4), rows,
                               vocab, vocab);
        bk::logsumexp_rows(loss + 2 * rows, x.data(), rows, vocab, vocab);
        return out;
    };
    const auto one = run(1), two = run(2);
    CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(T)) == 0);
}
