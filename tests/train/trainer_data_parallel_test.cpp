// Gradient accumulation and data parallelism in the trainer (train/trainer.hpp), over the in-process
// communicator (core/comm.hpp's local_world: one thread per rank): the microbatch arithmetic against an
// independent re-computation, the same bits on 1 process and on K = 1, 2, 4 ranks, resume at another K,
// and the refusals (K not dividing M, ranks with different configs) on every rank without a hang.
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/core/comm.hpp>
#include <ballast/core/file.hpp>
#include <ballast/policies/policy_set.hpp>
#include <ballast/train/trainer.hpp>

#include "support/temp_dir.hpp"

namespace
{
    using ballast::model_config;
    using ballast::optimizer_config;
    using ballast::token_splits;
    using ballast::train_config;

    model_config tiny_model()
    {
        model_config m;
        m.vocab = 256;
        m.d_model = 16;
        m.n_layers = 1;
        m.n_heads = 2;
        m.context = 16;
        return m;
    }

    train_config tiny_run(std::size_t steps, std::size_t microbatches)
    {
        train_config t;
        t.steps = steps;
        t.batch = 8;
        t.seq = 16;
        t.lr = 1e-2;
        t.warmup = 2;
        t.eval_interval = 4;
        t.eval_batches = 2;
        t.log_interval = 1;
        t.threads = 1;
        t.microbatches = microbatches;
        return t;
    }

    const token_splits& readme_splits()
    {
        static const token_splits s(
          ballast::load_corpus(std::filesystem::path(BALLAST_SOURCE_DIR) / "README.md"), 256, 0.1, 16,
          "README.md");
        return s;
    }

    bool same_bytes(std::span<const float> a, std::span<const float> b)
    {
        return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
    }

    /// What a run ends with: parameters, every optimizer state and the losses, for byte comparison.
    struct snapshot
    {
        std::vector<float> params;
        std::vector<std::vector<float>> state;
        std::vector<double> losses;
        ballast::run_result result;
    };

    struct record_losses
    {
        std::vector<double>* out;
        void on_step_end(const ballast::step_info& s) const
        {
            out->push_back(s.loss.loss);
            out->push_back(s.grad_norm);
            out->push_back(s.clip);
        }
    };

    template <class Trainer>
    snapshot take(Trainer& tr, std::vector<double> losses)
    {
        snapshot s;
        s.params.assign(tr.model().parameters().begin(), tr.model().parameters().end());
        for (std::size_t i = 0; i < Trainer::optimizer_type::state_count; ++i)
        {
            s.state.emplace_back(tr.opt().state(i).begin(), tr.opt().state(i).end());
        }
        s.losses = std::move(losses);
        s.result = tr.result();
        return s;
    }

    template <class P>
    snapshot one_process(const train_config& t)
    {
        ballast::trainer<P, ballast::optim::adamw<>, float> tr(tiny_model(), t, optimizer_config{},
                                                               readme_splits());
        std::vector<double> losses;
        tr.run(record_losses{ &losses });
        return take(tr, std::move(losses));
    }

    /// Runs `body(rank, comm)` on K threads over a local_world; rethrows nothing, returns each rank's error.
    std::vector<std::string> on_ranks(int k, const std::function<void(int, ballast::communicator&)>& body)
    {
        ballast::local_world world(k);
        std::vector<std::string> errors(static_cast<std::size_t>(k));
        std::vector<std::thread> threads;
        for (int r = 0; r < k; ++r)
        {
            threads.emplace_back(
              [&, r]
              {
                  try
                  {
                      body(r, world.at(r));
                  }
                  catch (const std::exception& e)
                  {
                      errors[static_cast<std::size_t>(r)] = e.what();
                  }
              });
        }
        for (auto& th : threads)
        {
            th.join();
        }
        return errors;
    }

    template <class P>
    std::vector<snapshot> k_ranks(int k, const train_config& t, const std::filesystem::path& resume_from = {})
    {
        std::vector<snapshot> out(static_cast<std::size_t>(k));
        const auto errors = on_ranks(k,
                                     [&](int r, ballast::communicator& c)
                                     {
                                         ballast::trainer<P, ballast::optim::adamw<>, float> tr(
                                           tiny_model(), t, optimizer_config{}, readme_splits(), &c);
                                         if (!resume_from.empty())
                                         {
                                             tr.resume(resume_from);
                                         }
                                         std::vector<double> losses;
                                         tr.run(record_losses{ &losses });
                                         out[static_cast<std::size_t>(r)] = take(tr, std::move(losses));
                                     });
        for (const auto& e : errors)
        {
            REQUIRE(e.empty());
        }
        return out;
    }

    void require_same(const snapshot& a, const snapshot& b)
    {
        REQUIRE(same_bytes(a.params, b.params));
        REQUIRE(a.state.size() == b.state.size());
        for (std::size_t i = 0; i < a.state.size(); ++i)
        {
            REQUIRE(same_bytes(a.state[i], b.state[i]));
        }
        REQUIRE(a.losses.size() == b.losses.size());
        REQUIRE(std::memcmp(a.losses.data(), b.losses.data(), a.losses.size() * sizeof(double)) == 0);
        REQUIRE(a.result.evals == b.result.evals);
        REQUIRE(a.result.l0 == b.result.l0);
    }

    /// Captures the step-0 gradient the optimizer receives.
    struct capture_gradient
    {
        std::vector<float>* out;
        void on_gradients(const ballast::gradient_info<float>& g) const
        {
            if (g.step == 0)
            {
                out->assign(g.grads.begin(), g.grads.end());
            }
        }
    };
} // namespace

TEST_CASE("microbatches of a step partition the batch drawn with M = 1", "[train][data][microbatch]")
{
    const auto& d = readme_splits();
    ballast::token_batch whole, part;
    d.train_batch(3, 5, 8, whole);
    for (std::size_t mb : { 1u, 2u, 4u, 8u })
    {
        std::vector<std::int32_t> inputs, targets;
        for (std::size_t m = 0; m < mb; ++m)
        {
            d.train_microbatch(3, 5, 8, m, mb, part);
            REQUIRE(part.batch == 8 / mb);
            inputs.insert(inputs.end(), part.inputs.begin(), part.inputs.end());
            targets.insert(targets.end(), part.targets.begin(), part.targets.end());
        }
        REQUIRE(inputs == whole.inputs);
        REQUIRE(targets == whole.targets);
    }
    REQUIRE_THROWS_WITH(d.train_microbatch(3, 5, 8, 0, 3, part), Catch::Contains("must divide the batch 8"));
}

TEST_CASE("the accumulated gradient is ((g0 + g1) + g2 + g3) / 4 of independently computed microbatches",
          "[train][trainer][microbatch]")
{
    const auto t = tiny_run(2, 4);
    // The trainer's step-0 gradient.
    ballast::trainer<ballast::paper_default, ballast::optim::adamw<>, float> tr(
      tiny_model(), t, optimizer_config{}, readme_splits());
    std::vector<float> got;
    tr.run(capture_gradient{ &got });
    // Independently: a fresh model with the same init, each microbatch's gradient, summed in m order.
    ballast::transformer<ballast::paper_default, float> model(tiny_model());
    model.init(t.seed);
    std::vector<float> acc, acc_double_ref;
    std::vector<double> exact(model.gradients().size(), 0.0);
    ballast::token_batch b;
    for (std::size_t m = 0; m < 4; ++m)
    {
        readme_splits().train_microbatch(t.seed, 0, t.batch, m, 4, b);
        model.forward_backward(b.inputs, b.targets, b.batch, b.seq);
        const auto g = model.gradients();
        if (m == 0)
        {
            acc.assign(g.begin(), g.end());
        }
        else
        {
            for (std::size_t i = 0; i < acc.size(); ++i)
            {
                acc[i] += g[i];
            }
        }
        for (std::size_t i = 0; i < acc.size(); ++i)
        {
            exact[i] += static_cast<double>(g[i]);
        }
    }
    for (auto& v : acc)
    {
        v /= 4.0f;
    }
    REQUIRE(same_bytes(got, acc));
    // And it is the full-batch gradient up to float rounding: compare with the M = 1 gradient.
    std::vector<float> full;
    ballast::trainer<ballast::paper_default, ballast::optim::adamw<>, float> tr1(
      tiny_model(), tiny_run(2, 1), optimizer_config{}, readme_splits());
    tr1.run(capture_gradient{ &full });
    double num = 0, den = 0;
    for (std::size_t i = 0; i < full.size(); ++i)
    {
        num += (static_cast<double>(full[i]) - exact[i] / 4) * (static_cast<double>(full[i]) - exact[i] / 4);
        den += exact[i] / 4 * exact[i] / 4;
    }
    REQUIRE(std::sqrt(num / den) < 1e-5);
    REQUIRE_FALSE(same_bytes(full, got)); // a different (documented) float arithmetic
}

TEMPLATE_TEST_CASE("one process with M = 4 and K = 1, 2, 4 ranks give the same bits after 20 steps",
                   "[train][trainer][microbatch][data-parallel]", ballast::paper_default, ballast::gpt2_like)
{
    const auto t = tiny_run(20, 4);
    const auto ref = one_process<TestType>(t);
    REQUIRE(ref.result.steps_done == 20);
    REQUIRE_FALSE(ref.result.diverged);
    for (int k : { 1, 2, 4 })
    {
        INFO("K = " << k);
        const auto runs = k_ranks<TestType>(k, t);
        for (const auto& s : runs)
        {
            require_same(ref, s);
        }
    }
}

TEST_CASE("a data-parallel run resumes at another K (and on one process) bit-identically",
          "[train][trainer][microbatch][data-parallel][checkpoint]")
{
    ballast::test::temp_dir dir("data_parallel_resume");
    const auto ref = one_process<ballast::paper_default>(tiny_run(12, 4));
    // 6 steps on 4 ranks, checkpoint (written by rank 0 only), then 6 more on 2 ranks and on 1 process.
    auto first = tiny_run(6, 4);
    first.checkpoint_dir = (dir.path() / "ck").string();
    auto whole = tiny_run(12, 4);
    // The schedule depends on `steps`: the first part runs with steps = 12 and stops after 6.
    first.steps = 12;
    {
        const auto errors =
          on_ranks(4,
                   [&](int, ballast::communicator& c)
                   {
                       ballast::trainer<ballast::paper_default, ballast::optim::adamw<>, float> tr(
                         tiny_model(), first, optimizer_config{}, readme_splits(), &c);
                       struct stop_at_6
                       {
                           ballast::callback_action on_step_end(const ballast::step_info& s) const
                           {
                               return s.step + 1 == 6 ? ballast::callback_action::stop
                                                      : ballast::callback_action::proceed;
                           }
                       };
                       tr.run(stop_at_6{});
                       BALLAST_CHECK(tr.step() == 6, "test", "stopped at ", tr.step());
                   });
        for (const auto& e : errors)
        {
            REQUIRE(e.empty());
        }
    }
    REQUIRE(ballast::has_checkpoint(first.checkpoint_dir));
    const auto two = k_ranks<ballast::paper_default>(2, whole, first.checkpoint_dir);
    REQUIRE(same_bytes(two[0].params, ref.params));
    REQUIRE(same_bytes(two[1].params, ref.params));
    for (std::size_t i = 0; i < ref.state.size(); ++i)
    {
        REQUIRE(same_bytes(two[0].state[i], ref.state[i]));
    }
    ballast::trainer<ballast::paper_default, ballast::optim::adamw<>, float> one(
      tiny_model(), whole, optimizer_config{}, readme_splits());
    one.resume(first.checkpoint_dir);
    one.run();
    REQUIRE(same_bytes(one.model().parameters(), ref.params));
    REQUIRE(one.result().evals == ref.result.evals);
}

TEST_CASE("K not dividing M, or ranks with different configs, fail on every rank with one message",
          "[train][trainer][data-parallel]")
{
    SECTION("3 ranks, M = 4")
    {
        const auto errors =
          on_ranks(3,
                   [&](int, ballast::communicator& c)
                   {
                       ballast::trainer<ballast::paper_default, ballast::optim::adamw<>, float> tr(
                         tiny_model(), tiny_run(2, 4), optimizer_config{}, readme_splits(), &c);
                   });
        for (const auto& e : errors)
        {
            REQUIRE_THAT(e, Catch::Contains("ballast: trainer: the 3 data-parallel ranks do not divide "
                                            "microbatches = 4"));
        }
    }
    SECTION("rank 1 has another learning rate")
    {
        const auto errors =
          on_ranks(2,
                   [&](int r, ballast::communicator& c)
                   {
                       auto t = tiny_run(2, 2);
                       if (r == 1)
                       {
                           t.lr = 2e-2;
                       }
                       ballast::trainer<ballast::paper_default, ballast::optim::adamw<>, float> tr(
                         tiny_model(), t, optimizer_config{}, readme_splits(), &c);
                   });
        REQUIRE(errors[0] == errors[1]);
        REQUIRE_THAT(errors[0],
                     Catch::Contains("ballast: trainer: data-parallel ranks disagree on the run") &&
                       Catch::Contains("rank 1 has"));
    }
    SECTION("rank 1 has another microbatch count (a mismatch, not a divisibility error on one rank)")
    {
        const auto errors =
          on_ranks(2,
                   [&](int r, ballast::communicator& c)
                   {
                       ballast::trainer<ballast::paper_default, ballast::optim::adamw<>, float> tr(
                         tiny_model(), tiny_run(2, r == 0 ? 2 : 4), optimizer_config{}, readme_splits(), &c);
                   });
        REQUIRE(errors[0] == errors[1]);
        REQUIRE_THAT(errors[0], Catch::Contains("disagree on the run"));
    }
    REQUIRE_THROWS_WITH(tiny_run(2, 3).validate(tiny_model()),
                        Catch::Contains("microbatches (3) must be >= 1 and divide batch (8)"));
}
