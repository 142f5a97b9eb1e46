// The dynamic work queue over in-process ranks (threads): every run once, longest first, only rank 0
// records, failures and mismatched fingerprints stop the study with a named reason.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/core/comm.hpp>
#include <ballast/study/shard.hpp>
#include <ballast/study/work_queue.hpp>

namespace
{
    namespace st = ballast::study;
    using Catch::Matchers::Contains;

    std::string line_of(std::size_t i)
    {
        return "{\"key\":\"r" + std::to_string(i) + "\",\"value\":" + std::to_string(i * i) + "}";
    }

    /// Runs `body(rank)` on one thread per rank; returns each rank's exception message ("" if none).
    std::vector<std::string> on_ranks(int ranks, const std::function<void(int)>& body)
    {
        std::vector<std::string> errors(static_cast<std::size_t>(ranks));
        std::vector<std::thread> pool;
        for (int r = 0; r < ranks; ++r)
        {
            pool.emplace_back(
              [&, r]
              {
                  try
                  {
                      body(r);
                  }
                  catch (const std::exception& e)
                  {
                      errors[static_cast<std::size_t>(r)] = e.what();
                  }
              });
        }
        for (auto& t : pool)
        {
            t.join();
        }
        return errors;
    }
} // namespace

TEST_CASE("work queue: every run exactly once with its own result, recorded on rank 0 only",
          "[study][work_queue]")
{
    const std::vector<double> costs = { 3, 9, 1, 4, 4, 7, 2, 8, 5, 6, 0.5 };
    const auto order = st::longest_first(std::span<const double>(costs));
    for (const int ranks : { 1, 2, 3, 5 })
    {
        INFO("ranks " << ranks);
        ballast::local_world world(ranks);
        std::map<std::size_t, std::string> recorded; // touched by rank 0's thread only
        std::vector<std::size_t> arrival;
        std::atomic<int> recorder_rank{ -1 };
        int bad_sender = 0, duplicates = 0;
        std::vector<st::work_queue_report> reports(static_cast<std::size_t>(ranks));
        const auto errors = on_ranks(ranks,
                                     [&](int r)
                                     {
                                         reports[static_cast<std::size_t>(r)] = st::run_work_queue(
                                           world.at(r), order, [](std::size_t i) { return line_of(i); },
                                           [&](std::size_t i, int from, std::string_view text)
                                           {
                                               // No Catch2 assertions off the main thread: note, check later.
                                               recorder_rank = r;
                                               bad_sender += (from == 0) != (ranks == 1) ? 1 : 0;
                                               duplicates +=
                                                 recorded.emplace(i, std::string(text)).second ? 0 : 1;
                                               arrival.push_back(i);
                                           },
                                           "fp");
                                     });
        CHECK(std::ranges::all_of(errors, [](const auto& e) { return e.empty(); }));
        CHECK(recorder_rank == 0);
        CHECK(bad_sender == 0);
        CHECK(duplicates == 0);
        REQUIRE(recorded.size() == costs.size());
        for (const auto& [i, text] : recorded)
        {
            CHECK(text == line_of(i));
        }
        CHECK(reports[0].total() == costs.size());
        if (ranks <= 2)
        {
            // One worker (or none): the runs happen exactly in the longest-first order.
            CHECK(arrival == order);
            CHECK(reports[0].runs_per_rank[0] == (ranks == 1 ? costs.size() : 0));
        }
        for (int r = 1; r < ranks; ++r)
        {
            // What rank 0 counted for a worker is what the worker counted itself.
            CHECK(reports[static_cast<std::size_t>(r)].runs_per_rank[static_cast<std::size_t>(r)] ==
                  reports[0].runs_per_rank[static_cast<std::size_t>(r)]);
        }
    }
}

TEST_CASE("work queue: a free worker takes the next run while another is busy", "[study][work_queue]")
{
    // The first run handed out (the longest) blocks until every other run is done: the other worker must
    // have done all of them, which only dynamic scheduling allows.
    const std::vector<double> costs = { 1, 10, 2, 3, 4, 5 };
    const auto order = st::longest_first(std::span<const double>(costs));
    ballast::local_world world(3);
    std::mutex mu;
    std::condition_variable cv;
    std::size_t others_done = 0;
    std::map<int, std::vector<std::size_t>> ran_on;
    const auto errors = on_ranks(3,
                                 [&](int r)
                                 {
                                     st::run_work_queue(
                                       world.at(r), order,
                                       [&](std::size_t i)
                                       {
                                           std::unique_lock lock(mu);
                                           ran_on[r].push_back(i);
                                           if (i == order.front())
                                           {
                                               cv.wait(lock, [&] { return others_done == costs.size() - 1; });
                                           }
                                           else
                                           {
                                               ++others_done;
                                               cv.notify_all();
                                           }
                                           return line_of(i);
                                       },
                                       [](std::size_t, int, std::string_view) {});
                                 });
    CHECK(std::ranges::all_of(errors, [](const auto& e) { return e.empty(); }));
    const int slow = ran_on[1].front() == order.front() ? 1 : 2;
    CHECK(ran_on[slow] == std::vector<std::size_t>{ order.front() });
    CHECK(ran_on[3 - slow] == std::vector<std::size_t>(order.begin() + 1, order.end()));
}

TEST_CASE("work queue: a failing run stops the study after the runs in flight are recorded",
          "[study][work_queue]")
{
    const std::vector<std::size_t> order = { 0, 1, 2, 3, 4, 5, 6, 7 };
    ballast::local_world world(3);
    std::vector<std::size_t> recorded;
    const auto errors = on_ranks(3,
                                 [&](int r)
                                 {
                                     st::run_work_queue(
                                       world.at(r), order,
                                       [](std::size_t i)
                                       {
                                           if (i == 2)
                                           {
                                               throw std::runtime_error("boom");
                                           }
                                           return line_of(i);
                                       },
                                       [&](std::size_t i, int, std::string_view) { recorded.push_back(i); });
                                 });
    CHECK_THAT(errors[0], Contains("ballast: work_queue: rank ") && Contains(" failed on run 2: boom"));
    const int failed = errors[1] == "boom" ? 1 : 2;
    CHECK(errors[static_cast<std::size_t>(failed)] == "boom");
    // The other worker was stopped with the reason, or had no work left before the failure arrived.
    const auto& other = errors[static_cast<std::size_t>(3 - failed)];
    CHECK((other.empty() || other.find("stopped by rank 0: the study failed: rank") != std::string::npos));
    CHECK(std::ranges::find(recorded, 2) == recorded.end());
    CHECK(recorded.size() < order.size());
}

TEST_CASE("work queue: a rank with another fingerprint is refused", "[study][work_queue]")
{
    const std::vector<std::size_t> order = { 0, 1, 2 };
    ballast::local_world world(3);
    const auto errors =
      on_ranks(3,
               [&](int r)
               {
                   st::run_work_queue(
                     world.at(r), order, [](std::size_t i) { return line_of(i); },
                     [](std::size_t, int, std::string_view) {}, r == 2 ? "isa=avx2" : "isa=avx512");
               });
    CHECK_THAT(errors[0], Contains("rank 2 has another fingerprint ('isa=avx2', rank 0 has 'isa=avx512')"));
    CHECK_THAT(errors[2], Contains("rank 2 stopped by rank 0: rank 2 has another fingerprint"));
}

TEST_CASE("work queue: an error while recording stops the study with the run named", "[study][work_queue]")
{
    const std::vector<std::size_t> order = { 0, 1, 2, 3 };
    ballast::local_world world(2);
    const auto errors = on_ranks(2,
                                 [&](int r)
                                 {
                                     st::run_work_queue(
                                       world.at(r), order, [](std::size_t i) { return line_of(i); },
                                       [](std::size_t i, int, std::string_view)
                                       {
                                           if (i == 1)
                                           {
                                               throw ballast::error("disk full");
                                           }
                                       });
                                 });
    CHECK(errors[0] == "ballast: work_queue: recording run 1: disk full");
    CHECK_THAT(errors[1], Contains("stopped by rank 0: the study failed: recording run 1: disk full"));
    ballast::local_world one(2);
    CHECK_THROWS_WITH(st::do_work(one.at(0), [](std::size_t) { return std::string(); }),
                      Contains("do_work runs on ranks >= 1"));
    CHECK_THROWS_WITH(st::serve_work(one.at(1), order, [](std::size_t, int, std::string_view) {}),
                      Contains("serve_work runs on rank 0 of at least 2 ranks (rank 1 of 2)"));
}
