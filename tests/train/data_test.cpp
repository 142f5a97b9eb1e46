// Data splits and batches: never overlapping, a pure function of (seed, step), fixed validation windows,
// and clear errors for out-of-vocabulary ids and corpora too short for a window.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <ballast/train/data.hpp>

#include "support/temp_dir.hpp"

namespace
{
    /// Tokens that encode their own position (mod vocab), so a window tells where it came from.
    std::vector<std::uint16_t> counting(std::size_t n, std::size_t vocab)
    {
        std::vector<std::uint16_t> t(n);
        for (std::size_t i = 0; i < n; ++i)
        {
            t[i] = static_cast<std::uint16_t>(i % vocab);
        }
        return t;
    }
} // namespace

TEST_CASE("the validation split is the corpus tail and windows never cross into it", "[train][data]")
{
    const std::size_t n = 10'000, vocab = 60'000, seq = 32;
    const ballast::token_splits s(counting(n, vocab), vocab, 0.1, seq);
    CHECK(s.train().size() == 9'000);
    CHECK(s.validation().size() == 1'000);
    CHECK(s.validation().data() == s.train().data() + s.train().size());
    ballast::token_batch b;
    for (std::uint64_t step = 0; step < 200; ++step)
    {
        s.train_batch(7, step, 8, b);
        for (std::size_t w = 0; w < 8; ++w)
        {
            const auto start = static_cast<std::size_t>(b.inputs[w * seq]);
            CHECK(start + seq < 9'000); // the last target is still a training token
            for (std::size_t t = 0; t < seq; ++t)
            {
                CHECK(static_cast<std::size_t>(b.inputs[w * seq + t]) == start + t);
                CHECK(static_cast<std::size_t>(b.targets[w * seq + t]) == start + t + 1);
            }
        }
    }
    std::set<std::size_t> val_starts;
    for (std::size_t i = 0; i < 4; ++i)
    {
        s.validation_batch(i, 4, 8, b);
        for (std::size_t w = 0; w < 8; ++w)
        {
            const auto start = static_cast<std::size_t>(b.inputs[w * seq]);
            CHECK(start >= 9'000);
            CHECK(start + seq < 10'000);
            val_starts.insert(start);
        }
    }
    CHECK(val_starts.size() == 32);                  // distinct windows,
    CHECK(*val_starts.begin() == 9'000);             // from the first validation token
    CHECK(*val_starts.rbegin() == 10'000 - seq - 1); // to the last full window
}

TEST_CASE("training batches are a pure function of (seed, step)", "[train][data]")
{
    const ballast::token_splits s(counting(5'000, 1'000), 1'000, 0.2, 16);
    ballast::token_batch a, b, c;
    s.train_batch(1, 42, 4, a);
    s.train_batch(1, 41, 4, c); // another step in between changes nothing
    s.train_batch(1, 42, 4, b);
    CHECK(a.inputs == b.inputs);
    CHECK(a.targets == b.targets);
    CHECK(a.inputs != c.inputs);
    s.train_batch(2, 42, 4, c);
    CHECK(a.inputs != c.inputs); // the seed matters
}

TEST_CASE("out-of-vocabulary ids, empty and too-short corpora are refused with a message", "[train][data]")
{
    auto t = counting(1'000, 256);
    t[777] = 300;
    CHECK_THROWS_WITH(ballast::token_splits(t, 256, 0.1, 16, "x.bin"),
                      Catch::Contains("token id 300 at position 777") && Catch::Contains("x.bin"));
    CHECK_THROWS_WITH(ballast::token_splits({}, 256, 0.1, 16), Catch::Contains("empty"));
    // 100 tokens, 10% validation = 10 tokens: shorter than one window of 17.
    CHECK_THROWS_WITH(ballast::token_splits(counting(100, 256), 256, 0.1, 16), Catch::Contains("too short"));
    CHECK_THROWS_WITH(ballast::token_splits(counting(100, 256), 256, 1.5, 16),
                      Catch::Contains("val_fraction"));
}

TEST_CASE("a corpus loads from a text file, a token file or a directory of text files", "[train][data]")
{
    ballast::test::temp_dir dir("corpus");
    const std::string a = "Hello", b = " world";
    ballast::write_file_atomic(dir / "b.txt", std::as_bytes(std::span(b)));
    ballast::write_file_atomic(dir / "a.txt", std::as_bytes(std::span(a)));
    ballast::write_file_atomic(dir / "a.dat", std::as_bytes(std::span(a))); // fortune index: skipped
    const auto all = ballast::load_corpus(dir.path());
    CHECK(std::string(all.begin(), all.end()) == "Hello world"); // sorted by name
    const std::vector<std::uint16_t> toks{ 1, 2, 65535 };
    ballast::write_token_file(dir / "t.bin", toks);
    CHECK(ballast::load_corpus(dir / "t.bin") == toks);
    std::filesystem::create_directories(dir / "empty");
    CHECK_THROWS_WITH(ballast::load_corpus(dir / "empty"), Catch::Contains("no files"));
}

TEST_CASE("the data's identity: origin, split sizes and the FNV-1a fingerprint of every token byte",
          "[train][data]")
{
    const std::size_t n = 1'000, vocab = 50'000, seq = 16;
    auto tokens = counting(n, vocab);
    tokens[3] = 0x1234; // a token whose two bytes differ
    const ballast::token_splits s(tokens, vocab, 0.1, seq, "counting");
    // Independent twin: FNV-1a 64 over the little-endian bytes of the tokens, training split first.
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (const std::uint16_t t : tokens)
    {
        for (const unsigned byte : { unsigned(t & 0xffu), unsigned(t >> 8u) })
        {
            h = (h ^ byte) * 0x100000001b3ULL;
        }
    }
    CHECK(s.fingerprint() == h);
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
    const auto id = s.identity();
    CHECK(id["fnv1a64"] == hex);
    CHECK(id["origin"] == "counting");
    CHECK(id["train_tokens"] == 900);
    CHECK(id["validation_tokens"] == 100);
    CHECK(id.size() == 4);
    // One validation token changed: another fingerprint.
    tokens[n - 1] = 7;
    CHECK(ballast::token_splits(tokens, vocab, 0.1, seq, "counting").fingerprint() != h);
}
