// Covers PhysicalModel (harness/reference/physical_model.h), the oracle for the physical page
// allocator: block choices and failure kinds computed by hand for each rule of the contract
// (smallest order before lowest pfn, lowest sub-block, N not a power of two, the max-order cap),
// fragmentation versus lack of memory, all-or-nothing bulk allocation, every misuse status of the
// frees; then two independent checks of the model itself: its free-block scan against a brute
// force over the definition of "maximal free block", and its one-scan bulk shortcut against
// literal repeated allocate_block calls. Last, the randomised CROSS-CHECK against the real
// allocator/phys/BuddyAllocator: the model keeps no free lists and never merges, the real one is a
// buddy system with bitmaps, so agreement op by op (same pfns, same failure kinds, same free blocks)
// is evidence that both implement the contract, which neither could give alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "allocator/phys/buddy_allocator.h"
#include "harness/reference/physical_model.h"

namespace vmfrag::reference {
namespace {

static_assert(kPhysMaxOrder == vmfrag::kMaxOrder, "model and real allocator must agree on the max order");

constexpr std::uint64_t pages_of(unsigned order) { return std::uint64_t{1} << order; }

// Fixed seeds keep CI deterministic; VMFRAG_SEED=N replays one failing seed alone.
std::vector<std::uint64_t> test_seeds(std::uint64_t count) {
  if (const char* env = std::getenv("VMFRAG_SEED")) return {std::strtoull(env, nullptr, 10)};
  std::vector<std::uint64_t> seeds;
  for (std::uint64_t s = 1; s <= count; ++s) seeds.push_back(s);
  return seeds;
}

std::uint64_t take_block(PhysicalModel& m, unsigned order) {
  const PhysAllocation a = m.allocate_block(order);
  EXPECT_TRUE(a.ok()) << "allocate_block(" << order << ") failed: " << failure_name(a.failure);
  EXPECT_EQ(m.validate(), "");
  return a.pfn;
}

std::vector<PhysBlock> blocks(std::initializer_list<PhysBlock> list) { return list; }

std::vector<std::uint64_t> iota_pfns(std::uint64_t first, std::uint64_t count) {
  std::vector<std::uint64_t> v(count);
  for (std::uint64_t i = 0; i < count; ++i) v[i] = first + i;
  return v;
}

// ------------------------------------------------------------------------------------------------
// Hand-computed cases
// ------------------------------------------------------------------------------------------------

TEST(PhysicalModel, FreshSixteenPagesSplitLowHalfAndPreferSmallestOrder) {
  PhysicalModel m(16);
  EXPECT_EQ(m.free_blocks(), blocks({{0, 4}}));
  // Order 0 from [0,16): split keeps the low half each time; 1 (o0), 2 (o1), 4 (o2), 8 (o3) stay free.
  EXPECT_EQ(take_block(m, 0), 0u);
  EXPECT_EQ(m.free_blocks(), blocks({{1, 0}, {2, 1}, {4, 2}, {8, 3}}));
  // Order 1: the order-1 block at 2 is the smallest that fits.
  EXPECT_EQ(take_block(m, 1), 2u);
  // Order 0: the order-0 block at 1.
  EXPECT_EQ(take_block(m, 0), 1u);
  EXPECT_EQ(m.free_blocks(), blocks({{4, 2}, {8, 3}}));
  const PhysModelStats s = m.stats();
  EXPECT_EQ(s.total_pages, 16u);
  EXPECT_EQ(s.free_pages, 12u);
  EXPECT_EQ(s.free_blocks[2], 1u);
  EXPECT_EQ(s.free_blocks[3], 1u);
  EXPECT_EQ(s.largest_free_order, 3u);
  EXPECT_EQ(m.allocated_blocks(), blocks({{0, 0}, {1, 0}, {2, 1}}));
  // Freeing everything restores the single order-4 block: no merge logic, just the scan.
  EXPECT_EQ(m.free_block(2, 1), PhysFreeStatus::kOk);
  EXPECT_EQ(m.free_block(0, 0), PhysFreeStatus::kOk);
  EXPECT_EQ(m.free_block(1, 0), PhysFreeStatus::kOk);
  EXPECT_EQ(m.free_blocks(), blocks({{0, 4}}));
  EXPECT_EQ(m.validate(), "");
}

TEST(PhysicalModel, ThirteenPagesTileAsEightFourOneAndSmallestOrderWinsOverLowestPfn) {
  PhysicalModel m(13);
  EXPECT_EQ(m.free_blocks(), blocks({{0, 3}, {8, 2}, {12, 0}}));
  // Order 0 takes the lone page at 12, not pfn 0: smallest order first.
  EXPECT_EQ(take_block(m, 0), 12u);
  // Next order 0: the order-2 block at 8 is now the smallest; leftovers 9 (o0), 10 (o1).
  EXPECT_EQ(take_block(m, 0), 8u);
  EXPECT_EQ(m.free_blocks(), blocks({{0, 3}, {9, 0}, {10, 1}}));
  // Order 2: only the order-3 block qualifies; its upper half 4 stays free at order 2.
  EXPECT_EQ(take_block(m, 2), 0u);
  EXPECT_EQ(m.free_blocks(), blocks({{4, 2}, {9, 0}, {10, 1}}));
  // Order 3: only 7 pages free, so lack of memory (not fragmentation).
  EXPECT_EQ(m.block_failure(3), FailureKind::kNoPhysicalMemory);
  EXPECT_EQ(m.allocate_block(3).failure, FailureKind::kNoPhysicalMemory);
  // With page 12 back, 8 pages are free but in blocks of order <= 2: fragmentation.
  ASSERT_EQ(m.free_block(12, 0), PhysFreeStatus::kOk);
  EXPECT_EQ(m.free_blocks(), blocks({{4, 2}, {9, 0}, {10, 1}, {12, 0}}));
  EXPECT_EQ(m.free_page_count(), 8u);
  EXPECT_EQ(m.block_failure(3), FailureKind::kPhysicalFragmentation);
  EXPECT_EQ(m.allocate_block(3).failure, FailureKind::kPhysicalFragmentation);
  // Order 4 needs 16 pages: more than exist at all.
  EXPECT_EQ(m.allocate_block(4).failure, FailureKind::kNoPhysicalMemory);
  EXPECT_EQ(m.validate(), "");
}

TEST(PhysicalModel, SmallerOrderAtHigherPfnBeatsLargerOrderAtLowerPfn) {
  PhysicalModel m(64);
  for (std::uint64_t i = 0; i < 8; ++i) EXPECT_EQ(take_block(m, 3), 8 * i);
  ASSERT_EQ(m.free_block(56, 3), PhysFreeStatus::kOk);  // buddy 48 allocated: stays order 3
  ASSERT_EQ(m.free_block(0, 3), PhysFreeStatus::kOk);
  ASSERT_EQ(m.free_block(8, 3), PhysFreeStatus::kOk);  // with 0: order 4 at 0 (buddy 16 allocated)
  EXPECT_EQ(m.free_blocks(), blocks({{0, 4}, {56, 3}}));
  EXPECT_EQ(take_block(m, 3), 56u);
  EXPECT_EQ(take_block(m, 3), 0u);  // then the order-4 block, low half
  EXPECT_EQ(m.free_blocks(), blocks({{8, 3}}));
}

TEST(PhysicalModel, LowestPfnWithinAnOrder) {
  PhysicalModel m(64);
  for (std::uint64_t i = 0; i < 4; ++i) EXPECT_EQ(take_block(m, 4), 16 * i);
  ASSERT_EQ(m.free_block(48, 4), PhysFreeStatus::kOk);
  ASSERT_EQ(m.free_block(16, 4), PhysFreeStatus::kOk);
  EXPECT_EQ(m.free_blocks(), blocks({{16, 4}, {48, 4}}));
  EXPECT_EQ(take_block(m, 2), 16u);
  EXPECT_EQ(m.free_blocks(), blocks({{20, 2}, {24, 3}, {48, 4}}));
}

TEST(PhysicalModel, BlocksAreCappedAtMaxOrder) {
  PhysicalModel m(4096 + 3);
  EXPECT_EQ(m.free_blocks(), blocks({{0, 10}, {1024, 10}, {2048, 10}, {3072, 10}, {4096, 1}, {4098, 0}}));
  const PhysModelStats s = m.stats();
  EXPECT_EQ(s.free_blocks[10], 4u);
  EXPECT_EQ(s.free_blocks[1], 1u);
  EXPECT_EQ(s.free_blocks[0], 1u);
  EXPECT_EQ(s.largest_free_order, 10u);
  for (std::uint64_t i = 0; i < 4; ++i) EXPECT_EQ(take_block(m, 10), 1024 * i);
  EXPECT_EQ(m.allocate_block(10).failure, FailureKind::kNoPhysicalMemory);
  EXPECT_EQ(m.allocate_block(11).failure, FailureKind::kInvalidArgument);
  EXPECT_EQ(m.block_failure(11), FailureKind::kInvalidArgument);
}

TEST(PhysicalModel, ZeroAndOnePage) {
  PhysicalModel empty(0);
  EXPECT_EQ(empty.free_blocks(), blocks({}));
  EXPECT_EQ(empty.stats().largest_free_order, std::nullopt);
  EXPECT_EQ(empty.allocate_block(0).failure, FailureKind::kNoPhysicalMemory);
  EXPECT_TRUE(empty.allocate_pages(0).ok());
  EXPECT_EQ(empty.allocate_pages(1).failure, FailureKind::kNoPhysicalMemory);
  EXPECT_EQ(empty.free_block(0, 0), PhysFreeStatus::kInvalidArgument);

  PhysicalModel one(1);
  EXPECT_EQ(one.free_blocks(), blocks({{0, 0}}));
  EXPECT_EQ(one.allocate_block(1).failure, FailureKind::kNoPhysicalMemory);
  EXPECT_EQ(take_block(one, 0), 0u);
  EXPECT_EQ(one.allocate_block(0).failure, FailureKind::kNoPhysicalMemory);
  EXPECT_EQ(one.stats().largest_free_order, std::nullopt);
}

// ------------------------------------------------------------------------------------------------
// Fragmentation and bulk allocation
// ------------------------------------------------------------------------------------------------

TEST(PhysicalModel, FreeingEveryOtherPageIsFragmentationNotLackOfMemory) {
  for (std::uint64_t n : {64u, 1000u, 3000u}) {
    SCOPED_TRACE("N = " + std::to_string(n));
    PhysicalModel m(n);
    // Every page, one at a time (not in ascending order when N is not a power of two).
    for (std::uint64_t p = 0; p < n; ++p) ASSERT_TRUE(m.allocate_block(0).ok());
    EXPECT_EQ(m.allocate_block(0).failure, FailureKind::kNoPhysicalMemory);
    for (std::uint64_t p = 0; p < n; p += 2) ASSERT_EQ(m.free_block(p, 0), PhysFreeStatus::kOk);
    EXPECT_EQ(m.free_page_count(), n / 2);
    EXPECT_EQ(m.allocate_block(1).failure, FailureKind::kPhysicalFragmentation);
    EXPECT_EQ(m.block_failure(1), FailureKind::kPhysicalFragmentation);
    const PhysModelStats s = m.stats();
    EXPECT_EQ(s.free_pages, n / 2);
    EXPECT_EQ(s.free_blocks[0], n / 2);
    EXPECT_EQ(s.largest_free_order, 0u);
    EXPECT_EQ(m.block_failure(0), FailureKind::kNone);
    // Freeing one neighbour re-forms an order-1 block, which an order-1 request then takes.
    ASSERT_EQ(m.free_block(1, 0), PhysFreeStatus::kOk);
    EXPECT_EQ(m.free_blocks().front(), (PhysBlock{0, 1}));
    EXPECT_EQ(take_block(m, 1), 0u);
    // Order 0 still works: the lowest free page.
    EXPECT_EQ(take_block(m, 0), 2u);
  }
}

TEST(PhysicalModel, BulkPagesAreAllOrNothingAndMatchRepeatedSinglePages) {
  PhysicalModel m(13);
  // Order-0 pages in the order single allocations would give: 12 (o0), then 8..11 (o2), then 0..7.
  const PhysPages a = m.allocate_pages(6);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a.pfns, (std::vector<std::uint64_t>{12, 8, 9, 10, 11, 0}));
  const std::vector<PhysBlock> before_free = m.free_blocks();
  const std::vector<PhysBlock> before_alloc = m.allocated_blocks();
  EXPECT_EQ(m.allocate_pages(8).failure, FailureKind::kNoPhysicalMemory);  // 7 free
  EXPECT_EQ(m.free_blocks(), before_free);
  EXPECT_EQ(m.allocated_blocks(), before_alloc);
  const PhysPages b = m.allocate_pages(7);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b.pfns, iota_pfns(1, 7));
  EXPECT_EQ(m.free_page_count(), 0u);
  // Each page is its own order-0 block and is freed on its own.
  EXPECT_EQ(m.free_block(8, 2), PhysFreeStatus::kWrongOrder);
  EXPECT_EQ(m.free_pages(a.pfns), PhysFreeStatus::kOk);
  EXPECT_EQ(m.free_pages(b.pfns), PhysFreeStatus::kOk);
  EXPECT_EQ(m.free_blocks(), blocks({{0, 3}, {8, 2}, {12, 0}}));
  EXPECT_EQ(m.validate(), "");
}

TEST(PhysicalModel, HugeBlocksOfOneOrder) {
  PhysicalModel m(2048);
  EXPECT_EQ(take_block(m, 0), 0u);  // leaves 512 free at order 9, 1024 at order 10
  // Two order-9 blocks: the order-9 one at 512 first (smaller order), then 1024's low half.
  const PhysPages a = m.allocate_pages_order(1024, 9);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a.pfns, iota_pfns(512, 1024));
  EXPECT_EQ(m.free_page_count(), 1023u);
  EXPECT_EQ(m.allocate_pages_order(1024, 9).failure, FailureKind::kNoPhysicalMemory);
  EXPECT_EQ(m.allocate_pages_order(100, 9).failure, FailureKind::kInvalidArgument);  // not a multiple
  EXPECT_EQ(m.allocate_pages_order(1024, 11).failure, FailureKind::kInvalidArgument);
  const PhysPages b = m.allocate_pages_order(512, 9);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b.pfns, iota_pfns(1536, 512));
  // 511 pages left in blocks of order <= 8.
  EXPECT_EQ(m.allocate_pages_order(512, 9).failure, FailureKind::kNoPhysicalMemory);
  EXPECT_EQ(m.allocate_pages_order(256, 8).pfns, iota_pfns(256, 256));
  EXPECT_EQ(m.validate(), "");
}

TEST(PhysicalModel, HugeFailsAsFragmentationAndChangesNothing) {
  PhysicalModel m(1024);
  ASSERT_TRUE(m.allocate_pages(1024).ok());
  std::vector<std::uint64_t> odd;
  for (std::uint64_t p = 1; p < 1024; p += 2) odd.push_back(p);
  ASSERT_EQ(m.free_pages(odd), PhysFreeStatus::kOk);
  // One order-9 block re-formed would need 512 contiguous pages; 512 are free, none adjacent.
  const std::vector<PhysBlock> before = m.free_blocks();
  EXPECT_EQ(m.allocate_pages_order(512, 9).failure, FailureKind::kPhysicalFragmentation);
  EXPECT_EQ(m.allocate_pages_order(2, 1).failure, FailureKind::kPhysicalFragmentation);
  EXPECT_EQ(m.free_blocks(), before);
  EXPECT_EQ(m.free_page_count(), 512u);
  // Partial success is no success: free [0, 512) so one order-9 block exists, then ask for two.
  std::vector<std::uint64_t> even_low;
  for (std::uint64_t p = 0; p < 512; p += 2) even_low.push_back(p);
  ASSERT_EQ(m.free_pages(even_low), PhysFreeStatus::kOk);
  EXPECT_EQ(m.free_blocks().front(), (PhysBlock{0, 9}));
  EXPECT_EQ(m.allocate_pages_order(1024, 9).failure, FailureKind::kNoPhysicalMemory);  // 768 free
  EXPECT_EQ(m.allocate_pages_order(768, 8).failure, FailureKind::kPhysicalFragmentation);   // two o8 only
  EXPECT_EQ(m.free_page_count(), 768u);
  EXPECT_EQ(m.free_blocks().front(), (PhysBlock{0, 9}));
  EXPECT_EQ(m.allocate_pages_order(512, 9).pfns, iota_pfns(0, 512));
  EXPECT_EQ(m.validate(), "");
}

// ------------------------------------------------------------------------------------------------
// Misuse
// ------------------------------------------------------------------------------------------------

TEST(PhysicalModel, FreeMisuseReturnsAStatusAndChangesNothing) {
  PhysicalModel m(32);
  ASSERT_EQ(take_block(m, 2), 0u);  // [0, 4)
  ASSERT_EQ(take_block(m, 0), 4u);
  const std::vector<PhysBlock> free_before = m.free_blocks();
  const std::vector<PhysBlock> alloc_before = m.allocated_blocks();
  auto unchanged = [&] {
    EXPECT_EQ(m.free_blocks(), free_before);
    EXPECT_EQ(m.allocated_blocks(), alloc_before);
    EXPECT_EQ(m.validate(), "");
  };
  EXPECT_EQ(m.free_block(0, 11), PhysFreeStatus::kInvalidArgument);
  EXPECT_EQ(m.free_block(2, 2), PhysFreeStatus::kInvalidArgument);   // misaligned
  EXPECT_EQ(m.free_block(32, 0), PhysFreeStatus::kInvalidArgument);  // past N
  EXPECT_EQ(m.free_block(0, 6), PhysFreeStatus::kInvalidArgument);   // 64 pages > N
  EXPECT_EQ(m.free_block(8, 0), PhysFreeStatus::kNotAllocated);      // never allocated
  EXPECT_EQ(m.free_block(0, 1), PhysFreeStatus::kWrongOrder);
  EXPECT_EQ(m.free_block(0, 3), PhysFreeStatus::kWrongOrder);
  EXPECT_EQ(m.free_block(2, 1), PhysFreeStatus::kInterior);
  EXPECT_EQ(m.free_block(1, 0), PhysFreeStatus::kInterior);
  unchanged();
  // A list with a bad pfn after good ones: the good frees are undone.
  EXPECT_EQ(m.free_pages({4, 1}), PhysFreeStatus::kInterior);
  unchanged();
  EXPECT_EQ(m.free_pages({4, 4}), PhysFreeStatus::kNotAllocated);  // duplicate = double free
  unchanged();
  EXPECT_EQ(m.free_pages({}), PhysFreeStatus::kOk);
  unchanged();
  // Now the real frees, then the double frees.
  EXPECT_EQ(m.free_block(4, 0), PhysFreeStatus::kOk);
  EXPECT_EQ(m.free_block(4, 0), PhysFreeStatus::kNotAllocated);
  EXPECT_EQ(m.free_block(0, 2), PhysFreeStatus::kOk);
  EXPECT_EQ(m.free_block(0, 2), PhysFreeStatus::kNotAllocated);
  EXPECT_EQ(m.free_blocks(), blocks({{0, 5}}));
}

TEST(PhysicalModel, FreeStatusNames) {
  EXPECT_EQ(phys_free_status_name(PhysFreeStatus::kOk), "ok");
  EXPECT_EQ(phys_free_status_name(PhysFreeStatus::kInvalidArgument), "invalid-argument");
  EXPECT_EQ(phys_free_status_name(PhysFreeStatus::kNotAllocated), "not-allocated");
  EXPECT_EQ(phys_free_status_name(PhysFreeStatus::kInterior), "interior-of-allocated-block");
  EXPECT_EQ(phys_free_status_name(PhysFreeStatus::kWrongOrder), "wrong-order");
}

// ------------------------------------------------------------------------------------------------
// Self-checks of the model: its scan and its bulk shortcut against slower literal definitions
// ------------------------------------------------------------------------------------------------

// A random state: a random mix of block allocations and frees from a fresh model.
struct LiveItem {
  std::vector<std::uint64_t> pfns;  // for pages
  std::uint64_t pfn = 0;            // for a block
  unsigned order = 0;
  bool is_block = false;
};

void churn(PhysicalModel& m, std::mt19937_64& rng, int steps, std::vector<LiveItem>& live) {
  for (int i = 0; i < steps; ++i) {
    if (!live.empty() && rng() % 100 < 45) {
      const std::size_t k = rng() % live.size();
      const LiveItem item = live[k];
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
      ASSERT_EQ(item.is_block ? m.free_block(item.pfn, item.order) : m.free_pages(item.pfns), PhysFreeStatus::kOk);
    } else if (rng() % 2 == 0) {
      const unsigned order = static_cast<unsigned>(rng() % 6);
      const PhysAllocation a = m.allocate_block(order);
      if (a.ok()) live.push_back(LiveItem{{}, a.pfn, order, true});
    } else {
      const PhysPages p = m.allocate_pages(rng() % 9);
      if (p.ok()) live.push_back(LiveItem{p.pfns, 0, 0, false});
    }
  }
}

// The definition, literally: a free aligned block inside [0, N) of order <= max that is fully free
// and whose parent is not (or runs past N, or exceeds the max order). Tried for every pfn and order.
std::vector<PhysBlock> maximal_blocks_by_definition(const PhysicalModel& m) {
  const std::uint64_t n = m.page_count();
  auto fully_free = [&](std::uint64_t pfn, unsigned order) {
    if (order > kPhysMaxOrder || pfn % pages_of(order) != 0 || pfn + pages_of(order) > n) return false;
    for (std::uint64_t p = pfn; p < pfn + pages_of(order); ++p)
      if (!m.is_free(p)) return false;
    return true;
  };
  std::vector<PhysBlock> out;
  for (std::uint64_t pfn = 0; pfn < n; ++pfn) {
    for (unsigned o = 0; o <= kPhysMaxOrder; ++o) {
      const std::uint64_t parent = pfn & ~(pages_of(o + 1) - 1);
      if (fully_free(pfn, o) && !fully_free(parent, o + 1)) out.push_back(PhysBlock{pfn, o});
    }
  }
  return out;
}

TEST(PhysicalModel, FreeBlockScanMatchesTheDefinition) {
  for (std::uint64_t seed : test_seeds(20)) {
    std::printf("[ seed ] %llu\n", static_cast<unsigned long long>(seed));
    std::mt19937_64 rng(seed);
    for (std::uint64_t n : {1u, 2u, 13u, 64u, 100u, 1030u}) {
      SCOPED_TRACE("seed " + std::to_string(seed) + " N " + std::to_string(n));
      PhysicalModel m(n);
      std::vector<LiveItem> live;
      for (int round = 0; round < 6; ++round) {
        churn(m, rng, 25, live);
        ASSERT_EQ(m.validate(), "");
        const std::vector<PhysBlock> scanned = m.free_blocks();
        ASSERT_EQ(scanned, maximal_blocks_by_definition(m));
        std::uint64_t pages = 0;
        for (const PhysBlock& b : scanned) pages += pages_of(b.order);
        ASSERT_EQ(pages, m.free_page_count());
      }
    }
  }
}

TEST(PhysicalModel, BulkShortcutMatchesRepeatedSingleBlocks) {
  for (std::uint64_t seed : test_seeds(20)) {
    std::printf("[ seed ] %llu\n", static_cast<unsigned long long>(seed));
    std::mt19937_64 rng(seed);
    for (std::uint64_t n : {13u, 64u, 1000u, 3000u}) {
      SCOPED_TRACE("seed " + std::to_string(seed) + " N " + std::to_string(n));
      PhysicalModel m(n);
      std::vector<LiveItem> live;
      for (int round = 0; round < 8; ++round) {
        churn(m, rng, 40, live);
        const unsigned order = static_cast<unsigned>(rng() % 4 == 0 ? rng() % (kPhysMaxOrder + 1) : rng() % 3);
        const std::uint64_t chunks = 1 + rng() % (round % 2 == 0 ? 4 : 64);
        PhysicalModel bulk = m;
        PhysicalModel single = m;
        const PhysPages got = bulk.allocate_pages_order(chunks * pages_of(order), order);
        std::vector<std::uint64_t> expected;
        FailureKind expected_failure = FailureKind::kNone;
        for (std::uint64_t c = 0; c < chunks; ++c) {
          const PhysAllocation a = single.allocate_block(order);
          if (!a.ok()) {
            // Pages short overall is lack of memory; pages there but blocks not is fragmentation.
            expected_failure = chunks * pages_of(order) > m.free_page_count() ? FailureKind::kNoPhysicalMemory
                                                                               : FailureKind::kPhysicalFragmentation;
            break;
          }
          for (std::uint64_t p = a.pfn; p < a.pfn + pages_of(order); ++p) expected.push_back(p);
        }
        ASSERT_EQ(got.failure, expected_failure) << "order " << order << " chunks " << chunks;
        if (got.ok()) {
          ASSERT_EQ(got.pfns, expected);
          ASSERT_EQ(bulk.free_blocks(), single.free_blocks());
        } else {
          ASSERT_EQ(bulk.free_blocks(), m.free_blocks());
          ASSERT_EQ(bulk.allocated_blocks(), m.allocated_blocks());
        }
        ASSERT_EQ(bulk.validate(), "");
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Cross-check against the real BuddyAllocator
// ------------------------------------------------------------------------------------------------

// The real allocator's free blocks, ascending, read page by page through block_containing (its
// public view of the per-page states), independent of its per-order counters.
std::vector<PhysBlock> real_free_blocks(const BuddyAllocator& real) {
  std::vector<PhysBlock> out;
  for (std::uint64_t p = 0; p < real.page_count();) {
    const BuddyAllocator::Block b = real.block_containing(p);
    if (b.free) out.push_back(PhysBlock{b.pfn, b.order});
    p = b.pfn + pages_of(b.order);
  }
  return out;
}

struct CrossCheckCounts {
  std::uint64_t ok = 0, no_memory = 0, fragmentation = 0, invalid = 0;
  void count(FailureKind k) {
    if (k == FailureKind::kNone) ++ok;
    if (k == FailureKind::kNoPhysicalMemory) ++no_memory;
    if (k == FailureKind::kPhysicalFragmentation) ++fragmentation;
    if (k == FailureKind::kInvalidArgument) ++invalid;
  }
};

void cross_check(std::uint64_t seed, std::uint64_t n, int ops, CrossCheckCounts& counts) {
  std::mt19937_64 rng(seed);
  PhysicalModel model(n);
  BuddyAllocator real(n);
  std::vector<LiveItem> live;
  for (int op = 0; op < ops; ++op) {
    SCOPED_TRACE("op " + std::to_string(op));
    const unsigned roll = static_cast<unsigned>(rng() % 100);
    // Orders biased small (most requests), sometimes large, rarely invalid.
    auto random_order = [&]() -> unsigned {
      const unsigned r = static_cast<unsigned>(rng() % 20);
      if (r == 0) return kPhysMaxOrder + 1;
      if (r < 4) return static_cast<unsigned>(rng() % (kPhysMaxOrder + 1));
      return static_cast<unsigned>(rng() % 4);
    };
    if (!live.empty() && roll < 42) {
      const std::size_t k = rng() % live.size();
      const LiveItem item = live[k];
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
      if (item.is_block) {
        ASSERT_EQ(model.free_block(item.pfn, item.order), PhysFreeStatus::kOk);
        real.free(item.pfn, item.order);
      } else {
        ASSERT_EQ(model.free_pages(item.pfns), PhysFreeStatus::kOk);
        real.free_pages(item.pfns);
      }
    } else if (roll < 75) {  // k: one contiguous block
      const unsigned order = random_order();
      const FailureKind real_kind = real.block_failure(order);
      const std::optional<std::uint64_t> real_pfn = real.allocate(order);
      const PhysAllocation got = model.allocate_block(order);
      counts.count(got.failure);
      ASSERT_EQ(got.failure, real_kind) << "allocate_block(" << order << ")";
      ASSERT_EQ(got.ok(), real_pfn.has_value()) << "allocate_block(" << order << ")";
      if (got.ok()) {
        ASSERT_EQ(got.pfn, *real_pfn) << "allocate_block(" << order << ")";
        live.push_back(LiveItem{{}, got.pfn, order, true});
      }
    } else if (roll < 92) {  // vmalloc: order-0 pages, sometimes more than are free
      const std::uint64_t count = rng() % 8 == 0 ? rng() % (n + 2) : rng() % 17;
      const std::uint64_t free_before = real.free_page_count();
      std::vector<std::uint64_t> real_pfns;
      const bool real_ok = real.allocate_pages(count, real_pfns, 0, 0);
      const PhysPages got = model.allocate_pages(count);
      counts.count(got.failure);
      ASSERT_EQ(got.ok(), real_ok) << "allocate_pages(" << count << ")";
      if (got.ok()) {
        ASSERT_EQ(got.pfns, real_pfns) << "allocate_pages(" << count << ")";
        if (count > 0) live.push_back(LiveItem{got.pfns, 0, 0, false});
      } else {
        ASSERT_EQ(got.failure, FailureKind::kNoPhysicalMemory);
        ASSERT_GT(count, free_before);
      }
    } else {  // h: blocks of one order
      const unsigned order = static_cast<unsigned>(rng() % 3 == 0 ? 9 : rng() % (kPhysMaxOrder + 1));
      const std::uint64_t count = (1 + rng() % 3) * pages_of(order);
      const std::uint64_t free_before = real.free_page_count();
      std::vector<std::uint64_t> real_pfns;
      const bool real_ok = real.allocate_pages(count, real_pfns, order, order);
      const PhysPages got = model.allocate_pages_order(count, order);
      counts.count(got.failure);
      ASSERT_EQ(got.ok(), real_ok) << "allocate_pages_order(" << count << ", " << order << ")";
      if (got.ok()) {
        ASSERT_EQ(got.pfns, real_pfns) << "allocate_pages_order(" << count << ", " << order << ")";
        live.push_back(LiveItem{got.pfns, 0, 0, false});
      } else {
        // The real one says only "false"; its kind follows from its page count before the call.
        ASSERT_EQ(got.failure,
                  count > free_before ? FailureKind::kNoPhysicalMemory : FailureKind::kPhysicalFragmentation);
      }
    }
    // After every op: the same free pages, the same free blocks per order and in full.
    const PhysModelStats s = model.stats();
    ASSERT_EQ(s.free_pages, real.free_page_count());
    for (unsigned o = 0; o <= kPhysMaxOrder; ++o) ASSERT_EQ(s.free_blocks[o], real.free_blocks_per_order()[o]) << o;
    ASSERT_EQ(s.largest_free_order, real.largest_free_order());
    ASSERT_EQ(model.free_blocks(), real_free_blocks(real));
    if (op % 100 == 0) {
      ASSERT_EQ(model.validate(), "");
      ASSERT_EQ(real.validate(), "");
      for (unsigned o = 0; o <= kPhysMaxOrder + 1; ++o) ASSERT_EQ(model.block_failure(o), real.block_failure(o)) << o;
    }
  }
}

TEST(PhysicalModelCrossCheck, AgreesWithTheRealBuddyAllocatorOpByOp) {
  constexpr std::uint64_t kSizes[] = {1, 13, 64, 1000, 3000};
  constexpr int kOps = 3000;
  CrossCheckCounts total;
  for (std::uint64_t seed : test_seeds(20)) {
    const std::uint64_t n = kSizes[seed % 5];  // a function of the seed, so VMFRAG_SEED replays it
    std::printf("[ seed ] %llu (N %llu)\n", static_cast<unsigned long long>(seed), static_cast<unsigned long long>(n));
    SCOPED_TRACE("seed " + std::to_string(seed) + " N " + std::to_string(n));
    CrossCheckCounts counts;
    cross_check(seed, n, kOps, counts);
    if (HasFatalFailure()) return;
    // The comparison must have exercised every outcome, or agreement proves little. N 1 cannot
    // fragment (one page is one block).
    EXPECT_GT(counts.ok, 0u);
    EXPECT_GT(counts.no_memory, 0u);
    EXPECT_GT(counts.invalid, 0u);
    if (n > 1) {
      EXPECT_GT(counts.fragmentation, 0u);
    }
    total.ok += counts.ok;
    total.fragmentation += counts.fragmentation;
  }
  std::printf("[ cross ] %llu successes, %llu fragmentation failures compared\n",
              static_cast<unsigned long long>(total.ok), static_cast<unsigned long long>(total.fragmentation));
}

// The size replay uses (256 MiB of 4 KiB pages): many order-10 blocks, so the cap on merging and
// the lowest-pfn choice among many equal blocks are exercised. Fewer ops: each is O(N).
TEST(PhysicalModelCrossCheck, AgreesAtSixtyFourThousandPages) {
  for (std::uint64_t seed : test_seeds(2)) {
    std::printf("[ seed ] %llu (N 65536)\n", static_cast<unsigned long long>(seed));
    SCOPED_TRACE("seed " + std::to_string(seed) + " N 65536");
    CrossCheckCounts counts;
    cross_check(seed, 65536, 400, counts);
    if (HasFatalFailure()) return;
    EXPECT_GT(counts.ok, 0u);
  }
}

}  // namespace
}  // namespace vmfrag::reference
