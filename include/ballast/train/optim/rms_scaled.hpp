#ifndef BALLAST_TRAIN_OPTIM_RMS_SCALED_HPP
#define BALLAST_TRAIN_OPTIM_RMS_SCALED_HPP

/// @file
/// Modifier: any optimizer with the paper's Adafactor-style parameter-RMS LR scaling (Wortsman et al.
/// 2023 Fig E.14): lr_g ← lr_g·max(RMS(θ_g), rms_floor), RMS measured per tensor before the step. The
/// decay is not RMS-scaled. Name: the inner name + "+rms". State and update are the inner optimizer's;
/// the config is the inner config plus `rms_scaling_config`.

#include <array>
#include <string_view>

#include <boost/hana/adapt_struct.hpp>

#include <ballast/core/config.hpp>
#include <ballast/core/reflect.hpp>
#include <ballast/train/optim/common.hpp>

namespace ballast::optim
{
    /// The modifier's number (flag and TOML key `rms_floor`).
    struct rms_scaling_config
    {
        double rms_floor = 1e-3; ///< ρ = max(RMS(θ), rms_floor)

        bool operator==(const rms_scaling_config&) const = default;

        void validate() const
        {
            BALLAST_CHECK(rms_floor > 0, "optimizer_config", "rms_floor must be > 0, got ", rms_floor);
        }
    };

    namespace detail
    {
        inline constexpr std::string_view rms_suffix = "+rms";
    }

    template <optimizer_policy O>
    struct rms_scaled : O
    {
        /// The inner optimizer's numbers and the floor (converts to the inner config).
        struct config
          : O::config
          , rms_scaling_config
        {
            void validate() const
            {
                O::config::validate();
                rms_scaling_config::validate();
            }
        };

        static constexpr std::string_view name = detail::concat<O::name, detail::rms_suffix>::value;
        static constexpr bool param_rms_scaling = true;
        static double rms_floor(const config& c) noexcept { return c.rms_floor; }

        template <class T>
        static void update(T* theta, state_ptrs<O, T> state, const T* grad, const tensor_step& a,
                           const config& c)
        {
            O::update(theta, state, grad, a, static_cast<const typename O::config&>(c));
        }

        template <class T>
        static direction_stat direction(std::array<const T*, O::state_names.size()> state,
                                        const tensor_step& a, const config& c) requires has_direction<O, T>
        {
            return O::direction(state, a, static_cast<const typename O::config&>(c));
        }
    };
} // namespace ballast::optim

BOOST_HANA_ADAPT_STRUCT(ballast::optim::rms_scaling_config, rms_floor);

template <>
struct ballast::field_docs<ballast::optim::rms_scaling_config>
{
    static constexpr std::array<field_doc, 1> fields{ {
      { "rms_floor", "+rms optimizers: the update is scaled by max(RMS(theta), rms_floor) per tensor; > 0" },
    } };
};
static_assert(ballast::documented<ballast::optim::rms_scaling_config>);

#endif
