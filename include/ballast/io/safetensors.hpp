#ifndef BALLAST_IO_SAFETENSORS_HPP
#define BALLAST_IO_SAFETENSORS_HPP

/// @file
/// Reading and writing safetensors files, the tensor format PyTorch and Hugging Face users exchange.
///
/// Layout: an 8-byte little-endian unsigned header length N, N bytes of UTF-8 JSON, then the data buffer.
/// The JSON maps each tensor name to `{"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}`
/// (offsets relative to the buffer, little-endian, row-major) and may hold a `"__metadata__"` object of
/// string to string. Like the reference implementation, the reader requires the tensors to tile the buffer
/// exactly (no gaps, no overlaps, nothing after the last tensor), so a truncated or padded file is refused.

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <ballast/core/checked.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/file.hpp>

namespace ballast::io
{
    static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

    /// Element types ballast reads and writes (safetensors spells them "F64", "F32", "I64", "I32", "U16",
    /// "U8").
    enum class dtype
    {
        f64,
        f32,
        i64,
        i32,
        u16,
        u8
    };

    inline std::size_t dtype_size(dtype t) noexcept
    {
        switch (t)
        {
            case dtype::f64:
            case dtype::i64:
                return 8;
            case dtype::f32:
            case dtype::i32:
                return 4;
            case dtype::u16:
                return 2;
            case dtype::u8:
                return 1;
        }
        return 0;
    }

    inline std::string_view dtype_name(dtype t) noexcept
    {
        switch (t)
        {
            case dtype::f64:
                return "F64";
            case dtype::f32:
                return "F32";
            case dtype::i64:
                return "I64";
            case dtype::i32:
                return "I32";
            case dtype::u16:
                return "U16";
            case dtype::u8:
                return "U8";
        }
        return "?";
    }

    /// The dtype of a C++ element type.
    template <class T>
    inline constexpr dtype dtype_of = []
    {
        if constexpr (std::is_same_v<T, double>)
            return dtype::f64;
        else if constexpr (std::is_same_v<T, float>)
            return dtype::f32;
        else if constexpr (std::is_same_v<T, std::int64_t>)
            return dtype::i64;
        else if constexpr (std::is_same_v<T, std::int32_t>)
            return dtype::i32;
        else if constexpr (std::is_same_v<T, std::uint16_t>)
            return dtype::u16;
        else
        {
            static_assert(std::is_same_v<T, std::uint8_t>, "unsupported safetensors element type");
            return dtype::u8;
        }
    }();

    /// One tensor's entry in the header.
    struct tensor_info
    {
        std::string name;
        io::dtype dtype = dtype::f32;
        std::vector<std::size_t> shape;
        std::size_t begin = 0; ///< byte offset into the data buffer
        std::size_t end = 0;   ///< one past the last byte

        std::size_t numel() const noexcept
        {
            std::size_t n = 1;
            for (const auto s : shape)
            {
                n *= s;
            }
            return n;
        }
    };

    namespace detail
    {
        inline std::string shape_string(std::span<const std::size_t> shape)
        {
            std::string s = "[";
            for (std::size_t i = 0; i < shape.size(); ++i)
            {
                if (i > 0)
                {
                    s += ", ";
                }
                s += std::to_string(shape[i]);
            }
            return s + "]";
        }

        inline dtype parse_dtype(const std::string& s, const std::string& where)
        {
            for (const dtype t : { dtype::f64, dtype::f32, dtype::i64, dtype::i32, dtype::u16, dtype::u8 })
            {
                if (s == dtype_name(t))
                {
                    return t;
                }
            }
            ::ballast::detail::throw_error("safetensors", where, ": unsupported dtype '", s, "'");
        }
    } // namespace detail

    /// A safetensors file loaded into memory, validated on load.
    class safetensors_file
    {
    public:
        /// Parse and validate `bytes`; `origin` names the source in error messages.
        explicit safetensors_file(std::vector<std::byte> bytes, std::string origin = "<memory>")
          : m_bytes(std::move(bytes))
          , m_origin(std::move(origin))
        {
            parse();
        }

        /// Load and validate a file.
        static safetensors_file load(const std::filesystem::path& path)
        {
            return safetensors_file(read_file(path), path.string());
        }

        const std::vector<tensor_info>& tensors() const noexcept { return m_tensors; }
        const std::map<std::string, std::string>& metadata() const noexcept { return m_metadata; }
        bool contains(std::string_view name) const noexcept { return find(name) != nullptr; }

        /// The entry of `name`; throws if absent.
        const tensor_info& info(std::string_view name) const
        {
            const tensor_info* t = find(name);
            BALLAST_CHECK(t != nullptr, "safetensors", m_origin, ": no tensor named '", name, "'");
            return *t;
        }

        /// Raw little-endian bytes of `name`.
        std::span<const std::byte> bytes(std::string_view name) const
        {
            const auto& t = info(name);
            return { m_bytes.data() + m_data_start + t.begin, t.end - t.begin };
        }

        /// Copy tensor `name` into `dst` (numel elements of T), checking that its shape is `expected_shape`.
        /// F32 and F64 tensors convert to either float or double; integer dtypes must match T exactly.
        template <class T>
        void read(std::string_view name, std::span<const std::size_t> expected_shape, T* dst) const
        {
            const auto& t = info(name);
            BALLAST_CHECK(std::ranges::equal(t.shape, expected_shape), "safetensors", m_origin, ": tensor '",
                          name, "' has shape ", detail::shape_string(t.shape), ", expected ",
                          detail::shape_string(expected_shape));
            const std::byte* src = m_bytes.data() + m_data_start + t.begin;
            const std::size_t n = t.numel();
            if (t.dtype == dtype_of<T>)
            {
                std::memcpy(dst, src, n * sizeof(T));
                return;
            }
            constexpr bool floating = std::is_floating_point_v<T>;
            BALLAST_CHECK(floating && (t.dtype == dtype::f32 || t.dtype == dtype::f64), "safetensors",
                          m_origin, ": tensor '", name, "' has dtype ", dtype_name(t.dtype),
                          ", cannot read it as ", dtype_name(dtype_of<T>));
            for (std::size_t i = 0; i < n; ++i)
            {
                if (t.dtype == dtype::f32)
                {
                    float v;
                    std::memcpy(&v, src + 4 * i, 4);
                    dst[i] = static_cast<T>(v);
                }
                else
                {
                    double v;
                    std::memcpy(&v, src + 8 * i, 8);
                    dst[i] = static_cast<T>(v);
                }
            }
        }

        /// Throw unless the file holds exactly the tensors named in `expected` (reports missing and extra).
        void require_exactly(std::span<const std::string> expected) const
        {
            const auto append = [](std::string& list, const std::string& item)
            {
                if (!list.empty())
                {
                    list += ", ";
                }
                list += item;
            };
            std::string missing, extra;
            for (const auto& e : expected)
            {
                if (!contains(e))
                {
                    append(missing, e);
                }
            }
            for (const auto& t : m_tensors)
            {
                if (std::ranges::find(expected, t.name) == expected.end())
                {
                    append(extra, t.name);
                }
            }
            BALLAST_CHECK(missing.empty() && extra.empty(), "safetensors", m_origin,
                          missing.empty() ? "" : ": missing tensors: ", missing,
                          extra.empty() ? "" : ": unexpected tensors: ", extra);
        }

    private:
        const tensor_info* find(std::string_view name) const noexcept
        {
            const auto it = std::ranges::find(m_tensors, name, &tensor_info::name);
            return it == m_tensors.end() ? nullptr : &*it;
        }

        template <class... A>
        [[noreturn]] void fail(const A&... a) const
        {
            ::ballast::detail::throw_error("safetensors", m_origin, ": ", a...);
        }

        void parse()
        {
            if (m_bytes.size() < 8)
            {
                fail("file is ", m_bytes.size(),
                     " bytes, too short for the 8-byte header length (truncated?)");
            }
            std::uint64_t n = 0;
            std::memcpy(&n, m_bytes.data(), 8);
            if (n > m_bytes.size() - 8)
            {
                fail("header length ", n, " exceeds the file size ", m_bytes.size(),
                     " (truncated or not safetensors)");
            }
            m_data_start = 8 + static_cast<std::size_t>(n);
            const std::size_t data_size = m_bytes.size() - m_data_start;
            nlohmann::json header;
            try
            {
                header = nlohmann::json::parse(reinterpret_cast<const char*>(m_bytes.data() + 8),
                                               reinterpret_cast<const char*>(m_bytes.data() + m_data_start));
            }
            catch (const nlohmann::json::exception& e)
            {
                fail("header is not valid JSON: ", e.what());
            }
            if (!header.is_object())
            {
                fail("header is not a JSON object");
            }
            for (const auto& [key, value] : header.items())
            {
                if (key == "__metadata__")
                {
                    if (!value.is_object())
                    {
                        fail("__metadata__ is not an object");
                    }
                    for (const auto& [mk, mv] : value.items())
                    {
                        if (!mv.is_string())
                        {
                            fail("__metadata__ value of '", mk, "' is not a string");
                        }
                        m_metadata[mk] = mv.get<std::string>();
                    }
                    continue;
                }
                m_tensors.push_back(parse_entry(key, value, data_size));
            }
            std::vector<const tensor_info*> order;
            for (const auto& t : m_tensors)
            {
                order.push_back(&t);
            }
            std::ranges::sort(order, {}, [](const tensor_info* t) { return std::pair(t->begin, t->end); });
            std::size_t cursor = 0;
            for (const auto* t : order)
            {
                if (t->begin != cursor)
                {
                    fail("tensor '", t->name, "' starts at byte ", t->begin, " but the previous one ends at ",
                         cursor, " (overlapping or gapped data)");
                }
                cursor = t->end;
            }
            if (cursor != data_size)
            {
                fail("tensors cover ", cursor, " bytes but the data buffer holds ", data_size);
            }
        }

        tensor_info parse_entry(const std::string& name, const nlohmann::json& v, std::size_t data_size) const
        {
            if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
            {
                fail("entry '", name, "' needs dtype, shape and data_offsets");
            }
            tensor_info t;
            t.name = name;
            const auto& dt = v.at("dtype");
            if (!dt.is_string())
            {
                fail("entry '", name, "': dtype is not a string");
            }
            t.dtype = detail::parse_dtype(dt.get<std::string>(), m_origin + ": '" + name + "'");
            const auto& shape = v.at("shape");
            if (!shape.is_array())
            {
                fail("entry '", name, "': shape is not an array");
            }
            for (const auto& s : shape)
            {
                if (!s.is_number_unsigned())
                {
                    fail("entry '", name, "': shape holds a non-natural number");
                }
                t.shape.push_back(s.get<std::size_t>());
            }
            const auto& off = v.at("data_offsets");
            if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
                !off[1].is_number_unsigned())
            {
                fail("entry '", name, "': data_offsets must be [begin, end]");
            }
            t.begin = off[0].get<std::size_t>();
            t.end = off[1].get<std::size_t>();
            if (t.begin > t.end || t.end > data_size)
            {
                fail("entry '", name, "': data_offsets [", t.begin, ", ", t.end, "] outside the ", data_size,
                     "-byte data buffer (truncated?)");
            }
            // The byte size in checked arithmetic: a wrapped product could match a small range. A zero
            // dimension makes an empty tensor whatever the others are.
            const bool empty = std::ranges::find(t.shape, std::size_t{ 0 }) != t.shape.end();
            std::size_t bytes = empty ? 0 : dtype_size(t.dtype);
            for (const auto d : t.shape)
            {
                if (!empty && __builtin_mul_overflow(bytes, d, &bytes))
                {
                    fail("entry '", name, "': shape ", detail::shape_string(t.shape), " of ",
                         dtype_name(t.dtype), " overflows the address space");
                }
            }
            if (t.end - t.begin != bytes)
            {
                fail("entry '", name, "': ", t.end - t.begin, " bytes do not hold shape ",
                     detail::shape_string(t.shape), " of ", dtype_name(t.dtype));
            }
            return t;
        }

        std::vector<std::byte> m_bytes;
        std::string m_origin;
        std::size_t m_data_start = 0;
        std::vector<tensor_info> m_tensors;
        std::map<std::string, std::string> m_metadata;
    };

    /// Collects tensors (copied on add) and writes them as one safetensors file, atomically.
    class safetensors_writer
    {
    public:
        /// Add a tensor; names must be unique and the element count must match the shape.
        template <class T>
        void add(std::string name, std::span<const std::size_t> shape, const T* data)
        {
            BALLAST_CHECK(!name.empty() && name != "__metadata__", "safetensors_writer",
                          "invalid tensor name '", name, "'");
            BALLAST_CHECK(std::ranges::find(m_entries, name, &entry::name) == m_entries.end(),
                          "safetensors_writer", "duplicate tensor name '", name, "'");
            std::size_t n = 1;
            for (const auto s : shape)
            {
                n = checked_mul(n, s, "safetensors_writer", "tensor size");
            }
            checked_mul(n, sizeof(T), "safetensors_writer", "tensor size");
            entry e{ std::move(name), dtype_of<T>, { shape.begin(), shape.end() }, {} };
            e.bytes.resize(n * sizeof(T));
            if (n > 0)
            {
                std::memcpy(e.bytes.data(), data, n * sizeof(T));
            }
            m_entries.push_back(std::move(e));
        }

        template <class T>
        void add(std::string name, std::initializer_list<std::size_t> shape, const T* data)
        {
            add(std::move(name), std::span<const std::size_t>(shape.begin(), shape.size()), data);
        }

        void set_metadata(std::string key, std::string value)
        {
            m_metadata[std::move(key)] = std::move(value);
        }

        /// The serialised file: header length, JSON header padded with spaces to 8 bytes, data.
        std::vector<std::byte> serialize() const
        {
            nlohmann::ordered_json header = nlohmann::ordered_json::object();
            if (!m_metadata.empty())
            {
                header["__metadata__"] = m_metadata;
            }
            std::size_t offset = 0;
            for (const auto& e : m_entries)
            {
                header[e.name] = { { "dtype", dtype_name(e.type) },
                                   { "shape", e.shape },
                                   { "data_offsets", { offset, offset + e.bytes.size() } } };
                offset += e.bytes.size();
            }
            std::string text = header.dump();
            text.append((8 - text.size() % 8) % 8, ' ');
            std::vector<std::byte> out(8 + text.size() + offset);
            const std::uint64_t n = text.size();
            std::memcpy(out.data(), &n, 8);
            std::memcpy(out.data() + 8, text.data(), text.size());
            std::byte* p = out.data() + 8 + text.size();
            for (const auto& e : m_entries)
            {
                std::ranges::copy(e.bytes, p);
                p += e.bytes.size();
            }
            return out;
        }

        /// Write to `path` atomically (temp file + rename).
        void write(const std::filesystem::path& path) const
        {
            const auto bytes = serialize();
            write_file_atomic(path, std::span<const std::byte>(bytes));
        }

    private:
        struct entry
        {
            std::string name;
            dtype type;
            std::vector<std::size_t> shape;
            std::vector<std::byte> bytes;
        };
        std::vector<entry> m_entries;
        std::map<std::string, std::string> m_metadata;
    };
} // namespace ballast::io

#endif
