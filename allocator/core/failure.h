// Why an allocation failed. The spelled names are a public contract: traces, JSON results and reports
// use them verbatim. The enum only grows; values are never renumbered.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace vmfrag {

enum class FailureKind : std::uint8_t {
  kNone = 0,                // success
  kInvalidArgument,         // size 0, bad alignment, overflowing size, empty or unaligned sub-range
  kNoVirtualSpace,          // free virtual bytes in the range < need, after purge-and-retry
  kVirtualFragmentation,    // free bytes >= need but no free extent fits, after purge-and-retry
  kNoPhysicalMemory,        // (physical layer) not enough free pages
  kPhysicalFragmentation,   // (physical layer) enough free pages, no block of the order
  kMapLimit,                // (physical layer) the OS refused another mapping (vm.max_map_count)
  kOsError,                 // any other OS failure; the errno travels beside it
};

inline constexpr FailureKind kAllFailureKinds[] = {
    FailureKind::kInvalidArgument,   FailureKind::kNoVirtualSpace,
    FailureKind::kVirtualFragmentation, FailureKind::kNoPhysicalMemory,
    FailureKind::kPhysicalFragmentation, FailureKind::kMapLimit,
    FailureKind::kOsError,
};

[[nodiscard]] constexpr std::string_view failure_name(FailureKind k) {
  switch (k) {
    case FailureKind::kNone: return "none";
    case FailureKind::kInvalidArgument: return "invalid-argument";
    case FailureKind::kNoVirtualSpace: return "no-virtual-space";
    case FailureKind::kVirtualFragmentation: return "virtual-fragmentation";
    case FailureKind::kNoPhysicalMemory: return "no-physical-memory";
    case FailureKind::kPhysicalFragmentation: return "physical-fragmentation";
    case FailureKind::kMapLimit: return "map-limit";
    case FailureKind::kOsError: return "os-error";
  }
  return "unknown";
}

// Inverse of failure_name(); nullopt for an unknown name.
[[nodiscard]] constexpr std::optional<FailureKind> failure_from_name(std::string_view name) {
  if (name == "none") return FailureKind::kNone;
  for (FailureKind k : kAllFailureKinds)
    if (failure_name(k) == name) return k;
  return std::nullopt;
}

}  // namespace vmfrag
