// The shard deal (LPT by estimated cost) and reading I/N and the core count from launchers' variables.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/study/shard.hpp>

namespace
{
    namespace st = ballast::study;
    using Catch::Matchers::Contains;

    st::env_lookup env_of(std::map<std::string, std::string> vars)
    {
        return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string>
        {
            const auto it = vars.find(name);
            return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
        };
    }

    /// The optimal makespan by exhaustive search (small instances only): an independent reference.
    double optimal_makespan(const std::vector<double>& costs, std::size_t m)
    {
        std::vector<double> load(m, 0.0);
        double best = std::numeric_limits<double>::infinity();
        std::function<void(std::size_t)> place = [&](std::size_t i)
        {
            const double now = *std::ranges::max_element(load);
            if (now >= best)
            {
                return;
            }
            if (i == costs.size())
            {
                best = now;
                return;
            }
            for (std::size_t s = 0; s < m; ++s)
            {
                load[s] += costs[i];
                place(i + 1);
                load[s] -= costs[i];
            }
        };
        place(0);
        return best;
    }
} // namespace

TEST_CASE("deal_shards: longest first to the least-loaded shard, ties to the lower index", "[study][shard]")
{
    // Hand-dealt: order by cost 9(3) 7(1) 5(0) 5(4) 2(2); loads 9|0 → 9|7 → 9|12 → 14|12 → 14|14.
    const std::vector<double> costs = { 5, 7, 2, 9, 5 };
    const auto plan = st::deal_shards(std::span<const double>(costs), 2);
    CHECK(plan.shard_of == std::vector<std::size_t>{ 1, 1, 1, 0, 0 });
    CHECK(plan.runs[0] == std::vector<std::size_t>{ 3, 4 });
    CHECK(plan.runs[1] == std::vector<std::size_t>{ 1, 0, 2 });
    CHECK(plan.load == std::vector<double>{ 14, 14 });
    CHECK(st::longest_first(std::span<const double>(costs)) == std::vector<std::size_t>{ 3, 1, 0, 4, 2 });

    // All equal costs: round robin in grid order.
    const std::vector<double> equal(7, 1.0);
    CHECK(st::deal_shards(std::span<const double>(equal), 3).shard_of ==
          std::vector<std::size_t>{ 0, 1, 2, 0, 1, 2, 0 });
    // More shards than runs: the extra shards are empty, not an error.
    const auto wide = st::deal_shards(std::span<const double>(costs), 8);
    CHECK(wide.runs[5].empty());
    CHECK(wide.makespan() == 9);
}

TEST_CASE("deal_shards: every run in exactly one shard, deterministic, within the LPT bound",
          "[study][shard]")
{
    std::mt19937_64 rng(20261201);
    std::uniform_real_distribution<double> u(0.1, 10.0);
    for (int trial = 0; trial < 200; ++trial)
    {
        const std::size_t n = 1 + rng() % 9;
        const std::size_t m = 1 + rng() % 3;
        std::vector<double> costs(n);
        for (auto& c : costs)
        {
            c = trial % 4 == 0 ? std::floor(u(rng)) + 1 : u(rng); // integer costs make ties likely
        }
        const auto plan = st::deal_shards(std::span<const double>(costs), m);
        // Partition: the per-shard lists hold every index once, and agree with shard_of and load.
        std::vector<int> seen(n, 0);
        for (std::size_t s = 0; s < m; ++s)
        {
            double load = 0;
            for (const auto i : plan.runs[s])
            {
                ++seen[i];
                CHECK(plan.shard_of[i] == s);
                load += costs[i];
            }
            CHECK(load == plan.load[s]);
            // Start order within a shard is non-increasing in cost.
            CHECK(std::ranges::is_sorted(plan.runs[s], [&](auto a, auto b) { return costs[a] > costs[b]; }));
        }
        CHECK(std::ranges::all_of(seen, [](int k) { return k == 1; }));
        // Determinism: the same input gives the same deal.
        const auto again = st::deal_shards(std::span<const double>(costs), m);
        CHECK(again.shard_of == plan.shard_of);
        // Graham's bound for LPT against the exhaustive optimum.
        const double opt = optimal_makespan(costs, m);
        const double bound = (4.0 / 3.0 - 1.0 / (3.0 * double(m))) * opt;
        CHECK(plan.makespan() <= bound * (1 + 1e-12));
    }
}

TEST_CASE("deal_shards: the classic LPT worst case reaches the bound exactly", "[study][shard]")
{
    // 2 machines, jobs 3 3 2 2 2: LPT gives {3,2,2} | {3,2} = 7, the optimum {3,3} | {2,2,2} is 6,
    // and 7/6 = 4/3 − 1/(3·2).
    const std::vector<double> costs = { 3, 3, 2, 2, 2 };
    const auto plan = st::deal_shards(std::span<const double>(costs), 2);
    CHECK(plan.makespan() == 7);
    CHECK(optimal_makespan(costs, 2) == 6);
}

TEST_CASE("deal_shards: keyed runs, and bad input", "[study][shard]")
{
    const std::vector<st::run_cost> runs = { { "a", st::estimated_cost(100, 10) },
                                             { "b", st::estimated_cost(50, 10) },
                                             { "c", st::estimated_cost(50, 10) } };
    CHECK(st::deal_shards(std::span<const st::run_cost>(runs), 2).shard_of ==
          std::vector<std::size_t>{ 0, 1, 1 });
    const std::vector<st::run_cost> dup = { { "a", 1 }, { "a", 2 } };
    CHECK_THROWS_WITH(st::deal_shards(std::span<const st::run_cost>(dup), 2),
                      "ballast: deal_shards: duplicate run key 'a'");
    const std::vector<double> costs = { 1, 2 };
    CHECK_THROWS_WITH(st::deal_shards(std::span<const double>(costs), 0),
                      "ballast: deal_shards: the shard count must be >= 1, got 0");
    const std::vector<double> bad = { 1, -1 };
    CHECK_THROWS_WITH(st::deal_shards(std::span<const double>(bad), 2), Contains("run 1 has cost -1"));
    const std::vector<double> nan = { std::nan("") };
    CHECK_THROWS_AS(st::deal_shards(std::span<const double>(nan), 2), ballast::error);
}

TEST_CASE("parse_shard reads I/N strictly", "[study][shard]")
{
    CHECK(st::parse_shard("0/1") == st::shard_id{ 0, 1 });
    CHECK(st::parse_shard("3/16") == st::shard_id{ 3, 16 });
    CHECK(st::parse_shard("3/16").file_tag() == "3-of-16");
    CHECK(st::parse_shard("3/16").to_string() == "3/16");
    CHECK_THROWS_WITH(st::parse_shard("2/2"),
                      "ballast: shard: '2/2': shard index 2 is out of range for 2 shards (valid: 0 to 1)");
    CHECK_THROWS_WITH(st::parse_shard("0/0"), "ballast: shard: '0/0': the shard count is 0; it must be >= 1");
    for (const char* bad : { "", "1", "/2", "1/", "-1/2", "+1/2", " 1/2", "1/2 ", "1/2/3", "a/2", "1.0/2",
                             "99999999999999999999/2" })
    {
        INFO(bad);
        CHECK_THROWS_WITH(st::parse_shard(bad), Contains("is not of the form I/N"));
    }
}

TEST_CASE("shard_from_environment: each launcher", "[study][shard]")
{
    const auto from = [](std::map<std::string, std::string> v, std::size_t shards = 0)
    { return st::shard_from_environment(env_of(std::move(v)), shards); };

    auto s = from({ { "SLURM_ARRAY_TASK_ID", "3" }, { "SLURM_ARRAY_TASK_COUNT", "8" } });
    CHECK(s.shard == st::shard_id{ 3, 8 });
    CHECK(s.launcher == "slurm-array");
    // --array=1-8: indices count from the first task.
    s = from(
      { { "SLURM_ARRAY_TASK_ID", "1" }, { "SLURM_ARRAY_TASK_MIN", "1" }, { "SLURM_ARRAY_TASK_MAX", "8" } });
    CHECK(s.shard == st::shard_id{ 0, 8 });
    // --array=0-14:2 (8 tasks).
    s = from({ { "SLURM_ARRAY_TASK_ID", "6" },
               { "SLURM_ARRAY_TASK_MIN", "0" },
               { "SLURM_ARRAY_TASK_MAX", "14" },
               { "SLURM_ARRAY_TASK_STEP", "2" },
               { "SLURM_ARRAY_TASK_COUNT", "8" } });
    CHECK(s.shard == st::shard_id{ 3, 8 });
    // An array task's batch script has SLURM_PROCID=0 (and maybe SLURM_NTASKS=1): still the array.
    s = from({ { "SLURM_ARRAY_TASK_ID", "1" },
               { "SLURM_ARRAY_TASK_COUNT", "2" },
               { "SLURM_PROCID", "0" },
               { "SLURM_NTASKS", "1" } });
    CHECK(s.shard == st::shard_id{ 1, 2 });
    CHECK(s.launcher == "slurm-array");

    s = from({ { "OMPI_COMM_WORLD_RANK", "1" }, { "OMPI_COMM_WORLD_SIZE", "4" } });
    CHECK(s.shard == st::shard_id{ 1, 4 });
    CHECK(s.launcher == "openmpi");
    s = from({ { "PMI_RANK", "2" }, { "PMI_SIZE", "3" } });
    CHECK(s.shard == st::shard_id{ 2, 3 });
    CHECK(s.launcher == "pmi");
    s = from({ { "SLURM_PROCID", "5" }, { "SLURM_NTASKS", "6" } });
    CHECK(s.shard == st::shard_id{ 5, 6 });
    CHECK(s.launcher == "slurm-tasks");
    // srun launching an MPI program sets both: the MPI rank wins (they agree in practice).
    s = from({ { "OMPI_COMM_WORLD_RANK", "1" },
               { "OMPI_COMM_WORLD_SIZE", "2" },
               { "SLURM_PROCID", "0" },
               { "SLURM_NTASKS", "1" } });
    CHECK(s.launcher == "openmpi");
    // A batch script without -n has SLURM_PROCID but no SLURM_NTASKS: not a launcher of ranks.
    s = from({ { "SLURM_PROCID", "0" }, { "JOB_COMPLETION_INDEX", "2" } }, 4);
    CHECK(s.shard == st::shard_id{ 2, 4 });
    CHECK(s.launcher == "kubernetes");
    // The expected count agrees with the launcher's.
    CHECK(from({ { "PMI_RANK", "0" }, { "PMI_SIZE", "3" } }, 3).shard == st::shard_id{ 0, 3 });
}

TEST_CASE("shard_from_environment: errors name the variable", "[study][shard]")
{
    const auto from = [](std::map<std::string, std::string> v, std::size_t shards = 0)
    { return st::shard_from_environment(env_of(std::move(v)), shards); };

    CHECK_THROWS_WITH(from({}), Contains("no launcher variables found"));
    CHECK_THROWS_WITH(from({ { "SLURM_PROCID", "0" } }),
                      Contains("SLURM_NTASKS is not set but SLURM_PROCID is"));
    CHECK_THROWS_WITH(
      from({ { "SLURM_ARRAY_TASK_ID", "2" }, { "SLURM_ARRAY_TASK_COUNT", "2" } }),
      "ballast: shard: SLURM_ARRAY_TASK_ID=2: shard index 2 is out of range for 2 shards (valid: "
      "0 to 1)");
    CHECK_THROWS_WITH(from({ { "SLURM_ARRAY_TASK_ID", "0" }, { "SLURM_ARRAY_TASK_COUNT", "0" } }),
                      Contains("the shard count is 0"));
    CHECK_THROWS_WITH(from({ { "SLURM_ARRAY_TASK_ID", "0" } }),
                      Contains("neither SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MIN/MAX"));
    // --array=1,3,7: three tasks that are not a range.
    CHECK_THROWS_WITH(from({ { "SLURM_ARRAY_TASK_ID", "3" },
                             { "SLURM_ARRAY_TASK_MIN", "1" },
                             { "SLURM_ARRAY_TASK_MAX", "7" },
                             { "SLURM_ARRAY_TASK_COUNT", "3" } }),
                      Contains("not a contiguous range"));
    CHECK_THROWS_WITH(from({ { "SLURM_ARRAY_TASK_ID", "x" }, { "SLURM_ARRAY_TASK_COUNT", "2" } }),
                      "ballast: shard: SLURM_ARRAY_TASK_ID='x' is not a non-negative integer");
    CHECK_THROWS_WITH(
      from({ { "OMPI_COMM_WORLD_RANK", "4" }, { "OMPI_COMM_WORLD_SIZE", "4" } }),
      Contains("OMPI_COMM_WORLD_RANK=4, OMPI_COMM_WORLD_SIZE=4: shard index 4 is out of range"));
    CHECK_THROWS_WITH(from({ { "PMI_RANK", "0" }, { "PMI_SIZE", "0" } }), Contains("the shard count is 0"));
    CHECK_THROWS_WITH(from({ { "JOB_COMPLETION_INDEX", "1" } }), Contains("give it as --shards N"));
    CHECK_THROWS_WITH(from({ { "JOB_COMPLETION_INDEX", "4" } }, 4), Contains("out of range for 4 shards"));
    CHECK_THROWS_WITH(from({ { "OMPI_COMM_WORLD_RANK", "0" }, { "OMPI_COMM_WORLD_SIZE", "2" } }, 3),
                      "ballast: shard: the launcher (openmpi) gives 2 shards but 3 were asked for");
    CHECK_THROWS_WITH(from({ { "SLURM_ARRAY_TASK_ID", "0" },
                             { "SLURM_ARRAY_TASK_COUNT", "2" },
                             { "SLURM_PROCID", "1" },
                             { "SLURM_NTASKS", "2" } }),
                      Contains("both a Slurm job array"));
}

TEST_CASE("cores_from_environment: Slurm's per-task CPUs, then OMP_NUM_THREADS", "[study][shard]")
{
    CHECK_FALSE(st::cores_from_environment(env_of({})).has_value());
    auto c =
      st::cores_from_environment(env_of({ { "SLURM_CPUS_PER_TASK", "4" }, { "OMP_NUM_THREADS", "2" } }));
    REQUIRE(c);
    CHECK(c->cores == 4);
    CHECK(c->variable == "SLURM_CPUS_PER_TASK");
    c = st::cores_from_environment(env_of({ { "OMP_NUM_THREADS", "3,1" } }));
    REQUIRE(c);
    CHECK(c->cores == 3);
    CHECK(c->variable == "OMP_NUM_THREADS");
    CHECK_THROWS_WITH(st::cores_from_environment(env_of({ { "OMP_NUM_THREADS", "0" } })),
                      "ballast: cores: OMP_NUM_THREADS='0' is not a positive integer");
    CHECK_THROWS_WITH(st::cores_from_environment(env_of({ { "SLURM_CPUS_PER_TASK", "two" } })),
                      "ballast: cores: SLURM_CPUS_PER_TASK='two' is not a positive integer");
    // Set to nothing (`OMP_NUM_THREADS= study ...`) is no constraint, as if unset.
    CHECK_FALSE(st::cores_from_environment(env_of({ { "OMP_NUM_THREADS", "" } })).has_value());
    c = st::cores_from_environment(env_of({ { "SLURM_CPUS_PER_TASK", "" }, { "OMP_NUM_THREADS", "2" } }));
    REQUIRE(c);
    CHECK(c->variable == "OMP_NUM_THREADS");
}
