#include "harness/reference/reference_vmalloc.h"

#include "allocator/core/assert.h"

namespace vmfrag::reference {
namespace {

constexpr std::uint64_t kHuge = 2ull << 20;
constexpr unsigned kHugeOrder = 9;

std::uint64_t pages_of(std::uint64_t bytes) { return bytes / kPageSize + (bytes % kPageSize != 0 ? 1 : 0); }

}  // namespace

ReferenceVmalloc::ReferenceVmalloc(const TraceHeader& header)
    : backing_(header.backing),
      space_(ModelConfig::from_header(header)),
      phys_(header.phys_bytes / kPageSize),
      map_ram_(space_, phys_) {}

// An area of `reserve` bytes at `align`; in anon/memfd it owns `pages` pages of `order` blocks.
RefOutcome ReferenceVmalloc::area(std::uint64_t reserve, std::uint64_t align, std::uint64_t pages, unsigned order) {
  RefOutcome out;
  const Placement p = space_.alloc(reserve, align);
  if (!p.ok()) {
    out.failure = p.failure;
    return out;
  }
  if (backing_ != Backing::kNone) {
    PhysPages got = order == 0 ? phys_.allocate_pages(pages) : phys_.allocate_pages_order(pages, order);
    if (!got.ok()) {
      VMF_CHECK(space_.unreserve(p.offset), "reference: lost the area it just placed");
      out.failure = got.failure;
      return out;
    }
    out.pfns = std::move(got.pfns);
  }
  out.offset = p.offset;
  area_pages_[p.offset] = out.pfns;
  return out;
}

RefOutcome ReferenceVmalloc::vmalloc(std::uint64_t size, std::uint64_t align) {
  // Invalid arguments fail in the address space before any page is looked at.
  return area(size, align, size == 0 ? 0 : pages_of(size), 0);
}

RefOutcome ReferenceVmalloc::vmalloc_huge(std::uint64_t size) {
  if (size == 0) return RefOutcome{FailureKind::kInvalidArgument, 0, 0, {}};
  if (size >= kHuge && size <= ~std::uint64_t{0} - kHuge) {
    const std::uint64_t rounded = (size + kHuge - 1) & ~(kHuge - 1);
    RefOutcome huge = area(rounded, kHuge, rounded / kPageSize, kHugeOrder);
    if (huge.ok()) return huge;
  }
  return vmalloc(size, kPageSize);
}

RefOutcome ReferenceVmalloc::kmalloc(std::uint64_t size) {
  RefOutcome out;
  if (size == 0 || size > (std::uint64_t{1} << kPhysMaxOrder) * kPageSize) {
    out.failure = FailureKind::kInvalidArgument;
    return out;
  }
  unsigned order = 0;
  while ((std::uint64_t{1} << order) < pages_of(size)) ++order;
  const PhysAllocation b = phys_.allocate_block(order);
  out.failure = b.failure;
  if (b.ok()) {
    out.pfn = b.pfn;
    kmalloc_[b.pfn] = order;
  }
  return out;
}

RefOutcome ReferenceVmalloc::vm_map_ram(std::uint64_t pages) {
  VmMapRamModel::Mapping m = map_ram_.map(pages);
  RefOutcome out;
  out.failure = m.failure;
  if (m.failure == FailureKind::kNone) {
    out.offset = m.offset;
    out.pfns = std::move(m.pfns);
    mapped_[m.offset] = pages;
  }
  return out;
}

bool ReferenceVmalloc::vfree(std::uint64_t offset) {
  auto it = area_pages_.find(offset);
  if (it == area_pages_.end()) return false;
  if (space_.free(offset) != FreeStatus::kOk) return false;
  if (phys_.free_pages(it->second) != PhysFreeStatus::kOk) return false;
  area_pages_.erase(it);
  return true;
}

bool ReferenceVmalloc::kfree(std::uint64_t pfn) {
  auto it = kmalloc_.find(pfn);
  if (it == kmalloc_.end()) return false;
  if (phys_.free_block(pfn, it->second) != PhysFreeStatus::kOk) return false;
  kmalloc_.erase(it);
  return true;
}

bool ReferenceVmalloc::vm_unmap_ram(std::uint64_t offset) {
  auto it = mapped_.find(offset);
  if (it == mapped_.end()) return false;
  mapped_.erase(it);
  return map_ram_.unmap(offset);
}

void ReferenceVmalloc::purge() {
  map_ram_.purge_fragmented();
  space_.purge();
}

FreeStatus ReferenceVmalloc::classify_free(std::uint64_t offset) const {
  for (const Extent& e : space_.lazy_ranges())
    if (e.start == offset) return FreeStatus::kAlreadyFreed;
  for (const LiveArea& a : space_.live_areas()) {
    if (a.start == offset) return FreeStatus::kOk;
    if (offset > a.start && offset - a.start < a.span) return FreeStatus::kInterior;
  }
  return FreeStatus::kNotAllocated;
}

std::string ReferenceVmalloc::validate() const {
  if (std::string why = space_.validate(); !why.empty()) return "space model: " + why;
  if (std::string why = phys_.validate(); !why.empty()) return "page model: " + why;
  std::uint64_t pages = 0;
  for (const auto& [offset, pfns] : area_pages_) pages += pfns.size();
  for (const auto& [pfn, order] : kmalloc_) pages += std::uint64_t{1} << order;
  for (const auto& [offset, n] : mapped_) pages += n;
  if (pages != phys_.page_count() - phys_.free_page_count())
    return "pages accounted " + std::to_string(pages) + " != pages allocated " +
           std::to_string(phys_.page_count() - phys_.free_page_count());
  return "";
}

}  // namespace vmfrag::reference
