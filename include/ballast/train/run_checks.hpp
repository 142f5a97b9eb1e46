#ifndef BALLAST_TRAIN_RUN_CHECKS_HPP
#define BALLAST_TRAIN_RUN_CHECKS_HPP

/// @file
/// What the trainer checks before it allocates anything (train/trainer.hpp):
/// - `check_data_parallel_ranks`: the K ranks of a data-parallel run agree on the run (a fingerprint of
///   its identity and the build, `run_fingerprint`), K divides the microbatches, and no rank records
///   diagnostics; every rank throws the same ballast::error otherwise;
/// - `check_run_memory`: the parameters, gradients, optimizer state, accumulation buffers and the
///   activations of one microbatch fit in the memory available ("memory: the run (...) needs 31.2 GiB,
///   22.9 GiB available"); sizes that overflow are refused by the config and activation checks first.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include <ballast/core/checked.hpp>
#include <ballast/core/comm.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/file.hpp>
#include <ballast/core/json.hpp>
#include <ballast/core/memory.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/model/config.hpp>
#include <ballast/train/train_config.hpp>
#include <ballast/version.hpp>

namespace ballast
{
    /// FNV-1a of `identity` (the run's policy set, optimizer, dtype, configs and data) and of this build
    /// (version, compiler, compile time): equal on ranks that would compute the same run.
    inline std::uint64_t run_fingerprint(nlohmann::json identity)
    {
        identity["build"] = std::string(version_string) + " " + __VERSION__ + " " + __DATE__ + " " + __TIME__;
        const std::string text = identity.dump();
        return fnv1a64(std::as_bytes(std::span<const char>(text.data(), text.size())));
    }

    /// The agreement check of a data-parallel run over `comm` (nullptr: one process, nothing to check).
    /// Every rank gathers every fingerprint, so a mismatch throws the same error on every rank.
    inline bool check_data_parallel_ranks(communicator* comm, std::uint64_t fingerprint,
                                          const train_config& train, bool records_diagnostics)
    {
        if (comm == nullptr)
        {
            return true;
        }
        constexpr int tag_fingerprint = 1701;
        const auto all = allgather_value(*comm, tag_fingerprint, fingerprint);
        for (std::size_t r = 1; r < all.size(); ++r)
        {
            BALLAST_CHECK(all[r] == all[0], "trainer", "data-parallel ranks disagree on the run: rank 0 has ",
                          "config/data/build fingerprint ", hex64(all[0]), ", rank ", r, " has ",
                          hex64(all[r]), " (start every rank with the same program, flags and corpus)");
        }
        const auto k = static_cast<std::size_t>(comm->size());
        BALLAST_CHECK(train.microbatches % k == 0, "trainer", "the ", k,
                      " data-parallel ranks do not divide microbatches = ", train.microbatches,
                      " (each rank computes microbatches / ranks of every step)");
        BALLAST_CHECK(!records_diagnostics || train.diag_interval == 0, "trainer",
                      "recording diagnostics (diag_interval > 0) is not supported in data-parallel runs "
                      "yet (use one process, or diag_interval = 0)");
        return true;
    }

    /// The memory check of a run of `Model` (a transformer type) with an optimizer of `StateCount`
    /// parameter-sized state buffers in `T`, on `comm`'s ranks (nullptr: one process).
    template <class Model, std::size_t StateCount, class T>
    bool check_run_memory(communicator* comm, const model_config& model, const train_config& train)
    {
        train.validate(model);
        const std::size_t threads = train.threads > 0 ? static_cast<std::size_t>(train.threads)
                                                      : static_cast<std::size_t>(num_threads());
        const auto m = Model::estimate_memory(model, train.batch / train.microbatches, train.seq, threads);
        const std::uint64_t k = comm != nullptr ? static_cast<std::uint64_t>(comm->size()) : 1;
        const std::uint64_t local = train.microbatches / k;
        std::uint64_t copies = StateCount;
        if (comm != nullptr || train.microbatches > 1)
        {
            copies += 1; // the accumulated gradient
        }
        if (k > 1)
        {
            copies += 3 * local; // this rank's microbatch gradients, and the send and receive buffers
        }
        const std::uint64_t bytes = checked_add(
          m.bytes(), checked_product<std::uint64_t>({ copies, m.parameters, sizeof(T) }, "trainer", "memory"),
          "trainer", "memory");
        check_fits(bytes, "the run (parameters, gradients, optimizer state and activations)");
        return true;
    }
} // namespace ballast

#endif
