#ifndef BALLAST_CORE_XSIMD_HPP
#define BALLAST_CORE_XSIMD_HPP

/// @file
/// The one include of xsimd and the x86 intrinsic headers. GCC 12's AVX-512 intrinsic headers
/// (avx512fintrin.h: `_mm512_extractf64x4_pd`, `_mm512_cvtpd_ps`, … built on `_mm256_undefined_*`) raise
/// false -Wuninitialized / -Wmaybe-uninitialized warnings once inlined into user code (GCC PR 105593, fixed
/// in GCC 13), which -Werror turns into errors on any AVX-512 machine under -march=native. The warnings are
/// silenced for the locations inside these headers only; ballast's own code keeps them.

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include <xsimd/xsimd.hpp>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif
