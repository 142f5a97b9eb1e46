#ifndef BALLAST_CORE_JSON_HPP
#define BALLAST_CORE_JSON_HPP

/// @file
/// Numbers in the JSON files ballast writes (metrics logs, study results, checkpoints).
///
/// JSON has no NaN or infinity, and nlohmann-json would write them as `null` anyway, but silently; the
/// files say so explicitly instead: a number that is not finite is written as `null` (`finite_or_null`)
/// and read back as NaN (`number_or_nan`). Fingerprints are written as 16 hex digits (`hex64`).

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace ballast
{
    /// `x` as a JSON number, or `null` when it is NaN or infinite.
    inline nlohmann::json finite_or_null(double x)
    {
        return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr);
    }

    /// A JSON number as a double; NaN for anything else (`null`, a string, …).
    inline double number_or_nan(const nlohmann::json& v)
    {
        return v.is_number() ? v.get<double>() : std::nan("");
    }

    /// The number under `key` of a JSON object; NaN when the key is absent, the value is not a number, or
    /// `j` is not an object.
    inline double number_or_nan(const nlohmann::json& j, std::string_view key)
    {
        if (!j.is_object())
        {
            return std::nan("");
        }
        const auto it = j.find(key);
        return it != j.end() ? number_or_nan(*it) : std::nan("");
    }

    /// A 64-bit fingerprint as 16 lower-case hex digits.
    inline std::string hex64(std::uint64_t v)
    {
        char buf[17];
        std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
        return buf;
    }
} // namespace ballast

#endif
