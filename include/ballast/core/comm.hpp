#ifndef BALLAST_CORE_COMM_HPP
#define BALLAST_CORE_COMM_HPP

/// @file
/// Moving bytes between the processes of one job, without depending on MPI.
///
/// `communicator` is the small interface ballast's distributed code is written against: rank, size, send
/// and receive of byte messages with a tag, and a barrier. Messages from one sender with one tag arrive in
/// the order they were sent (MPI's non-overtaking rule); `recv` may wait for any sender or any tag.
/// Implementations:
/// - `local_world`: K endpoints in one process (threads), for tests and for one-process runs
///   (`local_world(1)` is the single-process communicator);
/// - `ballast::mpi::mpi_comm` in `<ballast/mpi/comm.hpp>`, included only by programs built with MPI.
/// The interface is virtual: it carries whole messages between runs, never anything in a hot loop.
///
/// On top of it, byte collectives for data-parallel training (train/trainer.hpp): `sendrecv` (virtual,
/// so that MPI can pair the two halves without deadlock), and the free functions `alltoallv_bytes` and
/// `allgatherv_bytes`, built from K − 1 pairwise rounds (round r: send to rank + r, receive from rank − r).
/// They move bytes only: nothing is ever added by the communicator, so results cannot depend on it.

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <ballast/core/config.hpp>

namespace ballast
{
    /// A received message: who sent it, with which tag, and its bytes.
    struct comm_message
    {
        int source = 0;
        int tag = 0;
        std::vector<std::byte> bytes;

        std::string_view text() const noexcept
        {
            return { reinterpret_cast<const char*>(bytes.data()), bytes.size() };
        }
    };

    /// The processes of one job, addressed by rank 0 … size−1.
    class communicator
    {
    public:
        static constexpr int any_source = -1;
        static constexpr int any_tag = -1;

        virtual ~communicator() = default;
        virtual int rank() const = 0;
        virtual int size() const = 0;
        /// Send `bytes` to rank `dest` with `tag` (>= 0). May block until `dest` receives it (MPI_Send of a
        /// large message does) or return at once (local_world): never rely on either.
        virtual void send(int dest, int tag, std::span<const std::byte> bytes) = 0;
        /// Wait for the next message from `source` (or `any_source`) with `tag` (or `any_tag`).
        virtual comm_message recv(int source = any_source, int tag = any_tag) = 0;
        /// Return once every rank has called barrier.
        virtual void barrier() = 0;

        /// Send `bytes` to `dest` and receive exactly `into.size()` bytes from `source`, both with `tag`, as
        /// one operation that cannot deadlock when two ranks exchange with each other. The default (send,
        /// then receive) is right for implementations whose send never blocks (local_world); mpi_comm uses
        /// MPI_Sendrecv. Throws ballast::error when the received message has another size.
        virtual void sendrecv(int dest, std::span<const std::byte> bytes, int source,
                              std::span<std::byte> into, int tag)
        {
            send(dest, tag, bytes);
            const comm_message m = recv(source, tag);
            BALLAST_CHECK(m.bytes.size() == into.size(), "communicator::sendrecv", "expected ", into.size(),
                          " bytes from rank ", source, ", received ", m.bytes.size());
            if (!into.empty())
            {
                std::memcpy(into.data(), m.bytes.data(), into.size());
            }
        }

        void send(int dest, int tag, std::string_view text)
        {
            send(dest, tag, std::as_bytes(std::span<const char>(text.data(), text.size())));
        }

    protected:
        void check_send(const char* where, int dest, int tag) const
        {
            BALLAST_CHECK(dest >= 0 && dest < size(), where, "destination rank ", dest,
                          " is out of range for ", size(), " ranks");
            BALLAST_CHECK(tag >= 0, where, "tag ", tag, " is negative");
        }
        void check_recv(const char* where, int source, int tag) const
        {
            BALLAST_CHECK(source == any_source || (source >= 0 && source < size()), where, "source rank ",
                          source, " is out of range for ", size(), " ranks");
            BALLAST_CHECK(tag == any_tag || tag >= 0, where, "tag ", tag, " is negative");
        }
    };

    /// K communicating endpoints inside one process: endpoint r is rank r of K. Each endpoint is used by
    /// one thread at a time (as an MPI rank is one process); the world must outlive its users.
    class local_world
    {
        struct mailbox
        {
            std::mutex mu;
            std::condition_variable arrived;
            std::deque<comm_message> queue;
        };

        class endpoint final : public communicator
        {
        public:
            endpoint(local_world& w, int r)
              : m_world(&w)
              , m_rank(r)
            {
            }
            int rank() const override { return m_rank; }
            int size() const override { return static_cast<int>(m_world->m_boxes.size()); }

            void send(int dest, int tag, std::span<const std::byte> bytes) override
            {
                check_send("local_world::send", dest, tag);
                auto& box = *m_world->m_boxes[static_cast<std::size_t>(dest)];
                {
                    std::lock_guard lock(box.mu);
                    box.queue.push_back({ m_rank, tag, std::vector<std::byte>(bytes.begin(), bytes.end()) });
                }
                box.arrived.notify_all();
            }
            using communicator::send;

            comm_message recv(int source, int tag) override
            {
                check_recv("local_world::recv", source, tag);
                auto& box = *m_world->m_boxes[static_cast<std::size_t>(m_rank)];
                std::unique_lock lock(box.mu);
                for (;;)
                {
                    // The first queued match: per (sender, tag) that is the send order.
                    for (auto it = box.queue.begin(); it != box.queue.end(); ++it)
                    {
                        if ((source == any_source || it->source == source) &&
                            (tag == any_tag || it->tag == tag))
                        {
                            comm_message m = std::move(*it);
                            box.queue.erase(it);
                            return m;
                        }
                    }
                    box.arrived.wait(lock);
                }
            }

            void barrier() override
            {
                std::unique_lock lock(m_world->m_barrier_mu);
                const auto generation = m_world->m_barrier_generation;
                if (++m_world->m_barrier_count == size())
                {
                    m_world->m_barrier_count = 0;
                    ++m_world->m_barrier_generation;
                    m_world->m_barrier_cv.notify_all();
                    return;
                }
                m_world->m_barrier_cv.wait(lock, [&] { return m_world->m_barrier_generation != generation; });
            }

        private:
            local_world* m_world;
            int m_rank;
        };

    public:
        /// A world of `size` >= 1 ranks.
        explicit local_world(int size)
        {
            BALLAST_CHECK(size >= 1, "local_world", "size must be >= 1, got ", size);
            for (int r = 0; r < size; ++r)
            {
                m_boxes.push_back(std::make_unique<mailbox>());
            }
            for (int r = 0; r < size; ++r)
            {
                m_endpoints.push_back(std::make_unique<endpoint>(*this, r));
            }
        }
        local_world(const local_world&) = delete;
        local_world& operator=(const local_world&) = delete;

        int size() const noexcept { return static_cast<int>(m_endpoints.size()); }

        /// Rank `r`'s communicator.
        communicator& at(int r)
        {
            BALLAST_CHECK(r >= 0 && r < size(), "local_world", "rank ", r, " is out of range for ", size(),
                          " ranks");
            return *m_endpoints[static_cast<std::size_t>(r)];
        }

    private:
        std::vector<std::unique_ptr<mailbox>> m_boxes;
        std::vector<std::unique_ptr<endpoint>> m_endpoints;
        std::mutex m_barrier_mu;
        std::condition_variable m_barrier_cv;
        int m_barrier_count = 0;
        std::uint64_t m_barrier_generation = 0;
    };

    /// All-to-all of byte blocks: `out[d]` goes to rank d and `in[s]` receives rank s's block for this rank
    /// (sizes must agree between the sender and the receiver; `in[rank]` gets a copy of `out[rank]`). K − 1
    /// pairwise `sendrecv` rounds with `tag`; every rank must call it.
    inline void alltoallv_bytes(communicator& c, int tag, std::span<const std::span<const std::byte>> out,
                                std::span<const std::span<std::byte>> in)
    {
        const int k = c.size(), r = c.rank();
        BALLAST_CHECK(out.size() == static_cast<std::size_t>(k) && in.size() == static_cast<std::size_t>(k),
                      "alltoallv_bytes", "need one block per rank (", k, "), got ", out.size(), " and ",
                      in.size());
        const auto self = static_cast<std::size_t>(r);
        BALLAST_CHECK(out[self].size() == in[self].size(), "alltoallv_bytes", "own block sizes differ");
        if (!out[self].empty())
        {
            std::memcpy(in[self].data(), out[self].data(), out[self].size());
        }
        for (int round = 1; round < k; ++round)
        {
            const int dest = (r + round) % k, source = (r - round + k) % k;
            c.sendrecv(dest, out[static_cast<std::size_t>(dest)], source,
                       in[static_cast<std::size_t>(source)], tag);
        }
    }

    /// All-gather of byte blocks: every rank sends `mine` to every other rank; `all[s]` receives rank s's
    /// block (`all[rank]` gets a copy of `mine`). Every rank must call it.
    inline void allgatherv_bytes(communicator& c, int tag, std::span<const std::byte> mine,
                                 std::span<const std::span<std::byte>> all)
    {
        const int k = c.size();
        BALLAST_CHECK(all.size() == static_cast<std::size_t>(k), "allgatherv_bytes",
                      "need one block per rank (", k, "), got ", all.size());
        std::vector<std::span<const std::byte>> out(static_cast<std::size_t>(k), mine);
        alltoallv_bytes(c, tag, out, all);
    }

    /// All-gather of one trivially copyable value per rank, in rank order.
    template <class V>
    std::vector<V> allgather_value(communicator& c, int tag, const V& mine)
    {
        static_assert(std::is_trivially_copyable_v<V>);
        std::vector<V> all(static_cast<std::size_t>(c.size()));
        std::vector<std::span<std::byte>> blocks;
        for (auto& v : all)
        {
            blocks.push_back(std::as_writable_bytes(std::span<V>(&v, 1)));
        }
        allgatherv_bytes(c, tag, std::as_bytes(std::span<const V>(&mine, 1)), blocks);
        return all;
    }
} // namespace ballast

#endif
