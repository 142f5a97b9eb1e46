#ifndef BALLAST_STUDY_RESULTS_HPP
#define BALLAST_STUDY_RESULTS_HPP

/// @file
/// A study's results file, `<out>/results.jsonl`: its schema, written and read here and nowhere else.
///
///   {"type": "study", "name": …, "config": {…}}   first line: the study's identity (study/study.hpp)
///   {"type": "run", "key": …, …}                  one line per finished run (`run_line`)
///
/// A run line holds the run's grid coordinates (policy_set, optimizer, size, d_model, n_layers, n_heads,
/// lr, warmup, weight_decay, eps, steps), its parameter counts (params, params_non_embedding), the
/// losses (l0, final_val_loss, best_val_loss: `null` when not finite), divergence (diverged,
/// diverged_step, reason), the evaluations, timing (wall_seconds, train_seconds), the path of its
/// metrics log, its diagnostics summary (`run_diagnostics`) and every config value of the run.
///
/// Crash safety: run lines are appended with one write + fsync (`append_run`), so a crash loses at most
/// the runs in flight and can only tear the last line, which `load_results` drops (and removes from the
/// file, so the next append starts on a line of its own). docs/study.md documents every field.

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include <ballast/core/checked.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/file.hpp>
#include <ballast/core/json.hpp>
#include <ballast/core/jsonl.hpp>
#include <ballast/core/reflect.hpp>
#include <ballast/model/config.hpp>
#include <ballast/model/parameters.hpp>
#include <ballast/train/optimizer.hpp>
#include <ballast/train/run_result.hpp>
#include <ballast/train/train_config.hpp>

namespace ballast::study
{
    /// One model size of the grid.
    struct model_size
    {
        std::size_t d_model = 0, n_layers = 0, n_heads = 0;
        /// "d<d_model>_L<n_layers>_H<n_heads>", e.g. "d64_L2_H4".
        std::string label() const
        {
            // snprintf, not operator+ chains: GCC 12 warns falsely (-Wrestrict) on those when inlined.
            char buf[96];
            std::snprintf(buf, sizeof buf, "d%zu_L%zu_H%zu", d_model, n_layers, n_heads);
            return buf;
        }
    };

    /// Parse "d64_L2_H4" strictly: 'd', digits, "_L", digits, "_H", digits and nothing else (no sign,
    /// blanks, leading zeros or trailing bytes, so an accepted label round-trips through label()), each
    /// value at most 2^20, d_model and heads at least 1 (0 layers is a size: the bigram baseline; the model
    /// config decides whether it is allowed); throws ballast::error otherwise.
    inline model_size parse_size(const std::string& s)
    {
        const auto fail = [&]
        {
            std::string shown; // control bytes escaped, so the one error line stays readable
            for (const char c : s)
            {
                const auto u = static_cast<unsigned char>(c);
                char esc[5];
                std::snprintf(esc, sizeof esc, "\\x%02x", u);
                shown += u < 0x20 || u == 0x7f ? std::string(esc) : std::string(1, c);
            }
            ::ballast::detail::throw_error(
              "study", "model size '", shown,
              "' is not of the form d<d_model>_L<layers>_H<heads>, e.g. d64_L2_H4");
        };
        const auto l = s.find("_L");
        const auto h = l == std::string::npos ? std::string::npos : s.find("_H", l + 2);
        if (s.empty() || s[0] != 'd' || h == std::string::npos)
        {
            fail();
        }
        const auto field = [&](std::size_t begin, std::size_t end, const char* what, bool zero_ok)
        {
            const std::string_view t = std::string_view(s).substr(begin, end - begin);
            if (t.empty() || t.find_first_not_of("0123456789") != std::string_view::npos ||
                (t[0] == '0' && (t.size() > 1 || !zero_ok)))
            {
                fail();
            }
            return parse_unsigned(t, "study", what, std::size_t{ 1 } << 20);
        };
        model_size m;
        m.d_model = field(1, l, "model size d_model", false);
        m.n_layers = field(l + 2, h, "model size n_layers", true);
        m.n_heads = field(h + 2, s.size(), "model size n_heads", false);
        return m;
    }

    /// The specification of one run of the grid.
    struct run_spec
    {
        std::size_t recipe = 0; ///< index into the recipe tuple
        std::string recipe_name, optimizer;
        model_size size;
        double lr = 0;
        std::size_t warmup = 0, steps = 0;
        double weight_decay = 0, eps = 0;

        /// A unique, filesystem-safe key.
        std::string key() const
        {
            char buf[256];
            std::snprintf(buf, sizeof buf, "%s__%s__%s__lr%.6g__wu%zu__wd%.6g__eps%.6g__steps%zu",
                          recipe_name.c_str(), optimizer.c_str(), size.label().c_str(), lr, warmup,
                          weight_decay, eps, steps);
            std::string k = buf;
            for (auto& c : k)
            {
                c =
                  (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-') ? c : '-';
            }
            return k;
        }
    };

    /// One finished run, as recorded in results.jsonl.
    struct run_record
    {
        run_spec spec;
        std::size_t params = 0;               ///< every trained parameter
        std::size_t params_non_embedding = 0; ///< without token/position tables and the head (the paper's N)
        run_result result;
        double wall_seconds = 0;
        nlohmann::json diagnostics = nlohmann::json::object();
        nlohmann::json line; ///< the JSON line as written / read
    };

    /// The paper's N: the parameters of `layout` without the token and position tables and the head.
    inline std::size_t non_embedding_params(const param_layout& layout)
    {
        std::size_t n = 0;
        for (const auto& e : layout.entries())
        {
            using policies::param_role;
            const bool table =
              e.role == param_role::embedding || e.role == param_role::position || e.role == param_role::head;
            n += table ? 0 : e.size;
        }
        return n;
    }

    /// A run line's "diagnostics" object from a finished run of `steps` steps: the attention-logit
    /// growth over training (one sample per recorded step: "max_attn_logit", its history and the "series"
    /// the prediction tools fit), the probe tensor's gradient and update RMS averaged over the last 10%
    /// of the steps (`null` for a diverged run), the warnings that fired and, from the last recorded
    /// step, the output-logit statistics, the max attention logit per layer and the mean over tensors of
    /// the gradient and unscaled-update RMS (paper Figs 11, 13).
    inline nlohmann::json run_diagnostics(const run_result& result, std::size_t steps)
    {
        nlohmann::json out = nlohmann::json::object();
        double max_logit = -std::numeric_limits<double>::infinity();
        nlohmann::json history = nlohmann::json::array();
        nlohmann::json series = { { "step", nlohmann::json::array() },
                                  { "max_attn_logit_l0", nlohmann::json::array() },
                                  { "probe_grad_rms", nlohmann::json::array() },
                                  { "probe_update_rms", nlohmann::json::array() } };
        // The probe tensor's RMS over the last 10% of the steps (the paper averages the final 500 of
        // 1e5 steps; a proxy's last 10% is as many noisy samples as a short run has).
        double tail_g = 0, tail_u = 0;
        std::size_t tail_n = 0;
        const double tail_from = 0.9 * double(steps);
        for (const auto& d : result.diag_history)
        {
            max_logit =
              std::isnan(d.max_attn_logit) ? d.max_attn_logit : std::max(max_logit, d.max_attn_logit);
            history.push_back({ d.step, finite_or_null(d.max_attn_logit) });
            series["step"].push_back(d.step);
            series["max_attn_logit_l0"].push_back(finite_or_null(d.max_attn_logit_l0));
            series["probe_grad_rms"].push_back(finite_or_null(d.probe_grad_rms));
            series["probe_update_rms"].push_back(finite_or_null(d.probe_update_rms));
            if (double(d.step) > tail_from)
            {
                tail_g += d.probe_grad_rms;
                tail_u += d.probe_update_rms;
                ++tail_n;
            }
        }
        const bool tail = tail_n && !result.diverged;
        out["max_attn_logit"] = finite_or_null(max_logit);
        out["max_attn_logit_history"] = std::move(history);
        out["series"] = std::move(series);
        out["probe_tensor"] = probe_tensor;
        out["probe_grad_rms_tail"] = tail ? finite_or_null(tail_g / double(tail_n)) : nlohmann::json(nullptr);
        out["probe_update_rms_tail"] =
          tail ? finite_or_null(tail_u / double(tail_n)) : nlohmann::json(nullptr);
        nlohmann::json warnings = nlohmann::json::array();
        for (const auto& w : result.warnings)
        {
            warnings.push_back(w.to_json());
        }
        out["warnings"] = std::move(warnings);
        if (result.last_diagnostics.is_object())
        {
            const auto& d = result.last_diagnostics;
            out["last_step"] = result.diag_history.empty() ? 0 : result.diag_history.back().step;
            for (const char* k : { "log_z_mean", "log_z_std", "log_z_min", "logit_mean" })
            {
                out[k] = d[k];
            }
            nlohmann::json by_layer = nlohmann::json::array();
            for (const auto& l : d["layers"])
            {
                by_layer.push_back(l["max_logit"]);
            }
            out["max_attn_logit_by_layer"] = std::move(by_layer);
            // Claims 6 and 24: the norm/alignment split and the block-output RMS of the last recorded step.
            for (const char* k : { "q_norm_mean", "k_norm_mean", "qk_cos_mean", "residual_rms" })
            {
                nlohmann::json v = nlohmann::json::array();
                for (const auto& l : d["layers"])
                {
                    v.push_back(l.contains(k) ? l[k] : nlohmann::json(nullptr));
                }
                out[std::string(k) + "_by_layer"] = std::move(v);
            }
            double g = 0, u = 0;
            std::size_t ng = 0, nu = 0;
            for (const auto& [name, t] : d["tensors"].items())
            {
                if (t["grad_rms"].is_number())
                {
                    g += t["grad_rms"].template get<double>();
                    ++ng;
                }
                if (t["update_rms"].is_number())
                {
                    u += t["update_rms"].template get<double>();
                    ++nu;
                }
            }
            out["grad_rms"] = ng ? nlohmann::json(g / double(ng)) : nlohmann::json(nullptr);
            out["update_rms"] = nu ? nlohmann::json(u / double(nu)) : nlohmann::json(nullptr);
        }
        return out;
    }

    /// The run line of `rec` (its spec, counts, result, wall time and diagnostics), trained with the
    /// configs `m`, `t`, `o`; `metrics` is the path of its metrics log relative to the study directory
    /// ("" when none).
    inline nlohmann::json run_line(const run_record& rec, const model_config& m, const train_config& t,
                                   const optimizer_config& o, const std::string& metrics)
    {
        const auto& s = rec.spec;
        const auto& res = rec.result;
        return {
            { "type", "run" },
            { "key", s.key() },
            { "policy_set", s.recipe_name },
            { "optimizer", s.optimizer },
            { "size", s.size.label() },
            { "params", rec.params },
            { "params_non_embedding", rec.params_non_embedding },
            { "d_model", s.size.d_model },
            { "n_layers", s.size.n_layers },
            { "n_heads", s.size.n_heads },
            { "lr", s.lr },
            { "warmup", s.warmup },
            { "weight_decay", s.weight_decay },
            { "eps", s.eps },
            { "steps", s.steps },
            { "l0", finite_or_null(res.l0) },
            { "final_val_loss", finite_or_null(res.final_val_loss) },
            { "best_val_loss", finite_or_null(res.best_val_loss) },
            { "diverged", res.diverged },
            { "diverged_step", res.diverged_step },
            { "reason", res.diverged_reason },
            { "evals", res.evals },
            { "wall_seconds", rec.wall_seconds },
            { "train_seconds", res.train_seconds },
            { "metrics", metrics },
            { "diagnostics", rec.diagnostics },
            { "config",
              { { "model", to_json(m) }, { "train", identity_json(t) }, { "optimizer", to_json(o) } } }
        };
    }

    /// A run record read back from a run line: the spec from its grid coordinates (`recipe` is 0: the
    /// file does not know the recipe tuple), the counts, the result's losses and divergence
    /// (`steps_done` = the spec's steps; numbers that are `null` or absent read as NaN), the wall time,
    /// the diagnostics and the line itself. Missing fields read as zero/empty.
    inline run_record parse_run_line(const nlohmann::json& j)
    {
        const auto num = [&j](const char* k) { return number_or_nan(j, k); };
        run_record rec;
        auto& s = rec.spec;
        constexpr const char* where = "run line";
        const auto count = [&j](const char* k) { return typed_field<std::size_t>(j, k, 0, where); };
        s.recipe_name = typed_field<std::string>(j, "policy_set", "", where);
        s.optimizer = typed_field<std::string>(j, "optimizer", "", where);
        s.size = { count("d_model"), count("n_layers"), count("n_heads") };
        s.lr = num("lr");
        s.warmup = count("warmup");
        s.steps = count("steps");
        s.weight_decay = num("weight_decay");
        s.eps = num("eps");
        rec.params = count("params");
        rec.params_non_embedding = count("params_non_embedding");
        rec.result.policy_set = s.recipe_name;
        rec.result.optimizer = s.optimizer;
        rec.result.l0 = num("l0");
        rec.result.final_val_loss = num("final_val_loss");
        rec.result.best_val_loss = num("best_val_loss");
        rec.result.diverged = typed_field<bool>(j, "diverged", false, where);
        rec.result.diverged_step = count("diverged_step");
        rec.result.diverged_reason = typed_field<std::string>(j, "reason", "", where);
        rec.result.steps_done = s.steps;
        rec.wall_seconds = num("wall_seconds");
        rec.diagnostics = typed_field<nlohmann::json>(j, "diagnostics", nlohmann::json::object(), where);
        BALLAST_CHECK(rec.diagnostics.is_object(), where, "field 'diagnostics' is ", rec.diagnostics.type_name(),
                      ", expected an object");
        rec.line = j;
        return rec;
    }

    /// parse_run_line, naming `origin` (a file, or a directory of result files) in the error of a wrongly
    /// typed field.
    inline run_record parse_run_line(const nlohmann::json& j, const std::string& origin)
    {
        try
        {
            return parse_run_line(j);
        }
        catch (const error& e)
        {
            std::string what = e.what();
            if (what.starts_with("ballast: "))
            {
                what.erase(0, 9);
            }
            ::ballast::detail::throw_error("study", "'", origin, "', run '", string_field(j, "key", "?"), "': ", what);
        }
    }

    /// The first line of a results file: the study's name and identity.
    inline nlohmann::json study_line(const std::string& name, const nlohmann::json& identity)
    {
        return { { "type", "study" }, { "name", name }, { "config", identity } };
    }

    /// A results file as read back.
    struct results_file
    {
        nlohmann::json study;             ///< the "study" line; null when the file is missing or empty
        std::vector<nlohmann::json> runs; ///< the "run" lines (with a string "key"), in file order
    };

    /// Read `path`. A torn last line (a crash mid-append) is dropped and removed from the file, so the next
    /// append starts on a line of its own. Throws ballast::error when the file does not start with a
    /// study line or holds a line that is not JSON.
    inline results_file load_results(const std::filesystem::path& path)
    {
        const auto lines = read_jsonl(path);
        std::error_code ec;
        if (!lines.empty() && std::filesystem::exists(path, ec))
        {
            std::string clean;
            for (const auto& j : lines)
            {
                clean += j.dump() + "\n";
            }
            const auto bytes = read_file(path);
            if (bytes.size() != clean.size() || (!bytes.empty() && bytes.back() != std::byte{ '\n' }))
            {
                write_file_atomic(path, std::as_bytes(std::span(clean)));
            }
        }
        results_file out;
        if (lines.empty())
        {
            return out;
        }
        BALLAST_CHECK(string_field(lines.front(), "type") == "study" && lines.front().contains("config"), "study",
                      "'", path.string(), "' does not start with a study line");
        out.study = lines.front();
        for (std::size_t i = 1; i < lines.size(); ++i)
        {
            const nlohmann::json& j = lines[i];
            if (string_field(j, "type") == "run" && j.contains("key") && j["key"].is_string())
            {
                out.runs.push_back(j);
            }
        }
        return out;
    }

    /// Start a results file with its study line (replacing any file, atomically).
    inline void start_results(const std::filesystem::path& path, const std::string& name,
                              const nlohmann::json& identity)
    {
        const std::string text = study_line(name, identity).dump() + "\n";
        write_file_atomic(path, std::as_bytes(std::span(text)));
    }

    /// Append a finished run's line (`rec.line`) with one write + fsync.
    inline void append_run(const std::filesystem::path& path, const run_record& rec)
    {
        append_line(path, rec.line.dump());
    }
} // namespace ballast::study

#endif
