// ballast_model: run one forward and backward pass of a ballast transformer and write everything another
// framework needs to check it: loss (CE and z-loss parts), logits' log Z per token, and every gradient.
//
//   ballast_model --policy paper_default --d-model 64 --n-layers 2 --n-heads 4 --context 32
//                 --seed 1 --tokens corpus.txt --batch 4 --seq 32 --out result.safetensors
//                 [--weights in.safetensors] [--save-weights init.safetensors] [--double]
//
// Tokens come from a token file (llm.c format) or any text file (byte-level). The first batch·(seq+1)
// tokens form `batch` windows; targets are the inputs shifted by one. Output safetensors tensors:
// loss, ce, aux [1]; log_z [batch, seq]; tokens, targets [batch, seq] (I64); grad.<name> for every
// parameter; metadata: policy_set, model_config (JSON).
#include <cstdio>
#include <string>
#include <vector>

#include <ballast/core/memory.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/model/transformer.hpp>
#include <ballast/policies/registry.hpp>
#include <ballast/train/tokens.hpp>

#include "support/cli.hpp"

namespace
{
    struct options
    {
        std::string policy = "paper_default";
        std::string tokens, out, weights, save_weights;
        std::uint64_t seed = 0;
        std::size_t batch = 2, seq = 16;
        bool use_double = false;
    };

    std::string policy_names()
    {
        std::string s;
        for (const auto& n : ballast::policy_set_names())
        {
            s += (s.empty() ? "" : ", ") + n;
        }
        return s;
    }

    template <class S, class T>
    int run(const ballast::model_config& cfg, const options& o)
    {
        using model_t = ballast::transformer<S, T>;
        BALLAST_CHECK(o.seq >= 1 && o.seq <= cfg.context, "ballast_model",
                      "--seq must be in [1, context = ", cfg.context, "], got ", o.seq);
        BALLAST_CHECK(o.batch >= 1, "ballast_model", "--batch must be >= 1");
        // Everything this pass allocates, refused up front when the sizes overflow or do not fit.
        ballast::check_fits(
          model_t::estimate_memory(cfg, o.batch, o.seq, static_cast<std::size_t>(ballast::num_threads()))
            .bytes(),
          "the model (parameters, gradients and activations)");
        model_t model(cfg);
        if (!o.weights.empty())
        {
            model.load(o.weights);
        }
        else
        {
            model.init(o.seed);
        }
        if (!o.save_weights.empty())
        {
            model.save(o.save_weights);
        }
        const auto all = ballast::load_tokens(o.tokens);
        const std::size_t need = o.batch * o.seq + 1; // cannot wrap: the activations hold batch*seq*vocab
        BALLAST_CHECK(all.size() >= need, "ballast_model", "'", o.tokens, "' holds ", all.size(),
                      " tokens, fewer than batch*seq+1 = ", need);
        std::vector<std::int32_t> tokens(o.batch * o.seq), targets(o.batch * o.seq);
        for (std::size_t b = 0; b < o.batch; ++b)
        {
            for (std::size_t t = 0; t < o.seq; ++t)
            {
                tokens[b * o.seq + t] = all[b * o.seq + t];
                targets[b * o.seq + t] = all[b * o.seq + t + 1];
            }
        }
        const auto loss = model.forward_backward(tokens, targets, o.batch, o.seq);

        ballast::io::safetensors_writer w;
        const std::size_t one[] = { 1 }, bt[] = { o.batch, o.seq };
        w.add<double>("loss", one, &loss.loss);
        w.add<double>("ce", one, &loss.ce);
        w.add<double>("aux", one, &loss.aux);
        w.add<T>("log_z", bt, model.log_z().data());
        const std::vector<std::int64_t> tok64(tokens.begin(), tokens.end()),
          tgt64(targets.begin(), targets.end());
        w.add<std::int64_t>("tokens", bt, tok64.data());
        w.add<std::int64_t>("targets", bt, tgt64.data());
        for (const auto& e : model.layout().entries())
        {
            w.add<T>("grad." + e.name, std::span<const std::size_t>(e.shape), model.gradient(e.name).data());
        }
        w.set_metadata("policy_set", std::string(S::name));
        w.set_metadata("model_config", model.config_json().dump());
        w.write(o.out);
        std::printf("%s %s: loss %.9g (ce %.9g + aux %.9g) over %zu tokens -> %s\n",
                    std::string(S::name).c_str(), sizeof(T) == 8 ? "double" : "float", loss.loss, loss.ce,
                    loss.aux, tokens.size(), o.out.c_str());
        return 0;
    }
} // namespace

int main(int argc, char** argv)
{
    CLI::App app{ "ballast_model: one forward+backward pass, written as safetensors", "ballast_model" };
    options o;
    ballast::model_config cfg;
    app.add_option("--policy", o.policy, "policy set (the model's compile-time recipe): " + policy_names())
      ->capture_default_str();
    app
      .add_option(
        "--tokens", o.tokens,
        "input: a token file (uint16 ids) or a text file (bytes); the first --batch x --seq tokens are used")
      ->required();
    app.add_option("--out", o.out, "output safetensors file: loss, logits and every parameter's gradient")
      ->required();
    app.add_option("--weights", o.weights,
                   "load the parameters from this safetensors file instead of initialising them from --seed");
    app.add_option("--save-weights", o.save_weights,
                   "also write the parameters used to this safetensors file");
    ballast::cli::add_option(app, "--seed", o.seed, "seed of the parameter initialisation");
    ballast::cli::add_option(app, "--batch", o.batch, "sequences in the batch; >= 1");
    ballast::cli::add_option(app, "--seq", o.seq, "tokens per sequence; 1 .. --context");
    app.add_flag("--double", o.use_double,
                 "compute in double instead of float (for finite-difference checks)");
    ballast::cli::add_reflected_options(app, cfg, "Model");
    if (const int rc = ballast::cli::parse(app, argc, argv); rc >= 0)
    {
        return rc;
    }
    return ballast::cli::run_main("ballast_model",
                                  [&]
                                  {
                                      int rc = 2;
                                      ballast::with_policy_set(o.policy,
                                                               [&](auto t)
                                                               {
                                                                   using S = typename decltype(t)::type;
                                                                   rc = o.use_double ? run<S, double>(cfg, o)
                                                                                     : run<S, float>(cfg, o);
                                                               });
                                      return rc;
                                  });
}
