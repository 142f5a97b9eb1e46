// microbatch_sum (train/microbatch_sum.hpp): the step's gradient is ((g_0 + g_1) + … + g_{M−1}) / M per
// element, left to right in T, and the loss the same in double; over K ranks of a local_world (threads)
// every rank gets exactly the one-process bits, for every K dividing M and sizes not divisible by K.
#include <cstddef>
#include <cstring>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/core/comm.hpp>
#include <ballast/train/microbatch_sum.hpp>

namespace
{
    /// Gradient element i of microbatch m: values of several magnitudes, so the order of the sum matters.
    float grad(std::size_t m, std::size_t i)
    {
        return static_cast<float>((m + 1) * 1e-3 + static_cast<double>(i % 7) * 1.37 + (m % 2 ? 1e4 : 0));
    }

    ballast::loss_parts loss(std::size_t m)
    {
        return { 1.0 + 0.1 * static_cast<double>(m), 0.9 + 0.1 * static_cast<double>(m),
                 0.01 * static_cast<double>(m) };
    }
} // namespace

TEST_CASE("one process: the closed form, in order, and M = 1 is inactive by default",
          "[train][microbatch_sum]")
{
    CHECK_FALSE(ballast::microbatch_sum<float>().active());
    const std::size_t n = 13, mb = 3;
    ballast::microbatch_sum<float> sum(nullptr, mb, n);
    REQUIRE(sum.active());
    CHECK(sum.local() == mb);
    CHECK(sum.first() == 0);
    for (std::size_t j = 0; j < mb; ++j)
    {
        std::vector<float> g(n);
        for (std::size_t i = 0; i < n; ++i)
        {
            g[i] = grad(j, i);
        }
        sum.add(j, g, loss(j));
    }
    const auto l = sum.finish();
    CHECK(l.loss == (loss(0).loss + loss(1).loss + loss(2).loss) / 3.0);
    CHECK(l.aux == (loss(0).aux + loss(1).aux + loss(2).aux) / 3.0);
    for (std::size_t i = 0; i < n; ++i)
    {
        float acc = grad(0, i);
        acc += grad(1, i);
        acc += grad(2, i);
        acc /= 3.0f;
        CHECK(sum.gradient()[i] == acc);
    }
    CHECK_THROWS_WITH(ballast::microbatch_sum<float>(nullptr, 0, n), Catch::Contains("do not divide"));
}

TEST_CASE("K ranks give every rank the one-process bits", "[train][microbatch_sum][threads]")
{
    const std::size_t n = 23, mb = 4; // 23 elements: chunks of unequal size on 2 and 4 ranks
    std::vector<float> want(n);
    ballast::loss_parts want_loss;
    {
        ballast::microbatch_sum<float> one(nullptr, mb, n);
        for (std::size_t j = 0; j < mb; ++j)
        {
            std::vector<float> g(n);
            for (std::size_t i = 0; i < n; ++i)
            {
                g[i] = grad(j, i);
            }
            one.add(j, g, loss(j));
        }
        want_loss = one.finish();
        std::memcpy(want.data(), one.gradient().data(), n * sizeof(float));
    }
    for (const int k : { 2, 4 })
    {
        CAPTURE(k);
        ballast::local_world world(k);
        std::vector<std::vector<float>> got(static_cast<std::size_t>(k), std::vector<float>(n));
        std::vector<ballast::loss_parts> got_loss(static_cast<std::size_t>(k));
        std::vector<std::thread> ranks;
        for (int r = 0; r < k; ++r)
        {
            ranks.emplace_back(
              [&, r]
              {
                  ballast::microbatch_sum<float> sum(&world.at(r), mb, n);
                  for (std::size_t j = 0; j < sum.local(); ++j)
                  {
                      std::vector<float> g(n);
                      for (std::size_t i = 0; i < n; ++i)
                      {
                          g[i] = grad(sum.first() + j, i);
                      }
                      sum.add(j, g, loss(sum.first() + j));
                  }
                  got_loss[static_cast<std::size_t>(r)] = sum.finish();
                  std::memcpy(got[static_cast<std::size_t>(r)].data(), sum.gradient().data(),
                              n * sizeof(float));
              });
        }
        for (auto& t : ranks)
        {
            t.join();
        }
        for (int r = 0; r < k; ++r)
        {
            CHECK(std::memcmp(got[static_cast<std::size_t>(r)].data(), want.data(), n * sizeof(float)) == 0);
            CHECK(got_loss[static_cast<std::size_t>(r)].loss == want_loss.loss);
            CHECK(got_loss[static_cast<std::size_t>(r)].ce == want_loss.ce);
        }
    }
}
