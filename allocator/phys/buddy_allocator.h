// BuddyAllocator: the binary buddy allocator of Linux mm/page_alloc.c, as a pure data structure over
// page frame numbers (pfns). No OS calls, no memory behind the pfns (PhysicalMemory adds that), no
// locking (the caller serialises access).
//
// It manages pfns [0, N). N need not be a power of two: the initial free blocks are the largest
// naturally aligned blocks (capped at kMaxOrder) that tile [0, N), exactly what freeing every page
// one by one would leave. A block of order o is 2^o pages starting at a multiple of 2^o; its buddy
// is the block at pfn ^ 2^o.
//
// Policy, fixed so that the same sequence of calls always yields the same pfns:
//   - allocate(order) takes a block from the smallest order >= `order` that has one and, within
//     that order, the block with the LOWEST pfn (the kernel takes the head of an unordered free
//     list instead: which block it gets depends on history; here it depends on the state only);
//   - a larger block is split in halves, the upper half going back free at each lower order;
//   - free merges with the buddy while the buddy is a free block of the same order (and below
//     kMaxOrder), so no two free buddies of the same order ever coexist.
// Because merging is always complete, the set of free blocks is a function of the set of free pages
// (the maximal aligned all-free blocks); in particular allocating and then freeing anything restores
// the exact earlier state.
//
// Structure: for each order, a two-level-or-more bitmap of free block heads (bit i = block at pfn
// i << order) whose summary words find the lowest set bit in O(log64 N); and one state byte per
// page (a free head with its order, an allocated head with its order, or a tail of some block),
// which is what lets free() recognise a double free, a misaligned pfn or a wrong order. Metadata is
// on the ordinary heap: about 1.02 bytes per page.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "allocator/core/failure.h"

namespace vmfrag {

// Largest block order: 2^10 pages = 4 MiB with 4 KiB pages, the kernel's default MAX_ORDER
// (orders 0..10, i.e. the pre-6.4 MAX_ORDER = 11 exclusive bound).
inline constexpr unsigned kMaxOrder = 10;
inline constexpr unsigned kOrderCount = kMaxOrder + 1;
// Largest page count a BuddyAllocator accepts: 2^28 pages = 1 TiB of 4 KiB pages (about 270 MiB of
// metadata). A bound, not a goal: the harness uses megabytes to a few gigabytes.
inline constexpr std::uint64_t kMaxBuddyPages = std::uint64_t{1} << 28;

namespace detail {

// A set of integers in [0, n) that finds its lowest member fast: a bitmap plus summary levels, where
// bit i of level k+1 is set iff word i of level k is non-zero. insert/erase touch at most one word
// per level; lowest() descends from the single top word. Levels: ceil(log64 n), at most 5 here.
class LowestFirstBitmap {
 public:
  explicit LowestFirstBitmap(std::uint64_t n);

  // Preconditions (VMF_ASSERT): i < n; i absent for insert, present for erase. O(log64 n).
  void insert(std::uint64_t i);
  void erase(std::uint64_t i);
  [[nodiscard]] bool contains(std::uint64_t i) const;  // O(1); false for i >= n
  [[nodiscard]] std::optional<std::uint64_t> lowest() const;  // O(log64 n)
  [[nodiscard]] std::uint64_t size() const { return count_; }  // O(1)
  // The summary levels agree with the bitmap and the count with its popcount. O(n / 64).
  [[nodiscard]] std::string validate() const;

 private:
  std::uint64_t n_;
  std::uint64_t count_ = 0;
  std::vector<std::vector<std::uint64_t>> levels_;  // levels_[0] = the members; back() is one word
};

}  // namespace detail

// Everything the fragmentation reports need, for one moment. Indices follow mm/vmstat.c exactly:
// the kernel's integers in thousandths (see BuddyAllocator::fragmentation_index_milli) and the same
// divided by 1000.
struct BuddyStats {
  std::uint64_t total_pages = 0;
  std::uint64_t free_pages = 0;
  std::array<std::uint64_t, kOrderCount> free_blocks{};  // per order, like /proc/buddyinfo
  std::optional<unsigned> largest_free_order;             // nullopt when nothing is free
  std::array<int, kOrderCount> fragmentation_index_milli{};
  std::array<int, kOrderCount> unusable_free_index_milli{};
  [[nodiscard]] double fragmentation_index(unsigned order) const { return fragmentation_index_milli.at(order) / 1000.0; }
  [[nodiscard]] double unusable_free_index(unsigned order) const { return unusable_free_index_milli.at(order) / 1000.0; }
};

class BuddyAllocator {
 public:
  // Where a page is: the block that contains it, whether that block is free.
  struct Block {
    std::uint64_t pfn = 0;  // head
    unsigned order = 0;
    bool free = false;
    friend bool operator==(const Block&, const Block&) = default;
  };

  // Manages pfns [0, page_count), all free. Precondition (VMF_CHECK): 1 <= page_count <=
  // kMaxBuddyPages. Cost: O(N) time and memory.
  explicit BuddyAllocator(std::uint64_t page_count);

  // The lowest-pfn free block of the smallest order >= `order` that has one, split down to
  // `order`; the halves split off stay free at the lower orders. Returns its head pfn (a multiple
  // of 2^order). nullopt, changing nothing, when no free block of order >= `order` exists or when
  // order > kMaxOrder (as the kernel's __alloc_pages refuses order > MAX_ORDER).
  // Cost: O(kMaxOrder * log64 N).
  [[nodiscard]] std::optional<std::uint64_t> allocate(unsigned order);

  // Returns the block [pfn, pfn + 2^order) allocated by allocate(order) (or one order-0 page from
  // allocate_pages, with order 0), merging with free buddies.
  // Preconditions (VMF_CHECK, always on: each is a corrupting caller bug): order <= kMaxOrder;
  // pfn + 2^order <= N; pfn a multiple of 2^order; [pfn, ...) is an allocated block of exactly this
  // order (not free: double free; not inside a larger or at a smaller allocated block: wrong order).
  // The abort message names the block the pfn is really in. Cost: O(kMaxOrder * log64 N).
  void free(std::uint64_t pfn, unsigned order);

  // The bulk path of vmalloc (mm/vmalloc.c vm_area_alloc_pages): `count` pages as individual
  // order-0 allocations, appended to pfns_out in the order taken (ascending within each block).
  //
  // Rule: while r pages remain, ask for order o = min(max_order, floor(log2 r)); if no block of
  // order >= o is free, try o-1, and so on down to min_order. So every block is as large as the
  // remaining count, max_order and the free lists allow, and never smaller than min_order.
  //   - min_order == max_order == o is the kernel's huge-page vmalloc: every block of the area's one
  //     page order o; it fails (physical fragmentation) when free pages suffice but blocks do not.
  //   - min_order == max_order == 0 is the kernel's order-0 path (alloc_pages_bulk).
  //   - min_order 0 < max_order takes contiguous runs where they exist (so a huge mapping can use
  //     them) and falls back to smaller ones, which is what the kernel reaches in two attempts
  //     (huge order first; on failure __vmalloc_node_range retries the whole area at order 0)
  //     without first fragmenting memory with a failed attempt's leftovers.
  // Each block is split into order-0 allocated pages, so each pfn is later freed on its own.
  // All or nothing: returns false when count > free pages (nothing touched) or when no block of
  // order >= min_order remains while pages are still needed (everything taken is freed again,
  // which restores the exact earlier state, see the file comment); pfns_out is then unchanged.
  // count == 0 succeeds with nothing appended.
  // Preconditions (VMF_CHECK): min_order <= max_order <= kMaxOrder; count a multiple of 2^min_order.
  // Cost: O(count + blocks * kMaxOrder^2 * log64 N); the allocation per call is one small vector.
  [[nodiscard]] bool allocate_pages(std::uint64_t count, std::vector<std::uint64_t>& pfns_out, unsigned max_order,
                                    unsigned min_order = 0);

  // free(pfn, 0) for each pfn, in order (so the same list always leaves the same state). Same
  // preconditions per pfn, checked as each is freed. Runs of consecutive pfns that cover aligned
  // blocks are freed block by block, with the same result. Cost: O(k + b * kMaxOrder * log64 N)
  // for b such blocks and single pages.
  void free_pages(std::span<const std::uint64_t> pfns);
  void free_pages(const std::vector<std::uint64_t>& pfns) { free_pages(std::span<const std::uint64_t>(pfns)); }

  [[nodiscard]] std::uint64_t page_count() const { return page_count_; }       // O(1)
  [[nodiscard]] std::uint64_t free_page_count() const { return free_pages_; }  // O(1)
  // Free blocks per order (/proc/buddyinfo). O(1); the reference lives as long as the allocator.
  [[nodiscard]] const std::array<std::uint64_t, kOrderCount>& free_blocks_per_order() const { return free_blocks_; }
  // Highest order with a free block; nullopt when nothing is free. O(kMaxOrder).
  [[nodiscard]] std::optional<unsigned> largest_free_order() const;
  // Lowest-pfn free block of exactly `order` (no splitting considered); nullopt if none or order >
  // kMaxOrder. O(log64 N).
  [[nodiscard]] std::optional<std::uint64_t> lowest_free_block(unsigned order) const;
  // The block containing pfn. Precondition (VMF_CHECK): pfn < N. O(kMaxOrder).
  [[nodiscard]] Block block_containing(std::uint64_t pfn) const;

  // mm/vmstat.c __fragmentation_index for a request of 2^order pages, as the kernel's integer:
  //   -1000  a block of order >= `order` is free (the request would succeed; the index is moot);
  //       0  nothing is free at all;
  //   else   1000 - (1000 + free_pages * 1000 / 2^order) / free_blocks_total   (integer division)
  // where free_blocks_total counts free blocks of every order. Towards 1000 the failure is due to
  // fragmentation (many small blocks), towards 0 due to lack of memory. Note the kernel's formula
  // is not confined to [0, 1000): with a single free block smaller than the request it goes down to
  // -500 (e.g. one free page, order 1: 1000 - 1500 = -500); this returns it unchanged, as the kernel
  // does (compaction_suitable treats negatives as "not fragmentation").
  // Precondition (VMF_CHECK): order <= kMaxOrder. O(kMaxOrder).
  [[nodiscard]] int fragmentation_index_milli(unsigned order) const;
  // fragmentation_index_milli(order) / 1000.0: -1.0 = would succeed, else in [-0.5, 1).
  [[nodiscard]] double fragmentation_index(unsigned order) const { return fragmentation_index_milli(order) / 1000.0; }

  // mm/vmstat.c unusable_free_index: the share of free pages, in thousandths, that lie in blocks
  // too small for a request of 2^order pages:
  //   (free_pages - suitable_blocks * 2^order) * 1000 / free_pages, and 1000 when nothing is free,
  // where suitable_blocks counts how many 2^order blocks the free blocks of order >= `order` hold.
  // Precondition (VMF_CHECK): order <= kMaxOrder. O(kMaxOrder).
  [[nodiscard]] int unusable_free_index_milli(unsigned order) const;
  [[nodiscard]] double unusable_free_index(unsigned order) const { return unusable_free_index_milli(order) / 1000.0; }

  // Why allocate(order) fails now: kNone if it would succeed, kNoPhysicalMemory if fewer than
  // 2^order pages are free, else kPhysicalFragmentation (enough pages, no block). kInvalidArgument
  // for order > kMaxOrder. O(kMaxOrder).
  [[nodiscard]] FailureKind block_failure(unsigned order) const;

  [[nodiscard]] BuddyStats stats() const;  // O(kMaxOrder^2)

  // Recomputes everything from the per-page states and compares. Returns "" or a message naming
  // the first broken invariant and the pfns involved: the pages tile [0, N) into blocks (each head
  // aligned to its order, inside [0, N), followed by exactly 2^order - 1 tails, hence disjoint);
  // the free heads are exactly the members of the per-order bitmaps; no free block below kMaxOrder
  // has a free buddy of the same order; the per-order block counts and the free page count match;
  // each bitmap's summary levels are consistent. O(N); for tests and -Dchecks=full.
  [[nodiscard]] std::string validate() const;

 private:
  // allocate/free without the VMF_ASSERT_FULL walk: the bulk calls walk once at their end.
  [[nodiscard]] std::optional<std::uint64_t> allocate_block(unsigned order);
  // allocate_block(order) for the bulk path, or a whole larger block when the bulk path would take
  // all of its pieces next anyway (see the .cpp). Returns {pfn, order of what was taken}.
  [[nodiscard]] std::optional<std::pair<std::uint64_t, unsigned>> allocate_run(unsigned order, std::uint64_t remaining);
  void free_block(std::uint64_t pfn, unsigned order);
  friend class BuddyAllocatorTestAccess;  // tests corrupt state to prove validate() notices

  // One byte per page: kind in the high nibble, order in the low nibble (heads only).
  static constexpr std::uint8_t kTail = 0x00;  // not a block head: part of the block before it
  static constexpr std::uint8_t kFreeHead = 0x10;
  static constexpr std::uint8_t kAllocatedHead = 0x20;
  static constexpr std::uint8_t kKindMask = 0xf0;
  static constexpr std::uint8_t kOrderMask = 0x0f;

  void push_free(std::uint64_t pfn, unsigned order);
  void pop_free(std::uint64_t pfn, unsigned order);
  [[nodiscard]] std::uint64_t suitable_blocks(unsigned order) const;
  [[nodiscard]] std::uint64_t free_blocks_total() const;

  std::uint64_t page_count_;
  std::uint64_t free_pages_ = 0;
  std::array<std::uint64_t, kOrderCount> free_blocks_{};
  std::vector<std::uint8_t> page_state_;
  std::vector<detail::LowestFirstBitmap> free_heads_;  // per order; bit i = free block at i << order
};

}  // namespace vmfrag
