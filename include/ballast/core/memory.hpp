#ifndef BALLAST_CORE_MEMORY_HPP
#define BALLAST_CORE_MEMORY_HPP

/// @file
/// Memory the machine can give a run, and a check that an estimate fits, so that a model too big for the
/// machine is refused up front ("needs 31.2 GiB, 22.9 GiB available") instead of dying in std::bad_alloc
/// or the OOM killer half-way through allocation. The estimate itself (parameters, optimizer state,
/// activations) belongs to the model and trainer, which know their layouts.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

#include <ballast/core/config.hpp>

namespace ballast
{
    namespace detail
    {
        /// MemAvailable from the text of /proc/meminfo ("MemAvailable:   23456789 kB"), if present.
        inline std::optional<std::uint64_t> parse_meminfo_available(std::string_view text)
        {
            constexpr std::string_view key = "MemAvailable:";
            const auto at = text.find(key);
            if (at == std::string_view::npos)
            {
                return std::nullopt;
            }
            std::size_t i = at + key.size();
            while (i < text.size() && (text[i] == ' ' || text[i] == '\t'))
            {
                ++i;
            }
            std::uint64_t kib = 0;
            bool any = false;
            for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i)
            {
                const auto d = static_cast<std::uint64_t>(text[i] - '0');
                if (kib > (UINT64_MAX / 1024 - d) / 10)
                {
                    return std::nullopt; // absurd value: treat as unknown
                }
                kib = kib * 10 + d;
                any = true;
            }
            if (!any)
            {
                return std::nullopt;
            }
            return kib * 1024;
        }
    } // namespace detail

    /// Bytes the kernel estimates can be allocated without swapping (MemAvailable of /proc/meminfo), or
    /// nullopt where that is unknown (not Linux, or /proc not mounted).
    inline std::optional<std::uint64_t> available_memory_bytes()
    {
        std::ifstream in("/proc/meminfo");
        if (!in)
        {
            return std::nullopt;
        }
        const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        return detail::parse_meminfo_available(text);
    }

    /// `bytes` as "31.2 GiB" (or MiB/KiB/bytes for smaller values).
    inline std::string format_bytes(std::uint64_t bytes)
    {
        char buf[64];
        const double b = static_cast<double>(bytes);
        if (bytes >= (1ULL << 30))
        {
            std::snprintf(buf, sizeof buf, "%.1f GiB", b / double(1ULL << 30));
        }
        else if (bytes >= (1ULL << 20))
        {
            std::snprintf(buf, sizeof buf, "%.1f MiB", b / double(1ULL << 20));
        }
        else if (bytes >= (1ULL << 10))
        {
            std::snprintf(buf, sizeof buf, "%.1f KiB", b / double(1ULL << 10));
        }
        else
        {
            std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(bytes));
        }
        return buf;
    }

    /// Throw ballast::error "<what> needs 31.2 GiB, 22.9 GiB available" unless `bytes_needed` fits in
    /// `available` bytes. Unknown availability (nullopt) passes: the check must never refuse a run on a
    /// system where it cannot measure.
    inline void check_fits(std::uint64_t bytes_needed, std::string_view what,
                           std::optional<std::uint64_t> available)
    {
        BALLAST_CHECK(!available || bytes_needed <= *available, "memory", what, " needs ",
                      format_bytes(bytes_needed), ", ", format_bytes(*available), " available");
    }

    /// check_fits against the memory available now.
    inline void check_fits(std::uint64_t bytes_needed, std::string_view what)
    {
        check_fits(bytes_needed, what, available_memory_bytes());
    }
} // namespace ballast

#endif
