// ReferenceVmalloc: the whole differential oracle in one object with the allocator's op API —
// the address space (ReferenceModel), the pages (PhysicalModel) and vm_map_ram's blocks
// (VmMapRamModel) — so replay and fuzz_ops compare two objects op by op instead of re-deriving
// the physical rules at each call site.
//
// Page accounting follows the backing (harness/TRACE_FORMAT.md, "Physical memory"):
//   none         `a` and `h` take no pages; `k` and `m` take theirs.
//   anon, memfd  `a` takes round_up(size)/4096 order-0 pages (what successive order-0 allocations
//                return); `h` of >= 2 MiB first tries a 2 MiB-aligned area of the size rounded up
//                to 2 MiB made of order-9 blocks, then falls back to `a`. When the pages are
//                missing the area goes straight back to free space (not lazily) and the call fails
//                with the page failure. vfree gives the pages back at once.
// It shares no code with allocator/ (it includes only allocator/core/failure.h).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "allocator/core/failure.h"
#include "harness/reference/physical_model.h"
#include "harness/reference/reference_model.h"
#include "harness/reference/vm_map_ram_model.h"
#include "harness/trace/op.h"

namespace vmfrag::reference {

struct RefOutcome {
  FailureKind failure = FailureKind::kNone;
  std::uint64_t offset = 0;         // a, h, m: the area's offset in the region
  std::uint64_t pfn = 0;            // k: the block's head pfn
  std::vector<std::uint64_t> pfns;  // a, h (anon/memfd) and m: the pages in area order
  [[nodiscard]] bool ok() const { return failure == FailureKind::kNone; }
};

class ReferenceVmalloc {
 public:
  // Preconditions (VMF_CHECK): the header is valid and phys_bytes / 4096 <= kPhysModelMaxPages.
  explicit ReferenceVmalloc(const TraceHeader& header);

  [[nodiscard]] RefOutcome vmalloc(std::uint64_t size, std::uint64_t align = kPageSize);
  [[nodiscard]] RefOutcome vmalloc_huge(std::uint64_t size);
  [[nodiscard]] RefOutcome kmalloc(std::uint64_t size);
  [[nodiscard]] RefOutcome vm_map_ram(std::uint64_t pages);  // fresh pages, mapped

  // Releases; false (nothing changed) when nothing of that kind starts there.
  [[nodiscard]] bool vfree(std::uint64_t offset);  // a and h areas
  [[nodiscard]] bool kfree(std::uint64_t pfn);
  [[nodiscard]] bool vm_unmap_ram(std::uint64_t offset);  // and frees its pages
  void purge();  // `p`: vmap blocks with no live mapping, then the lazy ranges

  // What a misused free would find there, without changing anything (address-space view).
  [[nodiscard]] FreeStatus classify_free(std::uint64_t offset) const;

  [[nodiscard]] ModelStats space_stats() const { return space_.stats(); }
  [[nodiscard]] std::uint64_t free_pages() const { return phys_.free_page_count(); }
  [[nodiscard]] const ReferenceModel& space() const { return space_; }
  [[nodiscard]] Backing backing() const { return backing_; }
  // The three models' validate(), then: pages accounted here = pages the page model holds.
  [[nodiscard]] std::string validate() const;

 private:
  [[nodiscard]] RefOutcome area(std::uint64_t reserve, std::uint64_t align, std::uint64_t pages, unsigned order);

  Backing backing_;
  ReferenceModel space_;
  PhysicalModel phys_;
  VmMapRamModel map_ram_;
  std::map<std::uint64_t, std::vector<std::uint64_t>> area_pages_;  // offset -> pages of a/h areas
  std::map<std::uint64_t, unsigned> kmalloc_;                       // head pfn -> order
  std::map<std::uint64_t, std::uint64_t> mapped_;                   // vm_map_ram offset -> pages
};

}  // namespace vmfrag::reference
