#ifndef BALLAST_TRAIN_STEP_DIAGNOSTICS_HPP
#define BALLAST_TRAIN_STEP_DIAGNOSTICS_HPP

/// @file
/// The diagnostics of one recorded training step (schema in docs/diagnostics.md), in the two parts the
/// trainer computes around the optimizer update:
/// - `tensor_stats_before` (after backward, before the update): per tensor, the gradient and parameter RMS;
/// - `complete_step_diagnostics` (after the update): per tensor, the optimizer's update RMS and ε fraction,
///   then the recorded forward pass's attention, residual and output statistics, and the prediction sample
///   of the step (study/predict.hpp fits those).

#include <cmath>
#include <cstddef>
#include <span>
#include <utility>

#include <nlohmann/json.hpp>

#include <ballast/core/json.hpp>
#include <ballast/model/diagnostics.hpp>
#include <ballast/model/parameters.hpp>
#include <ballast/train/metrics_log.hpp>
#include <ballast/train/run_result.hpp>

namespace ballast
{
    /// Part 1: {"tensors": {name: {"grad_rms", "param_rms"}}}, with the optimizer's RMS (`Opt::tensor_rms`,
    /// the same reduction its update uses).
    template <class Opt, class T>
    nlohmann::json tensor_stats_before(const param_layout& layout, std::span<const T> params,
                                       std::span<const T> grads)
    {
        nlohmann::json tensors = nlohmann::json::object();
        for (const auto& e : layout.entries())
        {
            tensors[e.name] = {
                { "grad_rms", finite_or_null(Opt::tensor_rms(grads.data() + e.offset, e.size)) },
                { "param_rms", finite_or_null(Opt::tensor_rms(params.data() + e.offset, e.size)) }
            };
        }
        return { { "tensors", std::move(tensors) } };
    }

    /// Part 2: adds each tensor's "update_rms" and "eps_fraction" (`opt.direction_stats`) and the forward
    /// statistics `f` (`add_forward_diagnostics`) to `diag`; returns the prediction sample of `step`.
    template <class Opt>
    diag_sample complete_step_diagnostics(nlohmann::json& diag, const param_layout& layout, const Opt& opt,
                                          const diagnostics::forward_stats& f, std::size_t step)
    {
        for (const auto& e : layout.entries())
        {
            const auto d = opt.direction_stats(e);
            auto& t = diag["tensors"][e.name];
            t["update_rms"] = finite_or_null(d.update_rms);
            t["eps_fraction"] = finite_or_null(d.eps_fraction);
        }
        add_forward_diagnostics(diag, f);
        diag_sample sample{ step, max_attn_logit(f), f.layers.empty() ? NAN : f.layers.front().max_logit, NAN,
                            NAN };
        if (const auto it = diag["tensors"].find(probe_tensor); it != diag["tensors"].end())
        {
            sample.probe_grad_rms = number_or_nan(*it, "grad_rms");
            sample.probe_update_rms = number_or_nan(*it, "update_rms");
        }
        return sample;
    }
} // namespace ballast

#endif
