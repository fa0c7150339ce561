// PhysicalModel: see physical_model.h for the contract. Everything here is a scan of the page bytes.
//
// Why "maximal free blocks, smallest order then lowest pfn, lowest sub-block" is exactly what a
// binary buddy allocator (mm/page_alloc.c __rmqueue_smallest + expand, with a lowest-pfn choice
// within an order) returns, without simulating its free lists:
//   (1) A buddy allocator with complete merging (free merges while the buddy is a free block of
//       the same order, below the max order) holds exactly the maximal free blocks. Initially:
//       the largest aligned blocks tiling [0, N), which are the maximal ones of an all-free state.
//       After freeing a block and merging until the buddy is not free (or past N, or max order),
//       the merged block is maximal by definition, and no other block's maximality changed: their
//       parents did not become fully free except the ones absorbed in the merge. After allocating
//       (see (2)), the upper halves split off are maximal (each one's parent contains the taken
//       block), and every other free block stays maximal (pages only became owned, so no parent
//       became fully free).
//   (2) __rmqueue_smallest scans orders upwards from the requested one and takes a block of the
//       first non-empty order: the smallest order >= requested; the real allocator's documented
//       tie-break within an order is the lowest pfn. expand() then halves it repeatedly, keeping
//       the lower half and freeing the upper one, so the block returned is the lowest 2^order
//       pages of the chosen one.
// Hence allocate_block() below is the buddy allocator's result on the same set of free pages. The
// cross-check test (physical_model_test.cpp) confirms it against allocator/phys/BuddyAllocator.
//
// Bulk allocation shortcut (choose_blocks). k successive allocate_block(o) calls are computed in
// one scan, not k scans, using this lemma: order the free blocks of order >= o by (order, pfn);
// the k calls take the 2^o-page chunks of those blocks in that order, ascending within a block.
// Proof: the first call splits the first block B (order q, the smallest eligible); its leftovers
// are the upper halves at orders o..q-1, ascending in both address and order, all strictly smaller
// than every other eligible block (those have order >= q, and ties at q have higher pfns). So the
// next calls pick the leftovers smallest first, i.e. lowest address first, and the same argument
// applies inside each leftover (its own leftovers are smaller still than its siblings). B is thus
// consumed chunk by chunk in ascending order before any other block is touched; no new eligible
// block can appear meanwhile, since allocation only removes free pages. Then the argument repeats
// on the remaining list. Blocks of order < o are never touched. A test compares this shortcut with
// literal repeated allocate_block calls.
#include "harness/reference/physical_model.h"

#include <algorithm>

#include "allocator/core/assert.h"

namespace vmfrag::reference {

namespace {

constexpr std::uint64_t pages_of(unsigned order) { return std::uint64_t{1} << order; }

std::string block_text(std::uint64_t pfn, unsigned order) {
  return "[" + std::to_string(pfn) + ", " + std::to_string(pfn + pages_of(order)) + ") order " +
         std::to_string(order);
}

}  // namespace

std::string_view phys_free_status_name(PhysFreeStatus status) {
  switch (status) {
    case PhysFreeStatus::kOk: return "ok";
    case PhysFreeStatus::kInvalidArgument: return "invalid-argument";
    case PhysFreeStatus::kNotAllocated: return "not-allocated";
    case PhysFreeStatus::kInterior: return "interior-of-allocated-block";
    case PhysFreeStatus::kWrongOrder: return "wrong-order";
  }
  return "unknown";
}

PhysicalModel::PhysicalModel(std::uint64_t page_count)
    : page_count_(page_count), free_pages_(page_count) {
  VMF_CHECK(page_count <= kPhysModelMaxPages, "PhysicalModel: %llu pages > %llu",
            static_cast<unsigned long long>(page_count), static_cast<unsigned long long>(kPhysModelMaxPages));
  owned_.assign(page_count, 0);
}

bool PhysicalModel::is_free(std::uint64_t pfn) const {
  VMF_CHECK(pfn < page_count_, "is_free: pfn %llu >= %llu", static_cast<unsigned long long>(pfn),
            static_cast<unsigned long long>(page_count_));
  return owned_[pfn] == 0;
}

bool PhysicalModel::range_free(std::uint64_t first, std::uint64_t count) const {
  for (std::uint64_t p = first; p < first + count; ++p)
    if (owned_[p] != 0) return false;
  return true;
}

void PhysicalModel::set_owned(std::uint64_t first, std::uint64_t count, bool owned) {
  for (std::uint64_t p = first; p < first + count; ++p) {
    VMF_ASSERT((owned_[p] != 0) != owned, "page %llu already %s", static_cast<unsigned long long>(p),
               owned ? "owned" : "free");
    owned_[p] = owned ? 1 : 0;
  }
  if (owned) {
    free_pages_ -= count;
  } else {
    free_pages_ += count;
  }
}

// Scan upwards. At a free page p not covered by an earlier block, p is the head of its maximal
// block: that block's head h <= p is a free page, and if h < p the scan met h first and its
// maximal block (the same one: each free page has exactly one, the largest fully free aligned
// ancestor within [0, N) and the max order) would already cover p. Grow from order 0 while p is
// aligned to the next order, the parent fits in [0, N), the order stays <= max, and the parent's
// upper half is free too (its lower half is the current block, already known free). Each page is
// examined O(1) times per block, so the scan is O(N).
std::vector<PhysBlock> PhysicalModel::free_blocks() const {
  std::vector<PhysBlock> blocks;
  std::uint64_t p = 0;
  while (p < page_count_) {
    if (owned_[p] != 0) {
      ++p;
      continue;
    }
    unsigned order = 0;
    while (order < kPhysMaxOrder && p % pages_of(order + 1) == 0 && p + pages_of(order + 1) <= page_count_ &&
           range_free(p + pages_of(order), pages_of(order))) {
      ++order;
    }
    blocks.push_back(PhysBlock{p, order});
    p += pages_of(order);
  }
  return blocks;
}

std::vector<PhysBlock> PhysicalModel::allocated_blocks() const {
  std::vector<PhysBlock> blocks;
  blocks.reserve(allocated_.size());
  for (const auto& [pfn, order] : allocated_) blocks.push_back(PhysBlock{pfn, order});
  return blocks;
}

PhysModelStats PhysicalModel::stats() const {
  PhysModelStats s;
  s.total_pages = page_count_;
  s.free_pages = free_pages_;
  for (const PhysBlock& b : free_blocks()) {
    ++s.free_blocks[b.order];
    if (!s.largest_free_order || b.order > *s.largest_free_order) s.largest_free_order = b.order;
  }
  return s;
}

FailureKind PhysicalModel::block_failure(unsigned order) const {
  if (order > kPhysMaxOrder) return FailureKind::kInvalidArgument;
  if (free_pages_ < pages_of(order)) return FailureKind::kNoPhysicalMemory;
  for (const PhysBlock& b : free_blocks())
    if (b.order >= order) return FailureKind::kNone;
  return FailureKind::kPhysicalFragmentation;
}

// The lemma in the file comment: eligible maximal blocks by (order, pfn), carved into 2^order
// chunks ascending. free_blocks() is ascending by pfn, so a stable sort by order gives the order.
std::optional<std::vector<std::uint64_t>> PhysicalModel::choose_blocks(unsigned order, std::uint64_t chunks) const {
  std::vector<PhysBlock> eligible;
  for (const PhysBlock& b : free_blocks())
    if (b.order >= order) eligible.push_back(b);
  std::stable_sort(eligible.begin(), eligible.end(),
                   [](const PhysBlock& a, const PhysBlock& b) { return a.order < b.order; });
  std::vector<std::uint64_t> heads;
  for (const PhysBlock& b : eligible) {
    for (std::uint64_t c = b.pfn; c < b.pfn + pages_of(b.order) && heads.size() < chunks; c += pages_of(order))
      heads.push_back(c);
    if (heads.size() == chunks) return heads;
  }
  if (heads.size() == chunks) return heads;  // chunks == 0
  return std::nullopt;
}

PhysAllocation PhysicalModel::allocate_block(unsigned order) {
  if (order > kPhysMaxOrder) return PhysAllocation{FailureKind::kInvalidArgument, 0};
  if (free_pages_ < pages_of(order)) return PhysAllocation{FailureKind::kNoPhysicalMemory, 0};
  const std::optional<std::vector<std::uint64_t>> heads = choose_blocks(order, 1);
  if (!heads) return PhysAllocation{FailureKind::kPhysicalFragmentation, 0};
  const std::uint64_t pfn = heads->front();
  set_owned(pfn, pages_of(order), true);
  allocated_.emplace(pfn, order);
  return PhysAllocation{FailureKind::kNone, pfn};
}

PhysPages PhysicalModel::allocate_pages(std::uint64_t count) { return allocate_pages_order(count, 0); }

PhysPages PhysicalModel::allocate_pages_order(std::uint64_t count, unsigned order) {
  if (order > kPhysMaxOrder || count % pages_of(order) != 0) return PhysPages{FailureKind::kInvalidArgument, {}};
  if (count > free_pages_) return PhysPages{FailureKind::kNoPhysicalMemory, {}};
  const std::optional<std::vector<std::uint64_t>> heads = choose_blocks(order, count / pages_of(order));
  if (!heads) return PhysPages{FailureKind::kPhysicalFragmentation, {}};
  PhysPages result;
  result.pfns.reserve(count);
  for (std::uint64_t head : *heads) {
    set_owned(head, pages_of(order), true);
    for (std::uint64_t p = head; p < head + pages_of(order); ++p) {
      allocated_.emplace(p, 0);
      result.pfns.push_back(p);
    }
  }
  return result;
}

PhysFreeStatus PhysicalModel::free_block(std::uint64_t pfn, unsigned order) {
  if (order > kPhysMaxOrder || pfn >= page_count_ || pages_of(order) > page_count_ - pfn ||
      pfn % pages_of(order) != 0) {
    return PhysFreeStatus::kInvalidArgument;
  }
  if (owned_[pfn] == 0) return PhysFreeStatus::kNotAllocated;
  // pfn is owned, so some allocated block contains it: the last one starting at or before pfn.
  auto it = allocated_.upper_bound(pfn);
  VMF_ASSERT(it != allocated_.begin(), "owned pfn %llu in no block", static_cast<unsigned long long>(pfn));
  --it;
  if (it->first != pfn) return PhysFreeStatus::kInterior;
  if (it->second != order) return PhysFreeStatus::kWrongOrder;
  set_owned(pfn, pages_of(order), false);
  allocated_.erase(it);
  return PhysFreeStatus::kOk;
}

PhysFreeStatus PhysicalModel::free_pages(const std::vector<std::uint64_t>& pfns) {
  for (std::size_t i = 0; i < pfns.size(); ++i) {
    const PhysFreeStatus status = free_block(pfns[i], 0);
    if (status == PhysFreeStatus::kOk) continue;
    // Undo: each earlier pfn was an allocated order-0 block that free_block removed; put it back.
    for (std::size_t j = 0; j < i; ++j) {
      set_owned(pfns[j], 1, true);
      allocated_.emplace(pfns[j], 0);
    }
    return status;
  }
  return PhysFreeStatus::kOk;
}

std::string PhysicalModel::validate() const {
  if (owned_.size() != page_count_) return "page byte count " + std::to_string(owned_.size()) + " != N";
  std::vector<std::uint8_t> covered(page_count_, 0);
  for (const auto& [pfn, order] : allocated_) {
    if (order > kPhysMaxOrder) return "allocated block at " + std::to_string(pfn) + " has order > max";
    if (pfn % pages_of(order) != 0) return "allocated block " + block_text(pfn, order) + " misaligned";
    if (pfn >= page_count_ || pages_of(order) > page_count_ - pfn)
      return "allocated block " + block_text(pfn, order) + " past N = " + std::to_string(page_count_);
    for (std::uint64_t p = pfn; p < pfn + pages_of(order); ++p) {
      if (covered[p] != 0) return "allocated block " + block_text(pfn, order) + " overlaps another at " + std::to_string(p);
      if (owned_[p] == 0) return "allocated block " + block_text(pfn, order) + " has free page " + std::to_string(p);
      covered[p] = 1;
    }
  }
  std::uint64_t free_count = 0;
  for (std::uint64_t p = 0; p < page_count_; ++p) {
    if (owned_[p] != 0 && covered[p] == 0) return "owned page " + std::to_string(p) + " in no allocated block";
    if (owned_[p] == 0) ++free_count;
  }
  if (free_count != free_pages_)
    return "free page count " + std::to_string(free_pages_) + " != " + std::to_string(free_count) + " free bytes";
  return "";
}

}  // namespace vmfrag::reference
