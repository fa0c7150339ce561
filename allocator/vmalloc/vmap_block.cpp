#include "allocator/vmalloc/vmap_block.h"

#include <bit>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <iterator>
#include <set>
#include <utility>

#include "allocator/core/assert.h"

namespace vmfrag {

// How a block is used, and what that guarantees.
//
// A block is a bump allocator with two counters, `free` (the never-used tail) and `dirty` (freed
// pages). Allocations are cut from the front of the tail; frees only count:
//
//   page 0                                                              block_pages
//   |-A-|d|---B---|-----d-----|C|...........free (never used)...........|
//   |<---------- bump prefix: used + dirty -------->|
//                                                   ^ next allocation at block_pages - free
//   A, B, C: live allocations (2^order pages each, at whatever offset the pointer had:
//            after a 1-page A, a 2-page B starts at page 1, not 2)
//   d:       freed allocations, dirty: never handed out again
//
// Guarantees: (1) allocations of one block are disjoint and lie in the bump prefix, because the
// pointer only moves forward and a freed page is never reissued; (2) used + free + dirty ==
// block_pages at all times; (3) a block is released exactly when nothing in it can ever be used
// again by anyone: by free() when dirty reaches block_pages (then free is necessarily 0), or by
// purge_fragmented() when no allocation is live (used == 0) and the caller prefers the range
// back to the unused tail.
//
// Why the kernel accepts the waste: reusing a freed page would need a TLB flush of its old
// mapping first (another CPU may still hold a stale translation). Counting dirty pages and
// flushing once per block, when the block goes, amortises that flush, and two counters are the
// cheapest possible bookkeeping for the fast path. The price is that space is only recovered at
// block granularity: a single long-lived allocation pins its block, dirty pages and all.
//
// The per-CPU list holds the blocks with free > 0 in creation order, so a request first fills the
// oldest block that has room (first fit by creation, not best fit): a large request can skip a
// block whose tail is too short, and a later small request will still use that tail.

namespace {

// validate()'s messages; the attribute keeps the compiler checking every format against its values.
__attribute__((format(printf, 1, 2))) std::string format(const char* fmt, ...) {
  char msg[512];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(msg, sizeof msg, fmt, args);
  va_end(args);
  return msg;
}

}  // namespace

const char* vmap_block_result_name(VmapBlockAllocator::Result r) {
  switch (r) {
    case VmapBlockAllocator::Result::kOk: return "ok";
    case VmapBlockAllocator::Result::kNeedBlock: return "need-block";
    case VmapBlockAllocator::Result::kTooLarge: return "too-large";
    case VmapBlockAllocator::Result::kInvalid: return "invalid";
  }
  return "?";
}

VmapBlockAllocator::VmapBlockAllocator(std::uint64_t block_pages, unsigned cpus,
                                       std::uint64_t max_alloc_pages)
    : block_pages_(block_pages), max_alloc_pages_(max_alloc_pages), lists_(cpus) {
  VMF_CHECK(cpus >= 1, "a VmapBlockAllocator needs at least one CPU");
  VMF_CHECK(max_alloc_pages >= 1 && std::has_single_bit(max_alloc_pages),
            "max_alloc_pages %" PRIu64 " must be a power of two", max_alloc_pages);
  VMF_CHECK(max_alloc_pages <= block_pages / 2,
            "block_pages %" PRIu64 " must be at least 2 * max_alloc_pages (%" PRIu64 ")", block_pages,
            max_alloc_pages);
}

unsigned VmapBlockAllocator::order_for(std::uint64_t pages) {
  VMF_ASSERT(pages >= 1, "a request of 0 pages has no order");
  return static_cast<unsigned>(std::bit_width(pages - 1));
}

bool VmapBlockAllocator::purgeable(const Block& block) const {
  return block.free + block.dirty == block_pages_ && block.dirty != block_pages_;
}

void VmapBlockAllocator::count_block(const Block& block, int sign) {
  // Unsigned wrap-around makes subtraction by adding the two's complement exact.
  const auto add = [sign](std::uint64_t& counter, std::uint64_t v) {
    counter += sign > 0 ? v : std::uint64_t{0} - v;
  };
  const bool pinned = block.used > 0 && block.dirty > 0;
  add(stats_.blocks, 1);
  add(stats_.full_blocks, block.free == 0 ? 1 : 0);
  add(stats_.live_allocations, block.allocations.size());
  add(stats_.requested_pages, block.requested);
  add(stats_.used_pages, block.used);
  add(stats_.free_pages, block.free);
  add(stats_.dirty_pages, block.dirty);
  add(stats_.purgeable_blocks, purgeable(block) ? 1 : 0);
  add(stats_.pinned_blocks, pinned ? 1 : 0);
  add(stats_.pinned_dirty_pages, pinned ? block.dirty : 0);
}

VmapBlockRef VmapBlockAllocator::take(std::uint64_t block_start, Block& block, std::uint64_t pages) {
  const unsigned order = order_for(pages);
  const std::uint64_t size = std::uint64_t{1} << order;
  VMF_ASSERT(block.free >= size, "block %" PRIu64 " has %" PRIu64 " free pages, not %" PRIu64, block_start, block.free, size);
  // As vb_alloc: the offset is wherever the bump pointer is, with no alignment to 2^order.
  const std::uint64_t page_offset = block_pages_ - block.free;
  count_block(block, -1);
  block.free -= size;
  block.used += size;
  block.requested += pages;
  block.allocations.emplace_hint(block.allocations.end(), page_offset, Allocation{order, pages});
  count_block(block, +1);
  if (block.free == 0) unlist(block);
  return VmapBlockRef{block_start, page_offset, order};
}

void VmapBlockAllocator::unlist(Block& block) {
  if (!block.listed) return;
  lists_[block.cpu].erase(block.list_pos);
  block.listed = false;
}

void VmapBlockAllocator::release(std::map<std::uint64_t, Block>::iterator it) {
  count_block(it->second, -1);
  unlist(it->second);
  blocks_.erase(it);
}

VmapBlockAllocator::Result VmapBlockAllocator::allocate(unsigned cpu, std::uint64_t pages,
                                                        VmapBlockRef* out) {
  if (pages == 0 || cpu >= lists_.size()) return Result::kInvalid;
  if (pages > max_alloc_pages_) return Result::kTooLarge;
  const std::uint64_t size = std::uint64_t{1} << order_for(pages);
  for (const std::uint64_t block_start : lists_[cpu]) {
    Block& block = blocks_.find(block_start)->second;
    if (block.free < size) continue;
    *out = take(block_start, block, pages);  // may unlist the block; the loop ends here anyway
    VMF_ASSERT_FULL(validate().empty(), "after allocate: %s", validate().c_str());
    return Result::kOk;
  }
  return Result::kNeedBlock;
}

VmapBlockRef VmapBlockAllocator::allocate_in_new_block(unsigned cpu, std::uint64_t pages,
                                                       std::uint64_t block_start) {
  VMF_CHECK(cpu < lists_.size(), "cpu %u out of range (%zu CPUs)", cpu, lists_.size());
  VMF_CHECK(pages >= 1 && pages <= max_alloc_pages_,
            "a block request is 1..%" PRIu64 " pages, not %" PRIu64, max_alloc_pages_, pages);
  const auto [it, inserted] = blocks_.try_emplace(block_start);
  VMF_CHECK(inserted, "block at %" PRIu64 " is already held", block_start);
  Block& block = it->second;
  block.cpu = cpu;
  block.free = block_pages_;
  // Listed before the first allocation so that take() can unlist it if it filled the block (it
  // cannot: block_pages >= 2 * max_alloc_pages; the rule is kept in one place anyway).
  block.list_pos = lists_[cpu].insert(lists_[cpu].end(), block_start);
  block.listed = true;
  count_block(block, +1);
  const VmapBlockRef ref = take(block_start, block, pages);
  VMF_ASSERT_FULL(validate().empty(), "after allocate_in_new_block: %s", validate().c_str());
  return ref;
}

std::optional<std::uint64_t> VmapBlockAllocator::free(const VmapBlockRef& ref) {
  const auto it = blocks_.find(ref.block_start);
  VMF_CHECK(it != blocks_.end(),
            "free of page %" PRIu64 " in block %" PRIu64 ": no such block (double free?)", ref.page_offset,
            ref.block_start);
  Block& block = it->second;
  const auto a = block.allocations.find(ref.page_offset);
  VMF_CHECK(a != block.allocations.end(),
            "free of page %" PRIu64 " in block %" PRIu64 ": no live allocation starts there (double free?)",
            ref.page_offset, ref.block_start);
  VMF_CHECK(a->second.order == ref.order,
            "free of page %" PRIu64 " in block %" PRIu64 " with order %u: it was allocated with order %u",
            ref.page_offset, ref.block_start, ref.order, a->second.order);
  const std::uint64_t size = std::uint64_t{1} << ref.order;
  count_block(block, -1);
  block.used -= size;
  block.requested -= a->second.requested;
  block.dirty += size;
  block.allocations.erase(a);
  count_block(block, +1);
  if (block.dirty != block_pages_) {
    VMF_ASSERT_FULL(validate().empty(), "after free: %s", validate().c_str());
    return std::nullopt;
  }
  // Fully dirty: used == 0 and free == 0, so it is already off the list (as vb_free's BUG_ON).
  VMF_ASSERT(block.free == 0 && !block.listed, "fully dirty block %" PRIu64 " has free %" PRIu64, ref.block_start, block.free);
  release(it);
  VMF_ASSERT_FULL(validate().empty(), "after free: %s", validate().c_str());
  return ref.block_start;
}

std::vector<std::uint64_t> VmapBlockAllocator::purge_fragmented() {
  std::vector<std::uint64_t> released;
  for (std::list<std::uint64_t>& list : lists_) {
    for (auto pos = list.begin(); pos != list.end();) {
      const std::uint64_t block_start = *pos;
      ++pos;  // release() erases the current list node
      const auto it = blocks_.find(block_start);
      if (!purgeable(it->second)) continue;
      release(it);
      released.push_back(block_start);
    }
  }
  VMF_ASSERT_FULL(validate().empty(), "after purge_fragmented: %s", validate().c_str());
  return released;
}

VmapBlockStats VmapBlockAllocator::stats() const { return stats_; }

std::optional<VmapBlockInfo> VmapBlockAllocator::block_info(std::uint64_t block_start) const {
  const auto it = blocks_.find(block_start);
  if (it == blocks_.end()) return std::nullopt;
  const Block& b = it->second;
  return VmapBlockInfo{b.cpu, b.free, b.dirty, b.used, b.allocations.size(), b.listed};
}

std::vector<std::uint64_t> VmapBlockAllocator::listed_blocks(unsigned cpu) const {
  if (cpu >= lists_.size()) return {};
  return {lists_[cpu].begin(), lists_[cpu].end()};
}

std::string VmapBlockAllocator::validate() const {
  VmapBlockStats want;
  for (const auto& [start, b] : blocks_) {
    if (b.cpu >= lists_.size()) return format("block %" PRIu64 ": cpu %u out of range", start, b.cpu);
    if (b.free > block_pages_ || b.dirty > block_pages_ || b.used > block_pages_ ||
        b.free + b.dirty + b.used != block_pages_) {
      return format("block %" PRIu64 ": free %" PRIu64 " + dirty %" PRIu64 " + used %" PRIu64 " != %" PRIu64,
                  start, b.free, b.dirty, b.used, block_pages_);
    }
    if (b.dirty == block_pages_) return format("block %" PRIu64 ": fully dirty but still held", start);
    if (b.free == block_pages_) return format("block %" PRIu64 ": never served an allocation", start);
    const std::uint64_t prefix_end = block_pages_ - b.free;
    std::uint64_t used = 0;
    std::uint64_t requested = 0;
    std::uint64_t prev_end = 0;
    for (const auto& [offset, a] : b.allocations) {
      if (a.order > 63) return format("block %" PRIu64 " page %" PRIu64 ": order %u", start, offset, a.order);
      const std::uint64_t size = std::uint64_t{1} << a.order;
      if (a.requested == 0 || a.requested > max_alloc_pages_ || order_for(a.requested) != a.order) {
        return format("block %" PRIu64 " page %" PRIu64 ": %" PRIu64 " pages requested, order %u", start, offset,
                    a.requested, a.order);
      }
      if (offset < prev_end) {
        return format("block %" PRIu64 ": allocation at page %" PRIu64 " overlaps one ending at %" PRIu64, start,
                    offset, prev_end);
      }
      if (offset > prefix_end || size > prefix_end - offset) {
        return format("block %" PRIu64 ": allocation [%" PRIu64 ", +%" PRIu64 ") beyond the bump pointer %" PRIu64,
                    start, offset, size, prefix_end);
      }
      prev_end = offset + size;
      used += size;
      requested += a.requested;
    }
    if (used != b.used || requested != b.requested) {
      return format("block %" PRIu64 ": used %" PRIu64 "/requested %" PRIu64 " but allocations hold %" PRIu64
                  "/%" PRIu64,
                  start, b.used, b.requested, used, requested);
    }
    if (b.listed != (b.free > 0)) {
      return format("block %" PRIu64 ": listed %d with free %" PRIu64, start, int{b.listed}, b.free);
    }
    if (b.listed && *b.list_pos != start) {
      return format("block %" PRIu64 ": list position names block %" PRIu64, start, *b.list_pos);
    }
    const bool pinned = b.used > 0 && b.dirty > 0;
    want.blocks += 1;
    want.full_blocks += b.free == 0 ? 1 : 0;
    want.live_allocations += b.allocations.size();
    want.requested_pages += b.requested;
    want.used_pages += b.used;
    want.free_pages += b.free;
    want.dirty_pages += b.dirty;
    want.purgeable_blocks += purgeable(b) ? 1 : 0;
    want.pinned_blocks += pinned ? 1 : 0;
    want.pinned_dirty_pages += pinned ? b.dirty : 0;
  }
  std::set<std::uint64_t> seen;
  std::uint64_t listed = 0;
  for (unsigned cpu = 0; cpu < lists_.size(); ++cpu) {
    for (const std::uint64_t start : lists_[cpu]) {
      const auto it = blocks_.find(start);
      if (it == blocks_.end()) return format("cpu %u lists block %" PRIu64 ", which is not held", cpu, start);
      if (it->second.cpu != cpu) {
        return format("cpu %u lists block %" PRIu64 " of cpu %u", cpu, start, it->second.cpu);
      }
      if (!seen.insert(start).second) return format("block %" PRIu64 " listed twice", start);
      ++listed;
    }
  }
  if (listed != want.blocks - want.full_blocks) {
    return format("%" PRIu64 " blocks listed, %" PRIu64 " have free pages", listed, want.blocks - want.full_blocks);
  }
  if (!(want == stats_)) {
    return format("stats drifted: blocks %" PRIu64 "/%" PRIu64 " used %" PRIu64 "/%" PRIu64 " free %" PRIu64
                "/%" PRIu64 " dirty %" PRIu64 "/%" PRIu64 " purgeable %" PRIu64 "/%" PRIu64 " pinned %" PRIu64
                "/%" PRIu64 " (kept/recomputed; other fields may differ too)",
                stats_.blocks, want.blocks, stats_.used_pages, want.used_pages, stats_.free_pages, want.free_pages,
                stats_.dirty_pages, want.dirty_pages, stats_.purgeable_blocks, want.purgeable_blocks,
                stats_.pinned_blocks, want.pinned_blocks);
  }
  return "";
}

}  // namespace vmfrag
