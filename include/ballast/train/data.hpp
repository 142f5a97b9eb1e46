#ifndef BALLAST_TRAIN_DATA_HPP
#define BALLAST_TRAIN_DATA_HPP

/// @file
/// Training data: a corpus loaded as tokens, split once into a training part and a validation part that
/// never overlap, and batches drawn as a pure function of (seed, step).
///
/// - The validation split is the **last** `val_fraction` of the corpus; the training split is everything
///   before it. Every window (seq + 1 tokens: inputs and next-token targets) lies wholly inside one split,
///   so no validation token is ever trained on.
/// - Training batch `step` is `batch` windows whose start positions come from
///   `splitmix64(seed ^ train_stream_salt, step)`: a resumed run draws exactly the batches it would have
///   drawn, and no generator state needs saving.
/// - With gradient accumulation (train_config::microbatches = M), microbatch m of step `step` is windows
///   m·(batch/M) … (m+1)·(batch/M) − 1 of that same batch (`train_microbatch`): a pure function of
///   (seed, step, m), and the union of a step's microbatches is the batch drawn with M = 1.
/// - The validation set is fixed: `eval_batches × batch` windows at evenly spaced positions over the
///   validation split, the same for every evaluation and every run with the same split.
/// - The data's identity (`identity()`: origin, split sizes and an FNV-1a fingerprint of the tokens) is
///   what checkpoints and study results record, so a resume on other data is refused.
/// - Every token id is checked against the vocabulary once, at construction.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <ballast/core/config.hpp>
#include <ballast/core/file.hpp>
#include <ballast/core/json.hpp>
#include <ballast/core/rng.hpp>
#include <ballast/train/tokens.hpp>

namespace ballast
{
    /// A corpus as tokens: a token file (by its magic), a text file (byte-level tokens), or a directory of
    /// text files (regular files sorted by name, concatenated; fortune's `.dat` and `.u8` indexes skipped).
    inline std::vector<std::uint16_t> load_corpus(const std::filesystem::path& path)
    {
        std::vector<std::filesystem::path> files;
        std::error_code ec;
        if (std::filesystem::is_directory(path, ec))
        {
            for (const auto& e : std::filesystem::directory_iterator(path))
            {
                const auto ext = e.path().extension();
                if (e.is_regular_file() && ext != ".dat" && ext != ".u8")
                {
                    files.push_back(e.path());
                }
            }
            std::ranges::sort(files);
            BALLAST_CHECK(!files.empty(), "load_corpus", "directory '", path.string(), "' has no files");
        }
        else
        {
            files.push_back(path);
        }
        std::vector<std::uint16_t> tokens;
        for (const auto& f : files)
        {
            const auto t = load_tokens(f);
            tokens.insert(tokens.end(), t.begin(), t.end());
        }
        return tokens;
    }

    /// Next-token windows: x[b·seq + t] = tokens[start_b + t], y[b·seq + t] = tokens[start_b + t + 1].
    struct token_batch
    {
        std::vector<std::int32_t> inputs, targets;
        std::size_t batch = 0, seq = 0;
    };

    /// A corpus split into non-overlapping training and validation parts.
    class token_splits
    {
    public:
        static constexpr std::uint64_t train_stream_salt = 0x7472'6169'6e2d'6261ULL; // "train-ba"

        /// Takes the corpus, checks every id against `vocab`, and keeps the last `val_fraction` for
        /// validation. Throws ballast::error when an id is out of range or either split is shorter than
        /// one window of `seq` + 1 tokens.
        token_splits(std::vector<std::uint16_t> tokens, std::size_t vocab, double val_fraction,
                     std::size_t seq, std::string origin = "corpus")
          : m_tokens(std::move(tokens))
          , m_seq(seq)
          , m_origin(std::move(origin))
        {
            constexpr const char* where = "token_splits";
            BALLAST_CHECK(seq >= 1, where, "seq must be >= 1");
            BALLAST_CHECK(val_fraction > 0 && val_fraction < 1, where, "val_fraction must be in (0, 1), got ",
                          val_fraction);
            BALLAST_CHECK(!m_tokens.empty(), where, m_origin, " is empty");
            for (std::size_t i = 0; i < m_tokens.size(); ++i)
            {
                BALLAST_CHECK(m_tokens[i] < vocab, where, m_origin, ": token id ", m_tokens[i],
                              " at position ", i, " is outside the vocabulary [0, ", vocab, ")");
            }
            const auto n = m_tokens.size();
            m_val_size = static_cast<std::size_t>(static_cast<double>(n) * val_fraction);
            m_train_size = n - m_val_size;
            BALLAST_CHECK(m_train_size >= seq + 1 && m_val_size >= seq + 1, where, m_origin, " has ", n,
                          " tokens: too short for windows of ", seq + 1, " tokens in both splits (training ",
                          m_train_size, ", validation ", m_val_size, " = ", val_fraction,
                          " of the corpus); need at least ",
                          static_cast<std::size_t>(static_cast<double>(seq + 1) /
                                                   std::min(val_fraction, 1 - val_fraction)) +
                            1);
            m_fingerprint = fnv1a64(std::as_bytes(std::span<const std::uint16_t>(m_tokens)));
        }

        std::span<const std::uint16_t> train() const noexcept { return { m_tokens.data(), m_train_size }; }
        std::span<const std::uint16_t> validation() const noexcept
        {
            return { m_tokens.data() + m_train_size, m_val_size };
        }
        std::size_t seq() const noexcept { return m_seq; }
        const std::string& origin() const noexcept { return m_origin; }

        /// 64-bit FNV-1a of the token bytes, the training split then the validation split (computed once,
        /// at construction).
        std::uint64_t fingerprint() const noexcept { return m_fingerprint; }

        /// What identifies the data of a run: {"origin", "train_tokens", "validation_tokens", "fnv1a64"}
        /// (the fingerprint in hex). Checkpoints and study results record it.
        nlohmann::json identity() const
        {
            return { { "origin", m_origin },
                     { "train_tokens", m_train_size },
                     { "validation_tokens", m_val_size },
                     { "fnv1a64", hex64(m_fingerprint) } };
        }

        /// Training batch number `step` (a pure function of seed and step).
        void train_batch(std::uint64_t seed, std::uint64_t step, std::size_t batch, token_batch& out) const
        {
            splitmix64 rng(seed ^ train_stream_salt, step);
            const auto data = train();
            fill(
              out, batch,
              [&](std::size_t) { return static_cast<std::size_t>(rng.below(data.size() - m_seq)); }, data);
        }

        /// Microbatch `m` of `count` of training batch `step`: windows m·(batch/count) … of the batch
        /// `train_batch(seed, step, batch)` draws (all `batch` starts are drawn, so the generator advances the
        /// same way). `count` must divide `batch`; `train_microbatch(seed, step, batch, 0, 1)` is train_batch.
        void train_microbatch(std::uint64_t seed, std::uint64_t step, std::size_t batch, std::size_t m,
                              std::size_t count, token_batch& out) const
        {
            constexpr const char* where = "token_splits::train_microbatch";
            BALLAST_CHECK(count >= 1 && batch % count == 0, where, "microbatch count ", count,
                          " must divide the batch ", batch);
            BALLAST_CHECK(m < count, where, "microbatch ", m, " of ", count);
            splitmix64 rng(seed ^ train_stream_salt, step);
            const auto data = train();
            const std::size_t b = batch / count;
            std::vector<std::size_t> starts(batch);
            for (auto& s : starts)
            {
                s = static_cast<std::size_t>(rng.below(data.size() - m_seq));
            }
            fill(
              out, b, [&](std::size_t i) { return starts[m * b + i]; }, data);
        }

        /// Validation batch `i` of `count`: windows at evenly spaced positions over the validation split.
        void validation_batch(std::size_t i, std::size_t count, std::size_t batch, token_batch& out) const
        {
            BALLAST_CHECK(i < count, "token_splits", "validation batch ", i, " of ", count);
            const auto data = validation();
            const std::size_t windows = count * batch, last_start = data.size() - m_seq - 1;
            fill(
              out, batch,
              [&](std::size_t b)
              {
                  const std::size_t w = i * batch + b;
                  return windows > 1 ? static_cast<std::size_t>(static_cast<double>(last_start) *
                                                                static_cast<double>(w) /
                                                                static_cast<double>(windows - 1))
                                     : std::size_t{ 0 };
              },
              data);
        }

    private:
        template <class StartOf>
        void fill(token_batch& out, std::size_t batch, StartOf&& start_of,
                  std::span<const std::uint16_t> data) const
        {
            out.batch = batch;
            out.seq = m_seq;
            out.inputs.resize(batch * m_seq);
            out.targets.resize(batch * m_seq);
            for (std::size_t b = 0; b < batch; ++b)
            {
                const std::size_t start = start_of(b);
                for (std::size_t t = 0; t < m_seq; ++t)
                {
                    out.inputs[b * m_seq + t] = data[start + t];
                    out.targets[b * m_seq + t] = data[start + t + 1];
                }
            }
        }

        std::vector<std::uint16_t> m_tokens;
        std::size_t m_seq = 0, m_train_size = 0, m_val_size = 0;
        std::string m_origin;
        std::uint64_t m_fingerprint = 0;
    };
} // namespace ballast

#endif
