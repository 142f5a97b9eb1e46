// Prints what `--shard auto` and the core count would read in this process's environment:
// "shard I/N <launcher> cores C <variable>" (cores "- -" when neither variable is set), or the error.
// The Slurm test runs it inside array tasks and srun steps of a real (one-node) cluster.
#include <cstdio>
#include <exception>

#include <ballast/study/shard.hpp>

int main()
{
    namespace st = ballast::study;
    try
    {
        const auto s = st::shard_from_environment();
        const auto c = st::cores_from_environment();
        std::printf("shard %s %s cores %s %s\n", s.shard.to_string().c_str(), s.launcher.c_str(),
                    c ? std::to_string(c->cores).c_str() : "-", c ? c->variable.c_str() : "-");
        return 0;
    }
    catch (const std::exception& e)
    {
        std::printf("%s\n", e.what());
        return 2;
    }
}
