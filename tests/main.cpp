// Test driver: prints what was compiled (version, SIMD architecture, threads) and the seed every
// randomised test draws from, so any failure can be replayed with `--rng-seed <seed>`.
#define CATCH_CONFIG_RUNNER
#include <cstdio>

#include <catch2/catch.hpp>

#include <ballast/core/parallel.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/version.hpp>

#include "support/random.hpp"

int main(int argc, char* argv[])
{
    Catch::Session session;
    session.configData().rngSeed = ballast::test::default_seed; // overridden by --rng-seed
    if (const int rc = session.applyCommandLine(argc, argv); rc != 0)
    {
        return rc;
    }
    ballast::test::set_seed(session.config().rngSeed());
    std::printf("ballast %s tests | simd: %s | threads: %d | seed: %u\n", ballast::version_string,
                ballast::simd::arch_name(), ballast::num_threads(), session.config().rngSeed());
    return session.run();
}
