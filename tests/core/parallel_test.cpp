#include <atomic>
#include <cstddef>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/core/parallel.hpp>

TEST_CASE("parallel_for visits every index exactly once in fixed chunks", "[core][parallel]")
{
    const std::size_t n = GENERATE(0u, 1u, 7u, 64u, 1000u, 1001u);
    const std::size_t grain = GENERATE(1u, 3u, 64u, 5000u);
    CAPTURE(n, grain);
    // Catch2 assertions are not thread-safe: record inside the loop, check afterwards.
    std::vector<int> hits(n, 0);
    std::atomic<std::size_t> chunks{ 0 };
    std::atomic<bool> bad_chunk{ false };
    ballast::parallel_for(n, grain,
                          [&](std::size_t b, std::size_t e)
                          {
                              if (e <= b || b % grain != 0 || e - b > grain)
                              {
                                  bad_chunk = true;
                              }
                              for (std::size_t i = b; i < e; ++i)
                              {
                                  ++hits[i];
                              }
                              ++chunks;
                          });
    CHECK_FALSE(bad_chunk);
    for (std::size_t i = 0; i < n; ++i)
    {
        REQUIRE(hits[i] == 1);
    }
    CHECK(chunks == (n + grain - 1) / grain);
}

TEST_CASE("thread_scope sets and restores the thread count", "[core][parallel]")
{
    const int before = ballast::num_threads();
    {
        ballast::thread_scope scope(1);
        CHECK(ballast::num_threads() == 1);
        {
            ballast::thread_scope inner(2);
            CHECK(ballast::num_threads() == 2);
        }
        CHECK(ballast::num_threads() == 1);
    }
    CHECK(ballast::num_threads() == before);
}

TEST_CASE("set_num_threads rejects a count below one", "[core][parallel]")
{
    CHECK_THROWS_WITH(ballast::set_num_threads(0), Catch::Contains("thread count must be >= 1"));
}
