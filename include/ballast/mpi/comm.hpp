#ifndef BALLAST_MPI_COMM_HPP
#define BALLAST_MPI_COMM_HPP

/// @file
/// The MPI implementation of `ballast::communicator` (core/comm.hpp). MPI's C API is used only to move
/// bytes (MPI_Send/MPI_Iprobe/MPI_Recv/MPI_Sendrecv of MPI_BYTE, MPI_Barrier): no reductions, so results never depend on
/// the MPI library or the number of ranks.
///
/// This header is not part of `ballast/ballast.hpp` and the library never includes it: only a program
/// that asks for MPI does, and links `MPI::MPI_CXX` (configure with -DBALLAST_WITH_MPI=ON; Debian:
/// libopenmpi-dev). Without <mpi.h> on the include path it declares `mpi_comm` and `mpi_session` as
/// stubs that fail to compile when used, with a message saying so.

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdlib>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <ballast/core/comm.hpp>
#include <ballast/core/config.hpp>

#if __has_include(<mpi.h>)
// The C API only: the deprecated C++ bindings are not needed (and warn under -Wcast-function-type).
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

namespace ballast::mpi
{
    namespace detail
    {
        inline void check(int rc, const char* what)
        {
            if (rc != MPI_SUCCESS)
            {
                char text[MPI_MAX_ERROR_STRING];
                int len = 0;
                MPI_Error_string(rc, text, &len);
                ballast::detail::throw_error("mpi", what,
                                             " failed: ", std::string(text, static_cast<std::size_t>(len)));
            }
        }
    } // namespace detail

    /// MPI_Init on construction (unless already initialised), MPI_Finalize on destruction (if it initialised).
    /// Errors are returned to ballast (MPI_ERRORS_RETURN on MPI_COMM_WORLD) and thrown as ballast::error.
    class mpi_session
    {
    public:
        mpi_session(int& argc, char**& argv)
        {
            int ready = 0;
            MPI_Initialized(&ready);
            if (!ready)
            {
                detail::check(MPI_Init(&argc, &argv), "MPI_Init");
                m_owner = true;
            }
            MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        }
        ~mpi_session()
        {
            int done = 0;
            MPI_Finalized(&done);
            if (m_owner && !done)
            {
                MPI_Finalize();
            }
        }
        mpi_session(const mpi_session&) = delete;
        mpi_session& operator=(const mpi_session&) = delete;

        /// Abort every rank of the job (e.g. after an exception on one rank, so the others do not wait).
        [[noreturn]] static void abort(int code = 1)
        {
            MPI_Abort(MPI_COMM_WORLD, code);
            std::abort();
        }

    private:
        bool m_owner = false;
    };

    /// A communicator over an MPI communicator (MPI_COMM_WORLD by default). Messages are MPI_BYTE
    /// messages of at most INT_MAX bytes.
    class mpi_comm final : public communicator
    {
    public:
        explicit mpi_comm(MPI_Comm comm = MPI_COMM_WORLD)
          : m_comm(comm)
        {
            detail::check(MPI_Comm_rank(m_comm, &m_rank), "MPI_Comm_rank");
            detail::check(MPI_Comm_size(m_comm, &m_size), "MPI_Comm_size");
            void* value = nullptr;
            int found = 0;
            MPI_Comm_get_attr(m_comm, MPI_TAG_UB, &value, &found);
            m_tag_ub =
              found && value ? *static_cast<int*>(value) : 32767; // the standard's guaranteed minimum
        }
        int rank() const override { return m_rank; }
        int size() const override { return m_size; }

        void send(int dest, int tag, std::span<const std::byte> bytes) override
        {
            check_send("mpi_comm::send", dest, tag);
            BALLAST_CHECK(bytes.size() <= static_cast<std::size_t>(INT_MAX), "mpi_comm::send",
                          "a message of ", bytes.size(), " bytes is larger than INT_MAX");
            BALLAST_CHECK(tag <= m_tag_ub, "mpi_comm::send", "tag ", tag, " exceeds MPI_TAG_UB ", m_tag_ub);
            detail::check(MPI_Send(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, dest, tag, m_comm),
                          "MPI_Send");
        }
        using communicator::send;

        comm_message recv(int source, int tag) override
        {
            check_recv("mpi_comm::recv", source, tag);
            MPI_Status status;
            // MPI_Iprobe with a growing pause (20 µs … 2 ms), not a blocking MPI_Probe: Open MPI's blocking
            // calls spin a core, so a dispatcher waiting for results would take a core from the ranks that
            // train (measured: docs/distributed.md). A study's messages are seconds apart; 2 ms is nothing.
            int flag = 0;
            std::chrono::microseconds pause{ 20 };
            for (;;)
            {
                detail::check(MPI_Iprobe(source == any_source ? MPI_ANY_SOURCE : source,
                                         tag == any_tag ? MPI_ANY_TAG : tag, m_comm, &flag, &status),
                              "MPI_Iprobe");
                if (flag)
                {
                    break;
                }
                std::this_thread::sleep_for(pause);
                pause = std::min(pause * 2, std::chrono::microseconds{ 2000 });
            }
            int count = 0;
            detail::check(MPI_Get_count(&status, MPI_BYTE, &count), "MPI_Get_count");
            comm_message m{ status.MPI_SOURCE, status.MPI_TAG,
                            std::vector<std::byte>(static_cast<std::size_t>(count)) };
            // Receive exactly the probed message: same source and tag (non-overtaking keeps it the next one).
            detail::check(
              MPI_Recv(m.bytes.data(), count, MPI_BYTE, m.source, m.tag, m_comm, MPI_STATUS_IGNORE),
              "MPI_Recv");
            return m;
        }

        void sendrecv(int dest, std::span<const std::byte> bytes, int source, std::span<std::byte> into,
                      int tag) override
        {
            check_send("mpi_comm::sendrecv", dest, tag);
            check_recv("mpi_comm::sendrecv", source, tag);
            BALLAST_CHECK(source != any_source, "mpi_comm::sendrecv", "needs a definite source rank");
            BALLAST_CHECK(bytes.size() <= static_cast<std::size_t>(INT_MAX) &&
                            into.size() <= static_cast<std::size_t>(INT_MAX),
                          "mpi_comm::sendrecv", "a message is larger than INT_MAX bytes");
            BALLAST_CHECK(tag <= m_tag_ub, "mpi_comm::sendrecv", "tag ", tag, " exceeds MPI_TAG_UB ",
                          m_tag_ub);
            MPI_Status status;
            detail::check(MPI_Sendrecv(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, dest, tag,
                                       into.data(), static_cast<int>(into.size()), MPI_BYTE, source, tag,
                                       m_comm, &status),
                          "MPI_Sendrecv");
            int count = 0;
            detail::check(MPI_Get_count(&status, MPI_BYTE, &count), "MPI_Get_count");
            BALLAST_CHECK(static_cast<std::size_t>(count) == into.size(), "mpi_comm::sendrecv", "expected ",
                          into.size(), " bytes from rank ", source, ", received ", count);
        }

        void barrier() override { detail::check(MPI_Barrier(m_comm), "MPI_Barrier"); }

    private:
        MPI_Comm m_comm;
        int m_rank = 0;
        int m_size = 1;
        int m_tag_ub = 32767;
    };
} // namespace ballast::mpi

#else // no <mpi.h>: stubs that say what is missing when used

namespace ballast::mpi
{
    namespace detail
    {
        template <class...>
        inline constexpr bool no_mpi = false;
    }

    class mpi_session
    {
    public:
        template <class... A>
        explicit mpi_session(A&&...)
        {
            static_assert(detail::no_mpi<A...>,
                          "ballast/mpi/comm.hpp: <mpi.h> was not found: build with "
                          "-DBALLAST_WITH_MPI=ON and link MPI::MPI_CXX (Debian: libopenmpi-dev)");
        }
    };

    class mpi_comm
    {
    public:
        template <class... A>
        explicit mpi_comm(A&&...)
        {
            static_assert(detail::no_mpi<A...>,
                          "ballast/mpi/comm.hpp: <mpi.h> was not found: build with "
                          "-DBALLAST_WITH_MPI=ON and link MPI::MPI_CXX (Debian: libopenmpi-dev)");
        }
    };
} // namespace ballast::mpi

#endif

#endif
