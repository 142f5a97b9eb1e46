#ifndef BALLAST_TRAIN_OPTIM_LION_HPP
#define BALLAST_TRAIN_OPTIM_LION_HPP

/// @file
/// Lion (Chen et al. 2023, "Symbolic discovery of optimization algorithms", Algorithm 2), paper defaults
/// β1 = 0.9, β2 = 0.99. With g the clipped gradient:
///
///   c = β1 m + (1−β1) g,   Δ = sign(c),   m ← β2 m + (1−β2) g
///
/// and θ moves by −lr·Δ plus the decay of the mode (default coupled, the Lion paper's:
/// θ ← θ − lr·(Δ + λθ)). State: m.

#include <array>
#include <string_view>

#include <boost/hana/adapt_struct.hpp>

#include <ballast/core/config.hpp>
#include <ballast/core/reflect.hpp>
#include <ballast/kernels/optimizer.hpp>
#include <ballast/train/optim/common.hpp>

namespace ballast::optim
{
    /// Lion's numbers (flags and TOML keys `lion_beta1`, `lion_beta2`).
    struct lion_config
    {
        double beta1 = 0.9;  ///< interpolation of the sign's argument
        double beta2 = 0.99; ///< moment decay

        bool operator==(const lion_config&) const = default;

        void validate() const
        {
            constexpr const char* where = "optimizer_config";
            BALLAST_CHECK(beta1 >= 0 && beta1 < 1, where, "lion_beta1 must be in [0, 1), got ", beta1);
            BALLAST_CHECK(beta2 >= 0 && beta2 < 1, where, "lion_beta2 must be in [0, 1), got ", beta2);
        }
    };

    namespace detail
    {
        inline constexpr std::string_view lion_base = "lion";
    }

    /// Lion, state m. Name: "lion", "lion_coupled", "lion_nodecay".
    template <weight_decay Decay = weight_decay::coupled>
    struct lion
    {
        using config = lion_config;
        static constexpr std::string_view name = detail::decay_name<detail::lion_base, Decay>;
        static constexpr weight_decay decay = Decay;
        static constexpr bool param_rms_scaling = false;
        static constexpr std::array<std::string_view, 1> state_names{ "m" };

        template <class T>
        static void update(T* theta, std::array<T*, 1> state, const T* grad, const tensor_step& a,
                           const config& c)
        {
            const kernels::lion_hparams h{ a.lr, c.beta1, c.beta2, a.decay, a.grad_scale };
            kernels::lion_update<Decay>(theta, state[0], grad, h, a.n);
        }
    };
} // namespace ballast::optim

BOOST_HANA_ADAPT_STRUCT(ballast::optim::lion_config, beta1, beta2);

template <>
struct ballast::field_docs<ballast::optim::lion_config>
{
    static constexpr std::array<field_doc, 2> fields{ {
      { "beta1", "Lion: interpolation weight of the momentum in the sign update; 0 .. <1" },
      { "beta2", "Lion: momentum decay; 0 .. <1" },
    } };
};
static_assert(ballast::documented<ballast::optim::lion_config>);

#endif
