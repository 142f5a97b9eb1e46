// custom_policy: write policies of your own, train with them, and compare them in a study.
//
//   custom_policy CORPUS OUT_DIR      # e.g. custom_policy README.md runs/custom
//
// Three new policies, each one struct that models its family's concept (include/ballast/policies/):
//   - `qk_l2_temperature`, a q/k control (concept `qk_policy`, attention.hpp): every head's q and k are
//     L2-normalised and scaled by a learned temperature;
//   - `algebraic_soft_cap`, a logit soft cap (concept `soft_cap_policy`, attention.hpp):
//     z ← z/√(1 + (z/c)²);
//   - `mean_logit_penalty`, an output loss (concept `output_loss_policy`, output.hpp): cross-entropy plus
//     λ·(mean logit of the token)², written on the shipped fused cross-entropy.
// A recipe derives from a shipped policy set and swaps them in; `trainer` trains it for a few steps, and a
// two-recipe study compares the new q/k control with the paper's qk-LayerNorm over two learning rates
// (both recipes with the new cap and the new loss). Before training, the program checks the three
// backward passes against central finite differences (the law the test suite applies to every shipped
// policy, tests/policies/) and exits 1 if one disagrees. Bad usage exits 2 with one line.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string_view>
#include <type_traits>
#include <vector>

#include <boost/hana/tuple.hpp>

#include <ballast/policies/policy_set.hpp>
#include <ballast/study/grid.hpp>
#include <ballast/study/study.hpp>
#include <ballast/train/trainer.hpp>

/// q, k ← τ·√d_h·x/‖x‖ on each head's d_h-vector x. Every q and k then has RMS τ, and the attention logit
/// s·q·k = τ_q·τ_k·√d_h·cos(q, k) (s = 1/√d_h) is bounded by the learned temperatures instead of growing
/// with the weights: the attention-logit growth of Wortsman et al. 2023 §3.1.1 cannot happen. After Henry
/// et al. 2020, "Query-Key Normalization for Transformers" (arXiv:2010.04245).
///
/// τ is one learned scalar per layer for q and one for k: `scale_size` = 1 makes the model allocate the
/// `blocks.<l>.attn.q_norm.scale` and `k_norm.scale` tensors with one entry each, initialised to 1 like
/// every norm scale. The cache `rstd` ([heads][rows]) holds 1/√(‖x‖² + ε); `mean` is unused.
struct qk_l2_temperature
{
    static constexpr std::string_view name = "qk_l2_temperature";
    static constexpr std::size_t scale_size(std::size_t /*d*/, std::size_t /*dh*/) { return 1; }

    template <class T>
    struct state
    {
        T eps = T(1e-6);
    };
    template <class T>
    static state<T> make_state(const ballast::model_config& cfg)
    {
        return { static_cast<T>(cfg.norm_eps) };
    }

    template <class T>
    static void forward(T* y, std::type_identity_t<T>* /*mean*/, std::type_identity_t<T>* rstd,
                        const std::type_identity_t<T>* x, const std::type_identity_t<T>* tau, std::size_t ld,
                        std::size_t rows, std::size_t heads, std::size_t dh,
                        const state<std::type_identity_t<T>>& s)
    {
        const double gain = static_cast<double>(tau[0]) * std::sqrt(static_cast<double>(dh));
        for (std::size_t r = 0; r < rows; ++r)
        {
            for (std::size_t h = 0; h < heads; ++h)
            {
                const T* xr = x + r * ld + h * dh;
                T* yr = y + r * ld + h * dh;
                double ss = 0;
                for (std::size_t i = 0; i < dh; ++i)
                {
                    ss += static_cast<double>(xr[i]) * static_cast<double>(xr[i]);
                }
                const double rs = 1.0 / std::sqrt(ss + static_cast<double>(s.eps));
                rstd[h * rows + r] = static_cast<T>(rs);
                for (std::size_t i = 0; i < dh; ++i)
                {
                    yr[i] = static_cast<T>(gain * rs * static_cast<double>(xr[i]));
                }
            }
        }
    }

    /// With u = x·rstd and y = τ√d_h·u: dx = τ√d_h·rstd·(dy − u·(u·dy)) (OVERWRITTEN) and
    /// dτ += √d_h·Σ (u·dy) (ACCUMULATED, summed in row then head order: deterministic).
    template <class T>
    static void backward(T* dx, std::type_identity_t<T>* dtau, const std::type_identity_t<T>* dy,
                         const std::type_identity_t<T>* x, const std::type_identity_t<T>* tau,
                         const std::type_identity_t<T>* /*mean*/, const std::type_identity_t<T>* rstd,
                         std::size_t ld, std::size_t rows, std::size_t heads, std::size_t dh,
                         const state<std::type_identity_t<T>>&)
    {
        const double sqrt_dh = std::sqrt(static_cast<double>(dh));
        const double gain = static_cast<double>(tau[0]) * sqrt_dh;
        double dt = 0;
        for (std::size_t r = 0; r < rows; ++r)
        {
            for (std::size_t h = 0; h < heads; ++h)
            {
                const std::size_t o = r * ld + h * dh;
                const double rs = static_cast<double>(rstd[h * rows + r]);
                double ud = 0;
                for (std::size_t i = 0; i < dh; ++i)
                {
                    ud += static_cast<double>(x[o + i]) * rs * static_cast<double>(dy[o + i]);
                }
                for (std::size_t i = 0; i < dh; ++i)
                {
                    const double u = static_cast<double>(x[o + i]) * rs;
                    dx[o + i] = static_cast<T>(gain * rs * (static_cast<double>(dy[o + i]) - u * ud));
                }
                dt += sqrt_dh * ud;
            }
        }
        dtau[0] += static_cast<T>(dt);
    }
};

/// z ← z/√(1 + (z/c)²): like c·tanh(z/c) it is odd, monotone, bounded by c and the identity to first order
/// near 0, but it approaches ±c algebraically, so a logit far beyond c keeps a (small) gradient where tanh's
/// vanishes exponentially. Backward from the capped y: dz/dx = (1 − (y/c)²)^{3/2}.
struct algebraic_soft_cap
{
    static constexpr std::string_view name = "algebraic_soft_cap";
    static constexpr bool active = true;

    template <class T>
    static void forward(T* z, std::size_t n, double c)
    {
        for (std::size_t i = 0; i < n; ++i)
        {
            const double v = static_cast<double>(z[i]) / c;
            // |v| > 1: divide through by |v| so that (z/c)² cannot overflow (±Inf and 1e300 map to ±c).
            const double y =
              std::fabs(v) <= 1 ? v / std::sqrt(1 + v * v) : std::copysign(1 / std::sqrt(1 + 1 / (v * v)), v);
            z[i] = static_cast<T>(c * y);
        }
    }

    template <class T>
    static void backward(T* dz, const std::type_identity_t<T>* y, std::size_t n, double c)
    {
        for (std::size_t i = 0; i < n; ++i)
        {
            const double u = static_cast<double>(y[i]) / c;
            const double r = std::max(0.0, 1 - u * u); // rounding may put |y| a hair above c
            dz[i] = static_cast<T>(static_cast<double>(dz[i]) * r * std::sqrt(r));
        }
    }
};

/// Cross-entropy plus λ·x̄² per token, x̄ the mean of the token's V logits. Softmax is invariant to adding
/// a constant to every logit, so CE leaves x̄ free to drift (with z-loss it is pinned only through log Z);
/// this penalty pins it at 0 directly. The model calls `forward` once per pass with the logits after the
/// output cap (policies/output.hpp says what it must fill): the shipped cross_entropy fills lse, the CE
/// rows and dlogits; the penalty adds its part: d/dx[r, j] of (1/N)·Σ_r λ·x̄_r² is 2·λ·x̄_r/(N·V).
struct mean_logit_penalty
{
    static constexpr std::string_view name = "mean_logit_penalty";
    static constexpr double lambda = 1e-2;

    template <class T>
    static ballast::loss_parts forward(const ballast::policies::loss_args<T>& a)
    {
        ballast::loss_parts out = ballast::policies::cross_entropy::forward(a);
        const double n = static_cast<double>(a.rows), v = static_cast<double>(a.vocab);
        double penalty = 0;
        for (std::size_t r = 0; r < a.rows; ++r) // fixed order: deterministic
        {
            const T* x = a.logits + r * a.vocab;
            double mean = 0;
            for (std::size_t j = 0; j < a.vocab; ++j)
            {
                mean += static_cast<double>(x[j]);
            }
            mean /= v;
            penalty += mean * mean;
            if (a.dlogits != nullptr)
            {
                const T g = static_cast<T>(2 * lambda * mean / (n * v));
                T* d = a.dlogits + r * a.vocab;
                for (std::size_t j = 0; j < a.vocab; ++j)
                {
                    d[j] += g;
                }
            }
        }
        out.aux = lambda * penalty / n;
        out.loss = out.ce + out.aux;
        return out;
    }
};

static_assert(ballast::policies::output_loss_policy<mean_logit_penalty>);
static_assert(ballast::policies::qk_policy<qk_l2_temperature> &&
              ballast::policies::qk_policy<qk_l2_temperature, double>);
static_assert(ballast::policies::soft_cap_policy<algebraic_soft_cap> &&
              ballast::policies::soft_cap_policy<algebraic_soft_cap, double>);

/// The recipe: the paper's baseline (no qk-layernorm) with the new q/k control, the new cap on the
/// output logits (c = model_config::output_soft_cap) and the new loss. Every other slot is inherited.
struct l2_temperature_recipe : ballast::paper_baseline
{
    static constexpr std::string_view name = "l2_temperature";
    using qk = qk_l2_temperature;
    using output_cap = algebraic_soft_cap;
    using output_loss = mean_logit_penalty;
};
static_assert(ballast::policy_set<l2_temperature_recipe>);

namespace
{
    namespace hana = boost::hana;
    namespace st = ballast::study;

    /// ||a − b|| / ||a + b|| between an analytic gradient and central differences of `loss` (step 1e-5).
    double fd_error(const std::vector<double>& analytic, const std::function<double()>& loss,
                    std::vector<double>& x)
    {
        double num = 0, den = 0;
        for (std::size_t i = 0; i < x.size(); ++i)
        {
            const double saved = x[i], h = 1e-5;
            x[i] = saved + h;
            const double lp = loss();
            x[i] = saved - h;
            const double lm = loss();
            x[i] = saved;
            const double fd = (lp - lm) / (2 * h);
            num += (analytic[i] - fd) * (analytic[i] - fd);
            den += (analytic[i] + fd) * (analytic[i] + fd);
        }
        return std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
    }

    /// Backward vs central differences in double, for both policies (loss = Σ w·y; deterministic inputs).
    bool check_gradients()
    {
        const auto wave = [](std::size_t i, double f)
        { return std::sin(0.7 * static_cast<double>(i) * f + 0.3); };
        // q/k control: 3 rows of a [q | k | v] layout, 2 heads of width 4.
        const std::size_t rows = 3, heads = 2, dh = 4, ld = 3 * heads * dh;
        ballast::model_config cfg;
        const auto s = qk_l2_temperature::make_state<double>(cfg);
        std::vector<double> x(rows * ld), w(rows * ld), tau{ 1.3 }, rstd(heads * rows);
        for (std::size_t i = 0; i < x.size(); ++i)
        {
            x[i] = 2 * wave(i, 1.0);
            w[i] = wave(i, 2.3);
        }
        const auto qk_loss = [&]
        {
            std::vector<double> y(rows * ld, 0.0), cache(heads * rows);
            qk_l2_temperature::forward(y.data(), nullptr, cache.data(), x.data(), tau.data(), ld, rows, heads,
                                       dh, s);
            double l = 0;
            for (std::size_t i = 0; i < y.size(); ++i)
            {
                l += w[i] * y[i];
            }
            return l;
        };
        std::vector<double> y(rows * ld, 0.0), dx(rows * ld, 0.0), dtau{ 0.0 };
        qk_l2_temperature::forward(y.data(), nullptr, rstd.data(), x.data(), tau.data(), ld, rows, heads, dh,
                                   s);
        qk_l2_temperature::backward(dx.data(), dtau.data(), w.data(), x.data(), tau.data(), nullptr,
                                    rstd.data(), ld, rows, heads, dh, s);
        const double e_x = fd_error(dx, qk_loss, x), e_tau = fd_error(dtau, qk_loss, tau);

        // Soft cap with c = 2 on logits in [-6, 6].
        std::vector<double> z(25), wz(25);
        for (std::size_t i = 0; i < z.size(); ++i)
        {
            z[i] = 6 * wave(i, 1.7);
            wz[i] = wave(i, 0.9);
        }
        const auto cap_loss = [&]
        {
            auto c = z;
            algebraic_soft_cap::forward(c.data(), c.size(), 2.0);
            double l = 0;
            for (std::size_t i = 0; i < c.size(); ++i)
            {
                l += wz[i] * c[i];
            }
            return l;
        };
        auto capped = z, dz = wz;
        algebraic_soft_cap::forward(capped.data(), capped.size(), 2.0);
        algebraic_soft_cap::backward(dz.data(), capped.data(), dz.size(), 2.0);
        const double e_cap = fd_error(dz, cap_loss, z);

        // The loss: 4 rows of 7 logits around 3 (so the mean-logit penalty is visible).
        const std::size_t lrows = 4, vocab = 7;
        std::vector<double> logits(lrows * vocab), lse(lrows), row_loss(lrows), dlogits(lrows * vocab);
        const std::vector<std::int32_t> targets{ 0, 3, 6, 2 };
        for (std::size_t i = 0; i < logits.size(); ++i)
        {
            logits[i] = 3 + 2 * wave(i, 1.1);
        }
        const auto args = [&](double* d)
        {
            return ballast::policies::loss_args<double>{ .cfg = cfg,
                                                         .logits = logits.data(),
                                                         .targets = targets.data(),
                                                         .rows = lrows,
                                                         .vocab = vocab,
                                                         .lse = lse.data(),
                                                         .row_loss = row_loss.data(),
                                                         .dlogits = d };
        };
        mean_logit_penalty::forward(args(dlogits.data()));
        const double e_loss = fd_error(
          dlogits, [&] { return mean_logit_penalty::forward(args(nullptr)).loss; }, logits);

        // Central differences with h = 1e-5 in double are good to ~1e-10 here; a wrong gradient is O(1).
        const double limit = 1e-7;
        std::printf("gradient check (relative error vs central differences): qk dx %.1e, qk dtau %.1e, cap "
                    "%.1e, loss %.1e\n",
                    e_x, e_tau, e_cap, e_loss);
        return e_x <= limit && e_tau <= limit && e_cap <= limit && e_loss <= limit;
    }

    /// Print the loss every few steps (a callback: any struct with the hooks it wants).
    struct print_loss
    {
        void on_step_end(const ballast::step_info& s) const
        {
            if (s.step % 10 == 0 || s.step + 1 == s.steps)
            {
                std::printf("  step %3zu  loss %.4f (penalty %.2e)  lr %.2e\n", s.step, s.loss.loss,
                            s.loss.aux, s.lr);
            }
        }
    };
} // namespace

int main(int argc, char** argv)
{
    if (argc != 3)
    {
        std::fprintf(stderr, "custom_policy: error: usage: custom_policy CORPUS OUT_DIR\n");
        return 2;
    }
    try
    {
        if (!check_gradients())
        {
            std::fprintf(stderr, "custom_policy: error: a backward pass disagrees with finite differences\n");
            return 1;
        }
        const std::filesystem::path out = argv[2];
        const auto tokens = ballast::load_corpus(argv[1]); // byte-level tokens of a text file

        // 1. Train the recipe for a few steps.
        ballast::model_config model{
            .vocab = 256, .d_model = 32, .n_layers = 1, .n_heads = 4, .context = 32
        };
        ballast::train_config run;
        run.steps = 30;
        run.batch = 4;
        run.seq = 32;
        run.lr = 1e-2;
        run.warmup = 3;
        run.eval_batches = 2;
        const ballast::token_splits data(tokens, model.vocab, run.val_fraction, run.seq, argv[1]);
        ballast::trainer<l2_temperature_recipe, ballast::optim::adamw<>> trainer(
          model, run, ballast::optimizer_config{}, data);
        std::printf("training %s (%s on q/k, %s on the output logits, loss %s):\n",
                    l2_temperature_recipe::name.data(), qk_l2_temperature::name.data(),
                    algebraic_soft_cap::name.data(), mean_logit_penalty::name.data());
        const ballast::run_result r = trainer.run(print_loss{});
        const auto& layout = trainer.model().layout();
        const double tau_q = trainer.model().parameters()[layout.at("blocks.0.attn.q_norm.scale").offset];
        std::printf(
          "validation loss %.4f -> %.4f; learned q temperature of block 0: %.4f (initialised to 1)\n", r.l0,
          r.final_val_loss, tau_q);
        if (r.diverged || !(r.final_val_loss < r.l0) || tau_q == 1.0)
        {
            std::fprintf(stderr, "custom_policy: error: training did not learn (diverged %d)\n",
                         r.diverged ? 1 : 0);
            return 1;
        }

        // 2. A two-recipe study: the new q/k control against the paper's qk-LayerNorm, both with the new
        //    output cap and the new loss (inherited from the base recipe), at two peak learning rates.
        constexpr auto grid = st::policy_grid<l2_temperature_recipe>(
          hana::tuple_t<st::with_qk<"l2_temp", qk_l2_temperature>,
                        st::with_qk<"qk_ln", ballast::policies::qk_norm<ballast::policies::layer_norm>>>);
        st::study_spec spec;
        spec.study.name = "custom_policy";
        spec.study.sizes = { "d32_L1_H4" };
        spec.study.lrs = { 3e-3, 3e-2 };
        spec.model = model;
        spec.train = run;
        spec.train.steps = 20;
        spec.train.warmup = 2;
        spec.out = out / "study";
        st::study_runner runner(st::recipe_grid(grid, hana::tuple_t<ballast::optim::adamw<>>), spec, data);
        const auto runs = runner.run(); // resumable: a second invocation reuses the finished runs
        std::printf("study: %zu runs -> %s\n", runs.size(), runner.results_path().string().c_str());
        for (const auto& g : st::summarise(runs))
        {
            std::printf("  %-14s best loss %.4f at LR %.0e, LR sensitivity %.4f\n", g.recipe.c_str(),
                        g.best_loss, g.best_lr, g.lr_sensitivity);
        }
        return runs.size() == 4 ? 0 : 1;
    }
    catch (const std::exception& e)
    {
        std::fprintf(stderr, "custom_policy: error: %s\n", e.what());
        return 2;
    }
}
