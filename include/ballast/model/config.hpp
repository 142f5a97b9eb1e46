#ifndef BALLAST_MODEL_CONFIG_HPP
#define BALLAST_MODEL_CONFIG_HPP

/// @file
/// The model's runtime numbers: dimensions and every policy's hyperparameters, in one aggregate with
/// defaults from the paper (Wortsman et al. 2023, §1). Policies choose *which* computation runs at compile
/// time; this struct holds the numbers they use, so sweeps never recompile. A number is read only by the
/// policy that needs it (the z-loss coefficient only when the policy set has z-loss, and so on).

#include <array>
#include <cstddef>
#include <cstdint>

#include <boost/hana/adapt_struct.hpp>

#include <ballast/core/config.hpp>
#include <ballast/core/reflect.hpp>

namespace ballast
{
    struct model_config
    {
        // -- dimensions ---------------------------------------------------------------------------------
        std::size_t vocab = 256;   ///< V: token ids are in [0, vocab)
        std::size_t d_model = 128; ///< d: residual width; must be divisible by n_heads
        std::size_t n_layers = 2;  ///< L: transformer blocks; 0 = the bigram baseline (embed → final norm → head)
        std::size_t n_heads = 2;   ///< H: attention heads; head width d_h = d_model / n_heads
        std::size_t context = 64;  ///< maximum sequence length T
        std::size_t mlp_ratio = 4; ///< MLP hidden width = mlp_ratio * d_model

        // -- policy numbers -------------------------------------------------------------------------------
        double norm_eps = 1e-6;        ///< ε of every LayerNorm/RMSNorm, including qk-norm (Flax default)
        double rope_base = 10000.0;    ///< RoPE θ base
        double kappa = 1.0;            ///< forced logit scale κ: q and k RMS set to √κ (paper Fig 10)
        double attn_soft_cap = 50.0;   ///< c in c·tanh(z/c) on attention logits (soft-cap policy only)
        double output_soft_cap = 30.0; ///< c in c·tanh(y/c) on output logits (output soft-cap policy only)
        double zloss_coef = 1e-4;      ///< coefficient of coef·(log Z)² per token (z-loss policy only)
        double mup_base_width = 256;   ///< µParam: width at which every LR multiplier is 1

        std::size_t head_dim() const noexcept { return n_heads ? d_model / n_heads : 0; }
        std::size_t mlp_width() const noexcept { return mlp_ratio * d_model; }

        bool operator==(const model_config&) const = default;

        /// Throw ballast::error with a message naming the first invalid field.
        void validate() const
        {
            constexpr const char* where = "model_config";
            BALLAST_CHECK(vocab >= 2, where, "vocab must be >= 2, got ", vocab);
            BALLAST_CHECK(d_model >= 1, where, "d_model must be >= 1, got ", d_model);
            // n_layers = 0 is valid: the 0-layer bigram baseline of the paper's Fig 10 (claim 21).
            BALLAST_CHECK(n_heads >= 1, where, "n_heads must be >= 1, got ", n_heads);
            BALLAST_CHECK(d_model % n_heads == 0, where, "d_model (", d_model,
                          ") is not divisible by n_heads (", n_heads, ")");
            BALLAST_CHECK(context >= 1, where, "context must be >= 1, got ", context);
            BALLAST_CHECK(mlp_ratio >= 1, where, "mlp_ratio must be >= 1, got ", mlp_ratio);
            BALLAST_CHECK(norm_eps > 0, where, "norm_eps must be > 0, got ", norm_eps);
            BALLAST_CHECK(rope_base > 1, where, "rope_base must be > 1, got ", rope_base);
            BALLAST_CHECK(kappa > 0, where, "kappa must be > 0, got ", kappa);
            BALLAST_CHECK(attn_soft_cap > 0, where, "attn_soft_cap must be > 0, got ", attn_soft_cap);
            BALLAST_CHECK(output_soft_cap > 0, where, "output_soft_cap must be > 0, got ", output_soft_cap);
            BALLAST_CHECK(zloss_coef >= 0, where, "zloss_coef must be >= 0, got ", zloss_coef);
            BALLAST_CHECK(mup_base_width > 0, where, "mup_base_width must be > 0, got ", mup_base_width);
            // Every tensor and table size is a product of these numbers. Bound them in double, which
            // cannot wrap: below 2^56 elements every integer product is exact, and the memory check
            // (trainer, activation store) refuses what does not fit the machine.
            const double d = static_cast<double>(d_model), f = static_cast<double>(mlp_ratio) * d;
            const double params = static_cast<double>(n_layers) * (4 * d * d + 3 * f * d + 16 * d) +
                                  2 * static_cast<double>(vocab) * d + static_cast<double>(context) * d;
            BALLAST_CHECK(params < 0x1p56, where, "vocab, d_model, n_layers, mlp_ratio and context give about ",
                          params, " parameters and table entries, more than any machine holds");
        }
    };
} // namespace ballast

BOOST_HANA_ADAPT_STRUCT(ballast::model_config, vocab, d_model, n_layers, n_heads, context, mlp_ratio,
                        norm_eps, rope_base, kappa, attn_soft_cap, output_soft_cap, zloss_coef,
                        mup_base_width);

template <>
struct ballast::field_docs<ballast::model_config>
{
    static constexpr std::array<field_doc, 13> fields{ {
      { "vocab", "vocabulary size V: token ids are in [0, V) (256 for the byte corpora); >= 2" },
      { "d_model", "residual width d; a multiple of --n-heads" },
      { "n_layers", "number of transformer blocks L (0: the bigram baseline, embedding -> final norm -> head)" },
      { "n_heads", "attention heads H; head width is d_model / n_heads" },
      { "context", "maximum sequence length T in tokens (the RoPE table and --seq are bounded by it)" },
      { "mlp_ratio", "MLP hidden width as a multiple of d_model; >= 1" },
      { "norm_eps", "epsilon of every LayerNorm/RMSNorm, including qk-norm; > 0" },
      { "rope_base", "RoPE frequency base theta; > 1" },
      { "kappa", "forced attention-logit scale kappa: q and k RMS are set to sqrt(kappa) (forced-scale "
                 "qk control only, paper Fig 10); > 0" },
      { "attn_soft_cap", "c in c*tanh(z/c) on the attention logits (attention soft-cap policy only); > 0" },
      { "output_soft_cap", "c in c*tanh(y/c) on the output logits (output soft-cap policy only); > 0" },
      { "zloss_coef",
        "coefficient of coef*(log Z)^2 per token added to the loss (z-loss policy only); >= 0" },
      { "mup_base_width", "muParam: the width at which every LR multiplier is 1 (muParam policy only); > 0" },
    } };
};
static_assert(ballast::documented<ballast::model_config>);

#endif
