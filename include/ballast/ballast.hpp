#ifndef BALLAST_BALLAST_HPP
#define BALLAST_BALLAST_HPP

/// @file
/// Umbrella header: everything public in ballast. Include order does not matter (every header is
/// compiled on its own by the header test).

#include <ballast/core/aligned.hpp>
#include <ballast/core/config.hpp>
#include <ballast/core/file.hpp>
#include <ballast/core/named.hpp>
#include <ballast/core/parallel.hpp>
#include <ballast/core/reflect.hpp>
#include <ballast/core/rng.hpp>
#include <ballast/core/simd.hpp>
#include <ballast/io/safetensors.hpp>
#include <ballast/kernels/bf16.hpp>
#include <ballast/kernels/cross_entropy.hpp>
#include <ballast/kernels/elementwise.hpp>
#include <ballast/kernels/gelu.hpp>
#include <ballast/kernels/gemm.hpp>
#include <ballast/kernels/gemm_bf16.hpp>
#include <ballast/kernels/norm.hpp>
#include <ballast/kernels/reduce.hpp>
#include <ballast/kernels/ref/bf16.hpp>
#include <ballast/kernels/ref/cross_entropy.hpp>
#include <ballast/kernels/ref/elementwise.hpp>
#include <ballast/kernels/ref/gelu.hpp>
#include <ballast/kernels/ref/gemm.hpp>
#include <ballast/kernels/ref/gemm_bf16.hpp>
#include <ballast/kernels/ref/norm.hpp>
#include <ballast/kernels/ref/reduce.hpp>
#include <ballast/kernels/ref/soft_cap.hpp>
#include <ballast/kernels/ref/softmax.hpp>
#include <ballast/kernels/soft_cap.hpp>
#include <ballast/kernels/softmax.hpp>
#include <ballast/model/config.hpp>
#include <ballast/model/diagnostics.hpp>
#include <ballast/model/parameters.hpp>
#include <ballast/model/transformer.hpp>
#include <ballast/policies/attention.hpp>
#include <ballast/policies/norm.hpp>
#include <ballast/policies/output.hpp>
#include <ballast/policies/parameterisation.hpp>
#include <ballast/policies/policy_set.hpp>
#include <ballast/policies/position.hpp>
#include <ballast/policies/registry.hpp>
#include <ballast/policies/structure.hpp>
#include <ballast/study/grid.hpp>
#include <ballast/study/metric.hpp>
#include <ballast/study/study.hpp>
#include <ballast/train/checkpoint.hpp>
#include <ballast/train/data.hpp>
#include <ballast/train/optimizer.hpp>
#include <ballast/train/schedule.hpp>
#include <ballast/train/tokens.hpp>
#include <ballast/train/train_config.hpp>
#include <ballast/train/trainer.hpp>
#include <ballast/version.hpp>

#endif
