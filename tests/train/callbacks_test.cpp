// Callbacks: notify_callbacks calls exactly the callbacks that define a hook, every one of them, and
// reports a stop from any; stop_on_signal stops once its scope received a signal.
#include <csignal>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/train/callbacks.hpp>

namespace
{
    struct log_step
    {
        std::vector<std::string>* calls;
        void on_step_end(const ballast::step_info& s) const
        {
            calls->push_back("log_step " + std::to_string(s.step));
        }
    };
    struct stop_at
    {
        std::size_t at;
        std::vector<std::string>* calls;
        ballast::callback_action on_step_end(const ballast::step_info& s) const
        {
            calls->push_back("stop_at");
            return s.step == at ? ballast::callback_action::stop : ballast::callback_action::proceed;
        }
        ballast::callback_action on_eval(const ballast::eval_info&) const
        {
            calls->push_back("stop_at eval");
            return ballast::callback_action::proceed;
        }
    };
    struct eval_only
    {
        std::vector<std::string>* calls;
        void on_eval(const ballast::eval_info& e) const
        {
            calls->push_back("eval " + std::to_string(e.step));
        }
    };
    struct wants_gradients
    {
        double* seen;
        void on_gradients(const ballast::gradient_info<float>& g) const { *seen = g.grad_norm; }
    };
} // namespace

TEST_CASE("notify_callbacks calls every callback that defines the hook, in order", "[train][callbacks]")
{
    std::vector<std::string> calls;
    log_step a{ &calls };
    stop_at b{ 3, &calls };
    eval_only c{ &calls };
    ballast::step_info s;
    s.step = 1;
    CHECK_FALSE(ballast::notify_callbacks(ballast::on_step_end_hook, s, a, b, c));
    CHECK(calls == std::vector<std::string>{ "log_step 1", "stop_at" });
    calls.clear();
    ballast::eval_info e;
    e.step = 4;
    CHECK_FALSE(ballast::notify_callbacks(ballast::on_eval_hook, e, a, b, c));
    CHECK(calls == std::vector<std::string>{ "stop_at eval", "eval 4" });
}

TEST_CASE("a stop from one callback is reported and the others are still called", "[train][callbacks]")
{
    std::vector<std::string> calls;
    stop_at first{ 3, &calls };
    log_step second{ &calls };
    ballast::step_info s;
    s.step = 3;
    CHECK(ballast::notify_callbacks(ballast::on_step_end_hook, s, first, second));
    CHECK(calls == std::vector<std::string>{ "stop_at", "log_step 3" });
    CHECK_FALSE(ballast::notify_callbacks(ballast::on_step_end_hook, s)); // no callbacks: never a stop
}

TEST_CASE("has_gradient_hook detects on_gradients at compile time", "[train][callbacks]")
{
    STATIC_REQUIRE(ballast::has_gradient_hook<wants_gradients, float>);
    STATIC_REQUIRE_FALSE(ballast::has_gradient_hook<log_step, float>);
    STATIC_REQUIRE_FALSE(ballast::has_gradient_hook<wants_gradients, double>); // takes gradient_info<float>
    double seen = 0;
    wants_gradients g{ &seen };
    ballast::gradient_info<float> info;
    info.grad_norm = 2.5;
    CHECK_FALSE(ballast::notify_callbacks(ballast::on_gradients_hook, info, g));
    CHECK(seen == 2.5);
}

TEST_CASE("stop_on_signal stops the run once its scope received SIGTERM", "[train][callbacks]")
{
    ballast::stop_signal_scope signals(true);
    const ballast::stop_on_signal cb{ &signals };
    CHECK(cb.on_step_end({}) == ballast::callback_action::proceed);
    std::raise(SIGTERM);
    CHECK(cb.on_step_end({}) == ballast::callback_action::stop);
    ballast::stop_signal_scope off(false); // a disabled scope never asks to stop
    CHECK(ballast::stop_on_signal{ &off }.on_step_end({}) == ballast::callback_action::proceed);
}
