#ifndef BALLAST_CORE_CHECKED_HPP
#define BALLAST_CORE_CHECKED_HPP

/// @file
/// Checked arithmetic and strict parsing for sizes and counts. Every product of user-given sizes (batch ×
/// sequence × width, vocab × width, ...) goes through `checked_mul`, so a hostile size is an error naming
/// what overflowed rather than a wrapped, tiny allocation and a segfault in a kernel; every unsigned value
/// read from text goes through `parse_unsigned`, which accepts decimal digits only (no sign, no blanks, no
/// "0x"), so `-5` is refused instead of wrapping to 2^64 − 5.

#include <charconv>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <ballast/core/config.hpp>

namespace ballast
{
    /// a × b, or ballast::error "<where>: <what> overflows (a × b)" when the product does not fit in T.
    template <std::unsigned_integral T>
    inline T checked_mul(T a, T b, const char* where, std::string_view what = "size")
    {
        T r{};
        BALLAST_CHECK(!__builtin_mul_overflow(a, b, &r), where, what, " overflows (", a, " * ", b, ")");
        return r;
    }

    /// a + b, or ballast::error "<where>: <what> overflows (a + b)" when the sum does not fit in T.
    template <std::unsigned_integral T>
    inline T checked_add(T a, T b, const char* where, std::string_view what = "size")
    {
        T r{};
        BALLAST_CHECK(!__builtin_add_overflow(a, b, &r), where, what, " overflows (", a, " + ", b, ")");
        return r;
    }

    /// The product of every factor, checked (1 for none).
    template <std::unsigned_integral T>
    inline T checked_product(std::initializer_list<T> factors, const char* where,
                             std::string_view what = "size")
    {
        T r = 1;
        for (const T f : factors)
        {
            r = checked_mul(r, f, where, what);
        }
        return r;
    }

    /// `v` converted to `To` when it is representable, else ballast::error naming `what` and the range.
    template <std::integral To, std::integral From>
    inline To checked_narrow(From v, const char* where, std::string_view what)
    {
        BALLAST_CHECK(std::in_range<To>(v), where, what, " = ", v, " is out of range [",
                      +std::numeric_limits<To>::min(), ", ", +std::numeric_limits<To>::max(), "]");
        return static_cast<To>(v);
    }

    /// Strictly parse an unsigned decimal: one or more digits and nothing else (no sign, no blanks, no
    /// base prefix), at most `max`. Throws ballast::error "<where>: <what> '<text>' ..." otherwise.
    template <std::unsigned_integral T = std::size_t>
    inline T parse_unsigned(std::string_view text, const char* where, std::string_view what,
                            T max = std::numeric_limits<T>::max())
    {
        const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
        BALLAST_CHECK(digits, where, what, " '", text, "' is not an unsigned integer (digits only)");
        T v{};
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        BALLAST_CHECK(ec == std::errc{} && end == text.data() + text.size() && v <= max, where, what, " '",
                      text, "' is too large (at most ", +max, ")");
        return v;
    }
} // namespace ballast

#endif
