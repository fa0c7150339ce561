// Three levels of invariant checking (see allocator/README.md):
//   VMF_ASSERT       cheap, debug builds only (NDEBUG removes it)
//   VMF_ASSERT_FULL  whole-structure walks, only with -Dchecks=full (VMF_CHECKS_FULL)
//   VMF_CHECK        always on: broken caller contracts that must never pass silently
// A failed check prints the expression, file:line and a formatted message, then aborts.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace vmfrag::detail {
[[noreturn]] inline void check_failed(const char* expr, const char* file, int line, const char* msg) {
  std::fprintf(stderr, "%s:%d: vmfrag check failed: %s%s%s\n", file, line, expr, msg[0] ? ": " : "", msg);
  std::fflush(stderr);
  std::abort();
}
}  // namespace vmfrag::detail

// The message is a printf-style format; a local buffer keeps the failure path free of the heap.
#define VMF_CHECK(cond, ...)                                                   \
  do {                                                                         \
    if (__builtin_expect(!(cond), 0)) {                                        \
      char vmf_msg_[512];                                                      \
      std::snprintf(vmf_msg_, sizeof vmf_msg_, "" __VA_ARGS__);                \
      ::vmfrag::detail::check_failed(#cond, __FILE__, __LINE__, vmf_msg_);     \
    }                                                                          \
  } while (0)

// Disabled checks still name their condition in an unevaluated context, so what only an assert uses
// does not become "unused" in release builds, and the condition keeps compiling.
#ifdef NDEBUG
#define VMF_ASSERT(cond, ...) ((void)sizeof(!(cond)))
#else
#define VMF_ASSERT(cond, ...) VMF_CHECK(cond, __VA_ARGS__)
#endif

#ifdef VMF_CHECKS_FULL
#define VMF_ASSERT_FULL(cond, ...) VMF_CHECK(cond, __VA_ARGS__)
#else
#define VMF_ASSERT_FULL(cond, ...) ((void)sizeof(!(cond)))
#endif
