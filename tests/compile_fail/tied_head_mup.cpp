// Must NOT compile: a tied head cannot carry µParam's separate head multiplier. The ctest
// "compile-fail: ..." checks that the compiler stops with policy_set_checks' message.
#include <ballast/model/transformer.hpp>

struct misfit : ballast::gpt2_like
{
    static constexpr std::string_view name = "misfit";
    using parameterisation = ballast::policies::mup_simple;
};

int main()
{
    ballast::transformer<misfit> model(ballast::model_config{});
    return static_cast<int>(model.layout().count());
}
