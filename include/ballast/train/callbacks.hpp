#ifndef BALLAST_TRAIN_CALLBACKS_HPP
#define BALLAST_TRAIN_CALLBACKS_HPP

/// @file
/// Training callbacks: what the trainer hands them and how it calls them.
///
/// Callbacks are a compile-time pack passed to `trainer::run`; each may define any of
///
///   on_step_end(const step_info&)         after each optimizer step
///   on_eval(const eval_info&)             after each evaluation (also ℓ0, at initialisation)
///   on_gradients(const gradient_info<T>&) after backward, before clipping and the update
///
/// and may return `callback_action::stop` from any of them (or return nothing). A callback may also define
///
///   bool stop_requested() const           polled inside long loops (between validation batches)
///
/// to end a run in the middle of an evaluation: the evaluation is abandoned, not recorded, and done again
/// when the run resumes. A hook no callback defines costs nothing: `notify_callbacks` and
/// `any_stop_requested` detect each hook at compile time.
///
/// `stop_on_signal` is the callback that ends a run when a `stop_signal_scope` (core/signals.hpp) owned
/// by someone else, e.g. a study, received SIGINT or SIGTERM.

#include <cstddef>
#include <span>
#include <type_traits>

#include <nlohmann/json.hpp>

#include <ballast/core/signals.hpp>
#include <ballast/model/parameters.hpp>
#include <ballast/model/transformer.hpp>

namespace ballast
{
    /// What a callback may ask for.
    enum class callback_action
    {
        proceed,
        stop
    };

    /// Handed to on_step_end after each optimizer step.
    struct step_info
    {
        std::size_t step = 0;         ///< the step just taken, from 0
        std::size_t steps = 0;        ///< total steps of the run
        double lr = 0;                ///< s_t·η used by this step
        loss_parts loss;              ///< training loss of this step's batch (before the update)
        double grad_norm = 0;         ///< global gradient norm before clipping
        double clip = 1;              ///< clipping factor applied
        double tokens_per_second = 0; ///< training throughput since the run (or resume) started
        double elapsed_seconds = 0;
        /// With a diagnostics policy, on recorded steps: the step's diagnostics (schema in
        /// docs/diagnostics.md); nullptr otherwise.
        const nlohmann::json* diagnostics = nullptr;
    };

    /// Handed to on_eval after each evaluation.
    struct eval_info
    {
        std::size_t step = 0; ///< steps taken when evaluated (0: at initialisation)
        loss_parts loss;      ///< mean over the validation batches
    };

    /// Handed to on_gradients after backward, before clipping and the update.
    template <class T>
    struct gradient_info
    {
        std::size_t step = 0;
        const param_layout* layout = nullptr;
        std::span<const T> params, grads;
        double grad_norm = 0;
    };

    /// The three hooks, as callables for `notify_callbacks`. SFINAE-friendly: the trailing return type
    /// fails for a callback without the member, so such a callback is skipped.
    inline constexpr auto on_step_end_hook = [](auto& cb, const auto& i) -> decltype(cb.on_step_end(i))
    { return cb.on_step_end(i); };
    inline constexpr auto on_eval_hook = [](auto& cb, const auto& i) -> decltype(cb.on_eval(i))
    { return cb.on_eval(i); };
    inline constexpr auto on_gradients_hook = [](auto& cb, const auto& i) -> decltype(cb.on_gradients(i))
    { return cb.on_gradients(i); };

    /// Does callback type `C` define on_gradients for element type `T`? (The trainer skips handing out
    /// the gradients when no callback wants them.)
    template <class C, class T>
    inline constexpr bool has_gradient_hook = requires(C& c, const gradient_info<T>& g)
    {
        c.on_gradients(g);
    };

    namespace detail
    {
        template <class R>
        bool wants_stop(R&& r)
        {
            if constexpr (std::is_same_v<std::remove_cvref_t<R>, callback_action>)
            {
                return r == callback_action::stop;
            }
            else
            {
                return false;
            }
        }
    } // namespace detail

    /// Call `hook(cb, info)` for every callback that defines the hook, in order; true if any of them
    /// returned `callback_action::stop` (every callback is called even then).
    template <class Hook, class Info, class... Cbs>
    bool notify_callbacks(Hook hook, const Info& info, Cbs&... cbs)
    {
        bool stop = false;
        (
          [&](auto& cb)
          {
              if constexpr (requires { hook(cb, info); })
              {
                  if constexpr (std::is_void_v<decltype(hook(cb, info))>)
                  {
                      hook(cb, info);
                  }
                  else
                  {
                      stop = detail::wants_stop(hook(cb, info)) || stop;
                  }
              }
          }(cbs),
          ...);
        return stop;
    }

    /// True if any callback that defines `stop_requested()` returns true (all of them are asked).
    template <class... Cbs>
    bool any_stop_requested(const Cbs&... cbs)
    {
        bool stop = false;
        (
          [&](const auto& cb)
          {
              if constexpr (requires { static_cast<bool>(cb.stop_requested()); })
              {
                  stop = static_cast<bool>(cb.stop_requested()) || stop;
              }
          }(cbs),
          ...);
        return stop;
    }

    /// Stops a run at the end of the step, or between the validation batches of the evaluation, during
    /// which `signals` received SIGINT or SIGTERM (a study passes it to each of its runs; the runs
    /// themselves do not handle signals).
    struct stop_on_signal
    {
        const stop_signal_scope* signals = nullptr;

        callback_action on_step_end(const step_info&) const
        {
            return stop_requested() ? callback_action::stop : callback_action::proceed;
        }
        bool stop_requested() const { return signals->pending() != 0; }
    };
} // namespace ballast

#endif
