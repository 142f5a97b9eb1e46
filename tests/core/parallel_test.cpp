#include <atomic>
#include <stdexcept>
#include <thread>
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

TEST_CASE("parallel_chunks runs every chunk once, with worker indices below the thread count", "[core][parallel]")
{
    const int threads = GENERATE(1, 2, 3, 4);
    ballast::thread_scope scope(threads);
    for (int round = 0; round < 200; ++round)
    {
        const std::size_t chunks = static_cast<std::size_t>(round % 17);
        std::vector<std::atomic<int>> hits(chunks);
        std::atomic<bool> bad_worker{ false };
        ballast::parallel_chunks(chunks,
                                 [&](std::size_t c, std::size_t w)
                                 {
                                     if (w >= static_cast<std::size_t>(threads))
                                     {
                                         bad_worker = true;
                                     }
                                     ++hits[c];
                                 });
        CHECK_FALSE(bad_worker);
        for (std::size_t c = 0; c < chunks; ++c)
        {
            REQUIRE(hits[c] == 1);
        }
    }
}

TEST_CASE("parallel_chunks: two chunks running at once never share a worker index", "[core][parallel]")
{
    ballast::thread_scope scope(3);
    std::vector<std::atomic<int>> busy(3);
    std::atomic<bool> shared{ false };
    for (int round = 0; round < 50; ++round)
    {
        ballast::parallel_chunks(64,
                                 [&](std::size_t, std::size_t w)
                                 {
                                     if (busy[w].fetch_add(1) != 0)
                                     {
                                         shared = true;
                                     }
                                     volatile double x = 0;
                                     for (int i = 0; i < 2000; ++i)
                                     {
                                         x = x + 1.0;
                                     }
                                     busy[w].fetch_sub(1);
                                 });
    }
    CHECK_FALSE(shared);
}

TEST_CASE("parallel_chunks rethrows a chunk's exception after all claimed chunks finished", "[core][parallel]")
{
    ballast::thread_scope scope(2);
    std::atomic<int> ran{ 0 };
    CHECK_THROWS_WITH(ballast::parallel_chunks(32,
                                               [&](std::size_t c, std::size_t)
                                               {
                                                   ++ran;
                                                   if (c == 5)
                                                   {
                                                       throw std::runtime_error("chunk 5 failed");
                                                   }
                                               }),
                      "chunk 5 failed");
    CHECK(ran == 32); // the other chunks still ran: the job is never left half-claimed
    // The team is usable afterwards.
    std::atomic<int> after{ 0 };
    ballast::parallel_chunks(8, [&](std::size_t, std::size_t) { ++after; });
    CHECK(after == 8);
}

TEST_CASE("parallel loops nested inside a chunk run serially on that thread", "[core][parallel]")
{
    ballast::thread_scope scope(2);
    std::atomic<bool> nested_parallel{ false };
    ballast::parallel_chunks(4,
                             [&](std::size_t, std::size_t)
                             {
                                 if (!ballast::in_parallel())
                                 {
                                     nested_parallel = true;
                                 }
                                 const auto me = std::this_thread::get_id();
                                 ballast::parallel_for(100, 1,
                                                       [&](std::size_t, std::size_t)
                                                       {
                                                           if (std::this_thread::get_id() != me)
                                                           {
                                                               nested_parallel = true;
                                                           }
                                                       });
                             });
    CHECK_FALSE(nested_parallel);
    CHECK_FALSE(ballast::in_parallel());
}

TEST_CASE("thread counts are per calling thread", "[core][parallel]")
{
    ballast::thread_scope scope(2);
    int other = 0;
    std::thread t(
      [&]
      {
          ballast::thread_scope inner(1);
          other = ballast::num_threads();
      });
    t.join();
    CHECK(other == 1);
    CHECK(ballast::num_threads() == 2);
}

TEST_CASE("a worker that never gets a chunk is never waited for", "[core][parallel]")
{
    // Busy processes take every core but one while a 2-thread team runs short jobs: whatever the
    // scheduler does, every job completes and every chunk runs once.
    ballast::thread_scope scope(2);
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
    std::size_t total = 0;
    for (int round = 0; round < 2000; ++round)
    {
        std::atomic<std::size_t> sum{ 0 };
        ballast::parallel_chunks(8, [&](std::size_t c, std::size_t) { sum += c; });
        total += sum;
    }
    stop = true;
    for (auto& h : hogs)
    {
        h.join();
    }
    CHECK(total == 2000u * 28u);
}
