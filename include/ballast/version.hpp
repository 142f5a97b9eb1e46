#ifndef BALLAST_VERSION_HPP
#define BALLAST_VERSION_HPP

/// ballast's version; CMakeLists.txt parses these three lines.
#define BALLAST_VERSION_MAJOR 0
#define BALLAST_VERSION_MINOR 1
#define BALLAST_VERSION_PATCH 0

namespace ballast
{
    inline constexpr int version_major = BALLAST_VERSION_MAJOR;
    inline constexpr int version_minor = BALLAST_VERSION_MINOR;
    inline constexpr int version_patch = BALLAST_VERSION_PATCH;
    inline constexpr const char* version_string = "0.1.0";
} // namespace ballast

#endif
