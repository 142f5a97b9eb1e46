// The activation table: its sum equals the closed form documented in docs/model.md, the store lays the
// buffers out disjoint, aligned and in table order, per-layer slices are where the table says, and a
// store is reused while the shape stays.
#include <cstddef>
#include <cstdint>

#include <catch2/catch.hpp>

#include <ballast/model/activations.hpp>

namespace
{
    ballast::activation_dims shape(std::size_t batch, std::size_t seq, bool cap, std::size_t threads)
    {
        ballast::activation_dims s;
        s.batch = batch;
        s.seq = seq;
        s.d = 24;
        s.f = 96;
        s.v = 37;
        s.heads = 3;
        s.layers = 5;
        s.threads = threads;
        s.attn_cap = cap;
        return s;
    }
} // namespace

TEST_CASE("the activation table sums to the documented closed form", "[model][activations][memory]")
{
    const std::size_t B = GENERATE(as<std::size_t>{}, 1, 3), T = GENERATE(as<std::size_t>{}, 1, 7, 64),
                      P = GENERATE(as<std::size_t>{}, 1, 2, 5);
    const bool cap = GENERATE(false, true);
    const std::size_t u = GENERATE(as<std::size_t>{}, 1, 2); // GELU, a gated unit (SwiGLU)
    CAPTURE(B, T, P, cap, u);
    auto s = shape(B, T, cap, P);
    s.up = u;
    const std::size_t N = B * T, d = s.d, F = s.f, V = s.v, H = s.heads, L = s.layers, c = cap ? 2 : 1;
    // docs/model.md, "Activation memory".
    const std::size_t documented =
      L * (11 * N * d + (u + 1) * N * F + 4 * N + 4 * H * N + c * B * H * T * T) + 2 * N * d + 2 * N * V +
      4 * N + 9 * N * d + u * N * F + P * T * T;
    CHECK(ballast::activation_elements(s) == documented);
}

TEMPLATE_TEST_CASE("the store lays buffers out aligned, disjoint and sliced as the table says",
                   "[model][activations]", float, double)
{
    const auto s = shape(2, 9, true, 3);
    ballast::activation_store<TestType> store;
    store.ensure(s);
    CHECK(store.elements() == ballast::activation_elements(s));
    const TestType* end_of_previous = store(ballast::act::res);
    for (const auto& b : ballast::activation_table)
    {
        INFO("buffer " << b.name);
        const TestType* p = store(b.id);
        CHECK(reinterpret_cast<std::uintptr_t>(p) % ballast::buffer_alignment == 0);
        CHECK(p >= end_of_previous); // in table order, no overlap
        CHECK(store.slice_size(b.id) == b.slice_elements(s));
        CHECK(store.size(b.id) == ballast::activation_slice_count(b.slices, s.layers) * b.slice_elements(s));
        const std::size_t slices = ballast::activation_slice_count(b.slices, s.layers);
        for (std::size_t k = 0; k < slices; ++k)
        {
            CHECK(store(b.id, k) == p + k * b.slice_elements(s));
        }
        end_of_previous = p + store.size(b.id);
        for (std::size_t i = 0; i < store.size(b.id); ++i)
        {
            if (p[i] != TestType(0))
            {
                FAIL("buffer " << b.name << " not zeroed at " << i);
            }
        }
    }
    CHECK(ballast::activation_slice_count(ballast::activation_slices::per_residual, s.layers) ==
          s.layers + 1);
    CHECK(store.size(ballast::act::capped) > 0);
    auto uncapped = s;
    uncapped.attn_cap = false;
    ballast::activation_store<TestType> plain;
    plain.ensure(uncapped);
    CHECK(plain.size(ballast::act::capped) == 0);
}

TEST_CASE("the store is reused while the shape stays and re-laid out when it changes", "[model][activations]")
{
    ballast::activation_store<float> store;
    store.ensure(shape(2, 8, false, 2));
    float* logits = store(ballast::act::logits);
    logits[0] = 1.5f;
    store.ensure(shape(2, 8, false, 2));
    CHECK(store(ballast::act::logits) == logits);
    CHECK(logits[0] == 1.5f);            // not re-zeroed either
    store.ensure(shape(2, 8, false, 1)); // fewer threads: the larger scratch still serves
    CHECK(store(ballast::act::logits) == logits);
    CHECK(store.dims().threads == 2);
    store.ensure(shape(2, 9, false, 1)); // new shape: laid out again, zeroed
    CHECK(store.elements() == ballast::activation_elements(shape(2, 9, false, 1)));
    CHECK(store(ballast::act::logits)[0] == 0.0f);
    store.ensure(shape(2, 9, false, 4)); // more threads than scratches: laid out again
    CHECK(store.elements() == ballast::activation_elements(shape(2, 9, false, 4)));
}

TEST_CASE("every buffer's documented shape multiplies to its slice size (a law over the table)",
          "[model][activations]")
{
    const std::size_t B = GENERATE(as<std::size_t>{}, 1, 3), T = GENERATE(as<std::size_t>{}, 1, 7),
                      P = GENERATE(as<std::size_t>{}, 1, 4), u = GENERATE(as<std::size_t>{}, 1, 2);
    const bool cap = GENERATE(false, true);
    auto s = shape(B, T, cap, P);
    s.up = u;
    for (const auto& b : ballast::activation_table)
    {
        CAPTURE(b.name, b.dims, B, T, P, u, cap);
        // Only the documented letters and factors.
        CHECK(b.dims.find_first_not_of("0123456789 BTdHVFuP") == std::string_view::npos);
        const auto shape_of = ballast::activation_slice_shape(b, s);
        std::size_t product = 1;
        for (const auto n : shape_of)
        {
            product *= n;
        }
        const std::size_t elements = b.slice_elements(s);
        // "capped" is laid out only with an attention cap: its slice is then exactly the shape.
        CHECK((elements == product || (elements == 0 && b.id == ballast::act::capped && !cap)));
    }
}
