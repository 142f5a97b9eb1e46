// Adafactor's kernel (ballast/kernels/optimizer.hpp) against its scalar double twin over several steps, for
// factored matrices and vectors of awkward sizes, every decay mode, with and without β1 and with update
// clipping on and off; the layout of the factored state; thread-count independence. (The elementwise
// optimizer kernels are tested in tests/kernels/elementwise_test.cpp.)
#include <cmath>
#include <cstring>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/core/parallel.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/kernels/optimizer.hpp>

#include "support/random.hpp"
#include "support/sizes.hpp"
#include "support/tolerance.hpp"

namespace
{
    namespace bk = ballast::kernels;
    using bk::weight_decay;

    struct shape
    {
        std::size_t rows, cols;
    };

    template <weight_decay Mode, class T>
    void twin_trajectory(shape s, double beta1, double clip_threshold, std::uint64_t seed)
    {
        using tol = ballast::test::tolerance<T>;
        const std::size_t n = s.rows * s.cols;
        auto g = ballast::test::rng(seed);
        auto th = ballast::test::uniform<T>(g, n, -1, 1);
        auto th_r = th;
        std::vector<T> m(n, T(0)), m_r(n, T(0)), v(n, T(0)), v_r(n, T(0));
        for (int t = 1; t <= 4; ++t)
        {
            CAPTURE(t);
            const auto grad = ballast::test::uniform<T>(g, n, -1, 1);
            bk::adafactor_hparams h;
            h.lr = 1e-2;
            h.beta1 = beta1;
            h.beta2 = 1 - std::pow(static_cast<double>(t), -0.8);
            h.clip_threshold = clip_threshold;
            h.weight_decay = 1e-3;
            h.grad_scale = 0.7;
            bk::adafactor_update<Mode>(th.data(), m.data(), v.data(), grad.data(), h, s.rows, s.cols);
            bk::ref::adafactor_update<Mode>(th_r.data(), m_r.data(), v_r.data(), grad.data(), h, s.rows,
                                            s.cols);
            // float: sums of up to ~150 squares and one of ~1000 U² (accumulated in double) ahead of a few
            // roundings per element: within 64 eps.
            ballast::test::check_all_close(th.data(), th_r.data(), n, tol::rel, tol::abs);
            ballast::test::check_all_close(m.data(), m_r.data(), n, tol::rel, tol::abs);
            ballast::test::check_all_close(v.data(), v_r.data(), n, tol::rel, tol::abs);
        }
        if (bk::adafactor_factored(s.rows, s.cols))
        {
            // R and C fill the first rows + cols entries of v; the rest of the slot is untouched.
            for (std::size_t i = s.rows + s.cols; i < n; ++i)
            {
                REQUIRE(v[i] == T(0));
            }
            for (std::size_t i = 0; i < s.rows + s.cols; ++i)
            {
                REQUIRE(v[i] > T(0));
            }
        }
    }
} // namespace

TEMPLATE_TEST_CASE("adafactor_update matches the scalar twin, factored and unfactored, every decay mode",
                   "[kernels][optimizer][adafactor]", float, double)
{
    using T = TestType;
    constexpr std::size_t L = ballast::simd::lanes<T>;
    std::uint64_t seed = 401;
    for (const shape s :
         { shape{ 7, 13 }, shape{ 2, 2 }, shape{ 3, L }, shape{ 5, L + 1 }, shape{ 33, 2 * L + 3 },
           shape{ 1, 37 }, shape{ 1, L - 1 }, shape{ 19, 1 }, shape{ 1, 1 } })
    {
        for (const double beta1 : { 0.0, 0.9 })
        {
            // d = 1: U ≈ G/√V̂ has RMS around 1, so clipping fires on some steps; d = 100: never.
            for (const double d : { 1.0, 100.0 })
            {
                CAPTURE(s.rows, s.cols, beta1, d);
                twin_trajectory<weight_decay::independent, T>(s, beta1, d, seed++);
                twin_trajectory<weight_decay::coupled, T>(s, beta1, d, seed++);
                twin_trajectory<weight_decay::none, T>(s, beta1, d, seed++);
            }
        }
    }
}

TEST_CASE("adafactor_update of a [2, 2] matrix equals the paper's formulas by hand",
          "[kernels][optimizer][adafactor]")
{
    // t = 1 (β̂ = 0), G = [[1, 2], [3, 4]], ε1 = 0, d large, β1 = 0, lr 0.5, no decay:
    // R = (5, 25), C = (10, 20), ΣR = 30, V̂_ij = R_i C_j / 30, U = G/√V̂.
    double th[4] = { 0, 0, 0, 0 }, m[4] = {}, v[4] = {};
    const double g[4] = { 1, 2, 3, 4 };
    bk::adafactor_hparams h;
    h.lr = 0.5;
    h.eps1 = 0;
    h.clip_threshold = 1e6;
    bk::adafactor_update<weight_decay::none>(th, m, v, g, h, 2, 2);
    const double R[2] = { 5, 25 }, C[2] = { 10, 20 };
    CHECK(v[0] == 5);
    CHECK(v[1] == 25);
    CHECK(v[2] == 10);
    CHECK(v[3] == 20);
    for (std::size_t i = 0; i < 2; ++i)
    {
        for (std::size_t j = 0; j < 2; ++j)
        {
            const double u = g[i * 2 + j] / std::sqrt(R[i] * C[j] / 30.0);
            BALLAST_CHECK_CLOSE(th[i * 2 + j], -0.5 * u, double);
            BALLAST_CHECK_CLOSE(m[i * 2 + j], u, double);
        }
    }
}

TEMPLATE_TEST_CASE("adafactor_update is bit-identical on 1 and 2 threads",
                   "[kernels][optimizer][adafactor][threads]", float, double)
{
    using T = TestType;
    const std::size_t rows = 300, cols = 257;
    auto g = ballast::test::rng(409);
    const auto th0 = ballast::test::uniform<T>(g, rows * cols, -1, 1);
    const auto grad = ballast::test::uniform<T>(g, rows * cols, -1, 1);
    const auto run = [&](int threads)
    {
        ballast::thread_scope scope(threads);
        auto th = th0;
        std::vector<T> m(th.size(), T(0)), v(th.size(), T(0));
        bk::adafactor_hparams h;
        h.beta1 = 0.9;
        bk::adafactor_update(th.data(), m.data(), v.data(), grad.data(), h, rows, cols);
        th.insert(th.end(), m.begin(), m.end());
        th.insert(th.end(), v.begin(), v.end());
        return th;
    };
    const auto a = run(1), b = run(2);
    CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}
