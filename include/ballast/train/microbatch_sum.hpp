#ifndef BALLAST_TRAIN_MICROBATCH_SUM_HPP
#define BALLAST_TRAIN_MICROBATCH_SUM_HPP

/// @file
/// `microbatch_sum<T>`: the gradient and loss of one step computed as M microbatches, on one process or
/// on K data-parallel ranks, with the same bits either way (train/trainer.hpp states the contract).
///
/// Per element the step's gradient is ((g_0 + g_1) + … + g_{M−1}) / M, summed in m order whatever K is,
/// and the loss is (((l_0 + l_1) + …) + l_{M−1}) / M per part:
/// - one process (K = 1): acc = g_0, acc += g_j for j = 1 … M−1, acc /= M;
/// - K ranks, rank r computing microbatches r·M/K … (r+1)·M/K − 1: rank c owns chunk c of the parameters,
///   [c·n/K, (c+1)·n/K). Each rank sends chunk c of each of its microbatch gradients to rank c (alltoallv
///   of bytes), the owner sums its chunk over m = 0 … M−1 in m order and divides by M, and an allgather
///   of bytes gives every rank the whole gradient. The losses are allgathered and summed in m order.
/// The communicator only moves bytes, so nothing depends on it or on K.
///
///   microbatch_sum<float> sum(comm, M, n);            // comm may be nullptr (one process)
///   for (j = 0; j < sum.local(); ++j)                  // this rank's microbatches first() + j
///       sum.add(j, model.gradients(), model.forward_backward(...));
///   const loss_parts loss = sum.finish();              // collective with K > 1
///   use(sum.gradient());

#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

#include <ballast/core/aligned.hpp>
#include <ballast/core/comm.hpp>
#include <ballast/core/config.hpp>
#include <ballast/policies/output.hpp>

namespace ballast
{
    template <class T>
    class microbatch_sum
    {
    public:
        /// Message tags of the two collectives of `finish` (distinct from the trainer's own).
        static constexpr int tag_losses = 1702, tag_chunks = 1703, tag_gather = 1704;

        /// Inactive: M = 1 on one process (the plain step needs no accumulation).
        microbatch_sum() = default;

        /// M = `microbatches` microbatches of an `n`-element gradient over `comm`'s ranks (nullptr: one
        /// process). K must divide M (the trainer checks it on every rank first).
        microbatch_sum(communicator* comm, std::size_t microbatches, std::size_t n)
          : m_comm(comm != nullptr && comm->size() > 1 ? comm : nullptr)
          , m_mb(microbatches)
          , m_n(n)
        {
            BALLAST_CHECK(m_mb >= 1 && m_mb % ranks() == 0, "microbatch_sum", ranks(),
                          " ranks do not divide ", m_mb, " microbatches");
            m_local = m_mb / ranks();
            m_accum.resize(n);
            m_local_losses.resize(m_local);
            if (ranks() > 1)
            {
                m_local_grads.resize(m_local * n);
            }
        }

        /// Whether the step goes through this sum (M > 1, or several ranks).
        bool active() const noexcept { return !m_accum.empty(); }
        /// This rank's number of microbatches, and the index of its first one.
        std::size_t local() const noexcept { return m_local; }
        std::size_t first() const noexcept { return rank() * m_local; }

        /// Record this rank's microbatch `j` (0 … local() − 1, in order): its gradient and loss.
        void add(std::size_t j, std::span<const T> g, const loss_parts& loss)
        {
            m_local_losses[j] = loss;
            if (ranks() == 1)
            {
                if (j == 0)
                {
                    std::ranges::copy(g, m_accum.begin());
                }
                else
                {
                    add_into(m_accum.data(), g.data(), m_n);
                }
            }
            else
            {
                std::ranges::copy(g, m_local_grads.begin() + static_cast<std::ptrdiff_t>(j * m_n));
            }
        }

        /// Combine every microbatch (collective with several ranks: every rank calls it after adding all of
        /// its microbatches). Returns the step's loss; `gradient()` then holds the step's gradient.
        loss_parts finish()
        {
            std::vector<loss_parts> losses = m_local_losses;
            if (ranks() > 1)
            {
                losses.assign(m_mb, loss_parts{});
                std::vector<std::span<std::byte>> blocks;
                for (std::size_t r = 0; r < ranks(); ++r)
                {
                    blocks.push_back(
                      std::as_writable_bytes(std::span<loss_parts>(losses.data() + r * m_local, m_local)));
                }
                allgatherv_bytes(*m_comm, tag_losses,
                                 std::as_bytes(std::span<const loss_parts>(m_local_losses)), blocks);
                combine_gradients();
            }
            else
            {
                divide(m_accum.data(), m_n, m_mb);
            }
            loss_parts sum = losses[0];
            for (std::size_t m = 1; m < m_mb; ++m)
            {
                sum.loss += losses[m].loss;
                sum.ce += losses[m].ce;
                sum.aux += losses[m].aux;
            }
            const double d = static_cast<double>(m_mb);
            return { sum.loss / d, sum.ce / d, sum.aux / d };
        }

        /// The step's gradient (after `finish`).
        std::span<T> gradient() noexcept { return m_accum; }

    private:
        std::size_t ranks() const noexcept { return m_comm ? static_cast<std::size_t>(m_comm->size()) : 1; }
        std::size_t rank() const noexcept { return m_comm ? static_cast<std::size_t>(m_comm->rank()) : 0; }

        /// acc[i] += g[i] (the one addition of the accumulation; the same loop on every path).
        static void add_into(T* acc, const T* g, std::size_t n) noexcept
        {
            for (std::size_t i = 0; i < n; ++i)
            {
                acc[i] += g[i];
            }
        }
        /// acc[i] /= M.
        static void divide(T* acc, std::size_t n, std::size_t m) noexcept
        {
            const T d = static_cast<T>(m);
            for (std::size_t i = 0; i < n; ++i)
            {
                acc[i] /= d;
            }
        }

        /// Chunk c of the parameters: [c·n/K, (c+1)·n/K).
        std::size_t chunk_begin(std::size_t c) const noexcept { return c * m_n / ranks(); }

        /// Rank c owns chunk c: alltoallv of the chunks, the owner's sum in m order and division by M, then an
        /// allgather of the chunks (see the file comment).
        void combine_gradients()
        {
            const std::size_t k = ranks(), me = rank(), n = m_n;
            const std::size_t my0 = chunk_begin(me), my_len = chunk_begin(me + 1) - my0;
            m_send.resize(m_local * n);
            std::vector<std::span<const std::byte>> out;
            std::size_t pos = 0;
            for (std::size_t c = 0; c < k; ++c)
            {
                const std::size_t c0 = chunk_begin(c), len = chunk_begin(c + 1) - c0;
                const std::size_t start = pos;
                for (std::size_t j = 0; j < m_local; ++j)
                {
                    std::copy_n(m_local_grads.begin() + static_cast<std::ptrdiff_t>(j * n + c0), len,
                                m_send.begin() + static_cast<std::ptrdiff_t>(pos));
                    pos += len;
                }
                out.push_back(std::as_bytes(std::span<const T>(m_send.data() + start, pos - start)));
            }
            // From rank s: its microbatches s·local … (s+1)·local − 1, chunk `me` of each, in m order.
            m_recv.resize(m_mb * my_len);
            std::vector<std::span<std::byte>> in;
            for (std::size_t s = 0; s < k; ++s)
            {
                in.push_back(std::as_writable_bytes(
                  std::span<T>(m_recv.data() + s * m_local * my_len, m_local * my_len)));
            }
            alltoallv_bytes(*m_comm, tag_chunks, out, in);
            T* acc = m_accum.data() + my0;
            std::copy_n(m_recv.begin(), my_len, acc);
            for (std::size_t m = 1; m < m_mb; ++m)
            {
                add_into(acc, m_recv.data() + m * my_len, my_len);
            }
            divide(acc, my_len, m_mb);
            std::vector<std::span<std::byte>> all;
            for (std::size_t c = 0; c < k; ++c)
            {
                const std::size_t c0 = chunk_begin(c);
                all.push_back(
                  std::as_writable_bytes(std::span<T>(m_accum.data() + c0, chunk_begin(c + 1) - c0)));
            }
            // The own block is copied onto itself: allgatherv_bytes copies `mine` into all[me], same memory.
            std::vector<T> mine(acc, acc + my_len);
            allgatherv_bytes(*m_comm, tag_gather, std::as_bytes(std::span<const T>(mine)), all);
        }

        communicator* m_comm = nullptr;
        std::size_t m_mb = 1, m_n = 0, m_local = 1;
        aligned_vector<T> m_accum, m_local_grads, m_send, m_recv;
        std::vector<loss_parts> m_local_losses;
    };
} // namespace ballast

#endif
