#ifndef BALLAST_STUDY_WORK_QUEUE_HPP
#define BALLAST_STUDY_WORK_QUEUE_HPP

/// @file
/// Dynamic scheduling of a study's runs over a `communicator` (MPI ranks, or threads in tests).
///
/// Rank 0 is the dispatcher and the only writer: it hands out run indices in the order it is given
/// (longest first, `longest_first` in study/shard.hpp) to whichever worker is free, and receives each
/// finished run back as bytes (its result line), which it passes to `on_result` — the one place that
/// appends to the results file. Ranks 1 … K−1 train. With one rank, that rank runs everything itself.
///
/// The protocol, every message to or from rank 0:
///
/// | tag | from → to | payload |
/// |---|---|---|
/// | `ready` | worker → 0 | the worker's fingerprint (build and study identity); sent once, first |
/// | `assign` | 0 → worker | the run index (8 bytes, little-endian) |
/// | `result` | worker → 0 | the run index, then the result bytes |
/// | `failed` | worker → 0 | the run index, then the error message; the worker then stops |
/// | `stop` | 0 → worker | the reason (empty: no work left); the worker returns |
///
/// A worker whose fingerprint differs from rank 0's is stopped and the study fails, so ranks built for
/// different instruction sets (different bits) or configured differently never mix. After a failure rank
/// 0 hands out nothing more, still records the runs in flight as they finish, then throws. Results arrive
/// in completion order; the merge step (study/merge.hpp) puts them in grid order.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <ballast/core/comm.hpp>
#include <ballast/core/config.hpp>

namespace ballast::study
{
    /// The work queue's message tags.
    enum class work_tag : int
    {
        ready = 1,
        assign = 2,
        result = 3,
        failed = 4,
        stop = 5
    };

    /// What a work queue did: runs per rank (rank 0's count is non-zero only when it was alone).
    struct work_queue_report
    {
        std::vector<std::size_t> runs_per_rank;
        std::size_t total() const
        {
            std::size_t n = 0;
            for (const auto r : runs_per_rank)
            {
                n += r;
            }
            return n;
        }
    };

    /// Trains run `index` and returns its result line.
    using run_function = std::function<std::string(std::size_t index)>;
    /// Called on rank 0, one call at a time, for every finished run.
    using result_function = std::function<void(std::size_t index, int rank, std::string_view result)>;

    namespace detail
    {
        inline std::vector<std::byte> index_message(std::size_t index, std::string_view tail = {})
        {
            std::vector<std::byte> out(8 + tail.size());
            const auto v = static_cast<std::uint64_t>(index);
            for (int b = 0; b < 8; ++b)
            {
                out[static_cast<std::size_t>(b)] = static_cast<std::byte>((v >> (8 * b)) & 0xff);
            }
            for (std::size_t i = 0; i < tail.size(); ++i)
            {
                out[8 + i] = static_cast<std::byte>(tail[i]);
            }
            return out;
        }

        inline std::size_t message_index(const comm_message& m)
        {
            BALLAST_CHECK(m.bytes.size() >= 8, "work_queue", "a message from rank ", m.source, " with tag ",
                          m.tag, " has ", m.bytes.size(), " bytes; a run index needs 8");
            std::uint64_t v = 0;
            for (int b = 7; b >= 0; --b)
            {
                v = (v << 8) | std::to_integer<std::uint64_t>(m.bytes[static_cast<std::size_t>(b)]);
            }
            return static_cast<std::size_t>(v);
        }

        inline void send_tag(communicator& c, int dest, work_tag tag, std::span<const std::byte> bytes)
        {
            c.send(dest, static_cast<int>(tag), bytes);
        }
    } // namespace detail

    /// Rank 0's side: hand out `order` to the workers 1 … size−1, pass every result to `on_result`, return
    /// when every worker has stopped. Throws ballast::error after the workers have stopped if a worker
    /// failed, sent a different fingerprint, or `on_result` threw.
    inline work_queue_report serve_work(communicator& c, std::span<const std::size_t> order,
                                        const result_function& on_result, std::string_view fingerprint = {})
    {
        BALLAST_CHECK(c.rank() == 0 && c.size() >= 2, "work_queue",
                      "serve_work runs on rank 0 of at least 2 ranks (rank ", c.rank(), " of ", c.size(),
                      ")");
        const int workers = c.size() - 1;
        work_queue_report report;
        report.runs_per_rank.assign(static_cast<std::size_t>(c.size()), 0);
        constexpr std::size_t idle = static_cast<std::size_t>(-1);
        std::vector<std::size_t> running(static_cast<std::size_t>(c.size()), idle);
        std::vector<bool> greeted(static_cast<std::size_t>(c.size()), false);
        std::size_t next = 0;
        int active = workers;
        std::string failure;
        const auto fail = [&](std::string why)
        {
            if (failure.empty())
            {
                failure = std::move(why);
            }
        };
        const auto stop = [&](int w, std::string_view why)
        {
            detail::send_tag(c, w, work_tag::stop,
                             std::as_bytes(std::span<const char>(why.data(), why.size())));
            running[static_cast<std::size_t>(w)] = idle;
            --active;
        };
        const auto dispatch = [&](int w)
        {
            if (!failure.empty())
            {
                stop(w, "the study failed: " + failure);
            }
            else if (next < order.size())
            {
                running[static_cast<std::size_t>(w)] = order[next];
                const auto msg = detail::index_message(order[next++]);
                detail::send_tag(c, w, work_tag::assign, msg);
            }
            else
            {
                stop(w, "");
            }
        };
        while (active > 0)
        {
            const auto m = c.recv(communicator::any_source, communicator::any_tag);
            const auto w = static_cast<std::size_t>(m.source);
            const auto tag = static_cast<work_tag>(m.tag);
            if (tag == work_tag::ready)
            {
                greeted[w] = true;
                if (m.text() != fingerprint)
                {
                    fail("rank " + std::to_string(m.source) + " has another fingerprint ('" +
                         std::string(m.text()) + "', rank 0 has '" + std::string(fingerprint) +
                         "'): ranks must run one build and one study");
                    stop(m.source, failure);
                    continue;
                }
                dispatch(m.source);
                continue;
            }
            const auto index = detail::message_index(m);
            const bool expected = greeted[w] && running[w] == index;
            const std::string_view tail = m.text().substr(8);
            if (!expected)
            {
                fail("rank " + std::to_string(m.source) + " sent tag " + std::to_string(m.tag) + " for run " +
                     std::to_string(index) + ", which it was not assigned");
                stop(m.source, failure);
            }
            else if (tag == work_tag::result)
            {
                ++report.runs_per_rank[w];
                try
                {
                    on_result(index, m.source, tail);
                }
                catch (const std::exception& e)
                {
                    fail(std::string("recording run ") + std::to_string(index) + ": " + e.what());
                }
                dispatch(m.source);
            }
            else if (tag == work_tag::failed)
            {
                fail("rank " + std::to_string(m.source) + " failed on run " + std::to_string(index) + ": " +
                     std::string(tail));
                running[w] = idle;
                --active; // a failed worker stops by itself
            }
            else
            {
                fail("rank " + std::to_string(m.source) + " sent an unknown tag " + std::to_string(m.tag));
                stop(m.source, failure);
            }
        }
        BALLAST_CHECK(failure.empty(), "work_queue", failure);
        return report;
    }

    /// A worker's side (rank >= 1): announce `fingerprint`, then run what rank 0 assigns until told to stop.
    /// Returns the number of runs done. If `run` throws, rank 0 is told and the exception is rethrown.
    /// Throws ballast::error if rank 0 stops it with a reason (a failure elsewhere).
    inline std::size_t do_work(communicator& c, const run_function& run, std::string_view fingerprint = {})
    {
        BALLAST_CHECK(c.rank() >= 1, "work_queue", "do_work runs on ranks >= 1 (rank 0 serves the queue)");
        c.send(0, static_cast<int>(work_tag::ready), fingerprint);
        std::size_t done = 0;
        for (;;)
        {
            const auto m = c.recv(0, communicator::any_tag);
            if (static_cast<work_tag>(m.tag) == work_tag::stop)
            {
                BALLAST_CHECK(m.bytes.empty(), "work_queue", "rank ", c.rank(),
                              " stopped by rank 0: ", m.text());
                return done;
            }
            BALLAST_CHECK(static_cast<work_tag>(m.tag) == work_tag::assign, "work_queue", "rank ", c.rank(),
                          " got an unknown tag ", m.tag, " from rank 0");
            const auto index = detail::message_index(m);
            std::string result;
            try
            {
                result = run(index);
            }
            catch (const std::exception& e)
            {
                const auto msg = detail::index_message(index, e.what());
                detail::send_tag(c, 0, work_tag::failed, msg);
                throw;
            }
            const auto msg = detail::index_message(index, result);
            detail::send_tag(c, 0, work_tag::result, msg);
            ++done;
        }
    }

    /// Every rank calls this: one rank runs `order` itself; with more, rank 0 serves and the others work.
    /// On rank 0 the report counts every rank's runs; on a worker only its own.
    inline work_queue_report run_work_queue(communicator& c, std::span<const std::size_t> order,
                                            const run_function& run, const result_function& on_result,
                                            std::string_view fingerprint = {})
    {
        if (c.size() == 1)
        {
            work_queue_report report{ { 0 } };
            for (const auto i : order)
            {
                const auto r = run(i);
                on_result(i, 0, r);
                ++report.runs_per_rank[0];
            }
            return report;
        }
        if (c.rank() == 0)
        {
            return serve_work(c, order, on_result, fingerprint);
        }
        work_queue_report report;
        report.runs_per_rank.assign(static_cast<std::size_t>(c.size()), 0);
        report.runs_per_rank[static_cast<std::size_t>(c.rank())] = do_work(c, run, fingerprint);
        return report;
    }
} // namespace ballast::study

#endif
