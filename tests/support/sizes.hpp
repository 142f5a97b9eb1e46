#ifndef BALLAST_TESTS_SUPPORT_SIZES_HPP
#define BALLAST_TESTS_SUPPORT_SIZES_HPP

// The awkward lengths every kernel test sweeps: around one register of T (1, lanes−1, lanes, lanes+1,
// 2·lanes+3) plus the caller's own (primes, block boundaries), sorted, unique, zero dropped.

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <vector>

#include <ballast/core/simd.hpp>

namespace ballast::test
{
    template <class T>
    std::vector<std::size_t> awkward_sizes(std::initializer_list<std::size_t> extra = {})
    {
        constexpr std::size_t L = simd::lanes<T>;
        std::vector<std::size_t> s{ 1, L - 1, L, L + 1, 2 * L + 3 };
        s.insert(s.end(), extra.begin(), extra.end());
        std::erase(s, std::size_t{ 0 });
        std::ranges::sort(s);
        s.erase(std::unique(s.begin(), s.end()), s.end());
        return s;
    }
} // namespace ballast::test

#endif
