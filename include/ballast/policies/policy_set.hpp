#ifndef BALLAST_POLICIES_POLICY_SET_HPP
#define BALLAST_POLICIES_POLICY_SET_HPP

/// @file
/// Named policy sets: one choice per family, bundled in a struct. A new recipe derives from an existing
/// one and overrides only what differs (and its `name`):
/// @code
/// struct my_recipe : ballast::paper_default {
///     static constexpr std::string_view name = "my_recipe";
///     using qk = ballast::policies::qk_norm<ballast::policies::rms_norm>;
/// };
/// @endcode
///
/// | set               | norm            | position | qk                    | attn cap | loss   | out cap | param      | bias | head   |
/// |-------------------|-----------------|----------|-----------------------|----------|--------|---------|------------|------|--------|
/// | `paper_default`   | layer_norm      | rope     | qk LayerNorm per head | none     | z_loss | none    | standard   | no   | untied |
/// | `paper_baseline`  | layer_norm      | rope     | none                  | none     | z_loss | none    | standard   | no   | untied |
/// | `no_zloss`        | layer_norm      | rope     | qk LayerNorm per head | none     | CE     | none    | standard   | no   | untied |
/// | `gpt2_like`       | layer_norm_bias | learned  | none                  | none     | CE     | none    | standard   | yes  | tied   |
/// | `mup_recipe`      | layer_norm      | rope     | qk LayerNorm per head | none     | z_loss | none    | mup_simple | no   | untied |
/// | `mup_full_recipe` | layer_norm      | rope     | qk LayerNorm per head | none     | z_loss | none    | mup_full   | no   | untied |
/// | `soft_capped`     | rms_norm        | rope     | none                  | tanh     | z_loss | tanh    | standard   | no   | untied |
/// | `forced_scale`    | layer_norm      | rope     | forced √κ RMS         | none     | CE     | none    | standard   | no   | untied |
/// | `swiglu_recipe`   | layer_norm      | rope     | qk LayerNorm per head | none     | z_loss | none    | standard   | no   | untied |
///
/// `squared_relu_attention` is `paper_baseline` (no qk control) with the optional `attention_probs` slot
/// (policies/attention.hpp) set to relu(z)²/√T instead of the softmax; every other set uses the softmax.
///
/// All use GELU (tanh form) except `swiglu_recipe` (SwiGLU, policies/swiglu.hpp), and the paper's defaults
/// for every number (model_config).

#include <array>
#include <string_view>
#include <type_traits>

#include <ballast/policies/activation.hpp>
#include <ballast/policies/attention.hpp>
#include <ballast/policies/norm.hpp>
#include <ballast/policies/output.hpp>
#include <ballast/policies/parameterisation.hpp>
#include <ballast/policies/position.hpp>
#include <ballast/policies/structure.hpp>
#include <ballast/policies/swiglu.hpp>

/// The slot list, declared once: X(slot, concept) for every slot of a policy set, in table order. The
/// `policy_set` concept, `policy_slot_names`, the study's grid setters (`with_<slot>`, study/grid.hpp) and
/// the model's aliases (`transformer<P>::<slot>_policy`) are all generated from it; a new slot is one line
/// here (plus its family header).
#define BALLAST_POLICY_SLOTS(X)                                                                              \
    X(norm, norm_policy)                                                                                     \
    X(position, position_policy)                                                                             \
    X(qk, qk_policy)                                                                                         \
    X(attention_cap, soft_cap_policy)                                                                        \
    X(output_loss, output_loss_policy)                                                                       \
    X(output_cap, soft_cap_policy)                                                                           \
    X(parameterisation, param_policy)                                                                        \
    X(bias, bias_policy)                                                                                     \
    X(head, head_policy)                                                                                     \
    X(activation, activation_policy)

namespace ballast
{
#define BALLAST_POLICY_SET_SLOT(slot, concept_) &&policies::concept_<typename S::slot>
    /// A complete policy set: a name and every slot of BALLAST_POLICY_SLOTS present, each a model of its
    /// family's concept.
    template <class S>
    concept policy_set = requires
    {
        {
            S::name
            } -> std::convertible_to<std::string_view>;
    }
    BALLAST_POLICY_SLOTS(BALLAST_POLICY_SET_SLOT);
#undef BALLAST_POLICY_SET_SLOT

#define BALLAST_POLICY_SLOT_NAME(slot, concept_) std::string_view(#slot),
    /// The slot names, in BALLAST_POLICY_SLOTS order.
    inline constexpr std::array policy_slot_names{ BALLAST_POLICY_SLOTS(BALLAST_POLICY_SLOT_NAME) };
#undef BALLAST_POLICY_SLOT_NAME

    /// Combinations that compile but make no sense fail here with a readable message.
    template <policy_set S>
    struct policy_set_checks
    {
        static_assert(
          !S::head::tied || std::is_same_v<typename S::parameterisation, policies::standard_param>,
          "policy set: tied_head needs standard_param. µParam gives the head and the embedding different "
          "LR multipliers (and mup_full a different init), which one tied tensor cannot have; use "
          "untied_head");
        static constexpr bool ok = true;
    };

    /// The paper's default recipe (Wortsman et al. 2023 §2.1): pre-LN with scale-only LayerNorm, RoPE,
    /// per-head qk-LayerNorm, z-loss 1e-4, standard parameterisation, no biases, untied head.
    struct paper_default
    {
        static constexpr std::string_view name = "paper_default";
        using norm = policies::layer_norm;
        using position = policies::rope;
        using qk = policies::qk_norm<policies::layer_norm, policies::qk_scope::per_head>;
        using attention_cap = policies::no_soft_cap;
        using output_loss = policies::z_loss;
        using output_cap = policies::no_soft_cap;
        using parameterisation = policies::standard_param;
        using bias = policies::no_bias;
        using head = policies::untied_head;
        using activation = policies::gelu_tanh;
    };

    /// The paper's ablation baseline: the default recipe without qk-layernorm.
    struct paper_baseline : paper_default
    {
        static constexpr std::string_view name = "paper_baseline";
        using qk = policies::no_qk_control;
    };

    /// The default recipe without z-loss (the output-divergence ablation).
    struct no_zloss : paper_default
    {
        static constexpr std::string_view name = "no_zloss";
        using output_loss = policies::cross_entropy;
    };

    /// A GPT-2-like recipe: LayerNorm with bias, learned positions, biases, tied embeddings, plain CE.
    struct gpt2_like : paper_default
    {
        static constexpr std::string_view name = "gpt2_like";
        using norm = policies::layer_norm_bias;
        using position = policies::learned_position;
        using qk = policies::no_qk_control;
        using output_loss = policies::cross_entropy;
        using bias = policies::with_bias;
        using head = policies::tied_head;
    };

    /// The paper's µParam (simple) recipe with qk-norm and z-loss (Fig 8).
    struct mup_recipe : paper_default
    {
        static constexpr std::string_view name = "mup_recipe";
        using parameterisation = policies::mup_simple;
    };

    /// µParam (full) with qk-norm (Fig E.5: trains at LR 1).
    struct mup_full_recipe : paper_default
    {
        static constexpr std::string_view name = "mup_full_recipe";
        using parameterisation = policies::mup_full;
    };

    /// Gemma-2-style soft-capping of attention and output logits instead of qk-norm, with RMSNorm.
    struct soft_capped : paper_default
    {
        static constexpr std::string_view name = "soft_capped";
        using norm = policies::rms_norm;
        using qk = policies::no_qk_control;
        using attention_cap = policies::tanh_soft_cap;
        using output_cap = policies::tanh_soft_cap;
    };

    /// The paper's forced-logit-scale experiment (Fig 10): q and k RMS fixed to √κ.
    struct forced_scale : paper_default
    {
        static constexpr std::string_view name = "forced_scale";
        using qk = policies::forced_logit_scale;
        using output_loss = policies::cross_entropy;
    };

    /// The paper's default recipe with a SwiGLU MLP (Shazeer 2020) of hidden width round(2/3·mlp_ratio·d).
    struct swiglu_recipe : paper_default
    {
        static constexpr std::string_view name = "swiglu_recipe";
        using activation = policies::swiglu;
    };

    static_assert(policy_set<paper_default> && policy_set<paper_baseline> && policy_set<no_zloss> &&
                  policy_set<gpt2_like> && policy_set<mup_recipe> && policy_set<mup_full_recipe> &&
                  policy_set<soft_capped> && policy_set<forced_scale> && policy_set<swiglu_recipe>);

    /// Claim 7 (Fig E.11): the paper's baseline (no qk-layernorm) with pointwise squared-ReLU attention,
    /// P = relu(z)²/√T, instead of the softmax: attention-logit growth without qk-LN is not a softmax effect.
    struct squared_relu_attention : paper_baseline
    {
        static constexpr std::string_view name = "squared_relu_attention";
        using attention_probs = policies::squared_relu_attention;
    };
    static_assert(policy_set<squared_relu_attention>);
} // namespace ballast

#endif
