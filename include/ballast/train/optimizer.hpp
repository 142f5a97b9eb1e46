#ifndef BALLAST_TRAIN_OPTIMIZER_HPP
#define BALLAST_TRAIN_OPTIMIZER_HPP

/// @file
/// Optimizers as compile-time policies over runtime hyper-parameters.
///
/// The policy (`optim::adamw<weight_decay::independent>`, `optim::lion<…>`, `optim::sgd_momentum<…>`,
/// optionally wrapped in `optim::rms_scaled<…>`) fixes the update rule and the decay mode at compile time;
/// `optimizer_config` holds the numbers, so a sweep over β2, ε or λ never recompiles. `optimizer<O, T>`
/// owns the state buffers (flat, parallel to the model's parameter buffer) and applies one step: for each
/// parameter tensor one fused SIMD pass (`ballast/kernels/elementwise.hpp`) that also applies the global
/// gradient-clipping factor, so clipping costs no extra pass over the gradients.
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
///
/// Directions Δ: AdamW m̂/(√v̂ + ε) with bias correction and ε outside the square root (optax and PyTorch);
/// Lion sign(β1·m + (1−β1)·g) (Chen et al. 2023); SGD the heavy-ball buffer (dampening 0).
///
/// `rms_scaled<O>` is the paper's Adafactor-style parameter-RMS LR scaling (Fig E.14):
/// ρ_g = max(RMS(θ_g), rms_floor), RMS measured per tensor before the step.

#include <array>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <boost/hana/adapt_struct.hpp>
#include <boost/hana/tuple.hpp>

#include <ballast/core/aligned.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/named.hpp>
#include <ballast/core/profile.hpp>
#include <ballast/core/reflect.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/kernels/reduce.hpp>
#include <ballast/model/parameters.hpp>
#include <ballast/policies/parameterisation.hpp>

namespace ballast
{
    using kernels::weight_decay;

    /// Which parameter tensors receive weight decay.
    enum class weight_decay_mask
    {
        all,               ///< every tensor (nanodo's default, so the paper's; see docs/training.md)
        no_norms_or_biases ///< skip norm scales and biases (the GPT-2/nanoGPT convention)
    };

    template <>
    struct enum_names<weight_decay_mask>
    {
        static constexpr std::array values{ std::pair{ std::string_view("all"), weight_decay_mask::all },
                                            std::pair{ std::string_view("no_norms_or_biases"),
                                                       weight_decay_mask::no_norms_or_biases } };
    };

    /// Does a tensor of this role get weight decay under `mask`?
    constexpr bool decays(policies::param_role role, weight_decay_mask mask) noexcept
    {
        return mask == weight_decay_mask::all ||
               (role != policies::param_role::scale && role != policies::param_role::bias);
    }

    /// The optimizers' runtime numbers, paper defaults (Wortsman et al. 2023 §1: AdamW β = (0.9, 0.95),
    /// ε = 1e-8, independent decay 1e-4, clipping at 1). A number is read only by the optimizer it
    /// belongs to.
    struct optimizer_config
    {
        double beta1 = 0.9;         ///< AdamW and Lion first-moment decay
        double beta2 = 0.95;        ///< AdamW second-moment decay
        double eps = 1e-8;          ///< AdamW ε, outside the square root
        double lion_beta2 = 0.99;   ///< Lion's moment decay (Chen et al. 2023)
        double momentum = 0.9;      ///< SGD heavy-ball momentum
        double weight_decay = 1e-4; ///< λ (meaning depends on the decay mode; coupled AdamW uses ~0.1)
        weight_decay_mask decay_mask = weight_decay_mask::all; ///< which tensors decay
        double rms_floor = 1e-3;                               ///< rms_scaled: ρ = max(RMS(θ), rms_floor)
        double clip = 1.0; ///< global gradient-norm clipping threshold; 0 disables

        bool operator==(const optimizer_config&) const = default;

        void validate() const
        {
            constexpr const char* where = "optimizer_config";
            BALLAST_CHECK(beta1 >= 0 && beta1 < 1, where, "beta1 must be in [0, 1), got ", beta1);
            BALLAST_CHECK(beta2 >= 0 && beta2 < 1, where, "beta2 must be in [0, 1), got ", beta2);
            BALLAST_CHECK(lion_beta2 >= 0 && lion_beta2 < 1, where, "lion_beta2 must be in [0, 1), got ",
                          lion_beta2);
            BALLAST_CHECK(eps >= 0 && std::isfinite(eps), where, "eps must be >= 0, got ", eps);
            BALLAST_CHECK(momentum >= 0 && momentum < 1, where, "momentum must be in [0, 1), got ", momentum);
            BALLAST_CHECK(weight_decay >= 0 && std::isfinite(weight_decay), where,
                          "weight_decay must be >= 0, got ", weight_decay);
            BALLAST_CHECK(rms_floor > 0, where, "rms_floor must be > 0, got ", rms_floor);
            BALLAST_CHECK(clip >= 0 && std::isfinite(clip), where, "clip must be >= 0 (0: off), got ", clip);
        }
    };

    /// The clipping factor for a global gradient norm: min(1, clip/norm), 1 when clipping is off.
    inline double clip_factor(double grad_norm, double clip) noexcept
    {
        return clip > 0 && grad_norm > clip ? clip / grad_norm : 1.0;
    }

    namespace optim
    {
        /// One tensor's step, as the driver hands it to a policy.
        struct tensor_step
        {
            double lr = 0;    ///< s_t·η·μ_g·ρ_g
            double decay = 0; ///< kernel decay coefficient: s_t·λ (independent) or λ (coupled), 0 if masked
            double grad_scale = 1; ///< clipping factor c
            std::int64_t t = 1;    ///< step count, from 1
        };

        /// An optimizer policy: a name, a decay mode, the names of its per-parameter state buffers, and
        /// `update`, one fused pass over a tensor.
        template <class O>
        concept optimizer_policy = requires
        {
            {
                O::name
                } -> std::convertible_to<std::string_view>;
            {
                O::decay
                } -> std::convertible_to<weight_decay>;
            {
                O::param_rms_scaling
                } -> std::convertible_to<bool>;
            O::state_names.size();
        }
        &&requires(float* p, std::array<float*, O::state_names.size()> s, const float* g,
                   const tensor_step& a, const optimizer_config& c)
        {
            O::update(p, s, g, std::size_t{}, a, c);
        };

        namespace detail
        {
            template <weight_decay D>
            constexpr std::string_view decay_suffix() noexcept
            {
                if constexpr (D == weight_decay::independent)
                {
                    return "";
                }
                else if constexpr (D == weight_decay::coupled)
                {
                    return "_coupled";
                }
                else
                {
                    return "_nodecay";
                }
            }

            /// Compile-time concatenation of two string views into static storage.
            template <const std::string_view& A, const std::string_view& B>
            struct concat
            {
                static constexpr auto storage = []
                {
                    std::array<char, A.size() + B.size()> out{};
                    for (std::size_t i = 0; i < A.size(); ++i)
                    {
                        out[i] = A[i];
                    }
                    for (std::size_t i = 0; i < B.size(); ++i)
                    {
                        out[A.size() + i] = B[i];
                    }
                    return out;
                }();
                static constexpr std::string_view value{ storage.data(), storage.size() };
            };

            inline constexpr std::string_view adamw_base = "adamw", lion_base = "lion",
                                              sgd_base = "sgd_momentum", rms_suffix = "+rms";
            template <weight_decay D>
            inline constexpr std::string_view suffix_v = decay_suffix<D>();
        } // namespace detail

        /// AdamW (Loshchilov & Hutter), state m and v. Name: "adamw" (independent decay, the paper's),
        /// "adamw_coupled", "adamw_nodecay".
        template <weight_decay Decay = weight_decay::independent>
        struct adamw
        {
            static constexpr std::string_view name =
              detail::concat<detail::adamw_base, detail::suffix_v<Decay>>::value;
            static constexpr weight_decay decay = Decay;
            static constexpr bool param_rms_scaling = false;
            static constexpr std::array<std::string_view, 2> state_names{ "m", "v" };
            static constexpr bool adam_like = true; ///< state is (m, v): the direction can be re-derived

            template <class T>
            static void update(T* theta, std::array<T*, 2> state, const T* grad, std::size_t n,
                               const tensor_step& a, const optimizer_config& c)
            {
                kernels::adamw_hparams h;
                h.lr = a.lr;
                h.beta1 = c.beta1;
                h.beta2 = c.beta2;
                h.eps = c.eps;
                h.weight_decay = a.decay;
                h.grad_scale = a.grad_scale;
                kernels::adamw_update<Decay>(theta, state[0], state[1], grad, h.with_step(a.t), n);
            }
        };

        /// Lion (Chen et al. 2023), state m. β1 = beta1, β2 = lion_beta2. Name: "lion", "lion_coupled", ….
        template <weight_decay Decay = weight_decay::coupled>
        struct lion
        {
            static constexpr std::string_view name =
              detail::concat<detail::lion_base, detail::suffix_v<Decay>>::value;
            static constexpr weight_decay decay = Decay;
            static constexpr bool param_rms_scaling = false;
            static constexpr std::array<std::string_view, 1> state_names{ "m" };

            template <class T>
            static void update(T* theta, std::array<T*, 1> state, const T* grad, std::size_t n,
                               const tensor_step& a, const optimizer_config& c)
            {
                const kernels::lion_hparams h{ a.lr, c.beta1, c.lion_beta2, a.decay, a.grad_scale };
                kernels::lion_update<Decay>(theta, state[0], grad, h, n);
            }
        };

        /// SGD with heavy-ball momentum, state "momentum". Coupled decay is the L2 penalty in the gradient.
        template <weight_decay Decay = weight_decay::coupled>
        struct sgd_momentum
        {
            static constexpr std::string_view name =
              detail::concat<detail::sgd_base, detail::suffix_v<Decay>>::value;
            static constexpr weight_decay decay = Decay;
            static constexpr bool param_rms_scaling = false;
            static constexpr std::array<std::string_view, 1> state_names{ "momentum" };

            template <class T>
            static void update(T* theta, std::array<T*, 1> state, const T* grad, std::size_t n,
                               const tensor_step& a, const optimizer_config& c)
            {
                const kernels::sgd_hparams h{ a.lr, c.momentum, a.decay, a.grad_scale };
                kernels::sgd_momentum_update<Decay>(theta, state[0], grad, h, n);
            }
        };

        /// Modifier: any optimizer with the paper's parameter-RMS LR scaling (Fig E.14),
        /// lr_g ← lr_g·max(RMS(θ_g), rms_floor). Name: the inner name + "+rms".
        template <optimizer_policy O>
        struct rms_scaled : O
        {
            static constexpr std::string_view name = detail::concat<O::name, detail::rms_suffix>::value;
            static constexpr bool param_rms_scaling = true;
        };
    } // namespace optim

    /// The state and the step of optimizer policy `O` over a model's flat parameter buffer.
    template <optim::optimizer_policy O, class T = float>
    class optimizer
    {
    public:
        using policy = O;
        static constexpr std::size_t state_count = O::state_names.size();

        optimizer(const param_layout& layout, const optimizer_config& cfg)
          : m_layout(layout)
          , m_cfg(cfg)
        {
            m_cfg.validate();
            for (auto& s : m_state)
            {
                s.assign(layout.total(), T(0));
            }
        }

        const optimizer_config& config() const noexcept { return m_cfg; }
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
                optim::tensor_step a;
                a.t = m_steps;
                a.grad_scale = grad_scale;
                a.lr = lr * e.lr_multiplier;
                if constexpr (O::param_rms_scaling)
                {
                    a.lr *= std::max(tensor_rms(params.data() + e.offset, e.size), m_cfg.rms_floor);
                }
                const double lambda = decays(e.role, m_cfg.decay_mask) ? m_cfg.weight_decay : 0.0;
                a.decay = O::decay == weight_decay::independent ? schedule_multiplier * lambda : lambda;
                std::array<T*, state_count> s{};
                for (std::size_t i = 0; i < state_count; ++i)
                {
                    s[i] = m_state[i].data() + e.offset;
                }
                O::update(params.data() + e.offset, s, grads.data() + e.offset, e.size, a, m_cfg);
            }
            BALLAST_PROFILE_MARK("end");
        }

        /// Statistics of the last step's direction for one tensor (diagnostics; AdamW only, NaN otherwise):
        /// the RMS of the unscaled update Δ = m̂/(√v̂ + ε) and the fraction of coordinates where √v̂ < ε
        /// ("ε-dominated": there the update shrinks towards m̂/ε, Wortsman et al. 2023 §3.4).
        struct direction_stat
        {
            double update_rms = std::nan("");
            double eps_fraction = std::nan("");
        };

        direction_stat direction_stats(const param_entry& e) const
        {
            direction_stat out;
            if constexpr (requires { requires O::adam_like; })
            {
                if (m_steps < 1 || e.size == 0)
                {
                    return out;
                }
                const double t = static_cast<double>(m_steps);
                const double bc1 = 1 - std::pow(m_cfg.beta1, t), bc2 = 1 - std::pow(m_cfg.beta2, t);
                const T* m = m_state[0].data() + e.offset;
                const T* v = m_state[1].data() + e.offset;
                double sq = 0;
                std::size_t dominated = 0;
                for (std::size_t i = 0; i < e.size; ++i)
                {
                    const double root = std::sqrt(static_cast<double>(v[i]) / bc2);
                    const double u = (static_cast<double>(m[i]) / bc1) / (root + m_cfg.eps);
                    sq += u * u;
                    dominated += root < m_cfg.eps ? 1 : 0;
                }
                out.update_rms = std::sqrt(sq / static_cast<double>(e.size));
                out.eps_fraction = static_cast<double>(dominated) / static_cast<double>(e.size);
            }
            return out;
        }

        /// RMS of a tensor, √(Σθ²/n), in a fixed summation order.
        static double tensor_rms(const T* x, std::size_t n)
        {
            return n ? std::sqrt(static_cast<double>(kernels::sum_squares(x, n)) / static_cast<double>(n))
                     : 0.0;
        }

    private:
        param_layout m_layout;
        optimizer_config m_cfg;
        std::array<aligned_vector<T>, state_count> m_state;
        std::int64_t m_steps = 0;
    };

    /// The optimizers the tools offer by name (any `optimizer_policy` works in code).
    inline constexpr auto shipped_optimizers =
      boost::hana::tuple_t<optim::adamw<weight_decay::independent>, optim::adamw<weight_decay::coupled>,
                           optim::lion<weight_decay::coupled>, optim::sgd_momentum<weight_decay::coupled>,
                           optim::rms_scaled<optim::adamw<weight_decay::independent>>>;

    /// Call `f(boost::hana::type_c<O>)` for the shipped optimizer named `name` ("adamw", "adamw_coupled",
    /// "lion_coupled", "sgd_momentum_coupled", "adamw+rms"); throws ballast::error listing them otherwise.
    template <class F>
    void with_optimizer(std::string_view name, F&& f)
    {
        with_named(shipped_optimizers, name, "optimizer", static_cast<F&&>(f));
    }
} // namespace ballast

BOOST_HANA_ADAPT_STRUCT(ballast::optimizer_config, beta1, beta2, eps, lion_beta2, momentum, weight_decay,
                        decay_mask, rms_floor, clip);

#endif
