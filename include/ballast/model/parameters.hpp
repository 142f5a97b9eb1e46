#ifndef BALLAST_MODEL_PARAMETERS_HPP
#define BALLAST_MODEL_PARAMETERS_HPP

/// @file
/// The parameter layout: every tensor of a model as a named, shaped slice of one flat, aligned buffer.
/// Parameters, gradients and optimizer moments are each one buffer with this layout, so an optimizer
/// step is one pass over contiguous memory, and per-tensor facts (role, fan-in, LR multiplier, decay
/// mask) are looked up by index. Each tensor starts on a 64-byte boundary.

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <xtensor/xadapt.hpp>

#include <ballast/core/config.hpp>
#include <ballast/policies/parameterisation.hpp>

namespace ballast
{
    /// A shaped, zero-copy xtensor view of a buffer (row-major, dynamic rank): what `transformer::tensor`,
    /// `grad_tensor` and `optimizer::state_tensor` return. Writes through a non-const view change the
    /// buffer; the view does not own it and must not outlive it.
    template <class T>
    using tensor_view = decltype(xt::adapt(std::declval<T*>(), std::size_t{}, xt::no_ownership(),
                                           std::declval<const std::vector<std::size_t>&>()));

    /// The view of `n` elements at `data` with `shape` (whose product is `n`).
    template <class T>
    tensor_view<T> make_tensor_view(T* data, std::size_t n, const std::vector<std::size_t>& shape)
    {
        // An rvalue: the view holds the pointer itself (an lvalue would make it hold a reference to `data`).
        return xt::adapt(std::move(data), n, xt::no_ownership(), shape);
    }

    /// One tensor in the flat buffer.
    struct param_entry
    {
        std::string name;               ///< safetensors name, e.g. "blocks.0.attn.qkv.weight"
        std::vector<std::size_t> shape; ///< row-major; matrices are [out, in]
        std::size_t offset = 0;         ///< element offset into the flat buffer (64-byte aligned)
        std::size_t size = 0;           ///< number of elements
        policies::param_role role = policies::param_role::matrix;
        std::size_t fan_in = 0;   ///< input features (matrices, head); 0 otherwise
        double init_std = 0;      ///< from the parameterisation
        double lr_multiplier = 1; ///< from the parameterisation
        std::size_t layer = 0;    ///< block index, or n_layers for non-block tensors
    };

    /// Named tensors over one flat buffer.
    class param_layout
    {
    public:
        /// Elements of T per alignment unit (64 bytes).
        template <class T>
        static constexpr std::size_t align_elems = 64 / sizeof(T);

        /// Append a tensor; returns its index. `align` is the element alignment of offsets.
        std::size_t add(param_entry e, std::size_t align)
        {
            BALLAST_CHECK(!contains(e.name), "param_layout", "duplicate tensor '", e.name, "'");
            e.size = 1;
            for (const auto s : e.shape)
            {
                e.size *= s;
            }
            e.offset = (m_total + align - 1) / align * align;
            m_total = e.offset + e.size;
            m_entries.push_back(std::move(e));
            return m_entries.size() - 1;
        }

        const std::vector<param_entry>& entries() const noexcept { return m_entries; }
        /// Buffer length in elements (including alignment padding).
        std::size_t total() const noexcept { return m_total; }
        /// Number of parameters (excluding padding).
        std::size_t count() const noexcept
        {
            std::size_t n = 0;
            for (const auto& e : m_entries)
            {
                n += e.size;
            }
            return n;
        }

        bool contains(std::string_view name) const noexcept
        {
            return std::ranges::find(m_entries, name, &param_entry::name) != m_entries.end();
        }

        const param_entry& at(std::string_view name) const
        {
            const auto it = std::ranges::find(m_entries, name, &param_entry::name);
            BALLAST_CHECK(it != m_entries.end(), "param_layout", "no tensor named '", name, "'");
            return *it;
        }

        std::vector<std::string> names() const
        {
            std::vector<std::string> out;
            for (const auto& e : m_entries)
            {
                out.push_back(e.name);
            }
            return out;
        }

    private:
        std::vector<param_entry> m_entries;
        std::size_t m_total = 0;
    };
} // namespace ballast

#endif
