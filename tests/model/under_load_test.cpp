// Bit-identity on a shared machine: a model large enough that its GEMMs, attention pairs and RoPE run on
// the thread team gives the same loss and gradients on 1 thread (idle) as on 2 and 3 threads while busy
// threads occupy every core, so that workers are preempted mid-chunk and chunks move between threads.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/core/parallel.hpp>
#include <ballast/core/rng.hpp>
#include <ballast/model/transformer.hpp>

namespace
{
    class busy_cores
    {
    public:
        busy_cores()
        {
            for (unsigned i = 0; i < std::max(1u, std::thread::hardware_concurrency()); ++i)
            {
                m_hogs.emplace_back(
                  [this]
                  {
                      while (!m_stop.load(std::memory_order_relaxed))
                      {
                      }
                  });
            }
        }
        ~busy_cores()
        {
            m_stop = true;
            for (auto& h : m_hogs)
            {
                h.join();
            }
        }

    private:
        std::atomic<bool> m_stop{ false };
        std::vector<std::thread> m_hogs;
    };
} // namespace

TEMPLATE_TEST_CASE("forward and backward give the same bits on any thread count under load",
                   "[model][determinism][load]", ballast::paper_default, ballast::gpt2_like)
{
    ballast::model_config cfg;
    cfg.vocab = 256;
    cfg.d_model = 128;
    cfg.n_layers = 2;
    cfg.n_heads = 4;
    cfg.context = 64;
    const std::size_t batch = 8, seq = 64;
    std::vector<std::int32_t> tokens(batch * seq), targets(batch * seq);
    ballast::splitmix64 rng(3);
    for (std::size_t i = 0; i < tokens.size(); ++i)
    {
        tokens[i] = static_cast<std::int32_t>(rng.below(cfg.vocab));
        targets[i] = static_cast<std::int32_t>(rng.below(cfg.vocab));
    }
    ballast::transformer<TestType, float> model(cfg);
    model.init(5);
    ballast::loss_parts ref;
    std::vector<float> ref_grad;
    {
        ballast::thread_scope one(1);
        ref = model.forward_backward(tokens, targets, batch, seq);
        ref_grad.assign(model.gradients().begin(), model.gradients().end());
    }
    bool same_loss = true, same_grad = true;
    {
        busy_cores load;
        for (int round = 0; round < 4; ++round)
        {
            for (const int threads : { 2, 3 })
            {
                ballast::thread_scope scope(threads);
                const auto l = model.forward_backward(tokens, targets, batch, seq);
                same_loss = same_loss && l.loss == ref.loss && l.aux == ref.aux;
                same_grad = same_grad && std::memcmp(model.gradients().data(), ref_grad.data(),
                                                     ref_grad.size() * sizeof(float)) == 0;
            }
        }
    }
    CHECK(same_loss);
    CHECK(same_grad);
}
