#ifndef BALLAST_BALLAST_HPP
#define BALLAST_BALLAST_HPP

/// @file
/// Umbrella header: everything public in ballast. Include order does not matter.

#include <ballast/core/aligned.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/version.hpp>

#endif
