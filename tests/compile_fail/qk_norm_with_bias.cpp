// Must NOT compile: qk-norm never has a bias (Wortsman et al. 2023 §2.1).
#include <ballast/model/transformer.hpp>

struct misfit : ballast::paper_default
{
    static constexpr std::string_view name = "misfit";
    using qk = ballast::policies::qk_norm<ballast::policies::layer_norm_bias>;
};

int main()
{
    ballast::transformer<misfit> model(ballast::model_config{});
    return static_cast<int>(model.layout().count());
}
