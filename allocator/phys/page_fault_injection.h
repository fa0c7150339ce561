// Fault injection at the page allocator (issue #15): the physical layer's counterpart of
// allocator/os/fault_injection.h. Both implement PhysicalMemory's seam (PageAllocFaults):
// RecordingPageAllocs lists every page allocation a sequence makes as an injection point, and
// FailingPageAllocs refuses exactly one of them ("fail the N-th call of kind K") with
// no-physical-memory or physical-fragmentation. The same call sequence meets the same points, so
// a test can record a sequence's points and rerun it once per point with that point failing.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
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

// Refuses the allocation at `point` with `kind` (kNoPhysicalMemory or kPhysicalFragmentation,
// VMF_CHECK), once; every other allocation goes through.
class FailingPageAllocs final : public PageAllocCounter {
 public:
  FailingPageAllocs(PageAllocPoint point, FailureKind kind);
  FailureKind on_alloc(PageAllocCall call) override;
  [[nodiscard]] std::uint64_t failures_injected() const { return injected_; }

 private:
  PageAllocPoint point_;
  FailureKind kind_;
  std::uint64_t injected_ = 0;
};

}  // namespace vmfrag
