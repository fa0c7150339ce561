// PhysicalModel: an independent, deliberately simple model of the physical page allocator contract
// (the one allocator/phys/BuddyAllocator implements), used to replay the trace ops `k` (kmalloc:
// one physically contiguous block), `h` (vmalloc_huge: blocks of one large order) and the order-0
// pages behind `a`/`m` differentially against the real allocator.
//
// What makes it an oracle rather than a second copy: it keeps NO free lists and does NO buddy
// merging. Its whole state is one byte per page (free or owned) plus the set of allocated blocks
// (head pfn -> order); everything else (the free blocks a buddy system would hold, the choice of
// the next block, the statistics) is derived from those bytes by scanning. It shares no code with
// the real allocator and does not include it.
//
// The contract (pfns [0, N), N >= 0 and not necessarily a power of two; orders 0..kPhysMaxOrder):
//   - A block of order o is 2^o pages starting at a multiple of 2^o, inside [0, N).
//   - The "free blocks" of a state are its maximal free blocks: a fully free block of order o is
//     maximal when o == kPhysMaxOrder, or its parent (the order o+1 block containing it) runs
//     past N, or that parent is not fully free. They tile the free pages exactly (every free page
//     lies in exactly one), and they are what a buddy allocator with complete merging holds.
//   - allocate_block(order): among the free blocks of order >= `order`, the smallest order, then
//     the lowest pfn; the result is that block's lowest 2^order pages (a buddy split keeps the
//     lower half at every step and frees the upper halves).
//   - Failure kinds: kInvalidArgument (order > kPhysMaxOrder), kNoPhysicalMemory (fewer free pages
//     than requested), kPhysicalFragmentation (enough free pages, no block of a suitable order).
//
// Cost: allocations, free_blocks() and stats() rescan the page bytes, O(N) to O(N log N) each, on
// purpose (no incremental structure to get wrong); frees are O(pages freed + log blocks). Fine for
// N up to about 10^5..10^6 pages. Memory: N bytes plus one map node per allocated block.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "allocator/core/failure.h"

namespace vmfrag::reference {

// Largest block order, the kernel's default (orders 0..10, 2^10 pages = 4 MiB of 4 KiB pages).
// Deliberately its own constant: the model must not depend on the real allocator's headers. The
// cross-check test asserts that the two agree.
inline constexpr unsigned kPhysMaxOrder = 10;
inline constexpr unsigned kPhysOrderCount = kPhysMaxOrder + 1;
// Largest page count the model accepts (2^32 pages = 16 TiB of 4 KiB pages; the state would be 4
// GiB): a sanity bound keeping every pfn + 2^order computation far from overflow.
inline constexpr std::uint64_t kPhysModelMaxPages = std::uint64_t{1} << 32;

// A block: 2^order pages starting at pfn.
struct PhysBlock {
  std::uint64_t pfn = 0;
  unsigned order = 0;
  friend bool operator==(const PhysBlock&, const PhysBlock&) = default;
};

// Result of allocate_block: failure == kNone and the head pfn, or the reason (pfn 0).
struct PhysAllocation {
  FailureKind failure = FailureKind::kNone;
  std::uint64_t pfn = 0;
  [[nodiscard]] bool ok() const { return failure == FailureKind::kNone; }
  friend bool operator==(const PhysAllocation&, const PhysAllocation&) = default;
};

// Result of the bulk allocations: failure == kNone and the pfns in the order taken, or the reason
// (pfns empty).
struct PhysPages {
  FailureKind failure = FailureKind::kNone;
  std::vector<std::uint64_t> pfns;
  [[nodiscard]] bool ok() const { return failure == FailureKind::kNone; }
  friend bool operator==(const PhysPages&, const PhysPages&) = default;
};

// Outcome of a free. Anything but kOk leaves the model untouched.
enum class PhysFreeStatus : std::uint8_t {
  kOk,
  kInvalidArgument,  // order > kPhysMaxOrder, pfn not a multiple of 2^order, or block past N
  kNotAllocated,     // pfn is a free page (double free, or never allocated)
  kInterior,         // pfn is inside an allocated block but not its head
  kWrongOrder,       // an allocated block starts at pfn, but of another order
};

// "ok", "invalid-argument", "not-allocated", "interior-of-allocated-block", "wrong-order".
[[nodiscard]] std::string_view phys_free_status_name(PhysFreeStatus status);

struct PhysModelStats {
  std::uint64_t total_pages = 0;
  std::uint64_t free_pages = 0;
  std::array<std::uint64_t, kPhysOrderCount> free_blocks{};  // maximal free blocks per order
  std::optional<unsigned> largest_free_order;                // nullopt when nothing is free
  friend bool operator==(const PhysModelStats&, const PhysModelStats&) = default;
};

class PhysicalModel {
 public:
  // pfns [0, page_count), all free. page_count 0 is allowed (a trace may say `phys 0`): every
  // allocation then fails with kNoPhysicalMemory. Precondition (VMF_CHECK): page_count <=
  // kPhysModelMaxPages. Cost: O(N).
  explicit PhysicalModel(std::uint64_t page_count);

  // One block of 2^order pages chosen by the contract's rule (file comment), recorded as an
  // allocated block of that order. Failure (model unchanged): kInvalidArgument for order >
  // kPhysMaxOrder, kNoPhysicalMemory when fewer than 2^order pages are free, else
  // kPhysicalFragmentation. Cost: O(N log N).
  [[nodiscard]] PhysAllocation allocate_block(unsigned order);

  // vmalloc's order-0 path: exactly what `count` successive allocate_block(0) calls would return,
  // in that order, each page recorded as its own order-0 block (freed one by one). All or
  // nothing: kNoPhysicalMemory when count > free pages (model unchanged). Order-0 requests never
  // fail otherwise. count 0 succeeds with no pfns. Cost: O(N log N + count).
  [[nodiscard]] PhysPages allocate_pages(std::uint64_t count);

  // vmalloc_huge's path: count / 2^order blocks of exactly `order`, each what successive
  // allocate_block(order) calls would return; pfns are listed block by block, ascending within a
  // block, and each page is recorded as its own order-0 block (as the real allocator splits them,
  // so each pfn is freed on its own). All or nothing (model unchanged on failure):
  // kInvalidArgument for order > kPhysMaxOrder or count not a multiple of 2^order;
  // kNoPhysicalMemory when count > free pages; kPhysicalFragmentation when the pages suffice but
  // not the blocks. count 0 succeeds with no pfns. Cost: O(N log N + count).
  [[nodiscard]] PhysPages allocate_pages_order(std::uint64_t count, unsigned order);

  // Frees the allocated block [pfn, pfn + 2^order). Anything but kOk changes nothing. Checks, in
  // this order: arguments (kInvalidArgument), the page at pfn free (kNotAllocated), pfn inside a
  // block that starts elsewhere (kInterior), a block of another order at pfn (kWrongOrder).
  // Cost: O(2^order + log blocks).
  [[nodiscard]] PhysFreeStatus free_block(std::uint64_t pfn, unsigned order);

  // free_block(pfn, 0) for each pfn in list order, all or nothing: on the first failing pfn (a
  // duplicate in the list fails as the double free it is) the frees already done are undone and
  // that pfn's status is returned. An empty list is kOk. Cost: O(k log blocks).
  [[nodiscard]] PhysFreeStatus free_pages(const std::vector<std::uint64_t>& pfns);

  // Why allocate_block(order) would fail now; kNone if it would succeed. Cost: O(N).
  [[nodiscard]] FailureKind block_failure(unsigned order) const;

  // The maximal free blocks, ascending by pfn (a tiling of the free pages). Cost: O(N).
  [[nodiscard]] std::vector<PhysBlock> free_blocks() const;
  // The allocated blocks, ascending by pfn. Cost: O(blocks).
  [[nodiscard]] std::vector<PhysBlock> allocated_blocks() const;
  // Derived from free_blocks(). Cost: O(N).
  [[nodiscard]] PhysModelStats stats() const;

  [[nodiscard]] std::uint64_t page_count() const { return page_count_; }
  [[nodiscard]] std::uint64_t free_page_count() const { return free_pages_; }  // O(1)
  // Precondition (VMF_CHECK): pfn < N. O(1).
  [[nodiscard]] bool is_free(std::uint64_t pfn) const;

  // "" when consistent, else the first problem: every allocated block is aligned, inside [0, N)
  // and owns exactly its pages; allocated blocks are disjoint and cover every owned page; the free
  // page count matches the page bytes. Cost: O(N + blocks).
  [[nodiscard]] std::string validate() const;

 private:
  // The heads of `chunks` blocks of `order` that successive allocate_block(order) calls would
  // take, or nullopt if fewer exist. Does not modify the state. Cost: O(N log N + chunks).
  [[nodiscard]] std::optional<std::vector<std::uint64_t>> choose_blocks(unsigned order, std::uint64_t chunks) const;
  [[nodiscard]] bool range_free(std::uint64_t first, std::uint64_t count) const;
  void set_owned(std::uint64_t first, std::uint64_t count, bool owned);

  std::uint64_t page_count_;
  std::uint64_t free_pages_;
  std::vector<std::uint8_t> owned_;              // one byte per page: 1 owned, 0 free
  std::map<std::uint64_t, unsigned> allocated_;  // head pfn -> order
};

}  // namespace vmfrag::reference
