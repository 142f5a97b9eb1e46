#ifndef BALLAST_CORE_PARALLEL_HPP
#define BALLAST_CORE_PARALLEL_HPP

/// @file
/// Threading: one OpenMP team does all the work of a step. Every parallel loop in ballast partitions
/// work so that each output element is computed by exactly one thread with an order of operations
/// that does not depend on the thread count; results are therefore bit-identical for any number of
/// threads. Reductions are done over fixed-size blocks whose partial sums are combined in block order.

#include <algorithm>
#include <cstddef>

#include <omp.h>

#include <ballast/core/config.hpp>

namespace ballast
{
    /// Number of threads parallel regions will use.
    inline int num_threads() noexcept
    {
        return omp_get_max_threads();
    }

    /// Set the number of threads for subsequent parallel regions (>= 1).
    inline void set_num_threads(int n)
    {
        BALLAST_CHECK(n >= 1, "set_num_threads", "thread count must be >= 1, got ", n);
        omp_set_num_threads(n);
    }

    /// RAII: use `n` threads inside a scope, restore the previous count after it.
    class thread_scope
    {
    public:
        explicit thread_scope(int n)
          : m_previous(num_threads())
        {
            set_num_threads(n);
        }
        ~thread_scope() { omp_set_num_threads(m_previous); }
        thread_scope(const thread_scope&) = delete;
        thread_scope& operator=(const thread_scope&) = delete;

    private:
        int m_previous;
    };

    /// Run `f(begin, end)` over `[0, n)` split into chunks of `grain` items, statically
    /// scheduled across the team. Chunk boundaries depend only on `n` and `grain`, never on the
    /// thread count, so per-chunk results are deterministic. Runs serially when there is only one
    /// chunk or when already inside a parallel region.
    template <class F>
    inline void parallel_for(std::size_t n, std::size_t grain, F&& f)
    {
        grain = std::max<std::size_t>(grain, 1);
        const std::ptrdiff_t chunks = static_cast<std::ptrdiff_t>((n + grain - 1) / grain);
        if (chunks <= 1 || omp_in_parallel() || num_threads() == 1)
        {
            for (std::ptrdiff_t c = 0; c < chunks; ++c)
            {
                const std::size_t b = static_cast<std::size_t>(c) * grain;
                f(b, std::min(n, b + grain));
            }
            return;
        }
#pragma omp parallel for schedule(static)
        for (std::ptrdiff_t c = 0; c < chunks; ++c)
        {
            const std::size_t b = static_cast<std::size_t>(c) * grain;
            f(b, std::min(n, b + grain));
        }
    }
} // namespace ballast

#endif
