#ifndef BALLAST_CORE_PARALLEL_HPP
#define BALLAST_CORE_PARALLEL_HPP

/// @file
/// Threading: a small team of worker threads per calling thread, with work handed out dynamically.
///
/// Determinism does not need a fixed thread-to-work mapping, only fixed chunk boundaries and a fixed
/// combination order. Every parallel loop in ballast therefore splits its work into chunks whose
/// boundaries depend only on the problem size; each chunk writes its own outputs with an order of
/// operations that does not depend on which thread runs it, and partial results are combined in chunk
/// order. Results are bit-identical for any thread count and any load.
///
/// How a job runs (`parallel_chunks`): the calling thread publishes the job, wakes the sleeping workers,
/// and claims chunks itself from one atomic counter, as every awake worker does. It then waits only for
/// the chunks that were *claimed* by others and are still running; a worker that was not scheduled in
/// time claims nothing and is never waited for. That is what keeps a team fast on a shared machine: with
/// OpenMP's fork/join, every region ends in a barrier that waits for all threads to arrive, so a
/// descheduled partner stalls each region for up to a scheduler time slice.
///
/// Waiting is bounded: an idle worker spins for a few microseconds (the gap between two kernels of a
/// step) and then sleeps on a futex (`std::atomic::wait`); the caller spins briefly for in-flight chunks
/// and then sleeps too. When a partner repeatedly keeps the caller waiting (it was preempted while
/// holding a chunk), the team runs the next jobs on the calling thread alone for a while (backing off
/// exponentially): on a loaded machine two threads never fall far below one.
///
/// Thread counts are per calling thread, like OpenMP's `omp_set_num_threads`: a study that runs several
/// single-threaded runs on their own threads gives each its own count. The default is `OMP_NUM_THREADS`
/// when set (the usual knob on clusters), else the hardware's concurrency.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <ballast/core/config.hpp>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace ballast
{
    namespace detail
    {
        inline void cpu_relax() noexcept
        {
#if defined(__x86_64__) || defined(__i386__)
            _mm_pause();
#endif
        }

        /// The process default: OMP_NUM_THREADS (first value of a list) when set and valid, else the
        /// hardware concurrency.
        inline int default_thread_count() noexcept
        {
            static const int n = []
            {
                if (const char* e = std::getenv("OMP_NUM_THREADS"))
                {
                    char* end = nullptr;
                    const long v = std::strtol(e, &end, 10);
                    if (end != e && v >= 1 && v <= 4096)
                    {
                        return static_cast<int>(v);
                    }
                }
                return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
            }();
            return n;
        }

        inline int& thread_count_slot() noexcept
        {
            thread_local int n = 0; // 0: the process default
            return n;
        }

        inline bool& inside_job() noexcept
        {
            thread_local bool b = false;
            return b;
        }

        /// A calling thread's team: `size() − 1` workers; the caller is worker 0.
        class team
        {
        public:
            using call_fn = void (*)(const void* ctx, std::size_t chunk, std::size_t worker);

            /// Idle workers spin this long for the next job before sleeping.
            static constexpr auto worker_spin = std::chrono::microseconds(50);
            /// The caller spins this long for chunks still running on workers before sleeping.
            static constexpr auto caller_spin = std::chrono::microseconds(20);
            /// A job whose in-flight chunks kept the caller waiting this long counts as a stall.
            static constexpr auto stall_wait = std::chrono::microseconds(200);
            /// Longest run of jobs done by the caller alone after repeated stalls.
            static constexpr std::uint32_t max_backoff = 1024;

            explicit team(int size)
            {
                m_workers.reserve(static_cast<std::size_t>(size - 1));
                for (int w = 1; w < size; ++w)
                {
                    m_workers.emplace_back([this, w] { worker_loop(static_cast<std::size_t>(w)); });
                }
            }

            ~team()
            {
                m_stop.store(true);
                m_epoch.fetch_add(1);
                m_epoch.notify_all();
                for (auto& t : m_workers)
                {
                    t.join();
                }
            }

            team(const team&) = delete;
            team& operator=(const team&) = delete;

            std::size_t size() const noexcept { return m_workers.size() + 1; }

            /// Run call(ctx, c, worker) for every chunk c in [0, chunks); returns when all have run.
            void run(std::size_t chunks, call_fn call, const void* ctx)
            {
                if (m_serial_left > 0)
                {
                    --m_serial_left;
                    run_alone(chunks, call, ctx);
                    return;
                }
                m_call.store(call);
                m_ctx.store(ctx);
                m_chunks.store(static_cast<std::uint32_t>(chunks));
                m_done.store(0);
                m_error = nullptr;
                ++m_generation;
                m_state.store(std::uint64_t(m_generation) << 32); // claims open at chunk 0
                m_epoch.fetch_add(1);
                if (m_sleepers.load() > 0)
                {
                    m_epoch.notify_all();
                }

                std::exception_ptr mine;
                const std::uint32_t by_me = claim_loop(0, &mine);

                // Wait for the chunks other workers claimed and are still running.
                const auto t0 = std::chrono::steady_clock::now();
                bool stalled = false;
                for (std::uint32_t d = m_done.load(); d + by_me < chunks; d = m_done.load())
                {
                    const auto waited = std::chrono::steady_clock::now() - t0;
                    if (waited < caller_spin)
                    {
                        cpu_relax();
                        continue;
                    }
                    m_caller_waiting.store(true);
                    d = m_done.load();
                    if (d + by_me < chunks)
                    {
                        m_done.wait(d);
                    }
                    m_caller_waiting.store(false);
                    stalled = stalled || std::chrono::steady_clock::now() - t0 >= stall_wait;
                }
                // Close the job: no late worker can claim a chunk of it any more.
                m_state.store((std::uint64_t(m_generation) << 32) | closed);
                if (stalled)
                {
                    m_backoff = std::min(max_backoff, std::max<std::uint32_t>(1, m_backoff * 2));
                    m_serial_left = m_backoff;
                }
                else
                {
                    m_backoff /= 2; // contention fades slowly: a clean job halves the next back-off
                }
                if (mine)
                {
                    std::rethrow_exception(mine);
                }
                if (m_error)
                {
                    std::rethrow_exception(m_error);
                }
            }

        private:
            static constexpr std::uint32_t closed = 0xffffffffu;

            static void run_alone(std::size_t chunks, call_fn call, const void* ctx)
            {
                for (std::size_t c = 0; c < chunks; ++c)
                {
                    call(ctx, c, 0);
                }
            }

            /// Claim and run chunks of the open job until none is left; returns how many this thread
            /// ran. A worker counts each finished chunk in m_done; the caller counts its own.
            std::uint32_t claim_loop(std::size_t worker, std::exception_ptr* error)
            {
                std::uint32_t ran = 0;
                for (;;)
                {
                    std::uint64_t s = m_state.load();
                    const auto next = static_cast<std::uint32_t>(s);
                    // Read the job before claiming: a successful claim proves the job was still open,
                    // so these reads came before the caller could replace it (all operations seq_cst).
                    const std::uint32_t chunks = m_chunks.load();
                    const call_fn call = m_call.load();
                    const void* ctx = m_ctx.load();
                    if (next == closed || next >= chunks)
                    {
                        return ran;
                    }
                    if (!m_state.compare_exchange_weak(s, s + 1))
                    {
                        continue;
                    }
                    try
                    {
                        call(ctx, next, worker);
                    }
                    catch (...)
                    {
                        // Recorded before the chunk is counted as done, so the caller sees it.
                        if (worker == 0)
                        {
                            if (!*error)
                            {
                                *error = std::current_exception();
                            }
                        }
                        else
                        {
                            std::lock_guard lock(m_error_mutex);
                            if (!m_error)
                            {
                                m_error = std::current_exception();
                            }
                        }
                    }
                    ++ran;
                    if (worker != 0)
                    {
                        m_done.fetch_add(1);
                        if (m_caller_waiting.load())
                        {
                            m_done.notify_one();
                        }
                    }
                }
            }

            void worker_loop(std::size_t worker)
            {
                inside_job() = true; // nested parallel loops inside a chunk run serially
                // A worker may start long after its team (a loaded machine): the caller never waits for
                // it, and it may even start after the team was told to stop, so m_stop is checked before
                // every sleep, not only after a wake-up.
                std::uint32_t seen = m_epoch.load();
                for (;;)
                {
                    const auto t0 = std::chrono::steady_clock::now();
                    while (m_epoch.load() == seen && !m_stop.load())
                    {
                        if (std::chrono::steady_clock::now() - t0 < worker_spin)
                        {
                            cpu_relax();
                            continue;
                        }
                        m_sleepers.fetch_add(1);
                        if (m_epoch.load() == seen && !m_stop.load())
                        {
                            m_epoch.wait(seen);
                        }
                        m_sleepers.fetch_sub(1);
                    }
                    seen = m_epoch.load();
                    if (m_stop.load())
                    {
                        return;
                    }
                    claim_loop(worker, nullptr);
                }
            }

            std::vector<std::thread> m_workers;
            std::atomic<std::uint64_t> m_state{ closed }; ///< generation << 32 | next chunk (or closed)
            std::atomic<std::uint32_t> m_chunks{ 0 };
            std::atomic<call_fn> m_call{ nullptr };
            std::atomic<const void*> m_ctx{ nullptr };
            std::atomic<std::uint32_t> m_done{ 0 };     ///< chunks finished by workers
            std::atomic<std::uint32_t> m_epoch{ 0 };    ///< bumped per job: what idle workers wait on
            std::atomic<int> m_sleepers{ 0 };           ///< workers blocked in m_epoch.wait
            std::atomic<bool> m_caller_waiting{ false };
            std::atomic<bool> m_stop{ false };
            std::mutex m_error_mutex;
            std::exception_ptr m_error;
            std::uint32_t m_generation = 0;
            std::uint32_t m_backoff = 0;
            std::uint32_t m_serial_left = 0;
        };

        /// The calling thread's team for `n` threads (rebuilt when n changes).
        inline team& team_for(int n)
        {
            thread_local std::unique_ptr<team> t;
            if (!t || static_cast<int>(t->size()) != n)
            {
                t.reset();
                t = std::make_unique<team>(n);
            }
            return *t;
        }
    } // namespace detail

    /// Number of threads the calling thread's parallel loops use.
    inline int num_threads() noexcept
    {
        const int n = detail::thread_count_slot();
        return n > 0 ? n : detail::default_thread_count();
    }

    /// Upper bound on a thread count: more threads than this is refused as a mistake.
    inline constexpr int max_threads = 1024;

    /// Set the number of threads for the calling thread's subsequent parallel loops (1 … max_threads).
    inline void set_num_threads(int n)
    {
        BALLAST_CHECK(n >= 1, "set_num_threads", "thread count must be >= 1, got ", n);
        BALLAST_CHECK(n <= max_threads, "set_num_threads", "thread count must be <= ", max_threads, ", got ",
                      n);
        detail::thread_count_slot() = n;
    }

    /// True inside a chunk of a parallel loop (where nested loops run serially).
    inline bool in_parallel() noexcept
    {
        return detail::inside_job();
    }

    /// RAII: use `n` threads inside a scope, restore the previous count after it.
    class thread_scope
    {
    public:
        explicit thread_scope(int n)
          : m_previous(detail::thread_count_slot())
        {
            set_num_threads(n);
        }
        ~thread_scope() { detail::thread_count_slot() = m_previous; }
        thread_scope(const thread_scope&) = delete;
        thread_scope& operator=(const thread_scope&) = delete;

    private:
        int m_previous;
    };

    /// Run `f(chunk, worker)` for every chunk in [0, chunks), handed out dynamically over the calling
    /// thread's team; `worker` in [0, num_threads()) names the thread (for per-thread scratch: two chunks
    /// that run at the same time never share a worker index). Serial when there is one chunk, one
    /// thread, or when called from inside a chunk. An exception thrown by a chunk is rethrown here after
    /// every claimed chunk has finished.
    template <class F>
    inline void parallel_chunks(std::size_t chunks, F&& f)
    {
        const int n = num_threads();
        if (chunks <= 1 || n == 1 || detail::inside_job() || chunks >= 0xffffffffu)
        {
            for (std::size_t c = 0; c < chunks; ++c)
            {
                f(c, std::size_t(0));
            }
            return;
        }
        using Fn = std::remove_reference_t<F>;
        const auto call = [](const void* ctx, std::size_t c, std::size_t w)
        { (*static_cast<Fn*>(const_cast<void*>(ctx)))(c, w); };
        detail::inside_job() = true;
        struct reset
        {
            ~reset() { detail::inside_job() = false; }
        } guard;
        detail::team_for(n).run(chunks, call, static_cast<const void*>(&f));
    }

    /// Run `f(begin, end)` over `[0, n)` split into chunks of `grain` items. Chunk boundaries depend only
    /// on `n` and `grain`, never on the thread count, so per-chunk results are deterministic.
    template <class F>
    inline void parallel_for(std::size_t n, std::size_t grain, F&& f)
    {
        grain = std::max<std::size_t>(grain, 1);
        const std::size_t chunks = (n + grain - 1) / grain;
        parallel_chunks(chunks,
                        [&](std::size_t c, std::size_t)
                        {
                            const std::size_t b = c * grain;
                            f(b, std::min(n, b + grain));
                        });
    }
} // namespace ballast

#endif
