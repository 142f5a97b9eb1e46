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

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
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
} // namespace ballast

#endif
