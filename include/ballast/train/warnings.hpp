#ifndef BALLAST_TRAIN_WARNINGS_HPP
#define BALLAST_TRAIN_WARNINGS_HPP

/// @file
/// Early-warning rules over recorded diagnostics (docs/diagnostics.md): the signals that precede the
/// paper's two instabilities and the ε-collapse, evaluated on the fly at every recorded step.
///
/// | rule                   | fires when                                      | paper               |
/// |------------------------|-------------------------------------------------|---------------------|
/// | `attn_logit_threshold` | the max attention logit of any layer exceeds    | §3.1.1: runs above  |
/// |                        | `attn_logit_threshold` (1e4)                    | 1e4 diverged        |
/// | `attn_logit_growth`    | it grew by more than `attn_logit_growth`×       | Fig 2: growth       |
/// |                        | (default 10) since the previous recorded step,  | precedes divergence |
/// |                        | from at least `attn_logit_floor` (default 10)   |                     |
/// | `log_z_drift`          | the mean log Z fell below `log_z_bound` (−10)   | §3.1.2, Fig 4       |
/// | `eps_collapse`         | a tensor's unscaled update RMS is below         | §3.4, Figs 11, 13   |
/// |                        | `update_rms_floor` (0.1) while its gradient RMS |                     |
/// |                        | is below `eps_margin`·ε (default 100·ε)         |                     |
///
/// Each rule reports once per run (its first firing), so a log holds the onset, not a flood.

#include <array>
#include <cmath>
#include <cstddef>
#include <set>
#include <string>
#include <vector>

#include <boost/hana/adapt_struct.hpp>
#include <nlohmann/json.hpp>

#include <ballast/core/json.hpp>
#include <ballast/core/reflect.hpp>

namespace ballast
{
    /// Thresholds of the early-warning rules (reflected; part of run control: they change logs, not results).
    struct warning_config
    {
        double attn_logit_threshold = 1e4;
        double attn_logit_growth = 10.0;
        double attn_logit_floor = 10.0;
        double log_z_bound = -10.0;
        double update_rms_floor = 0.1;
        double eps_margin = 100.0;

        bool operator==(const warning_config&) const = default;
    };

    /// One fired rule.
    struct early_warning
    {
        std::string rule;
        std::size_t step = 0;
        double value = 0, threshold = 0;
        std::string where; ///< layer index or tensor name, when the rule is local

        nlohmann::json to_json() const
        {
            return { { "type", "warning" }, { "rule", rule },           { "step", step },
                     { "value", value },    { "threshold", threshold }, { "where", where } };
        }
    };

    /// Evaluates the rules on successive recorded diagnostics (the "diag" objects of docs/diagnostics.md).
    class early_warnings
    {
    public:
        explicit early_warnings(warning_config c = {}, double eps = 1e-8)
          : m_cfg(c)
          , m_eps(eps)
        {
        }

        /// The rules that fire for the first time at this recorded step.
        std::vector<early_warning> check(std::size_t step, const nlohmann::json& diag)
        {
            std::vector<early_warning> out;
            const auto fire = [&](const char* rule, double value, double threshold, std::string where)
            {
                if (m_fired.insert(rule).second)
                {
                    out.push_back({ rule, step, value, threshold, std::move(where) });
                }
            };
            const auto num = [](const nlohmann::json& j, const char* k) { return number_or_nan(j, k); };
            // Attention logits, per layer.
            std::vector<double> logits;
            if (const auto it = diag.find("layers"); it != diag.end() && it->is_array())
            {
                for (std::size_t l = 0; l < it->size(); ++l)
                {
                    const double v = num((*it)[l], "max_logit");
                    logits.push_back(v);
                    if (v > m_cfg.attn_logit_threshold)
                    {
                        fire("attn_logit_threshold", v, m_cfg.attn_logit_threshold,
                             "layer " + std::to_string(l));
                    }
                    if (l < m_prev_logits.size() && m_prev_logits[l] >= m_cfg.attn_logit_floor &&
                        v > m_cfg.attn_logit_growth * m_prev_logits[l])
                    {
                        fire("attn_logit_growth", v / m_prev_logits[l], m_cfg.attn_logit_growth,
                             "layer " + std::to_string(l));
                    }
                }
            }
            m_prev_logits = std::move(logits);
            // Output logits.
            if (const double z = num(diag, "log_z_mean"); z < m_cfg.log_z_bound)
            {
                fire("log_z_drift", z, m_cfg.log_z_bound, "");
            }
            // ε-collapse, per tensor.
            if (const auto it = diag.find("tensors"); it != diag.end() && it->is_object())
            {
                for (const auto& [name, t] : it->items())
                {
                    const double u = num(t, "update_rms"), g = num(t, "grad_rms");
                    if (u < m_cfg.update_rms_floor && g < m_cfg.eps_margin * m_eps)
                    {
                        fire("eps_collapse", u, m_cfg.update_rms_floor, name);
                    }
                }
            }
            return out;
        }

    private:
        warning_config m_cfg;
        double m_eps;
        std::vector<double> m_prev_logits;
        std::set<std::string> m_fired;
    };
} // namespace ballast

BOOST_HANA_ADAPT_STRUCT(ballast::warning_config, attn_logit_threshold, attn_logit_growth, attn_logit_floor,
                        log_z_bound, update_rms_floor, eps_margin);

template <>
struct ballast::field_docs<ballast::warning_config>
{
    static constexpr std::array<field_doc, 6> fields{ {
      { "attn_logit_threshold", "warn when any layer's max attention logit exceeds this (paper 3.1.1: runs "
                                "above 1e4 diverged)" },
      { "attn_logit_growth", "warn when a layer's max attention logit grew by more than this factor since "
                             "the previous recorded step" },
      { "attn_logit_floor", "the growth rule applies only from a previous max logit of at least this" },
      { "log_z_bound", "warn when the mean log Z of the output logits falls below this (paper 3.1.2)" },
      { "update_rms_floor", "eps-collapse: warn when a tensor's unscaled update RMS is below this ..." },
      { "eps_margin", "... while its gradient RMS is below this x AdamW eps (paper 3.4)" },
    } };
};
static_assert(ballast::documented<ballast::warning_config>);

#endif
