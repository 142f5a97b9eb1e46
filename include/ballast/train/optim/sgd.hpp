#ifndef BALLAST_TRAIN_OPTIM_SGD_HPP
#define BALLAST_TRAIN_OPTIM_SGD_HPP

/// @file
/// SGD with heavy-ball momentum (PyTorch semantics: dampening 0, no Nesterov). With g the clipped
/// gradient: buf ← μ·buf + g, Δ = buf. "coupled" decay is the classic L2 penalty added to the gradient
/// (PyTorch's SGD): g ← g + λθ. State: momentum.

#include <array>
#include <string_view>

#include <boost/hana/adapt_struct.hpp>

#include <ballast/core/config.hpp>
#include <ballast/core/reflect.hpp>
#include <ballast/kernels/optimizer.hpp>
#include <ballast/train/optim/common.hpp>

namespace ballast::optim
{
    /// SGD's numbers (flag and TOML key `momentum`).
    struct sgd_momentum_config
    {
        double momentum = 0.9; ///< heavy-ball momentum μ

        bool operator==(const sgd_momentum_config&) const = default;

        void validate() const
        {
            BALLAST_CHECK(momentum >= 0 && momentum < 1, "optimizer_config",
                          "momentum must be in [0, 1), got ", momentum);
        }
    };

    namespace detail
    {
        inline constexpr std::string_view sgd_base = "sgd_momentum";
    }

    /// SGD with heavy-ball momentum, state "momentum". Name: "sgd_momentum", "sgd_momentum_coupled", ….
    template <weight_decay Decay = weight_decay::coupled>
    struct sgd_momentum
    {
        using config = sgd_momentum_config;
        static constexpr std::string_view name = detail::decay_name<detail::sgd_base, Decay>;
        static constexpr weight_decay decay = Decay;
        static constexpr bool param_rms_scaling = false;
        static constexpr std::array<std::string_view, 1> state_names{ "momentum" };

        template <class T>
        static void update(T* theta, std::array<T*, 1> state, const T* grad, const tensor_step& a,
                           const config& c)
        {
            const kernels::sgd_hparams h{ a.lr, c.momentum, a.decay, a.grad_scale };
            kernels::sgd_momentum_update<Decay>(theta, state[0], grad, h, a.n);
        }
    };
} // namespace ballast::optim

BOOST_HANA_ADAPT_STRUCT(ballast::optim::sgd_momentum_config, momentum);

template <>
struct ballast::field_docs<ballast::optim::sgd_momentum_config>
{
    static constexpr std::array<field_doc, 1> fields{ {
      { "momentum", "sgd_momentum: heavy-ball momentum mu; 0 .. <1" },
    } };
};
static_assert(ballast::documented<ballast::optim::sgd_momentum_config>);

#endif
