// Elementwise kernels and the fused elementwise optimizer updates (AdamW, SGD, Lion;
// ballast/kernels/optimizer.hpp) against their scalar twins (which compute in double), closed forms of a
// first optimizer step, NaN propagation and thread-count independence. Adafactor's kernel:
// tests/kernels/optimizer_test.cpp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/core/parallel.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/kernels/optimizer.hpp>

#include "support/random.hpp"
#include "support/sizes.hpp"
#include "support/tolerance.hpp"

namespace
{
    namespace bk = ballast::kernels;
    using ballast::test::check_all_close;
    using ballast::test::tolerance;
    using bk::weight_decay;

    template <class T>
    std::vector<std::size_t> elementwise_sizes()
    {
        return ballast::test::awkward_sizes<T>({ 13, 37, 257, 1031 });
    }

    /// A buffer of n values in [lo, hi) starting `mis` elements into an aligned allocation.
    template <class T>
    struct buf
    {
        ballast::aligned_vector<T> v;
        std::size_t mis;
        buf(std::mt19937_64& g, std::size_t n, double lo, double hi, std::size_t misalign)
          : v(ballast::test::uniform<T>(g, n, lo, hi, misalign))
          , mis(misalign)
        {
        }
        T* p() { return v.data() + mis; }
    };

    // Optimizer state after a few steps: each step is a handful of roundings in T (float kernels
    // compute in float, including β rounded to float) against a double twin, so 64 eps (tolerance::rel)
    // covers it; tolerance::abs absorbs differences in values that cancel to ~0.
    template <class T>
    constexpr double rel = tolerance<T>::rel;
    template <class T>
    constexpr double abs_tol = tolerance<T>::abs;
} // namespace

TEMPLATE_TEST_CASE(
  "axpy, scale, add, copy and fill match the scalar twin over awkward sizes and misalignment",
  "[kernels][elementwise]", float, double)
{
    using T = TestType;
    auto g = ballast::test::rng(201);
    for (const std::size_t n : elementwise_sizes<T>())
    {
        for (const std::size_t mis : { 0u, 1u })
        {
            CAPTURE(n, mis);
            buf<T> x(g, n, -1, 1, mis), y(g, n, -1, 1, mis), y_ref = y, out(g, n, 0, 0, mis), out_ref = out;
            const T a = T(0.37);
            bk::axpy(y.p(), x.p(), a, n);
            bk::ref::axpy(y_ref.p(), x.p(), a, n);
            check_all_close(y.p(), y_ref.p(), n, rel<T>, abs_tol<T>);

            bk::scale(y.p(), a, n);
            bk::ref::scale(y_ref.p(), a, n);
            check_all_close(y.p(), y_ref.p(), n, rel<T>, abs_tol<T>);

            bk::add(out.p(), x.p(), y.p(), n);
            bk::ref::add(out_ref.p(), x.p(), y.p(), n);
            check_all_close(out.p(), out_ref.p(), n, rel<T>, abs_tol<T>);

            bk::copy(out.p(), x.p(), n);
            CHECK(std::memcmp(out.p(), x.p(), n * sizeof(T)) == 0);

            bk::fill(out.p(), T(-2.5), n);
            CHECK(std::all_of(out.p(), out.p() + n, [](T v) { return v == T(-2.5); }));
            // The element before a misaligned buffer is never written.
            if (mis == 1)
            {
                CHECK(out.v[0] == T(0));
            }
        }
    }
}

TEMPLATE_TEST_CASE("elementwise kernels of zero elements are no-ops", "[kernels][elementwise]", float, double)
{
    using T = TestType;
    T* none = nullptr;
    bk::adamw_hparams ah;
    CHECK_NOTHROW(bk::axpy(none, none, T(1), 0));
    CHECK_NOTHROW(bk::scale(none, T(1), 0));
    CHECK_NOTHROW(bk::add(none, none, none, 0));
    CHECK_NOTHROW(bk::copy(none, none, 0));
    CHECK_NOTHROW(bk::fill(none, T(1), 0));
    CHECK_NOTHROW(bk::adamw_update(none, none, none, none, ah, 0));
    CHECK_NOTHROW(bk::sgd_momentum_update(none, none, none, bk::sgd_hparams{}, 0));
    CHECK_NOTHROW(bk::lion_update(none, none, none, bk::lion_hparams{}, 0));
}

TEMPLATE_TEST_CASE("adamw_update matches the scalar twin for every weight-decay mode over several steps",
                   "[kernels][elementwise][adamw]", float, double)
{
    using T = TestType;
    auto g = ballast::test::rng(202);
    bk::adamw_hparams h;
    h.lr = 3e-3;
    h.beta1 = 0.9;
    h.beta2 = 0.95;
    h.eps = 1e-8;
    h.weight_decay = 0.1;
    const auto check_mode = [&](auto mode_tag, std::size_t n, std::size_t mis)
    {
        constexpr weight_decay mode = decltype(mode_tag)::value;
        buf<T> th(g, n, -1, 1, mis), m(g, n, 0, 0, mis), v(g, n, 0, 0, mis);
        buf<T> th_r = th, m_r = m, v_r = v;
        for (int step = 1; step <= 3; ++step)
        {
            buf<T> grad(g, n, -1, 1, mis);
            auto hs = h.with_step(step);
            hs.grad_scale = step == 2 ? 0.37 : 1.0; // a clipped step
            bk::adamw_update<mode>(th.p(), m.p(), v.p(), grad.p(), hs, n);
            bk::ref::adamw_update<mode>(th_r.p(), m_r.p(), v_r.p(), grad.p(), hs, n);
        }
        check_all_close(m.p(), m_r.p(), n, rel<T>, abs_tol<T>);
        check_all_close(v.p(), v_r.p(), n, rel<T>, abs_tol<T>);
        check_all_close(th.p(), th_r.p(), n, rel<T>, abs_tol<T>);
    };
    for (const std::size_t n : elementwise_sizes<T>())
    {
        for (const std::size_t mis : { 0u, 1u })
        {
            CAPTURE(n, mis);
            check_mode(std::integral_constant<weight_decay, weight_decay::none>{}, n, mis);
            check_mode(std::integral_constant<weight_decay, weight_decay::independent>{}, n, mis);
            check_mode(std::integral_constant<weight_decay, weight_decay::coupled>{}, n, mis);
        }
    }
}

TEMPLATE_TEST_CASE("the first adamw step from zero moments is lr times g over |g| plus eps, plus decay",
                   "[kernels][elementwise][adamw]", float, double)
{
    // Step 1 from m = v = 0: m = (1−β1)g, v = (1−β2)g², bias corrections 1−β1, 1−β2, so m̂ = g,
    // √v̂ = |g| and u = g/(|g| + ε) (a smoothed sign).
    using T = TestType;
    const std::size_t n = 37;
    auto g = ballast::test::rng(203);
    bk::adamw_hparams h;
    h.lr = 1e-2;
    h.weight_decay = 0.05;
    h.eps = 1e-3; // large enough to make the ε term visible
    const auto hs = h.with_step(1);
    buf<T> th0(g, n, -1, 1, 1), grad(g, n, -1, 1, 1);
    grad.p()[3] = T(0); // u = 0 exactly
    for (int mode = 0; mode < 2; ++mode)
    {
        buf<T> th = th0, m(g, n, 0, 0, 1), v(g, n, 0, 0, 1);
        if (mode == 0)
        {
            bk::adamw_update<weight_decay::independent>(th.p(), m.p(), v.p(), grad.p(), hs, n);
        }
        else
        {
            bk::adamw_update<weight_decay::coupled>(th.p(), m.p(), v.p(), grad.p(), hs, n);
        }
        std::vector<double> expect(n);
        for (std::size_t i = 0; i < n; ++i)
        {
            const double gi = grad.p()[i], t0 = th0.p()[i];
            const double u = gi / (std::fabs(gi) + h.eps);
            expect[i] =
              mode == 0 ? t0 - h.lr * u - h.weight_decay * t0 : t0 - h.lr * (u + h.weight_decay * t0);
        }
        CAPTURE(mode);
        check_all_close(th.p(), expect.data(), n, rel<T>, abs_tol<T>);
    }
}

TEMPLATE_TEST_CASE("sgd_momentum_update matches the scalar twin and the closed form of its first step",
                   "[kernels][elementwise][sgd]", float, double)
{
    using T = TestType;
    auto g = ballast::test::rng(204);
    const bk::sgd_hparams h{ 0.05, 0.9, 0.01, 0.6 }; // grad_scale 0.6: a clipped step
    for (const std::size_t n : elementwise_sizes<T>())
    {
        for (const std::size_t mis : { 0u, 1u })
        {
            CAPTURE(n, mis);
            buf<T> th(g, n, -1, 1, mis), b(g, n, -1, 1, mis), grad(g, n, -1, 1, mis);
            for (int mode = 0; mode < 3; ++mode)
            {
                buf<T> t1 = th, b1 = b, t2 = th, b2 = b;
                if (mode == 0)
                {
                    bk::sgd_momentum_update<weight_decay::none>(t1.p(), b1.p(), grad.p(), h, n);
                    bk::ref::sgd_momentum_update<weight_decay::none>(t2.p(), b2.p(), grad.p(), h, n);
                }
                else if (mode == 1)
                {
                    bk::sgd_momentum_update<weight_decay::independent>(t1.p(), b1.p(), grad.p(), h, n);
                    bk::ref::sgd_momentum_update<weight_decay::independent>(t2.p(), b2.p(), grad.p(), h, n);
                }
                else
                {
                    bk::sgd_momentum_update<weight_decay::coupled>(t1.p(), b1.p(), grad.p(), h, n);
                    bk::ref::sgd_momentum_update<weight_decay::coupled>(t2.p(), b2.p(), grad.p(), h, n);
                }
                CAPTURE(mode);
                check_all_close(b1.p(), b2.p(), n, rel<T>, abs_tol<T>);
                check_all_close(t1.p(), t2.p(), n, rel<T>, abs_tol<T>);
            }
        }
    }
    // From a zero buffer with L2 (coupled) decay: buf = s·g + λθ, θ' = θ − lr·buf (s = grad_scale).
    const std::size_t n = 13;
    buf<T> th(g, n, -1, 1, 0), b(g, n, 0, 0, 0), grad(g, n, -1, 1, 0);
    buf<T> th0 = th;
    bk::sgd_momentum_update<weight_decay::coupled>(th.p(), b.p(), grad.p(), h, n);
    std::vector<double> eb(n), et(n);
    for (std::size_t i = 0; i < n; ++i)
    {
        eb[i] = h.grad_scale * double(grad.p()[i]) + h.weight_decay * double(th0.p()[i]);
        et[i] = double(th0.p()[i]) - h.lr * eb[i];
    }
    check_all_close(b.p(), eb.data(), n, rel<T>, abs_tol<T>);
    check_all_close(th.p(), et.data(), n, rel<T>, abs_tol<T>);
}

TEMPLATE_TEST_CASE("lion_update matches the scalar twin and the closed form of its first step",
                   "[kernels][elementwise][lion]", float, double)
{
    using T = TestType;
    auto g = ballast::test::rng(205);
    const bk::lion_hparams h{ 1e-3, 0.9, 0.99, 0.1, 0.8 }; // grad_scale 0.8: a clipped step
    for (const std::size_t n : elementwise_sizes<T>())
    {
        for (const std::size_t mis : { 0u, 1u })
        {
            CAPTURE(n, mis);
            buf<T> th(g, n, -1, 1, mis), m(g, n, -1, 1, mis), grad(g, n, -1, 1, mis);
            // sign(c) is discontinuous at c = 0: keep c = β1 m + (1−β1) g away from 0 by more than the
            // float rounding of c (so both twins agree on the sign).
            for (std::size_t i = 0; i < n; ++i)
            {
                const double c =
                  h.beta1 * double(m.p()[i]) + (1 - h.beta1) * h.grad_scale * double(grad.p()[i]);
                if (std::fabs(c) < 1e-3)
                {
                    m.p()[i] = T(0.5);
                }
            }
            const auto check_mode = [&](auto mode_tag)
            {
                constexpr weight_decay mode = decltype(mode_tag)::value;
                buf<T> t1 = th, m1 = m, t2 = th, m2 = m;
                bk::lion_update<mode>(t1.p(), m1.p(), grad.p(), h, n);
                bk::ref::lion_update<mode>(t2.p(), m2.p(), grad.p(), h, n);
                check_all_close(m1.p(), m2.p(), n, rel<T>, abs_tol<T>);
                check_all_close(t1.p(), t2.p(), n, rel<T>, abs_tol<T>);
            };
            check_mode(std::integral_constant<weight_decay, weight_decay::none>{});
            check_mode(std::integral_constant<weight_decay, weight_decay::independent>{});
            check_mode(std::integral_constant<weight_decay, weight_decay::coupled>{});
        }
    }
    // From m = 0 (coupled decay, the default): c = (1−β1)s·g, θ' = θ − lr·(sign g + λθ), m' = (1−β2)s·g;
    // sign(0) = 0; s = grad_scale > 0 does not change the sign.
    const std::size_t n = 13;
    buf<T> th(g, n, -1, 1, 1), m(g, n, 0, 0, 1), grad(g, n, -1, 1, 1);
    grad.p()[5] = T(0);
    buf<T> th0 = th;
    bk::lion_update(th.p(), m.p(), grad.p(), h, n);
    std::vector<double> et(n), em(n);
    for (std::size_t i = 0; i < n; ++i)
    {
        const double gi = grad.p()[i], t0 = th0.p()[i];
        const double sg = gi > 0 ? 1.0 : (gi < 0 ? -1.0 : 0.0);
        et[i] = t0 - h.lr * (sg + h.weight_decay * t0);
        em[i] = (1 - h.beta2) * h.grad_scale * gi;
    }
    check_all_close(th.p(), et.data(), n, rel<T>, abs_tol<T>);
    check_all_close(m.p(), em.data(), n, rel<T>, abs_tol<T>);
}

TEMPLATE_TEST_CASE("a NaN gradient poisons exactly its own parameter in every optimizer update",
                   "[kernels][elementwise][nan]", float, double)
{
    using T = TestType;
    const T nan = std::numeric_limits<T>::quiet_NaN();
    auto g = ballast::test::rng(206);
    const std::size_t n = 2 * ballast::simd::lanes<T> + 3;
    for (const std::size_t pos : { std::size_t{ 0 }, std::size_t{ 5 }, n - 1 })
    {
        CAPTURE(pos);
        buf<T> grad(g, n, -1, 1, 1);
        grad.p()[pos] = nan;
        const auto only_pos_nan = [&](const T* p)
        {
            for (std::size_t i = 0; i < n; ++i)
            {
                if (std::isnan(p[i]) != (i == pos))
                {
                    return false;
                }
            }
            return true;
        };
        buf<T> th(g, n, -1, 1, 1), m(g, n, 0, 0, 1), v(g, n, 0, 0, 1);
        bk::adamw_update(th.p(), m.p(), v.p(), grad.p(), bk::adamw_hparams{}.with_step(1), n);
        CHECK(only_pos_nan(th.p()));
        CHECK(only_pos_nan(m.p()));
        CHECK(only_pos_nan(v.p()));
        buf<T> th2(g, n, -1, 1, 1), b(g, n, 0, 0, 1);
        bk::sgd_momentum_update(th2.p(), b.p(), grad.p(), bk::sgd_hparams{}, n);
        CHECK(only_pos_nan(th2.p()));
        buf<T> th3(g, n, -1, 1, 1), m3(g, n, 0, 0, 1);
        bk::lion_update(th3.p(), m3.p(), grad.p(), bk::lion_hparams{}, n);
        CHECK(only_pos_nan(th3.p()));
        CHECK(only_pos_nan(m3.p()));
    }
}

TEST_CASE("adamw rejects step 0 and unset bias corrections", "[kernels][elementwise][adamw]")
{
    bk::adamw_hparams h;
    CHECK_THROWS_AS(h.with_step(0), ballast::error);
    h.bias_correction1 = 0;
    float x = 0, m = 0, v = 0, gr = 1;
    CHECK_THROWS_AS(bk::adamw_update(&x, &m, &v, &gr, h, 1), ballast::error);
}

TEMPLATE_TEST_CASE("threaded elementwise kernels are bit-identical for 1 and 2 threads",
                   "[kernels][elementwise][threads]", float, double)
{
    using T = TestType;
    const std::size_t n = 3 * bk::elementwise_grain + 7; // 4 chunks, the last one with a tail
    auto g = ballast::test::rng(207);
    const buf<T> th0(g, n, -1, 1, 1), m0(g, n, -1, 1, 1), v0(g, n, 0, 1, 1), grad(g, n, -1, 1, 1);
    const auto run = [&](int threads)
    {
        ballast::thread_scope scope(threads);
        buf<T> th = th0, m = m0, v = v0, th2 = th0, b = m0, th3 = th0, m3 = m0, y = th0;
        const T* gp = grad.v.data() + 1;
        bk::adamw_update<weight_decay::coupled>(th.p(), m.p(), v.p(), gp, bk::adamw_hparams{}.with_step(7),
                                                n);
        bk::sgd_momentum_update<weight_decay::independent>(th2.p(), b.p(), gp, bk::sgd_hparams{}, n);
        bk::lion_update(th3.p(), m3.p(), gp, bk::lion_hparams{}, n);
        bk::axpy(y.p(), gp, T(0.3), n);
        std::vector<T> all;
        for (buf<T>* p : { &th, &m, &v, &th2, &b, &th3, &m3, &y })
        {
            all.insert(all.end(), p->p(), p->p() + n);
        }
        return all;
    };
    const auto one = run(1);
    const auto two = run(2);
    REQUIRE(one.size() == two.size());
    CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(T)) == 0);
}
