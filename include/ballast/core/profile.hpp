#ifndef BALLAST_CORE_PROFILE_HPP
#define BALLAST_CORE_PROFILE_HPP

/// @file
/// The profiling hook, off by default (docs/performance.md "Where a step's time goes").
///
/// The forward and backward passes (model/transformer.hpp) and the optimizer step (train/optimizer.hpp)
/// call BALLAST_PROFILE_MARK(family) at each serial point where the step enters another layer family
/// (`family` is a string literal; "end" closes a pass). A translation unit that defines the macro before
/// including any ballast header receives those calls (benchmarks/bm_train_step.cpp does, in its
/// -DBALLAST_BENCH_PROFILE build). Otherwise it expands to nothing, so a normal build compiles exactly the
/// same code as without the marks.

#ifndef BALLAST_PROFILE_MARK
#define BALLAST_PROFILE_MARK(family) static_cast<void>(0)
#endif

#endif
