#ifndef BALLAST_MODEL_ACTIVATIONS_HPP
#define BALLAST_MODEL_ACTIVATIONS_HPP

/// @file
/// The activation table: every buffer the forward and backward passes keep, written down once.
///
/// Each row of `activation_table` names one buffer, how many slices it has (one per block, one per
/// residual stream point, or one), the elements of one slice at a given (batch, seq) shape, and what it
/// holds. The table alone drives
/// - the allocation (`activation_store::ensure`: one 64-byte-aligned region per buffer, zeroed),
/// - the per-layer views (`activation_store::operator()(id, layer)`: region start + layer · slice),
/// - the memory formula (`activation_elements`, which transformer::activation_elements returns),
/// and docs/model.md lists the same rows. A new activation is one enumerator and one row here.
///
/// Dims legend: B batch, T sequence length, N = B·T rows, d width, F MLP width, V vocab, H heads,
/// L layers, P threads (core/parallel.hpp).

#include <algorithm>
#include <array>
#include <cstddef>
#include <string_view>
#include <vector>

#include <ballast/core/aligned.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/memory.hpp>

namespace ballast
{
    /// The shape facts that size the activations of one pass.
    struct activation_dims
    {
        std::size_t batch = 0, seq = 0; ///< B, T
        std::size_t d = 0, f = 0, v = 0, heads = 0, layers = 0;
        std::size_t up = 1;      ///< u: up-projection rows per MLP hidden unit (the activation's up_factor)
        std::size_t threads = 1; ///< P: one attention-gradient scratch per thread of the team
        bool attn_cap = false;   ///< the policy set caps attention logits (capped logits are kept)
        std::size_t rows() const noexcept { return batch * seq; }

        bool operator==(const activation_dims&) const = default;
    };

    /// How many slices a buffer has.
    enum class activation_slices
    {
        per_block,    ///< L slices: one per transformer block
        per_residual, ///< L + 1 slices: the residual stream before each block and after the last
        once,         ///< one slice
    };

    /// Buffer ids, in table order (checked at compile time below).
    enum class act : std::size_t
    {
        // forward, per block
        res,
        mid,
        a,
        a_stats,
        qkv_raw,
        qkv,
        qk_stats,
        probs,
        capped,
        att,
        m,
        m_stats,
        up,
        mlp_act,
        // forward, output
        f,
        f_stats,
        logits,
        dlogits,
        lse,
        row_loss,
        // backward scratch
        dres,
        dtmp,
        datt,
        dqkv,
        dqkv_raw,
        dup,
        dscratch,
        count_
    };

    /// One row of the activation table.
    struct activation_buffer
    {
        act id;
        std::string_view name;
        activation_slices slices;
        /// The shape of one slice, outermost first, in the letters of docs/model.md: B batch, T sequence,
        /// d width, H heads, V vocabulary, F MLP hidden width, u the activation's up factor, P threads; a
        /// number multiplies the letter after it ("3d"), or stands alone ("2 B T": [mean | rstd]).
        std::string_view dims;
        std::size_t (*slice_elements)(const activation_dims&); ///< elements of one slice
        std::string_view holds;
    };

    // clang-format off
    /// The table. Per-block statistics are [mean | rstd] (2·N) of a norm; qk_stats is [q mean | q rstd |
    /// k mean | k rstd], each [H][N].
    inline constexpr std::array<activation_buffer, static_cast<std::size_t>(act::count_)> activation_table{ {
        { act::res,      "res",      activation_slices::per_residual, "B T d",    [](const activation_dims& s) { return s.rows() * s.d; },                   "residual stream x[l] before block l; x[L] after the last" },
        { act::mid,      "mid",      activation_slices::per_block,    "B T d",    [](const activation_dims& s) { return s.rows() * s.d; },                   "residual after attention" },
        { act::a,        "a",        activation_slices::per_block,    "B T d",    [](const activation_dims& s) { return s.rows() * s.d; },                   "attention norm output" },
        { act::a_stats,  "a_stats",  activation_slices::per_block,    "2 B T",    [](const activation_dims& s) { return 2 * s.rows(); },                     "attention norm mean, rstd" },
        { act::qkv_raw,  "qkv_raw",  activation_slices::per_block,    "B T 3d",   [](const activation_dims& s) { return 3 * s.rows() * s.d; },               "qkv projection output" },
        { act::qkv,      "qkv",      activation_slices::per_block,    "B T 3d",   [](const activation_dims& s) { return 3 * s.rows() * s.d; },               "q, k after qk control and RoPE (the v block is unused)" },
        { act::qk_stats, "qk_stats", activation_slices::per_block,    "4 H B T",  [](const activation_dims& s) { return 4 * s.heads * s.rows(); },           "qk-norm statistics" },
        { act::probs,    "probs",    activation_slices::per_block,    "B H T T",  [](const activation_dims& s) { return s.batch * s.heads * s.seq * s.seq; }, "attention probabilities" },
        { act::capped,   "capped",   activation_slices::per_block,    "B H T T",  [](const activation_dims& s) { return s.attn_cap ? s.batch * s.heads * s.seq * s.seq : 0; }, "capped attention logits (attention soft-cap only)" },
        { act::att,      "att",      activation_slices::per_block,    "B T d",    [](const activation_dims& s) { return s.rows() * s.d; },                   "attention output, heads concatenated" },
        { act::m,        "m",        activation_slices::per_block,    "B T d",    [](const activation_dims& s) { return s.rows() * s.d; },                   "MLP norm output" },
        { act::m_stats,  "m_stats",  activation_slices::per_block,    "2 B T",    [](const activation_dims& s) { return 2 * s.rows(); },                     "MLP norm mean, rstd" },
        { act::up,       "up",       activation_slices::per_block,    "B T uF",   [](const activation_dims& s) { return s.rows() * s.up * s.f; },           "MLP pre-activation (u·F wide)" },
        { act::mlp_act,  "mlp_act",  activation_slices::per_block,    "B T F",    [](const activation_dims& s) { return s.rows() * s.f; },                   "MLP post-activation" },
        { act::f,        "f",        activation_slices::once,         "B T d",    [](const activation_dims& s) { return s.rows() * s.d; },                   "final norm output" },
        { act::f_stats,  "f_stats",  activation_slices::once,         "2 B T",    [](const activation_dims& s) { return 2 * s.rows(); },                     "final norm mean, rstd" },
        { act::logits,   "logits",   activation_slices::once,         "B T V",    [](const activation_dims& s) { return s.rows() * s.v; },                   "output logits (after the output cap)" },
        { act::dlogits,  "dlogits",  activation_slices::once,         "B T V",    [](const activation_dims& s) { return s.rows() * s.v; },                   "d loss / d logits" },
        { act::lse,      "lse",      activation_slices::once,         "B T",      [](const activation_dims& s) { return s.rows(); },                         "log Z per row" },
        { act::row_loss, "row_loss", activation_slices::once,         "B T",      [](const activation_dims& s) { return s.rows(); },                         "loss per row" },
        { act::dres,     "dres",     activation_slices::once,         "B T d",    [](const activation_dims& s) { return s.rows() * s.d; },                   "backward: d loss / d residual" },
        { act::dtmp,     "dtmp",     activation_slices::once,         "B T d",    [](const activation_dims& s) { return s.rows() * s.d; },                   "backward: temporary" },
        { act::datt,     "datt",     activation_slices::once,         "B T d",    [](const activation_dims& s) { return s.rows() * s.d; },                   "backward: d loss / d attention output" },
        { act::dqkv,     "dqkv",     activation_slices::once,         "B T 3d",   [](const activation_dims& s) { return 3 * s.rows() * s.d; },               "backward: qkv gradient after qk control and RoPE" },
        { act::dqkv_raw, "dqkv_raw", activation_slices::once,         "B T 3d",   [](const activation_dims& s) { return 3 * s.rows() * s.d; },               "backward: qkv gradient before qk control" },
        { act::dup,      "dup",      activation_slices::once,         "B T uF",   [](const activation_dims& s) { return s.rows() * s.up * s.f; },           "backward: MLP gradient (u·F wide)" },
        { act::dscratch, "dscratch", activation_slices::once,         "P T T",    [](const activation_dims& s) { return s.threads * s.seq * s.seq; },        "backward: one T×T attention gradient per thread" },
    } };
    // clang-format on

    namespace detail
    {
        consteval bool activation_table_in_id_order()
        {
            for (std::size_t i = 0; i < activation_table.size(); ++i)
            {
                if (static_cast<std::size_t>(activation_table[i].id) != i)
                {
                    return false;
                }
            }
            return true;
        }
    } // namespace detail
    static_assert(detail::activation_table_in_id_order(), "activation_table rows must follow the act enum");

    /// The shape of one slice of `b` at `s`, read from its `dims` column. Its product is
    /// `b.slice_elements(s)` for every buffer that is allocated (a law in tests/model/activations_test.cpp).
    inline std::vector<std::size_t> activation_slice_shape(const activation_buffer& b,
                                                           const activation_dims& s)
    {
        std::vector<std::size_t> shape;
        std::size_t i = 0;
        const auto d = b.dims;
        while (i < d.size())
        {
            while (i < d.size() && d[i] == ' ')
            {
                ++i;
            }
            std::size_t k = 0;
            bool number = false;
            while (i < d.size() && d[i] >= '0' && d[i] <= '9')
            {
                k = k * 10 + static_cast<std::size_t>(d[i++] - '0');
                number = true;
            }
            std::size_t v = number ? k : 1;
            if (i < d.size() && d[i] == 'u')
            {
                v *= s.up;
                ++i;
            }
            if (i < d.size() && d[i] != ' ')
            {
                switch (d[i++])
                {
                    case 'B': v *= s.batch; break;
                    case 'T': v *= s.seq; break;
                    case 'd': v *= s.d; break;
                    case 'H': v *= s.heads; break;
                    case 'V': v *= s.v; break;
                    case 'F': v *= s.f; break;
                    case 'P': v *= s.threads; break;
                    default: break; // not reached: the table's letters are tested
                }
            }
            shape.push_back(v);
        }
        return shape;
    }

    /// Number of slices of a buffer.
    inline std::size_t activation_slice_count(activation_slices s, std::size_t layers) noexcept
    {
        switch (s)
        {
            case activation_slices::per_block:
                return layers;
            case activation_slices::per_residual:
                return layers + 1;
            case activation_slices::once:
                break;
        }
        return 1;
    }

    /// Elements of one buffer (all its slices) at `s`.
    inline std::size_t activation_elements(const activation_buffer& b, const activation_dims& s) noexcept
    {
        return activation_slice_count(b.slices, s.layers) * b.slice_elements(s);
    }

    /// Elements of every buffer at `s` (without alignment padding): the memory formula. Summed over the
    /// table, with c = 2 with an attention soft-cap else 1, it is (tests/model/activations_test.cpp)
    ///
    ///       L·(11·N·d + (u+1)·N·F + 4·N + 4·H·N + c·B·H·T²)   per block: residuals, norms, qkv, attention, MLP
    ///     + 2·N·d + 2·N·V + 4·N                              final residual and norm, logits and dlogits, log Z
    ///     + 9·N·d + u·N·F + P·T²                             backward scratch
    /// (u = the activation's up_factor: 1 for GELU, 2 for a gated unit).
    inline std::size_t activation_elements(const activation_dims& s) noexcept
    {
        std::size_t total = 0;
        for (const auto& b : activation_table)
        {
            total += activation_elements(b, s);
        }
        return total;
    }

    /// activation_elements(s), or ballast::error when a buffer size of `s` cannot be represented. The
    /// table's integer products are bounded first in double, which cannot wrap (every buffer is at most
    /// one of these products times a small constant): below 2^56 elements they are exact.
    inline std::size_t checked_activation_elements(const activation_dims& s)
    {
        const double n = static_cast<double>(s.batch) * static_cast<double>(s.seq);
        const double t2 = static_cast<double>(s.seq) * static_cast<double>(s.seq);
        const double widest = std::max({ 3 * n * static_cast<double>(s.d), n * static_cast<double>(s.v),
                                         n * static_cast<double>(s.up) * static_cast<double>(s.f),
                                         4 * n * static_cast<double>(s.heads),
                                         static_cast<double>(s.batch) * static_cast<double>(s.heads) * t2,
                                         static_cast<double>(s.threads) * t2 });
        const double total = widest * (static_cast<double>(s.layers) + 1) * static_cast<double>(activation_table.size());
        BALLAST_CHECK(total < 0x1p56, "activations", "batch ", s.batch, " x seq ", s.seq,
                      " gives activations of about ", total, " elements, more than any machine holds");
        return activation_elements(s);
    }

    /// The activations of one model: one aligned allocation laid out by the table, reused while the shape
    /// stays (a training step allocates nothing). Every buffer starts on a 64-byte boundary.
    template <class T>
    class activation_store
    {
    public:
        static constexpr std::size_t count = activation_table.size();

        /// Lay out and zero the buffers for `s`, unless the current allocation already serves it (same
        /// shape, at least as many attention-gradient scratches as threads). Throws ballast::error when
        /// the sizes overflow or do not fit in the memory available ("needs 31.2 GiB, 22.9 GiB available").
        void ensure(const activation_dims& s)
        {
            if (m_valid && m_dims.batch == s.batch && m_dims.seq == s.seq && m_dims.threads >= s.threads)
            {
                return;
            }
            constexpr std::size_t align = buffer_alignment / sizeof(T);
            // Refuse sizes that overflow, or that this machine cannot hold, before allocating.
            check_fits((checked_activation_elements(s) + count * align) * sizeof(T), "the activations");
            std::size_t total = 0;
            for (std::size_t i = 0; i < count; ++i)
            {
                m_offset[i] = (total + align - 1) / align * align;
                m_slice[i] = activation_table[i].slice_elements(s);
                m_size[i] = activation_elements(activation_table[i], s);
                total = m_offset[i] + m_size[i];
            }
            m_storage.assign(total, T(0));
            m_dims = s;
            m_valid = true;
        }

        /// Slice `slice` (a block or residual index; 0 for single-slice buffers) of buffer `id`.
        T* operator()(act id, std::size_t slice = 0) noexcept
        {
            const auto i = static_cast<std::size_t>(id);
            return m_storage.data() + m_offset[i] + slice * m_slice[i];
        }
        const T* operator()(act id, std::size_t slice = 0) const noexcept
        {
            const auto i = static_cast<std::size_t>(id);
            return m_storage.data() + m_offset[i] + slice * m_slice[i];
        }

        /// Elements of buffer `id` (all slices) / of one slice, as allocated.
        std::size_t size(act id) const noexcept { return m_size[static_cast<std::size_t>(id)]; }
        std::size_t slice_size(act id) const noexcept { return m_slice[static_cast<std::size_t>(id)]; }

        /// Elements allocated for buffers (without alignment padding).
        std::size_t elements() const noexcept
        {
            std::size_t total = 0;
            for (const auto s : m_size)
            {
                total += s;
            }
            return total;
        }

        /// The shape the buffers were laid out for.
        const activation_dims& dims() const noexcept { return m_dims; }

    private:
        aligned_vector<T> m_storage;
        std::array<std::size_t, count> m_offset{}, m_slice{}, m_size{};
        activation_dims m_dims;
        bool m_valid = false;
    };
} // namespace ballast

#endif
