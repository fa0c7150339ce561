// ReferenceModel: an independent, deliberately simple implementation of the virtual-space
// allocation contract of a vmtrace ("Semantics" in harness/TRACE_FORMAT.md), used to check the real
// allocator (allocator/vspace) differentially. It shares no placement code with the allocator and
// favours obviousness over speed: free extents live in a sorted flat_map and placement is a linear
// first-fit scan, so every operation is O(n) in the number of extents/areas, never worse.
//
// It works on offsets (bytes from the region base); it reserves no memory and knows nothing of
// physical pages. All sizes and offsets are uint64 and every arithmetic step is overflow-checked.
#pragma once

#include <boost/container/flat_map.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "allocator/core/failure.h"
#include "harness/trace/op.h"

// Its own namespace: its Extent, FreeStatus and stats are independent of the allocator's.
namespace vmfrag::reference {

struct ModelConfig {
  std::uint64_t region_bytes = 0;             // non-zero multiple of kPageSize
  std::uint64_t guard_pages = 1;              // guard pages at the end of each area
  std::uint64_t lazy_threshold_pages = 8192;  // purge once more pages than this are lazily held

  // The virtual-space part of a trace header (region, guard, lazy).
  [[nodiscard]] static ModelConfig from_header(const TraceHeader& header);
};

// Result of an allocation: failure == kNone and the area's first byte, or the reason it failed.
struct Placement {
  FailureKind failure = FailureKind::kNone;
  std::uint64_t offset = 0;  // start of the area; 0 on failure
  std::uint64_t span = 0;    // bytes the area occupies, guard included; 0 on failure
  bool purged = false;       // this call purged lazily held areas (success or failure)
  [[nodiscard]] bool ok() const { return failure == FailureKind::kNone; }
  friend bool operator==(const Placement&, const Placement&) = default;
};

// Outcome of free(). Misuse leaves the model untouched.
enum class FreeStatus : std::uint8_t {
  kOk,
  kNotAllocated,  // none of the others: free space, inside a lazily held area, or beyond the region
  kInterior,      // offset is inside a live area (or its guard) but not its start
  kAlreadyFreed,  // offset is the start of an area freed but not yet purged
};

// "ok", "not-allocated", "interior-of-live-area", "already-freed-lazily".
[[nodiscard]] std::string_view free_status_name(FreeStatus status);

struct Extent {
  std::uint64_t start = 0;
  std::uint64_t size = 0;
  friend bool operator==(const Extent&, const Extent&) = default;
};

struct LiveArea {
  std::uint64_t start = 0;
  std::uint64_t span = 0;       // round_up(requested, page) + guard bytes
  std::uint64_t requested = 0;  // size passed to alloc
  std::uint64_t align = 0;      // align passed to alloc
  friend bool operator==(const LiveArea&, const LiveArea&) = default;
};

struct ModelStats {
  std::uint64_t free_bytes = 0;          // in free extents (lazily held bytes are not free)
  std::uint64_t largest_free_bytes = 0;  // largest free extent
  std::uint64_t free_extents = 0;
  std::uint64_t lazy_bytes = 0;
  std::uint64_t live_bytes = 0;  // sum of round_up(requested, page) over live areas, guards excluded
  std::uint64_t live_areas = 0;
  double external_fragmentation = 0;  // free_bytes == 0 ? 0 : 1 - largest_free_bytes / free_bytes
  friend bool operator==(const ModelStats&, const ModelStats&) = default;
};

class ReferenceModel {
 public:
  // Preconditions (VMF_CHECK): config.region_bytes is a non-zero multiple of kPageSize.
  // Guarantees: the whole region is one free extent; nothing is live or lazily held.
  explicit ReferenceModel(const ModelConfig& config);

  // alloc_in_range(size, align, 0, region_bytes).
  [[nodiscard]] Placement alloc(std::uint64_t size, std::uint64_t align = kPageSize);

  // Places an area of span need = round_up(size, page) + guard_pages * page at the lowest offset s
  // with s % align == 0 and [s, s + need) inside one free extent and inside [lo, hi). When nothing
  // fits and bytes are lazily held, purges and searches once more.
  // Failure (model unchanged apart from that purge): kInvalidArgument for size 0, align not a
  // power of two or < page, need overflowing uint64, lo or hi not a page multiple, lo >= hi or
  // hi > region (no purge then); otherwise kVirtualFragmentation when the free bytes inside
  // [lo, hi) are >= need, else kNoVirtualSpace.
  // Cost: O(number of free extents).
  [[nodiscard]] Placement alloc_in_range(std::uint64_t size, std::uint64_t align, std::uint64_t lo,
                                         std::uint64_t hi);

  // Frees the live area starting at `offset`: its whole span becomes lazily held, and if more than
  // lazy_threshold_pages pages are then lazily held, everything lazily held is purged.
  // Failure: any status but kOk, model unchanged. Cost: O(extents + areas).
  [[nodiscard]] FreeStatus free(std::uint64_t offset);

  // Returns the live area starting at `offset` straight to the free extents (coalescing), not
  // lazily: an allocation abandoned before anything was mapped (the allocator's release_unused).
  // false (model unchanged) when no live area starts there. Cost: O(extents + areas).
  [[nodiscard]] bool unreserve(std::uint64_t offset);
  // Returns every lazily held range to the free extents, coalescing. Cost: O(extents + lazy).
  void purge();

  // Cost: O(extents + areas).
  [[nodiscard]] ModelStats stats() const;
  [[nodiscard]] std::vector<Extent> free_extents() const;  // ascending, coalesced
  [[nodiscard]] std::vector<Extent> lazy_ranges() const;   // ascending, one per freed area
  [[nodiscard]] std::vector<LiveArea> live_areas() const;  // ascending
  [[nodiscard]] std::uint64_t lazy_pages() const { return lazy_pages_; }
  [[nodiscard]] std::uint64_t purges() const { return purges_; }  // purges done, explicit or not
  [[nodiscard]] const ModelConfig& config() const { return config_; }

  // "" when the state is consistent, else the first inconsistency found: free, live and lazy
  // ranges are page-aligned, non-empty, disjoint and together exactly the region; free extents
  // are coalesced; each live area's span matches its request and its start its alignment; the
  // lazy page count matches the lazy ranges and does not exceed the threshold. Cost O(n log n).
  [[nodiscard]] std::string validate() const;

 private:
  struct AreaRecord {
    std::uint64_t span = 0;
    std::uint64_t requested = 0;
    std::uint64_t align = 0;
  };
  struct Fit {
    bool found = false;
    std::uint64_t extent_start = 0;
    std::uint64_t offset = 0;
  };

  [[nodiscard]] Fit find_fit(std::uint64_t need, std::uint64_t align, std::uint64_t lo,
                             std::uint64_t hi) const;
  [[nodiscard]] std::uint64_t free_bytes_in(std::uint64_t lo, std::uint64_t hi) const;

  ModelConfig config_;
  boost::container::flat_map<std::uint64_t, std::uint64_t> free_;  // start -> size
  boost::container::flat_map<std::uint64_t, std::uint64_t> lazy_;  // start -> span
  boost::container::flat_map<std::uint64_t, AreaRecord> live_;     // start -> area
  std::uint64_t lazy_pages_ = 0;
  std::uint64_t purges_ = 0;
};

}  // namespace vmfrag::reference
