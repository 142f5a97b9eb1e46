// Run by ctest under mpirun (tests/mpi/CMakeLists.txt): the MPI communicator moves bytes faithfully, the
// launcher's variables give each rank its shard, and the work queue over MPI gives exactly the results of
// the same queue in one process. Exit code 0 when every check passes on every rank.
#include <cstddef>
#include <cstdio>
#include <exception>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <ballast/core/comm.hpp>
#include <ballast/core/file.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/mpi/comm.hpp>
#include <ballast/study/shard.hpp>
#include <ballast/study/work_queue.hpp>
#include <ballast/version.hpp>

namespace
{
    namespace st = ballast::study;

    int failures = 0;

    void expect(bool ok, int rank, const std::string& what)
    {
        if (!ok)
        {
            ++failures;
            std::fprintf(stderr, "rank %d: FAILED: %s\n", rank, what.c_str());
        }
    }

    /// A stand-in for training run `i`: some deterministic work, a result line that depends only on `i`.
    std::string run(std::size_t i)
    {
        std::string s = "run" + std::to_string(i);
        std::uint64_t h = 0xcbf29ce484222325ULL;
        for (std::size_t k = 0; k < 20000 * (i % 5 + 1); ++k)
        {
            h = ballast::fnv1a64(std::as_bytes(std::span<const char>(s.data(), s.size())), h);
        }
        char buf[64];
        std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
        return "{\"type\":\"run\",\"key\":\"r" + std::to_string(i) + "\",\"h\":\"" + buf + "\"}";
    }
} // namespace

int main(int argc, char** argv)
{
    ballast::mpi::mpi_session session(argc, argv);
    ballast::mpi::mpi_comm world;
    const int rank = world.rank(), size = world.size();
    try
    {
        // 1. Bytes: a ring of messages (empty, small, 1 MiB) arrives intact and in order.
        if (size >= 2)
        {
            const int right = (rank + 1) % size, left = (rank + size - 1) % size;
            std::vector<std::byte> big(1 << 20);
            for (std::size_t k = 0; k < big.size(); ++k)
            {
                big[k] = static_cast<std::byte>((k * 131 + static_cast<std::size_t>(rank)) & 0xff);
            }
            // A send may block until it is received (MPI_Send of a large message does), so the ring runs
            // in turn: rank 0 sends first, every other rank receives before it sends.
            const auto send_all = [&]
            {
                world.send(right, 9, std::string_view(""));
                world.send(right, 9, "from " + std::to_string(rank));
                world.send(right, 9, big);
            };
            if (rank == 0)
            {
                send_all();
            }
            const auto a = world.recv(left, 9), b = world.recv(left, 9), c = world.recv(left, 9);
            if (rank != 0)
            {
                send_all();
            }
            expect(a.bytes.empty() && a.source == left && a.tag == 9, rank, "empty message");
            expect(b.text() == "from " + std::to_string(left), rank,
                   "small message, got '" + std::string(b.text()) + "'");
            bool same = c.bytes.size() == big.size();
            for (std::size_t k = 0; same && k < big.size(); ++k)
            {
                same =
                  c.bytes[k] == static_cast<std::byte>((k * 131 + static_cast<std::size_t>(left)) & 0xff);
            }
            expect(same, rank, "1 MiB message");
        }
        world.barrier();

        // 2. The launcher's variables give this rank's shard (Open MPI: OMPI_COMM_WORLD_RANK/SIZE).
        const auto shard = st::shard_from_environment();
        expect(shard.shard == st::shard_id{ std::size_t(rank), std::size_t(size) }, rank,
               "shard_from_environment gave " + shard.shard.to_string() + " (" + shard.launcher + ")");

        // 3. The work queue: every run once, with the one-process results, recorded on rank 0 only.
        const std::vector<double> costs = { 3, 9, 1, 4, 4, 7, 2, 8, 5, 6, 0.5, 2.5 };
        const auto order = st::longest_first(std::span<const double>(costs));
        std::map<std::size_t, std::string> reference, got;
        {
            ballast::local_world one(1);
            st::run_work_queue(one.at(0), order, run,
                               [&](std::size_t i, int, std::string_view t)
                               { reference.emplace(i, std::string(t)); });
        }
        const std::string fingerprint =
          std::string(ballast::version_string) + "/" + ballast::simd::arch_name();
        std::size_t duplicates = 0;
        const auto report = st::run_work_queue(
          world, order, run,
          [&](std::size_t i, int from, std::string_view t)
          {
              expect(rank == 0 && (size == 1 || from != 0), rank,
                     "a result recorded off rank 0 or run on rank 0");
              duplicates += got.emplace(i, std::string(t)).second ? 0 : 1;
          },
          fingerprint);
        if (rank == 0)
        {
            // (printed only when rank 0's checks pass; the exit code of every rank decides the test)
            expect(duplicates == 0, rank, "a run was recorded twice");
            expect(got == reference, rank, "the MPI results differ from the one-process results");
            expect(report.total() == costs.size(), rank, "runs counted: " + std::to_string(report.total()));
            std::string per;
            for (const auto n : report.runs_per_rank)
            {
                per.push_back(' ');
                per += std::to_string(n); // not " " + to_string(n): GCC 12 -O3 false -Wrestrict
            }
            if (failures == 0)
                std::printf("ok: %d ranks, %zu runs, runs per rank:%s\n", size, got.size(), per.c_str());
        }
        else
        {
            expect(got.empty(), rank, "a worker recorded results");
        }
        world.barrier();
    }
    catch (const std::exception& e)
    {
        std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
        ballast::mpi::mpi_session::abort(1);
    }
    return failures == 0 ? 0 : 1;
}
