#ifndef BALLAST_STUDY_SHARD_HPP
#define BALLAST_STUDY_SHARD_HPP

/// @file
/// Splitting a study over independent processes without any coordination between them.
///
/// A study is an ordered list of runs (its grid order). Every launcher a cluster offers — Slurm job arrays,
/// Slurm tasks, mpirun, Kubernetes Indexed Jobs — gives each process an index I of N, so a process needs only
/// (I, N) and the list to know its own runs:
/// - `deal_shards` assigns runs to N shards by estimated cost (parameters × steps): longest first, each to the
///   least-loaded shard so far (LPT, Graham 1969), ties broken by the lower run index and the lower shard
///   index. The deal is a pure function of (costs, N), so every process computes the same one.
/// - `parse_shard("I/N")` reads `--shard I/N`; `shard_from_environment` reads the launcher's variables
///   (`--shard auto`); `cores_from_environment` reads how many cores the launcher gave the process.
///
/// No MPI library is involved: the launchers' variables are read through a lookup function (the process
/// environment by default), so the parsing is testable without a cluster.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <functional>
#include <limits>
#include <numeric>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <ballast/core/config.hpp>

namespace ballast::study
{
    /// Shard `index` of `count` (0 <= index < count).
    struct shard_id
    {
        std::size_t index = 0;
        std::size_t count = 1;

        /// "I/N", the form `parse_shard` reads.
        std::string to_string() const { return std::to_string(index) + "/" + std::to_string(count); }
        /// "I-of-N", the form used in file names (results.I-of-N.jsonl).
        std::string file_tag() const { return std::to_string(index) + "-of-" + std::to_string(count); }

        bool operator==(const shard_id&) const = default;
    };

    /// One run of the grid as the deal sees it: its stable key and its estimated cost.
    struct run_cost
    {
        std::string key;
        double cost = 0; ///< e.g. `estimated_cost(params, steps)`; only the ratios matter
    };

    /// The cost estimate the deal uses: parameters × steps (the FLOPs of a run are ~6 × that).
    inline double estimated_cost(std::size_t params, std::size_t steps) noexcept
    {
        return static_cast<double>(params) * static_cast<double>(steps);
    }

    /// Run indices in the order they should start: decreasing cost, equal costs in grid order.
    /// Throws ballast::error for a negative or non-finite cost.
    inline std::vector<std::size_t> longest_first(std::span<const double> costs)
    {
        for (std::size_t i = 0; i < costs.size(); ++i)
        {
            BALLAST_CHECK(std::isfinite(costs[i]) && costs[i] >= 0, "longest_first", "run ", i, " has cost ",
                          costs[i], "; costs must be finite and >= 0");
        }
        std::vector<std::size_t> order(costs.size());
        std::iota(order.begin(), order.end(), std::size_t{ 0 });
        std::ranges::stable_sort(order, [&](std::size_t a, std::size_t b) { return costs[a] > costs[b]; });
        return order;
    }

    /// The assignment of every run to one shard.
    struct shard_plan
    {
        std::vector<std::size_t> shard_of;          ///< per run (grid index): its shard
        std::vector<std::vector<std::size_t>> runs; ///< per shard: its runs, longest first (the start order)
        std::vector<double> load;                   ///< per shard: the sum of its runs' costs

        /// The largest load (the estimated makespan of the static deal).
        double makespan() const { return load.empty() ? 0 : *std::ranges::max_element(load); }
    };

    /// Deal runs (given by their costs, in grid order) to `shards` shards: longest first, each to the
    /// currently least-loaded shard (the lowest index among equals). Deterministic; every run lands in exactly
    /// one shard; the largest load is at most (4/3 − 1/(3·shards)) × the optimum (Graham's LPT bound).
    inline shard_plan deal_shards(std::span<const double> costs, std::size_t shards)
    {
        BALLAST_CHECK(shards >= 1, "deal_shards", "the shard count must be >= 1, got 0");
        shard_plan plan;
        plan.shard_of.assign(costs.size(), 0);
        plan.runs.assign(shards, {});
        plan.load.assign(shards, 0.0);
        for (const std::size_t i : longest_first(costs))
        {
            std::size_t best = 0;
            for (std::size_t s = 1; s < shards; ++s)
            {
                best = plan.load[s] < plan.load[best] ? s : best;
            }
            plan.shard_of[i] = best;
            plan.runs[best].push_back(i);
            plan.load[best] += costs[i];
        }
        return plan;
    }

    /// The same deal from keyed runs; refuses duplicate keys (a key must name exactly one run).
    inline shard_plan deal_shards(std::span<const run_cost> runs, std::size_t shards)
    {
        std::set<std::string_view> keys;
        std::vector<double> costs;
        costs.reserve(runs.size());
        for (const auto& r : runs)
        {
            BALLAST_CHECK(keys.insert(r.key).second, "deal_shards", "duplicate run key '", r.key, "'");
            costs.push_back(r.cost);
        }
        return deal_shards(std::span<const double>(costs), shards);
    }

    namespace detail
    {
        /// A decimal integer with nothing else around it (no sign, no spaces), within `max`.
        inline std::optional<std::size_t> strict_uint(
          std::string_view s, std::size_t max = std::numeric_limits<std::size_t>::max())
        {
            if (s.empty() || s.size() > 19)
            {
                return std::nullopt;
            }
            std::size_t v = 0;
            for (const char c : s)
            {
                if (c < '0' || c > '9')
                {
                    return std::nullopt;
                }
                v = v * 10 + static_cast<std::size_t>(c - '0');
            }
            return v <= max ? std::optional<std::size_t>(v) : std::nullopt;
        }

        inline shard_id checked_shard(std::size_t index, std::size_t count, const std::string& source)
        {
            BALLAST_CHECK(count >= 1, "shard", source, ": the shard count is 0; it must be >= 1");
            BALLAST_CHECK(index < count, "shard", source, ": shard index ", index, " is out of range for ",
                          count, " shards (valid: 0 to ", count - 1, ")");
            return { index, count };
        }
    } // namespace detail

    /// Parse "I/N" (decimal, no spaces or signs; 0 <= I < N). Throws ballast::error naming the text.
    inline shard_id parse_shard(std::string_view text)
    {
        const auto slash = text.find('/');
        std::string quoted(1, '\''); // not "'" + std::string(text): GCC 12 -O3 false -Wrestrict
        quoted.append(text);
        quoted.push_back('\'');
        BALLAST_CHECK(slash != std::string_view::npos, "shard", quoted, " is not of the form I/N, e.g. 0/4");
        const auto i = detail::strict_uint(text.substr(0, slash));
        const auto n = detail::strict_uint(text.substr(slash + 1));
        BALLAST_CHECK(i && n, "shard", quoted, " is not of the form I/N with decimal I and N, e.g. 0/4");
        return detail::checked_shard(*i, *n, quoted);
    }

    /// Looks up one environment variable; nullopt when unset.
    using env_lookup = std::function<std::optional<std::string>(const std::string&)>;

    /// The process environment (std::getenv).
    inline std::optional<std::string> process_environment(const std::string& name)
    {
        const char* v = std::getenv(name.c_str());
        return v ? std::optional<std::string>(v) : std::nullopt;
    }

    /// A shard and the launcher it was read from ("slurm-array", "openmpi", "pmi", "slurm-tasks",
    /// "kubernetes", or "explicit").
    struct shard_source
    {
        shard_id shard;
        std::string launcher;
    };

    /// `--shard auto`: read I and N from the launcher's environment, in this order:
    /// - Slurm job array: `SLURM_ARRAY_TASK_ID`, N from `SLURM_ARRAY_TASK_COUNT` or from
    ///   `SLURM_ARRAY_TASK_MIN`/`MAX` (and `_STEP`); I counts from the array's first index, so
    ///   `--array=1-8` gives shards 0/8 … 7/8. Only contiguous (or evenly stepped) arrays are accepted.
    /// - Open MPI (`OMPI_COMM_WORLD_RANK`/`SIZE`), then MPICH/PMI (`PMI_RANK`/`PMI_SIZE`), then Slurm tasks
    ///   (`SLURM_PROCID`/`SLURM_NTASKS`).
    /// - Kubernetes Indexed Job: `JOB_COMPLETION_INDEX`, N from `shards` (the job's `completions`).
    /// `shards` > 0 is the expected count: a launcher giving another N is refused. A job array whose tasks
    /// each hold several ranks is refused as ambiguous (give `--shard I/N`). Throws ballast::error naming the
    /// variable for a missing, malformed or out-of-range value.
    inline shard_source shard_from_environment(const env_lookup& env = process_environment,
                                               std::size_t shards = 0)
    {
        const auto number = [&](const std::string& name) -> std::optional<std::size_t>
        {
            const auto v = env(name);
            if (!v)
            {
                return std::nullopt;
            }
            const auto n = detail::strict_uint(*v);
            BALLAST_CHECK(n.has_value(), "shard", name, "='", *v, "' is not a non-negative integer");
            return n;
        };
        const auto expect = [&](shard_source s) -> shard_source
        {
            BALLAST_CHECK(shards == 0 || s.shard.count == shards, "shard", "the launcher (", s.launcher,
                          ") gives ", s.shard.count, " shards but ", shards, " were asked for");
            return s;
        };

        // Per-process ranks: the first launcher that sets both of its variables.
        std::optional<shard_source> ranked;
        std::string incomplete;
        const char* rank_vars[][3] = { { "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "openmpi" },
                                       { "PMI_RANK", "PMI_SIZE", "pmi" },
                                       { "SLURM_PROCID", "SLURM_NTASKS", "slurm-tasks" } };
        for (const auto& [rank_name, size_name, launcher] : rank_vars)
        {
            const auto r = number(rank_name);
            const auto n = number(size_name);
            if (r.has_value() != n.has_value())
            {
                // e.g. SLURM_PROCID without SLURM_NTASKS in a batch script: not a launcher of ranks
                incomplete += std::string(incomplete.empty() ? "" : "; ") + (r ? size_name : rank_name) +
                              " is not set but " + (r ? rank_name : size_name) + " is";
                continue;
            }
            if (r && n)
            {
                ranked =
                  shard_source{ detail::checked_shard(*r, *n,
                                                      std::string(rank_name) + "=" + std::to_string(*r) +
                                                        ", " + size_name + "=" + std::to_string(*n)),
                                launcher };
                break;
            }
        }

        if (const auto id = number("SLURM_ARRAY_TASK_ID"))
        {
            BALLAST_CHECK(!ranked || ranked->shard.count == 1, "shard",
                          "both a Slurm job array (SLURM_ARRAY_TASK_ID) and ", ranked->shard.count,
                          " ranks per task (", ranked->launcher,
                          ") are present; give --shard I/N explicitly");
            const auto count = number("SLURM_ARRAY_TASK_COUNT");
            const auto lo = number("SLURM_ARRAY_TASK_MIN");
            const auto hi = number("SLURM_ARRAY_TASK_MAX");
            const std::size_t step = number("SLURM_ARRAY_TASK_STEP").value_or(1);
            BALLAST_CHECK(count || (lo && hi), "shard",
                          "SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT nor "
                          "SLURM_ARRAY_TASK_MIN/MAX are");
            BALLAST_CHECK(step >= 1, "shard", "SLURM_ARRAY_TASK_STEP is 0");
            const std::size_t first = lo.value_or(0);
            BALLAST_CHECK(*id >= first && (*id - first) % step == 0, "shard", "SLURM_ARRAY_TASK_ID=", *id,
                          " is not in the array's range (first index ", first, ", step ", step, ")");
            std::size_t n = 0;
            if (lo && hi)
            {
                BALLAST_CHECK(*hi >= *lo, "shard", "SLURM_ARRAY_TASK_MAX=", *hi,
                              " < SLURM_ARRAY_TASK_MIN=", *lo);
                n = (*hi - *lo) / step + 1;
                BALLAST_CHECK(!count || *count == n, "shard", "the job array is not a contiguous range (",
                              *count, " tasks between ", *lo, " and ", *hi, "); submit it as --array=0-",
                              *count == 0 ? 0 : *count - 1);
            }
            else
            {
                n = *count;
            }
            return expect(
              { detail::checked_shard((*id - first) / step, n, "SLURM_ARRAY_TASK_ID=" + std::to_string(*id)),
                "slurm-array" });
        }
        if (ranked)
        {
            return expect(*ranked);
        }
        if (const auto k = number("JOB_COMPLETION_INDEX"))
        {
            BALLAST_CHECK(shards > 0, "shard",
                          "JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) gives no shard count; give it as "
                          "--shards N (the job's completions)");
            return { detail::checked_shard(*k, shards, "JOB_COMPLETION_INDEX=" + std::to_string(*k)),
                     "kubernetes" };
        }
        ballast::detail::throw_error(
          "shard",
          "no launcher variables found (looked for SLURM_ARRAY_TASK_ID, OMPI_COMM_WORLD_RANK, "
          "PMI_RANK, SLURM_PROCID, JOB_COMPLETION_INDEX",
          incomplete.empty() ? "" : "; ", incomplete, "); give --shard I/N");
    }

    /// The cores a launcher gave this process, and from where.
    struct core_source
    {
        int cores = 0;
        std::string variable; ///< "SLURM_CPUS_PER_TASK" or "OMP_NUM_THREADS"
    };

    /// The cores this process may use: `SLURM_CPUS_PER_TASK`, else `OMP_NUM_THREADS` (its first entry, as
    /// in "4,2"); nullopt when neither is set (the caller falls back to the hardware's count). Throws
    /// ballast::error for a value that is not a positive integer.
    inline std::optional<core_source> cores_from_environment(const env_lookup& env = process_environment)
    {
        for (const char* name : { "SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS" })
        {
            const auto v = env(name);
            if (!v || v->empty())
            {
                continue; // unset, or set to nothing (`OMP_NUM_THREADS= cmd`): no constraint given
            }
            std::string_view s(*v);
            if (std::string_view(name) == "OMP_NUM_THREADS")
            {
                s = s.substr(0, s.find(','));
            }
            const auto n = detail::strict_uint(s, 1u << 20);
            BALLAST_CHECK(n && *n >= 1, "cores", name, "='", *v, "' is not a positive integer");
            return core_source{ static_cast<int>(*n), name };
        }
        return std::nullopt;
    }
} // namespace ballast::study

#endif
