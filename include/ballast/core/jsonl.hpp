#ifndef BALLAST_CORE_JSONL_HPP
#define BALLAST_CORE_JSONL_HPP

/// @file
/// Reading the JSON-lines files ballast appends to (training metrics, study results). Writers append one
/// whole line per write(2) (`append_line`), so the only damage a crash can do is a torn last line; a
/// reader drops that line and treats anything else that is not a JSON object as corruption.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include <ballast/core/config.hpp>
#include <ballast/core/file.hpp>

namespace ballast
{
    /// The JSON objects of JSON-lines `text` (the rules of read_jsonl); `origin` names it in errors.
    inline std::vector<nlohmann::json> parse_jsonl(std::string_view all, const std::string& origin)
    {
        std::vector<nlohmann::json> out;
        std::size_t line_no = 0;
        while (!all.empty())
        {
            ++line_no;
            const auto nl = all.find('\n');
            const bool terminated = nl != std::string_view::npos;
            const auto line = all.substr(0, nl);
            all = terminated ? all.substr(nl + 1) : std::string_view{};
            if (line.find_first_not_of(" \t\r") == std::string_view::npos)
            {
                continue;
            }
            auto j = nlohmann::json::parse(line, nullptr, false);
            if (!j.is_discarded() && j.is_object())
            {
                out.push_back(std::move(j));
                continue;
            }
            BALLAST_CHECK(!terminated, "read_jsonl", "'", origin, "' line ", line_no,
                          " is not a JSON object (corrupt file?)");
            // else: a torn last line, dropped
        }
        return out;
    }

    /// Every line of a JSON-lines file, each a JSON object. A last line without its '\n' that does not
    /// parse (an append torn by a crash) is dropped; any other line that is not a JSON object throws
    /// ballast::error naming the file and the line number. Blank lines are skipped. A missing file reads
    /// as empty when `missing_ok`, else throws.
    inline std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& path, bool missing_ok = true)
    {
        std::error_code ec;
        if (missing_ok && !std::filesystem::exists(path, ec))
        {
            return {};
        }
        const auto bytes = read_file(path);
        return parse_jsonl(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                           path.string());
    }

    /// The string field `key` of a JSON-lines object, or `fallback` when absent or not a string (unlike
    /// nlohmann's `value(key, "")`, which throws a type error naming no file when the field is a number).
    inline std::string string_field(const nlohmann::json& j, const char* key, std::string fallback = {})
    {
        const auto it = j.find(key);
        return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
    }

    /// `j[key]` as `T` (bool, an unsigned or signed integer, double, std::string, or nlohmann::json for
    /// any value) when present and of that JSON kind; `fallback` when `j` is not an object or lacks the
    /// key; otherwise ballast::error "<where>: field '<key>' is <its JSON type>, expected <kind>". Never
    /// nlohmann's type_error, which names neither the field nor the file.
    template <class T>
    T typed_field(const nlohmann::json& j, const char* key, T fallback, const char* where)
    {
        if (!j.is_object())
        {
            return fallback;
        }
        const auto it = j.find(key);
        if (it == j.end())
        {
            return fallback;
        }
        if constexpr (std::is_same_v<T, nlohmann::json>)
        {
            return *it;
        }
        else
        {
            bool ok = false;
            const char* kind = "";
            if constexpr (std::is_same_v<T, bool>)
            {
                ok = it->is_boolean();
                kind = "a boolean";
            }
            else if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T>)
            {
                ok = it->is_number_unsigned();
                kind = "an unsigned integer";
            }
            else if constexpr (std::is_integral_v<T>)
            {
                ok = it->is_number_integer();
                kind = "an integer";
            }
            else if constexpr (std::is_floating_point_v<T>)
            {
                ok = it->is_number();
                kind = "a number";
            }
            else
            {
                static_assert(std::is_same_v<T, std::string>, "typed_field: unsupported type");
                ok = it->is_string();
                kind = "a string";
            }
            BALLAST_CHECK(ok, where, "field '", key, "' is ", it->type_name(), ", expected ", kind);
            return it->template get<T>();
        }
    }

} // namespace ballast

#endif
