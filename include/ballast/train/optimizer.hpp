#ifndef BALLAST_TRAIN_OPTIMIZER_HPP
#define BALLAST_TRAIN_OPTIMIZER_HPP

/// @file
/// The optimizer family: the policies (one header each under `ballast/train/optim/`: AdamW, Lion,
/// SGD-momentum, Adafactor, and the `rms_scaled` modifier; the concept `optim::optimizer_policy` is in
/// `optim/common.hpp`), the driver `optimizer<O, T>`, the tools' settings `optimizer_config` and the
/// name → type registry (`with_optimizer`). See docs/policies/optimizer.md.
///
/// The policy fixes the update rule and the decay mode at compile time; its `config` holds its numbers,
/// so a sweep over β2, ε or λ never recompiles. `optimizer<O, T>` owns the state buffers (flat, parallel
/// to the model's parameter buffer) and applies one step: for each parameter tensor one fused SIMD pass
/// (`ballast/kernels/optimizer.hpp`) that also applies the global gradient-clipping factor, so clipping
/// costs no extra pass over the gradients.
///
/// With s_t the schedule multiplier, η the peak LR, μ_g the tensor's LR multiplier from the
/// parameterisation (µParam), ρ_g the optional parameter-RMS factor, λ the decay (0 for masked tensors),
/// c the clipping factor and Δ the optimizer's direction computed from c·g:
///
/// | decay mode     | update                                                    | paper default λ |
/// |----------------|-----------------------------------------------------------|-----------------|
/// | `independent`  | θ ← θ − s_t·η·μ_g·ρ_g·Δ − s_t·λ·θ                          | 1e-4            |
/// | `coupled`      | θ ← θ − s_t·η·μ_g·ρ_g·(Δ + λ·θ)   (PyTorch's AdamW)        | 0.1             |
/// | `none`         | θ ← θ − s_t·η·μ_g·ρ_g·Δ                                    | —               |
///
/// (Wortsman et al. 2023 §3.2.2 print the decay sign wrong; the form above is the one that decays.)
/// Independent decay is deliberately not scaled by μ_g or ρ_g: it is a property of the schedule, not of
/// the LR. For SGD, "coupled" is the classic L2 penalty added to the gradient (PyTorch's SGD).
/// ρ_g = max(RMS(θ_g), floor) when the policy asks for it (`param_rms_scaling`: `rms_scaled<O>` with
/// `rms_floor`, Adafactor with ε2), RMS measured per tensor before the step.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include <boost/hana/accessors.hpp>
#include <boost/hana/pair.hpp>
#include <boost/hana/string.hpp>
#include <boost/hana/tuple.hpp>

#include <ballast/core/aligned.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/named.hpp>
#include <ballast/core/profile.hpp>
#include <ballast/core/reflect.hpp>
#include <ballast/kernels/reduce.hpp>
#include <ballast/model/parameters.hpp>
#include <ballast/train/optim/adafactor.hpp>
#include <ballast/train/optim/adamw.hpp>
#include <ballast/train/optim/common.hpp>
#include <ballast/train/optim/lion.hpp>
#include <ballast/train/optim/rms_scaled.hpp>
#include <ballast/train/optim/sgd.hpp>

namespace ballast
{
    /// The tools' optimizer settings: the shared numbers (λ, the decay mask, clipping) and the config of
    /// every shipped optimizer, each read only by its optimizer. Reflected flat, under the keys the flags,
    /// TOML files, metrics headers and checkpoints use:
    ///
    /// | key | member | read by |
    /// |---|---|---|
    /// | `beta1`, `beta2`, `eps` | `adamw.beta1`, `adamw.beta2`, `adamw.eps` | AdamW |
    /// | `lion_beta1`, `lion_beta2` | `lion.beta1`, `lion.beta2` | Lion |
    /// | `momentum` | `sgd.momentum` | SGD-momentum |
    /// | `weight_decay`, `decay_mask`, `clip` | the same | every optimizer |
    /// | `rms_floor` | `rms.rms_floor` | `rms_scaled<O>` |
    /// | `adafactor_beta1`, `adafactor_decay_rate`, `adafactor_eps1`, `adafactor_eps2`, `adafactor_clip_threshold` | `adafactor.<field>` | Adafactor |
    struct optimizer_config
    {
        optim::adamw_config adamw;
        optim::lion_config lion;
        optim::sgd_momentum_config sgd;
        optim::rms_scaling_config rms;
        optim::adafactor_config adafactor;
        double weight_decay = 1e-4; ///< λ (meaning depends on the decay mode; coupled AdamW uses ~0.1)
        weight_decay_mask decay_mask = weight_decay_mask::all; ///< which tensors decay
        double clip = 1.0; ///< global gradient-norm clipping threshold; 0 disables

        bool operator==(const optimizer_config&) const = default;

        /// The shared part, as the driver reads it.
        optim::common_config common() const noexcept { return { weight_decay, decay_mask, clip }; }

        /// Every part's numbers (also those the chosen optimizer does not read: a bad file is refused
        /// whatever the optimizer).
        void validate() const
        {
            adamw.validate();
            lion.validate();
            sgd.validate();
            common().validate();
            rms.validate();
            adafactor.validate();
        }
    };

    namespace optim
    {
        /// The part of `optimizer_config` that is policy `O`'s config (shipped optimizers only; an optimizer
        /// of one's own is given its config directly: `optimizer<O, T>(layout, common, cfg)`).
        template <class O>
        struct config_from_settings
        {
            static typename O::config get(const optimizer_config& s) requires(
              std::is_same_v<typename O::config, adamw_config> ||
              std::is_same_v<typename O::config, lion_config> ||
              std::is_same_v<typename O::config, sgd_momentum_config> ||
              std::is_same_v<typename O::config, adafactor_config>)
            {
                using C = typename O::config;
                if constexpr (std::is_same_v<C, adamw_config>)
                {
                    return s.adamw;
                }
                else if constexpr (std::is_same_v<C, lion_config>)
                {
                    return s.lion;
                }
                else if constexpr (std::is_same_v<C, sgd_momentum_config>)
                {
                    return s.sgd;
                }
                else
                {
                    return s.adafactor;
                }
            }
        };

        template <class O>
        struct config_from_settings<rms_scaled<O>>
        {
            static typename rms_scaled<O>::config get(const optimizer_config& s) requires requires
            {
                config_from_settings<O>::get(s);
            }
            {
                typename rms_scaled<O>::config c;
                static_cast<typename O::config&>(c) = config_from_settings<O>::get(s);
                static_cast<rms_scaling_config&>(c) = s.rms;
                return c;
            }
        };

        /// Is `O`'s config a part of `optimizer_config`?
        template <class O>
        concept in_settings = requires(const optimizer_config& s)
        {
            config_from_settings<O>::get(s);
        };
    } // namespace optim

    /// The state and the step of optimizer policy `O` over a model's flat parameter buffer.
    template <optim::optimizer_policy O, class T = float>
    class optimizer
    {
    public:
        using policy = O;
        using config_type = typename O::config;
        using direction_stat = optim::direction_stat;
        static constexpr std::size_t state_count = O::state_names.size();

        /// From the tools' settings (a shipped optimizer): every part is validated.
        optimizer(const param_layout& layout, const optimizer_config& cfg) requires optim::in_settings<O>
          : m_layout(layout)
          , m_settings(cfg)
          , m_common(cfg.common())
        {
            m_settings.validate();
            m_cfg = optim::config_from_settings<O>::get(cfg);
            allocate();
        }

        /// From the shared numbers and the policy's own config (any optimizer policy). `config()` then
        /// reports the shared numbers and defaults for the rest.
        optimizer(const param_layout& layout, const optim::common_config& common, const config_type& cfg)
          : m_layout(layout)
          , m_common(common)
          , m_cfg(cfg)
        {
            m_common.validate();
            m_cfg.validate();
            m_settings.weight_decay = common.weight_decay;
            m_settings.decay_mask = common.decay_mask;
            m_settings.clip = common.clip;
            allocate();
        }

        /// The tools' settings this optimizer was built from (what the metrics header records).
        const optimizer_config& config() const noexcept { return m_settings; }
        /// The shared numbers and the policy's own.
        const optim::common_config& common() const noexcept { return m_common; }
        const config_type& policy_config() const noexcept { return m_cfg; }
        const param_layout& layout() const noexcept { return m_layout; }
        static constexpr std::string_view name() noexcept { return O::name; }

        /// Steps taken so far (AdamW's t − 1).
        std::int64_t steps_taken() const noexcept { return m_steps; }
        void set_steps_taken(std::int64_t t)
        {
            BALLAST_CHECK(t >= 0, "optimizer", "steps taken must be >= 0, got ", t);
            m_steps = t;
        }

        /// State buffer `i` (named `O::state_names[i]`), parallel to the parameter buffer.
        std::span<T> state(std::size_t i) noexcept { return m_state[i]; }
        std::span<const T> state(std::size_t i) const noexcept { return m_state[i]; }

        /// State `state` (one of the policy's `state_names`) of tensor `name` as a shaped, zero-copy xtensor
        /// view: shaped like the parameter, or, for a factored state (`optim::factored_state`: Adafactor's
        /// "v" of a matrix), the [rows + cols] factors R then C. Throws ballast::error for an unknown state
        /// or tensor, naming the known ones.
        tensor_view<T> state_tensor(std::string_view state, std::string_view name)
        {
            return state_view(m_state[state_index(state)].data(), state_index(state), name);
        }
        tensor_view<const T> state_tensor(std::string_view state, std::string_view name) const
        {
            return state_view(static_cast<const T*>(m_state[state_index(state)].data()), state_index(state),
                              name);
        }

        /// One step. `lr` = s_t·η (the scheduled LR), `schedule_multiplier` = s_t, `grad_scale` the
        /// clipping factor (see `clip_factor`).
        void step(std::span<T> params, std::span<const T> grads, double lr, double schedule_multiplier,
                  double grad_scale = 1.0)
        {
            const std::size_t n = m_layout.total();
            BALLAST_CHECK(params.size() == n && grads.size() == n, "optimizer::step", "expected ", n,
                          " parameters and gradients, got ", params.size(), " and ", grads.size());
            ++m_steps;
            BALLAST_PROFILE_MARK("optimizer");
            for (const auto& e : m_layout.entries())
            {
                optim::tensor_step a = tensor_of(e);
                a.grad_scale = grad_scale;
                a.lr = lr * e.lr_multiplier;
                if constexpr (O::param_rms_scaling)
                {
                    a.lr *= std::max(tensor_rms(params.data() + e.offset, e.size), O::rms_floor(m_cfg));
                }
                const double lambda = decays(e.role, m_common.decay_mask) ? m_common.weight_decay : 0.0;
                a.decay = O::decay == weight_decay::independent ? schedule_multiplier * lambda : lambda;
                std::array<T*, state_count> s{};
                for (std::size_t i = 0; i < state_count; ++i)
                {
                    s[i] = m_state[i].data() + e.offset;
                }
                O::update(params.data() + e.offset, s, grads.data() + e.offset, a, m_cfg);
            }
            BALLAST_PROFILE_MARK("end");
        }

        /// Statistics of the last step's unscaled direction for one tensor (diagnostics), from the policy's
        /// `direction` hook (AdamW: RMS of m̂/(√v̂ + ε) and the ε-dominated fraction); NaN without one.
        direction_stat direction_stats(const param_entry& e) const
        {
            if constexpr (optim::has_direction<O, T>)
            {
                std::array<const T*, state_count> s{};
                for (std::size_t i = 0; i < state_count; ++i)
                {
                    s[i] = m_state[i].data() + e.offset;
                }
                return O::direction(s, tensor_of(e), m_cfg);
            }
            else
            {
                return {};
            }
        }

        /// RMS of a tensor, √(Σθ²/n), in a fixed summation order.
        static double tensor_rms(const T* x, std::size_t n)
        {
            return n ? std::sqrt(static_cast<double>(kernels::sum_squares(x, n)) / static_cast<double>(n))
                     : 0.0;
        }

    private:
        void allocate()
        {
            for (auto& s : m_state)
            {
                s.assign(m_layout.total(), T(0));
            }
        }

        static std::size_t state_index(std::string_view state)
        {
            for (std::size_t i = 0; i < state_count; ++i)
            {
                if (O::state_names[i] == state)
                {
                    return i;
                }
            }
            std::string known;
            for (const auto n : O::state_names)
            {
                known += (known.empty() ? "" : ", ") + std::string(n);
            }
            ::ballast::detail::throw_error("optimizer", "'", O::name, "' has no state '", state, "' (its states: ",
                                           known.empty() ? std::string("none") : known, ")");
        }

        template <class U>
        tensor_view<U> state_view(U* base, std::size_t i, std::string_view name) const
        {
            const auto& e = m_layout.at(name);
            const auto a = tensor_of(e);
            if (optim::factored_state<O>(i, a))
            {
                return make_tensor_view(base + e.offset, a.rows + a.cols, { a.rows + a.cols });
            }
            return make_tensor_view(base + e.offset, e.size, e.shape);
        }

        /// The step count and the shape of a tensor ([rows, cols]: all but the last dimension, the last).
        optim::tensor_step tensor_of(const param_entry& e) const
        {
            optim::tensor_step a;
            a.t = m_steps;
            a.n = e.size;
            a.cols = e.shape.empty() ? e.size : e.shape.back();
            a.rows = a.cols ? e.size / a.cols : 0;
            return a;
        }

        param_layout m_layout;
        optimizer_config m_settings;
        optim::common_config m_common;
        config_type m_cfg{};
        std::array<aligned_vector<T>, state_count> m_state;
        std::int64_t m_steps = 0;
    };

    /// The optimizers the tools offer by name (any `optimizer_policy` works in code).
    inline constexpr auto shipped_optimizers =
      boost::hana::tuple_t<optim::adamw<weight_decay::independent>, optim::adamw<weight_decay::coupled>,
                           optim::lion<weight_decay::coupled>, optim::sgd_momentum<weight_decay::coupled>,
                           optim::rms_scaled<optim::adamw<weight_decay::independent>>,
                           optim::adafactor<weight_decay::independent>>;

    /// Call `f(boost::hana::type_c<O>)` for the shipped optimizer named `name` ("adamw", "adamw_coupled",
    /// "lion_coupled", "sgd_momentum_coupled", "adamw+rms", "adafactor"); throws ballast::error listing them
    /// otherwise.
    template <class F>
    void with_optimizer(std::string_view name, F&& f)
    {
        with_named(shipped_optimizers, name, "optimizer", static_cast<F&&>(f));
    }

    namespace detail
    {
        /// Hana accessor for `(s.*Outer).*Inner`: reflects a nested config's field under a flat key.
        template <auto Outer, auto Inner>
        struct nested_field
        {
            template <class S>
            constexpr decltype(auto) operator()(S&& s) const noexcept
            {
                return ((static_cast<S&&>(s).*Outer).*Inner);
            }
        };

        template <auto Member>
        struct direct_field
        {
            template <class S>
            constexpr decltype(auto) operator()(S&& s) const noexcept
            {
                return (static_cast<S&&>(s).*Member);
            }
        };
    } // namespace detail
} // namespace ballast

/// `optimizer_config` reflects flat (see its key table): the flags, TOML keys and JSON of every part.
template <>
struct boost::hana::accessors_impl<ballast::optimizer_config>
{
    static constexpr auto apply()
    {
        using S = ballast::optimizer_config;
        namespace o = ballast::optim;
        using ballast::detail::direct_field;
        using ballast::detail::nested_field;
        return boost::hana::make_tuple(
          boost::hana::make_pair(BOOST_HANA_STRING("beta1"),
                                 nested_field<&S::adamw, &o::adamw_config::beta1>{}),
          boost::hana::make_pair(BOOST_HANA_STRING("beta2"),
                                 nested_field<&S::adamw, &o::adamw_config::beta2>{}),
          boost::hana::make_pair(BOOST_HANA_STRING("eps"), nested_field<&S::adamw, &o::adamw_config::eps>{}),
          boost::hana::make_pair(BOOST_HANA_STRING("lion_beta1"),
                                 nested_field<&S::lion, &o::lion_config::beta1>{}),
          boost::hana::make_pair(BOOST_HANA_STRING("lion_beta2"),
                                 nested_field<&S::lion, &o::lion_config::beta2>{}),
          boost::hana::make_pair(BOOST_HANA_STRING("momentum"),
                                 nested_field<&S::sgd, &o::sgd_momentum_config::momentum>{}),
          boost::hana::make_pair(BOOST_HANA_STRING("weight_decay"), direct_field<&S::weight_decay>{}),
          boost::hana::make_pair(BOOST_HANA_STRING("decay_mask"), direct_field<&S::decay_mask>{}),
          boost::hana::make_pair(BOOST_HANA_STRING("rms_floor"),
                                 nested_field<&S::rms, &o::rms_scaling_config::rms_floor>{}),
          boost::hana::make_pair(BOOST_HANA_STRING("clip"), direct_field<&S::clip>{}),
          boost::hana::make_pair(BOOST_HANA_STRING("adafactor_beta1"),
                                 nested_field<&S::adafactor, &o::adafactor_config::beta1>{}),
          boost::hana::make_pair(BOOST_HANA_STRING("adafactor_decay_rate"),
                                 nested_field<&S::adafactor, &o::adafactor_config::decay_rate>{}),
          boost::hana::make_pair(BOOST_HANA_STRING("adafactor_eps1"),
                                 nested_field<&S::adafactor, &o::adafactor_config::eps1>{}),
          boost::hana::make_pair(BOOST_HANA_STRING("adafactor_eps2"),
                                 nested_field<&S::adafactor, &o::adafactor_config::eps2>{}),
          boost::hana::make_pair(BOOST_HANA_STRING("adafactor_clip_threshold"),
                                 nested_field<&S::adafactor, &o::adafactor_config::clip_threshold>{}));
    }
};

/// The flat keys take their text from the per-optimizer configs' docs (one place for each sentence).
template <>
struct ballast::field_docs<ballast::optimizer_config>
{
    static constexpr std::array<field_doc, 15> fields{ {
      { "beta1", ballast::field_description<ballast::optim::adamw_config>("beta1") },
      { "beta2", ballast::field_description<ballast::optim::adamw_config>("beta2") },
      { "eps", ballast::field_description<ballast::optim::adamw_config>("eps") },
      { "lion_beta1", ballast::field_description<ballast::optim::lion_config>("beta1") },
      { "lion_beta2", ballast::field_description<ballast::optim::lion_config>("beta2") },
      { "momentum", ballast::field_description<ballast::optim::sgd_momentum_config>("momentum") },
      { "weight_decay", ballast::field_description<ballast::optim::common_config>("weight_decay") },
      { "decay_mask", ballast::field_description<ballast::optim::common_config>("decay_mask") },
      { "rms_floor", ballast::field_description<ballast::optim::rms_scaling_config>("rms_floor") },
      { "clip", ballast::field_description<ballast::optim::common_config>("clip") },
      { "adafactor_beta1", ballast::field_description<ballast::optim::adafactor_config>("beta1") },
      { "adafactor_decay_rate", ballast::field_description<ballast::optim::adafactor_config>("decay_rate") },
      { "adafactor_eps1", ballast::field_description<ballast::optim::adafactor_config>("eps1") },
      { "adafactor_eps2", ballast::field_description<ballast::optim::adafactor_config>("eps2") },
      { "adafactor_clip_threshold",
        ballast::field_description<ballast::optim::adafactor_config>("clip_threshold") },
    } };
};
static_assert(ballast::documented<ballast::optimizer_config>);

#endif
