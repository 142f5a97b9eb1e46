// lr_sweep: the paper's headline experiment in miniature. Trains small byte-level transformers on a text
// corpus for each policy set × peak learning rate on the paper's 7-point grid {3e-4 … 3e-1}, and prints the
// final validation loss per LR and the LR sensitivity E_η[min(ℓ(η), ℓ0) − ℓ*] (Wortsman et al. 2023 §2.2).
//
//   lr_sweep --corpus /usr/share/games/fortunes --policies paper_default,paper_baseline --steps 300
//
// The training loop is deliberately short and explicit: AdamW with independent weight decay (the paper's
// default, λ = 1e-4), linear warm-up then cosine decay to 1e-5, global gradient clipping at 1, batches of
// random windows drawn from (seed, step). A run whose loss becomes NaN/Inf is marked diverged and counted as
// ℓ0, as the metric prescribes. (The full trainer, checkpoints and study engine are issues 4 and 6.)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numbers>
#include <sstream>
#include <string>
#include <vector>

#include <ballast/core/parallel.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/kernels/reduce.hpp>
#include <ballast/model/transformer.hpp>
#include <ballast/policies/registry.hpp>
#include <ballast/train/tokens.hpp>

#include "support/cli.hpp"

namespace
{
    struct sweep_options
    {
        std::string corpus = "/usr/share/games/fortunes";
        std::string policies = "paper_default,paper_baseline";
        std::vector<double> lrs = { 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1 };
        std::size_t steps = 300, warmup = 30, batch = 8, seq = 64, eval_batches = 8;
        double min_lr = 1e-5, weight_decay = 1e-4, clip = 1.0, beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
        std::uint64_t seed = 1;
        int threads = 0;
    };

    /// Every regular file of a directory (sorted by name, skipping fortune's .dat/.u8 indexes), or one file,
    /// as byte-level tokens.
    std::vector<std::uint16_t> load_corpus(const std::string& path)
    {
        std::vector<std::filesystem::path> files;
        if (std::filesystem::is_directory(path))
        {
            for (const auto& e : std::filesystem::directory_iterator(path))
            {
                const auto ext = e.path().extension();
                if (e.is_regular_file() && ext != ".dat" && ext != ".u8")
                {
                    files.push_back(e.path());
                }
            }
            std::ranges::sort(files);
        }
        else
        {
            files.emplace_back(path);
        }
        std::vector<std::uint16_t> tokens;
        for (const auto& f : files)
        {
            const auto t = ballast::load_tokens(f);
            tokens.insert(tokens.end(), t.begin(), t.end());
        }
        return tokens;
    }

    /// A batch of `batch` windows of seq+1 tokens starting at positions drawn from (seed, stream).
    void draw_batch(std::span<const std::uint16_t> data, std::size_t batch, std::size_t seq,
                    std::uint64_t seed, std::uint64_t stream, std::vector<std::int32_t>& x,
                    std::vector<std::int32_t>& y)
    {
        ballast::splitmix64 rng(seed, stream);
        x.resize(batch * seq);
        y.resize(batch * seq);
        for (std::size_t b = 0; b < batch; ++b)
        {
            const std::size_t start = rng.below(data.size() - seq - 1);
            for (std::size_t t = 0; t < seq; ++t)
            {
                x[b * seq + t] = data[start + t];
                y[b * seq + t] = data[start + t + 1];
            }
        }
    }

    /// Linear warm-up from 0 to 1, then cosine decay to min_lr/lr (the paper's schedule, "LR" = peak).
    double schedule(std::size_t step, const sweep_options& o, double lr)
    {
        if (step < o.warmup)
        {
            return static_cast<double>(step + 1) / static_cast<double>(o.warmup);
        }
        const double progress = static_cast<double>(step - o.warmup) /
                                static_cast<double>(std::max<std::size_t>(1, o.steps - o.warmup));
        const double floor = std::min(1.0, o.min_lr / lr);
        return floor + (1.0 - floor) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
    }

    struct run_result
    {
        double lr = 0, final_loss = 0, l0 = 0;
        bool diverged = false;
        std::size_t diverged_step = 0;
    };

    template <class S>
    double eval_loss(ballast::transformer<S, float>& model, std::span<const std::uint16_t> val,
                     const sweep_options& o)
    {
        std::vector<std::int32_t> x, y;
        double total = 0;
        for (std::size_t i = 0; i < o.eval_batches; ++i)
        {
            draw_batch(val, o.batch, o.seq, o.seed, 1'000'000 + i, x, y); // fixed validation windows
            total += model.evaluate(x, y, o.batch, o.seq).loss;
        }
        return total / static_cast<double>(o.eval_batches);
    }

    template <class S>
    run_result train_one(const ballast::model_config& cfg, const sweep_options& o, double lr,
                         std::span<const std::uint16_t> train, std::span<const std::uint16_t> val)
    {
        ballast::transformer<S, float> model(cfg);
        model.init(o.seed);
        run_result r;
        r.lr = lr;
        r.l0 = eval_loss(model, val, o);
        const std::size_t n = model.parameters().size();
        ballast::aligned_vector<float> m(n, 0.f), v(n, 0.f);
        std::vector<std::int32_t> x, y;
        for (std::size_t step = 0; step < o.steps; ++step)
        {
            draw_batch(train, o.batch, o.seq, o.seed, step, x, y);
            const auto loss = model.forward_backward(x, y, o.batch, o.seq);
            auto grads = model.gradients();
            const double norm =
              std::sqrt(static_cast<double>(ballast::kernels::sum_squares(grads.data(), n)));
            if (!std::isfinite(loss.loss) || !std::isfinite(norm))
            {
                r.diverged = true;
                r.diverged_step = step;
                r.final_loss = r.l0;
                return r;
            }
            if (norm > o.clip)
            {
                ballast::kernels::scale(grads.data(), static_cast<float>(o.clip / norm), n);
            }
            const double s = schedule(step, o, lr);
            for (const auto& e : model.layout().entries())
            {
                ballast::kernels::adamw_hparams h;
                h.lr = s * lr * e.lr_multiplier;
                h.beta1 = o.beta1;
                h.beta2 = o.beta2;
                h.eps = o.eps;
                const bool decay = e.role != ballast::policies::param_role::scale &&
                                   e.role != ballast::policies::param_role::bias;
                h.weight_decay = decay ? s * o.weight_decay : 0.0;
                h = h.with_step(static_cast<std::int64_t>(step + 1));
                ballast::kernels::adamw_update<ballast::kernels::weight_decay::independent>(
                  model.parameters().data() + e.offset, m.data() + e.offset, v.data() + e.offset,
                  grads.data() + e.offset, h, e.size);
            }
        }
        r.final_loss = eval_loss(model, val, o);
        if (!std::isfinite(r.final_loss))
        {
            r.diverged = true;
            r.diverged_step = o.steps;
            r.final_loss = r.l0;
        }
        return r;
    }

    /// LR sensitivity: mean over the grid of min(ℓ(η), ℓ0) − ℓ*; diverged runs count as ℓ0.
    double lr_sensitivity(const std::vector<run_result>& runs)
    {
        double best = runs.front().l0, l0 = runs.front().l0;
        for (const auto& r : runs)
        {
            best = std::min(best, r.final_loss);
        }
        double total = 0;
        for (const auto& r : runs)
        {
            total += std::min(r.final_loss, l0) - best;
        }
        return total / static_cast<double>(runs.size());
    }
} // namespace

int main(int argc, char** argv)
{
    CLI::App app{ "lr_sweep: final validation loss vs peak LR per policy set, and LR sensitivity",
                  "lr_sweep" };
    sweep_options o;
    ballast::model_config cfg;
    cfg.vocab = 256;
    cfg.d_model = 64;
    cfg.n_layers = 2;
    cfg.n_heads = 4;
    cfg.context = 64;
    app.add_option("--corpus", o.corpus, "text file, token file, or directory of text files")
      ->capture_default_str();
    app.add_option("--policies", o.policies, "comma-separated policy sets")->capture_default_str();
    app.add_option("--lrs", o.lrs, "peak learning rates")->delimiter(',');
    app.add_option("--steps", o.steps)->capture_default_str();
    app.add_option("--warmup", o.warmup)->capture_default_str();
    app.add_option("--batch", o.batch)->capture_default_str();
    app.add_option("--seq", o.seq)->capture_default_str();
    app.add_option("--eval-batches", o.eval_batches)->capture_default_str();
    app.add_option("--weight-decay", o.weight_decay, "independent weight decay λ")->capture_default_str();
    app.add_option("--seed", o.seed)->capture_default_str();
    app.add_option("--threads", o.threads, "OpenMP threads (0: all)")->capture_default_str();
    ballast::cli::add_reflected_options(app, cfg, "Model");
    if (const int rc = ballast::cli::parse(app, argc, argv); rc >= 0)
    {
        return rc;
    }
    return ballast::cli::run_main(
      "lr_sweep",
      [&]
      {
          if (o.threads > 0)
          {
              ballast::set_num_threads(o.threads);
          }
          BALLAST_CHECK(o.seq <= cfg.context, "lr_sweep", "--seq ", o.seq, " exceeds --context ",
                        cfg.context);
          BALLAST_CHECK(o.steps > o.warmup, "lr_sweep", "--steps must exceed --warmup");
          const auto tokens = load_corpus(o.corpus);
          BALLAST_CHECK(tokens.size() >= 20 * (o.seq + 1), "lr_sweep", "corpus '", o.corpus, "' has ",
                        tokens.size(), " tokens, too few for windows of ", o.seq + 1);
          const std::size_t split =
            tokens.size() - tokens.size() / 10; // last 10% is validation, never trained on
          const std::span<const std::uint16_t> train(tokens.data(), split),
            val(tokens.data() + split, tokens.size() - split);
          std::printf(
            "corpus %s: %zu tokens (%zu train, %zu validation) | model d=%zu L=%zu H=%zu | %zu steps x %zu x "
            "%zu tokens | %d threads\n",
            o.corpus.c_str(), tokens.size(), train.size(), val.size(), cfg.d_model, cfg.n_layers, cfg.n_heads,
            o.steps, o.batch, o.seq, ballast::num_threads());

          std::vector<std::string> names;
          std::stringstream ss(o.policies);
          for (std::string name; std::getline(ss, name, ',');)
          {
              names.push_back(name);
          }
          std::printf("\n%-16s", "final val loss");
          for (const double lr : o.lrs)
          {
              std::printf(" %9.0e", lr);
          }
          std::printf(" | %8s %8s %8s\n", "l0", "best", "LR sens");
          const auto t0 = std::chrono::steady_clock::now();
          for (const auto& name : names)
          {
              ballast::with_policy_set(
                name,
                [&](auto t)
                {
                    using S = typename decltype(t)::type;
                    std::vector<run_result> runs;
                    std::printf("%-16s", name.c_str());
                    std::fflush(stdout);
                    for (const double lr : o.lrs)
                    {
                        runs.push_back(train_one<S>(cfg, o, lr, train, val));
                        if (runs.back().diverged)
                        {
                            std::printf(" %9s", ("div@" + std::to_string(runs.back().diverged_step)).c_str());
                        }
                        else
                        {
                            std::printf(" %9.4f", runs.back().final_loss);
                        }
                        std::fflush(stdout);
                    }
                    double best = runs.front().l0;
                    for (const auto& r : runs)
                    {
                        best = std::min(best, r.final_loss);
                    }
                    std::printf(" | %8.4f %8.4f %8.4f\n", runs.front().l0, best, lr_sensitivity(runs));
                });
          }
          const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          std::printf("\n%zu runs in %.1f s. LR sensitivity = mean over the LR grid of min(loss, l0) - best "
                      "(Wortsman et al. 2023); diverged runs count as l0.\n",
                      names.size() * o.lrs.size(), secs);
          return 0;
      });
}
