// Fault injection at the page allocator (issue #15): the physical layer's counterpart of
// allocator/os/fault_injection.h. Both implement PhysicalMemory's seam (PageAllocFaults):
// RecordingPageAllocs lists every page allocation a sequence makes as an injection point, and
// FailingPageAllocs refuses exactly one of them ("fail the N-th call of kind K") or a seeded rate
// of them, with no-physical-memory or physical-fragmentation. The same call sequence meets the
// same points (and the same seed draws the same numbers), so a test can record a sequence's points
// and rerun it once per point with that point failing, and `vmfrag replay --fail-phys` can do the
// same to any trace.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "allocator/core/failure.h"
#include "allocator/phys/physical_memory.h"

namespace vmfrag {

// "block" (alloc_block), "pages" (alloc_pages). Never null.
[[nodiscard]] const char* page_alloc_call_name(PageAllocCall call);

// One injection point: the call's kind and its 0-based index among the calls of that kind.
struct PageAllocPoint {
  PageAllocCall call;
  std::uint64_t index;
};

// Counts calls per kind; PhysicalMemory calls on_alloc under its lock, so no lock is needed here.
class PageAllocCounter : public PageAllocFaults {
 protected:
  PageAllocPoint next_point(PageAllocCall call);

 private:
  std::array<std::uint64_t, static_cast<std::size_t>(PageAllocCall::kCount)> counts_{};
};

// Lets every allocation through and lists it, in order.
class RecordingPageAllocs final : public PageAllocCounter {
 public:
  FailureKind on_alloc(PageAllocCall call) override;
  [[nodiscard]] const std::vector<PageAllocPoint>& points() const { return points_; }

 private:
  std::vector<PageAllocPoint> points_;
};

// Refuses allocations, deterministically, with `kind` (kNoPhysicalMemory or
// kPhysicalFragmentation, VMF_CHECK); every other allocation goes through:
//  * a point: the allocation at that point, once;
//  * a rate: each allocation fails with probability numerator/denominator, one SplitMix64 draw
//    from `seed` per allocation (the same seed and sequence fail the same allocations).
class FailingPageAllocs final : public PageAllocCounter {
 public:
  struct Rate {
    std::uint64_t numerator, denominator;  // 0 < numerator <= denominator
    std::uint64_t seed;
  };
  using Which = std::variant<PageAllocPoint, Rate>;
  FailingPageAllocs(Which which, FailureKind kind);
  FailureKind on_alloc(PageAllocCall call) override;
  [[nodiscard]] std::uint64_t failures_injected() const { return injected_; }

 private:
  Which which_;
  FailureKind kind_;
  std::uint64_t state_ = 0;  // the rate's SplitMix64 state
  std::uint64_t injected_ = 0;
};

// What --fail-phys takes: "KIND:N[:FAILURE]" (KIND block or pages, N the 0-based index among
// allocations of KIND) or "rate:P/Q:SEED[:FAILURE]" (each allocation fails with probability P/Q);
// FAILURE no-physical-memory (the default) or physical-fragmentation. E.g. "pages:3",
// "block:0:physical-fragmentation", "rate:1/20:7". nullopt and *why set for anything else.
struct FailPhysSpec {
  FailingPageAllocs::Which which;
  FailureKind kind = FailureKind::kNoPhysicalMemory;
};
[[nodiscard]] std::optional<FailPhysSpec> parse_fail_phys_spec(std::string_view spec, std::string* why);

}  // namespace vmfrag
