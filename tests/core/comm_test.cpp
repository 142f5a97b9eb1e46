// The in-process communicator: per (sender, tag) order, source/tag matching, barrier, bad ranks.
#include <atomic>
#include <cstddef>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/core/comm.hpp>

namespace
{
    using Catch::Matchers::Contains;
}

TEST_CASE("local_world(1) is a single-process communicator that can message itself", "[core][comm]")
{
    ballast::local_world world(1);
    auto& c = world.at(0);
    CHECK(c.rank() == 0);
    CHECK(c.size() == 1);
    c.send(0, 7, std::string_view("hello"));
    c.barrier(); // a barrier of one returns at once
    const auto m = c.recv(0, 7);
    CHECK(m.source == 0);
    CHECK(m.tag == 7);
    CHECK(m.text() == "hello");
    c.send(0, 1, std::string_view(""));
    CHECK(c.recv().bytes.empty());
}

TEST_CASE("local_world: messages from one sender with one tag keep their order; tags are matched",
          "[core][comm]")
{
    ballast::local_world world(3);
    constexpr int n = 500;
    std::vector<std::thread> senders;
    for (int r = 1; r <= 2; ++r)
    {
        senders.emplace_back(
          [&world, r]
          {
              auto& c = world.at(r);
              for (int i = 0; i < n; ++i)
              {
                  c.send(0, i % 2, std::to_string(r) + ":" + std::to_string(i));
              }
          });
    }
    auto& c0 = world.at(0);
    // Tag 1 from rank 2 only, then everything else from anyone.
    for (int i = 1; i < n; i += 2)
    {
        const auto m = c0.recv(2, 1);
        CHECK(m.text() == "2:" + std::to_string(i));
    }
    std::vector<int> next_even = { 0, 0, 0 }, next_odd = { 0, 1, 0 };
    for (int k = 0; k < n + n / 2; ++k)
    {
        const auto m = c0.recv();
        REQUIRE((m.source == 1 || m.source == 2));
        auto& want = m.tag == 0 ? next_even[m.source] : next_odd[m.source];
        CHECK(m.text() == std::to_string(m.source) + ":" + std::to_string(want));
        want += 2;
        CHECK_FALSE((m.source == 2 && m.tag == 1));
    }
    for (auto& t : senders)
    {
        t.join();
    }
    CHECK(next_even[1] == n);
    CHECK(next_odd[1] == n + 1);
    CHECK(next_even[2] == n);
}

TEST_CASE("local_world: barrier waits for every rank, round after round", "[core][comm]")
{
    constexpr int ranks = 4, rounds = 50;
    ballast::local_world world(ranks);
    std::atomic<int> arrived{ 0 };
    std::atomic<bool> early{ false };
    std::vector<std::thread> pool;
    for (int r = 0; r < ranks; ++r)
    {
        pool.emplace_back(
          [&, r]
          {
              for (int round = 1; round <= rounds; ++round)
              {
                  ++arrived;
                  world.at(r).barrier();
                  if (arrived.load() < round * ranks)
                  {
                      early = true;
                  }
                  world.at(r).barrier(); // nobody starts the next round before all have checked
              }
          });
    }
    for (auto& t : pool)
    {
        t.join();
    }
    CHECK_FALSE(early);
    CHECK(arrived == ranks * rounds);
}

TEST_CASE("local_world refuses bad ranks and tags", "[core][comm]")
{
    CHECK_THROWS_WITH(ballast::local_world(0), "ballast: local_world: size must be >= 1, got 0");
    ballast::local_world world(2);
    CHECK_THROWS_WITH(world.at(2), Contains("rank 2 is out of range for 2 ranks"));
    auto& c = world.at(0);
    CHECK_THROWS_WITH(c.send(2, 0, std::string_view("x")),
                      "ballast: local_world::send: destination rank 2 is out of range for 2 ranks");
    CHECK_THROWS_WITH(c.send(1, -3, std::string_view("x")), "ballast: local_world::send: tag -3 is negative");
    CHECK_THROWS_WITH(c.recv(5, 0), Contains("source rank 5 is out of range"));
}
