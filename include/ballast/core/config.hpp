#ifndef BALLAST_CORE_CONFIG_HPP
#define BALLAST_CORE_CONFIG_HPP

/// @file
/// Library-wide configuration: the error type every check throws, the check macro, and the
/// fast-math guard. Every other ballast header includes this one.

#include <sstream>
#include <stdexcept>
#include <string>

#if defined(__FAST_MATH__) || defined(__FINITE_MATH_ONLY__) && __FINITE_MATH_ONLY__
#error                                                                                                       \
  "ballast must not be built with -ffast-math / -ffinite-math-only / -Ofast: NaN/Inf detection (divergence \
handling) depends on IEEE semantics."
#endif

namespace ballast
{
    /// Thrown for every invalid argument, shape, config or file ballast is given.
    /// The message always names the function or object that refused the input and why.
    class error : public std::runtime_error
    {
    public:
        using std::runtime_error::runtime_error;
    };

    namespace detail
    {
        template <class... Args>
        [[noreturn]] inline void throw_error(const char* where, const Args&... args)
        {
            std::ostringstream os;
            os << "ballast: " << where << ": ";
            (os << ... << args);
            throw error(os.str());
        }
    } // namespace detail
} // namespace ballast

/// BALLAST_CHECK(cond, where, message parts...): throw ballast::error unless cond holds.
/// Used for argument validation at API boundaries, never inside inner loops.
#define BALLAST_CHECK(cond, where, ...)                                                                      \
    do                                                                                                       \
    {                                                                                                        \
        if (!(cond)) [[unlikely]]                                                                            \
        {                                                                                                    \
            ::ballast::detail::throw_error(where, __VA_ARGS__);                                              \
        }                                                                                                    \
    } while (false)

#endif
