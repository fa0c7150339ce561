// BuddyAllocator: hand-computed splits and merges (the kernel's expand() and __free_one_page on a
// 16-page pool), initial tilings for page counts that are not powers of two, the order cap at
// kMaxOrder, death tests for every kind of bad free, the physical-fragmentation state (half the
// pages free, no order-1 block), the mm/vmstat.c fragmentation and unusable-free indices on states
// worked out by hand, allocate_pages in its three modes including the all-or-nothing rollback,
// validate() catching deliberate corruption, and a randomised run against a brute-force model that
// re-derives the free blocks from a plain page bitmap and implements the same policy on its own
// (smallest order first, lowest pfn within the order), with validate() after every operation.
// Randomised tests print their seed; VMFRAG_SEED=N replays one.
#include "allocator/tests/test_seeds.h"
#include "allocator/phys/buddy_allocator.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace vmfrag {

// Reaches the private state so tests can break one invariant at a time.
class BuddyAllocatorTestAccess {
 public:
  static std::vector<std::uint8_t>& page_state(BuddyAllocator& b) { return b.page_state_; }
  static std::uint64_t& free_pages(BuddyAllocator& b) { return b.free_pages_; }
  static std::array<std::uint64_t, kOrderCount>& free_blocks(BuddyAllocator& b) { return b.free_blocks_; }
  static detail::LowestFirstBitmap& free_heads(BuddyAllocator& b, unsigned order) { return b.free_heads_[order]; }
  static constexpr std::uint8_t kFreeHead = BuddyAllocator::kFreeHead;
  static constexpr std::uint8_t kAllocatedHead = BuddyAllocator::kAllocatedHead;
};

namespace {

using Access = BuddyAllocatorTestAccess;
using Counts = std::array<std::uint64_t, kOrderCount>;

Counts counts(std::initializer_list<std::pair<unsigned, std::uint64_t>> nonzero) {
  Counts c{};
  for (auto [order, n] : nonzero) c[order] = n;
  return c;
}

// Every free block as (pfn, order), ascending, read through the public API only.
std::vector<std::pair<std::uint64_t, unsigned>> free_blocks_of(const BuddyAllocator& b) {
  std::vector<std::pair<std::uint64_t, unsigned>> out;
  for (std::uint64_t p = 0; p < b.page_count();) {
    const BuddyAllocator::Block blk = b.block_containing(p);
    EXPECT_EQ(blk.pfn, p);
    if (blk.free) out.emplace_back(blk.pfn, blk.order);
    p += std::uint64_t{1} << blk.order;
  }
  return out;
}

using Blocks = std::vector<std::pair<std::uint64_t, unsigned>>;

TEST(BuddyAllocator, FreshPoolIsOneBlock) {
  BuddyAllocator b(16);
  EXPECT_EQ(b.free_page_count(), 16u);
  EXPECT_EQ(b.free_blocks_per_order(), counts({{4, 1}}));
  EXPECT_EQ(b.largest_free_order(), 4u);
  EXPECT_EQ(b.validate(), "");
}

// allocate(0) from a fresh 16-page pool: the order-4 block at 0 is halved four times, each upper
// half staying free: 8 at order 3, 4 at order 2, 2 at order 1, 1 at order 0; page 0 is the result.
TEST(BuddyAllocator, SplitLeavesUpperHalvesFree) {
  BuddyAllocator b(16);
  EXPECT_EQ(b.allocate(0), 0u);
  EXPECT_EQ(free_blocks_of(b), (Blocks{{1, 0}, {2, 1}, {4, 2}, {8, 3}}));
  EXPECT_EQ(b.free_blocks_per_order(), counts({{0, 1}, {1, 1}, {2, 1}, {3, 1}}));
  EXPECT_EQ(b.free_page_count(), 15u);
  EXPECT_EQ(b.block_containing(0), (BuddyAllocator::Block{0, 0, false}));
  EXPECT_EQ(b.block_containing(11), (BuddyAllocator::Block{8, 3, true}));
  EXPECT_EQ(b.validate(), "");
  // Freeing page 0 merges all the way back: 0+1 -> o1, +2 -> o2, +4 -> o3, +8 -> o4.
  b.free(0, 0);
  EXPECT_EQ(free_blocks_of(b), (Blocks{{0, 4}}));
  EXPECT_EQ(b.validate(), "");
}

// Smallest order first, lowest pfn within it: each request is served from the smallest free block
// that can hold it, not from the lowest address overall.
TEST(BuddyAllocator, SmallestOrderThenLowestPfn) {
  BuddyAllocator b(16);
  EXPECT_EQ(b.allocate(0), 0u);  // free: 1 o0, 2 o1, 4 o2, 8 o3
  EXPECT_EQ(b.allocate(2), 4u);  // the order-2 block, not a split of 8
  EXPECT_EQ(b.allocate(0), 1u);  // free: 2 o1, 8 o3
  EXPECT_EQ(b.allocate(0), 2u);  // splits 2 o1: 3 stays free at o0
  EXPECT_EQ(b.allocate(1), 8u);  // no o1, o2 free: split 8 o3 -> 12 o2, 10 o1
  EXPECT_EQ(free_blocks_of(b), (Blocks{{3, 0}, {10, 1}, {12, 2}}));
  EXPECT_EQ(b.allocate(0), 3u);
  EXPECT_EQ(b.allocate(3), std::nullopt);  // 6 pages free, no order-3 block
  EXPECT_EQ(b.free_page_count(), 6u);
  EXPECT_EQ(b.validate(), "");
}

// The merge diagram in buddy_allocator.cpp: 8 free at o1, 12 free at o2, freeing 10 (o1) merges
// into the order-3 block at 8, which then stops because its buddy 0 is allocated.
TEST(BuddyAllocator, MergeChainStopsAtAllocatedBuddy) {
  BuddyAllocator b(16);
  EXPECT_EQ(b.allocate(3), 0u);
  EXPECT_EQ(b.allocate(1), 8u);
  EXPECT_EQ(b.allocate(1), 10u);
  EXPECT_EQ(free_blocks_of(b), (Blocks{{12, 2}}));
  b.free(8, 1);
  EXPECT_EQ(free_blocks_of(b), (Blocks{{8, 1}, {12, 2}}));  // 8's buddy 10 is allocated
  b.free(10, 1);
  EXPECT_EQ(free_blocks_of(b), (Blocks{{8, 3}}));
  b.free(0, 3);
  EXPECT_EQ(free_blocks_of(b), (Blocks{{0, 4}}));
  EXPECT_EQ(b.validate(), "");
}

// N = 13 tiles as [0,8) o3, [8,12) o2, [12] o0; page 12's buddy 13 is beyond N, so it never merges.
TEST(BuddyAllocator, PageCountNotAPowerOfTwo) {
  BuddyAllocator b(13);
  EXPECT_EQ(free_blocks_of(b), (Blocks{{0, 3}, {8, 2}, {12, 0}}));
  EXPECT_EQ(b.allocate(0), 12u);  // the order-0 block, no split needed
  EXPECT_EQ(b.allocate(4), std::nullopt);
  EXPECT_EQ(b.allocate(3), 0u);
  EXPECT_EQ(b.allocate(2), 8u);
  EXPECT_EQ(b.allocate(0), std::nullopt);
  EXPECT_EQ(b.free_page_count(), 0u);
  b.free(12, 0);
  b.free(8, 2);
  b.free(0, 3);
  EXPECT_EQ(free_blocks_of(b), (Blocks{{0, 3}, {8, 2}, {12, 0}}));
  EXPECT_EQ(b.validate(), "");

  // 3000 = 1024 + 1024 + 512 + 256 + 128 + 32 + 16 + 8.
  BuddyAllocator c(3000);
  EXPECT_EQ(free_blocks_of(c),
            (Blocks{{0, 10}, {1024, 10}, {2048, 9}, {2560, 8}, {2816, 7}, {2944, 5}, {2976, 4}, {2992, 3}}));
  EXPECT_EQ(c.validate(), "");

  BuddyAllocator one(1);
  EXPECT_EQ(one.allocate(1), std::nullopt);
  EXPECT_EQ(one.allocate(0), 0u);
  EXPECT_EQ(one.allocate(0), std::nullopt);
  one.free(0, 0);
  EXPECT_EQ(one.validate(), "");
}

// Blocks stop at kMaxOrder: two free order-10 buddies stay separate, and order 11 is refused.
TEST(BuddyAllocator, OrderCapAtMaxOrder) {
  BuddyAllocator b(4096);
  EXPECT_EQ(b.free_blocks_per_order(), counts({{10, 4}}));
  EXPECT_EQ(b.allocate(kMaxOrder + 1), std::nullopt);
  EXPECT_EQ(b.block_failure(kMaxOrder + 1), FailureKind::kInvalidArgument);
  EXPECT_EQ(b.allocate(0), 0u);
  b.free(0, 0);
  EXPECT_EQ(b.free_blocks_per_order(), counts({{10, 4}}));
  EXPECT_EQ(b.lowest_free_block(10), 0u);
  EXPECT_EQ(b.validate(), "");
}

TEST(BuddyAllocatorDeathTest, BadFreesAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  BuddyAllocator b(16);
  const std::uint64_t p = *b.allocate(0);
  b.free(p, 0);
  EXPECT_DEATH(b.free(p, 0), "double free");                 // 0 is now the head of a free o4
  EXPECT_DEATH(b.free(3, 0), "inside free block .*double free");
  const std::uint64_t q = *b.allocate(2);  // [0, 4)
  EXPECT_DEATH(b.free(q, 1), "wrong order");
  EXPECT_DEATH(b.free(q, 3), "wrong order");
  EXPECT_DEATH(b.free(2, 1), "inside allocated block \\[0, 4\\) order 2 \\(not a block start");
  EXPECT_DEATH(b.free(1, 1), "not aligned");
  EXPECT_DEATH(b.free(16, 0), "outside");
  EXPECT_DEATH(b.free(8, 4), "outside");
  EXPECT_DEATH(b.free(0, kMaxOrder + 1), "order");
  b.free(q, 2);
  EXPECT_EQ(b.validate(), "");
}

// Everything allocated as single pages, every other page freed: half the memory is free, but no
// two free pages are buddies, so not one order-1 block exists. This is physical fragmentation.
TEST(BuddyAllocator, CheckerboardIsPhysicalFragmentation) {
  BuddyAllocator b(64);
  std::vector<std::uint64_t> pages;
  for (int i = 0; i < 64; ++i) pages.push_back(*b.allocate(0));
  for (int i = 0; i < 64; ++i) EXPECT_EQ(pages[i], static_cast<std::uint64_t>(i));
  EXPECT_EQ(b.block_failure(0), FailureKind::kNoPhysicalMemory);
  for (std::uint64_t p = 0; p < 64; p += 2) b.free(p, 0);
  EXPECT_EQ(b.free_page_count(), 32u);
  EXPECT_EQ(b.free_blocks_per_order(), counts({{0, 32}}));
  EXPECT_EQ(b.allocate(1), std::nullopt);
  EXPECT_EQ(b.block_failure(1), FailureKind::kPhysicalFragmentation);
  EXPECT_EQ(b.block_failure(0), FailureKind::kNone);
  EXPECT_EQ(b.largest_free_order(), 0u);
  // 1000 - (1000 + 32*1000/2) / 32 = 1000 - 17000/32 = 1000 - 531 = 469.
  EXPECT_EQ(b.fragmentation_index_milli(1), 469);
  EXPECT_EQ(b.unusable_free_index_milli(1), 1000);
  EXPECT_EQ(b.unusable_free_index_milli(0), 0);
  EXPECT_EQ(b.fragmentation_index_milli(0), -1000);
  // Strict huge-page style bulk request: enough pages, no blocks -> fails, changes nothing.
  std::vector<std::uint64_t> out{99};
  EXPECT_FALSE(b.allocate_pages(2, out, 1, 1));
  EXPECT_EQ(out, std::vector<std::uint64_t>{99});
  EXPECT_EQ(b.free_blocks_per_order(), counts({{0, 32}}));
  // Freeing the odd pages merges everything back to one order-6 block.
  for (std::uint64_t p = 1; p < 64; p += 2) b.free(p, 0);
  EXPECT_EQ(free_blocks_of(b), (Blocks{{0, 6}}));
  EXPECT_EQ(b.validate(), "");
}

// The kernel's integer formulas on states worked out by hand.
TEST(BuddyAllocator, FragmentationIndicesMatchVmstat) {
  BuddyAllocator b(16);
  std::vector<std::uint64_t> all;
  ASSERT_TRUE(b.allocate_pages(16, all, 0, 0));
  // Nothing free: fragmentation index 0 ("lack of memory"), unusable 1000 (all of nothing unusable).
  EXPECT_EQ(b.fragmentation_index_milli(0), 0);
  EXPECT_EQ(b.unusable_free_index_milli(0), 1000);
  EXPECT_EQ(b.stats().largest_free_order, std::nullopt);

  // Free 0 and 2 (two lone pages), 4-5 (-> o1 at 4), 8-11 (-> o2 at 8).
  b.free_pages({0, 2, 4, 5, 8, 9, 10, 11});
  EXPECT_EQ(b.free_blocks_per_order(), counts({{0, 2}, {1, 1}, {2, 1}}));
  // free_pages 8, blocks 4.
  // order 3: 1000 - (1000 + 8*1000/8)/4 = 1000 - 500 = 500
  EXPECT_EQ(b.fragmentation_index_milli(3), 500);
  EXPECT_DOUBLE_EQ(b.fragmentation_index(3), 0.5);
  // order 4: 1000 - (1000 + 8*1000/16)/4 = 1000 - 375 = 625
  EXPECT_EQ(b.fragmentation_index_milli(4), 625);
  // orders 0..2: a suitable block exists
  for (unsigned o = 0; o <= 2; ++o) EXPECT_EQ(b.fragmentation_index_milli(o), -1000) << o;
  EXPECT_DOUBLE_EQ(b.fragmentation_index(2), -1.0);
  // unusable: order 1: suitable = 1 (o1) + 2 (o2) = 3 -> (8 - 6)*1000/8 = 250
  EXPECT_EQ(b.unusable_free_index_milli(1), 250);
  // order 2: suitable 1 -> (8 - 4)*1000/8 = 500; order 3: nothing -> 1000; order 0: 0.
  EXPECT_EQ(b.unusable_free_index_milli(2), 500);
  EXPECT_EQ(b.unusable_free_index_milli(3), 1000);
  EXPECT_EQ(b.unusable_free_index_milli(0), 0);
  EXPECT_DOUBLE_EQ(b.unusable_free_index(1), 0.25);

  const BuddyStats s = b.stats();
  EXPECT_EQ(s.total_pages, 16u);
  EXPECT_EQ(s.free_pages, 8u);
  EXPECT_EQ(s.free_blocks, b.free_blocks_per_order());
  EXPECT_EQ(s.largest_free_order, 2u);
  EXPECT_EQ(s.fragmentation_index_milli[4], 625);
  EXPECT_EQ(s.unusable_free_index_milli[1], 250);
  EXPECT_DOUBLE_EQ(s.fragmentation_index(3), 0.5);
  EXPECT_DOUBLE_EQ(s.unusable_free_index(2), 0.5);

  // The kernel formula goes negative with one small block: one free page, order 1:
  // 1000 - (1000 + 1*1000/2)/1 = -500.
  BuddyAllocator c(2);
  ASSERT_EQ(c.allocate(0), 0u);
  EXPECT_EQ(c.fragmentation_index_milli(1), -500);
  EXPECT_EQ(c.block_failure(1), FailureKind::kNoPhysicalMemory);
  // Eight lone pages of 16, order 1: 1000 - (1000 + 4000)/8 = 375.
  BuddyAllocator d(16);
  std::vector<std::uint64_t> p;
  ASSERT_TRUE(d.allocate_pages(16, p, 0));
  d.free_pages({0, 2, 4, 6, 8, 10, 12, 14});
  EXPECT_EQ(d.fragmentation_index_milli(1), 375);
  EXPECT_EQ(b.validate(), "");
}

TEST(BuddyAllocator, AllocatePagesTakesLargestFittingBlocks) {
  BuddyAllocator b(16);
  std::vector<std::uint64_t> v;
  // r=5: order min(2, 2) = 2 -> [0,4); r=1: order 0 -> smallest free block is 4 o2 -> page 4.
  ASSERT_TRUE(b.allocate_pages(5, v, 2));
  EXPECT_EQ(v, (std::vector<std::uint64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(free_blocks_of(b), (Blocks{{5, 0}, {6, 1}, {8, 3}}));
  // Every page is now its own order-0 allocation.
  for (std::uint64_t q : v) EXPECT_EQ(b.block_containing(q), (BuddyAllocator::Block{q, 0, false}));
  EXPECT_EQ(b.validate(), "");
  // Appends; order-0 only takes the lowest page of the smallest order each time: 5, then 6, 7.
  ASSERT_TRUE(b.allocate_pages(3, v, 0));
  EXPECT_EQ(v, (std::vector<std::uint64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  b.free_pages(v);
  EXPECT_EQ(free_blocks_of(b), (Blocks{{0, 4}}));
  std::vector<std::uint64_t> none;
  EXPECT_TRUE(b.allocate_pages(0, none, 3));
  EXPECT_TRUE(none.empty());
  EXPECT_FALSE(b.allocate_pages(17, none, 0));  // more than N: refused up front
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(b.validate(), "");
}

// A strict request that takes two blocks before running out must give them back and leave the
// allocator exactly as it was; the fallback mode serves the same request from the lone pages.
TEST(BuddyAllocator, AllocatePagesRollsBackOnFailure) {
  BuddyAllocator b(16);
  std::vector<std::uint64_t> all;
  ASSERT_TRUE(b.allocate_pages(16, all, 0));
  b.free_pages({0, 1, 2, 3, 8, 10});  // free: [0,4) o2, 8 o0, 10 o0
  const Blocks before = free_blocks_of(b);
  EXPECT_EQ(before, (Blocks{{0, 2}, {8, 0}, {10, 0}}));
  std::vector<std::uint64_t> v{7};
  // r=6 -> o1 takes 0 (split of 0 o2), r=4 -> o1 takes 2, r=2 -> no o1 and min_order 1 -> undo.
  EXPECT_FALSE(b.allocate_pages(6, v, 1, 1));
  EXPECT_EQ(v, std::vector<std::uint64_t>{7});
  EXPECT_EQ(free_blocks_of(b), before);
  EXPECT_EQ(b.free_page_count(), 6u);
  EXPECT_EQ(b.validate(), "");
  // min_order 0 falls back to single pages.
  ASSERT_TRUE(b.allocate_pages(6, v, 1, 0));
  EXPECT_EQ(v, (std::vector<std::uint64_t>{7, 0, 1, 2, 3, 8, 10}));
  EXPECT_EQ(b.free_page_count(), 0u);
  EXPECT_EQ(b.validate(), "");
}

TEST(BuddyAllocatorDeathTest, AllocatePagesPreconditions) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  BuddyAllocator b(16);
  std::vector<std::uint64_t> v;
  EXPECT_DEATH((void)b.allocate_pages(3, v, 2, 1), "not a multiple");
  EXPECT_DEATH((void)b.allocate_pages(4, v, 1, 2), "orders");
  EXPECT_DEATH((void)b.allocate_pages(4, v, kMaxOrder + 1), "orders");
  EXPECT_DEATH(BuddyAllocator(0), "page_count");
}

// validate() must notice each kind of corruption (otherwise the randomised test proves nothing).
TEST(BuddyAllocator, ValidateCatchesCorruption) {
  {
    BuddyAllocator b(16);
    Access::free_pages(b) += 1;
    EXPECT_NE(b.validate().find("free page count"), std::string::npos) << b.validate();
  }
  {
    BuddyAllocator b(16);
    Access::page_state(b)[3] = Access::kAllocatedHead | 0;
    EXPECT_NE(b.validate().find("is not a tail"), std::string::npos) << b.validate();
  }
  {
    BuddyAllocator b(16);  // split the o4 block into two free o3 buddies, bookkeeping consistent
    Access::page_state(b)[0] = Access::kFreeHead | 3;
    Access::page_state(b)[8] = Access::kFreeHead | 3;
    Access::free_heads(b, 4).erase(0);
    Access::free_heads(b, 3).insert(0);
    Access::free_heads(b, 3).insert(1);
    Access::free_blocks(b)[4] = 0;
    Access::free_blocks(b)[3] = 2;
    EXPECT_NE(b.validate().find("are not merged"), std::string::npos) << b.validate();
  }
  {
    BuddyAllocator b(16);
    Access::free_heads(b, 4).erase(0);
    EXPECT_NE(b.validate().find("missing from"), std::string::npos) << b.validate();
  }
  {
    BuddyAllocator b(16);
    Access::free_heads(b, 2).insert(1);  // a phantom free block at pfn 4
    EXPECT_NE(b.validate().find("bitmap holds"), std::string::npos) << b.validate();
  }
  {
    BuddyAllocator b(16);
    Access::page_state(b)[0] = Access::kFreeHead | 5;  // runs past N
    EXPECT_NE(b.validate().find("runs past N"), std::string::npos) << b.validate();
  }
  {
    BuddyAllocator b(16);
    ASSERT_EQ(b.allocate(0), 0u);
    Access::page_state(b)[1] = Access::kFreeHead | 1;  // misaligned head
    EXPECT_NE(b.validate().find("misaligned"), std::string::npos) << b.validate();
  }
}

// The lowest-first bitmap on its own, across level boundaries (64, 4096 members per summary bit).
TEST(LowestFirstBitmap, LowestAcrossLevels) {
  detail::LowestFirstBitmap m(300000);
  EXPECT_EQ(m.lowest(), std::nullopt);
  for (std::uint64_t i : {299999ull, 4096ull, 70000ull, 63ull, 64ull}) m.insert(i);
  EXPECT_EQ(m.lowest(), 63u);
  m.erase(63);
  EXPECT_EQ(m.lowest(), 64u);
  m.erase(64);
  EXPECT_EQ(m.lowest(), 4096u);
  m.erase(4096);
  EXPECT_EQ(m.lowest(), 70000u);
  m.erase(70000);
  EXPECT_EQ(m.lowest(), 299999u);
  EXPECT_TRUE(m.contains(299999));
  EXPECT_FALSE(m.contains(300000));
  EXPECT_EQ(m.size(), 1u);
  EXPECT_EQ(m.validate(), "");
  m.erase(299999);
  EXPECT_EQ(m.lowest(), std::nullopt);
  EXPECT_EQ(m.validate(), "");
}

// ---------------------------------------------------------------------------------------------
// Randomised comparison against a brute-force model.
// ---------------------------------------------------------------------------------------------

// Knows only which pages are free. The free blocks are re-derived from that on every question:
// page p's block is the largest aligned all-free block containing it (order <= kMaxOrder, inside
// [0, N)). allocate implements the policy from that definition, not from any split history.
class BruteForceBuddy {
 public:
  explicit BruteForceBuddy(std::uint64_t n) : free_(n, true) {}

  std::vector<std::pair<std::uint64_t, unsigned>> blocks() const {
    const std::uint64_t n = free_.size();
    std::vector<std::uint64_t> prefix(n + 1, 0);  // prefix[i] = free pages in [0, i)
    for (std::uint64_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + (free_[i] ? 1 : 0);
    auto all_free = [&](std::uint64_t lo, std::uint64_t len) {
      return lo + len <= n && prefix[lo + len] - prefix[lo] == len;
    };
    std::vector<std::pair<std::uint64_t, unsigned>> out;
    for (std::uint64_t p = 0; p < n; ++p) {
      if (!free_[p]) continue;
      for (unsigned o = kMaxOrder + 1; o-- > 0;) {
        const std::uint64_t head = p & ~((std::uint64_t{1} << o) - 1);
        if (all_free(head, std::uint64_t{1} << o)) {
          if (head == p) out.emplace_back(p, o);
          break;
        }
      }
    }
    return out;
  }

  std::optional<std::uint64_t> allocate(unsigned order) {
    const auto bl = blocks();
    for (unsigned o = order; o <= kMaxOrder; ++o) {
      for (const auto& [pfn, bo] : bl) {  // ascending pfn: the first of order o is the lowest
        if (bo != o) continue;
        for (std::uint64_t i = pfn; i < pfn + (std::uint64_t{1} << order); ++i) free_[i] = false;
        return pfn;
      }
    }
    return std::nullopt;
  }

  void release(std::uint64_t pfn, unsigned order) {
    for (std::uint64_t i = pfn; i < pfn + (std::uint64_t{1} << order); ++i) {
      ASSERT_FALSE(free_[i]);
      free_[i] = true;
    }
  }

  std::uint64_t free_count() const {
    std::uint64_t c = 0;
    for (bool f : free_) c += f ? 1 : 0;
    return c;
  }

 private:
  std::vector<bool> free_;
};

// 20 seeds x 2000 ops over page counts from 1 to 2600 (order-10 blocks included): every pfn and
// every failure equals the model's, the free blocks per order and free pages match, validate()
// holds after every op. The bulk path is checked against the model running the header's rule.
TEST(BuddyAllocator, RandomOpsAgreeWithBruteForce) {
  for (std::uint64_t seed : seeds_to_run(1, 20)) {
    SCOPED_TRACE(seed_note(seed));
    std::printf("[ seed ] BuddyAllocator.RandomOpsAgreeWithBruteForce seed %llu\n",
                static_cast<unsigned long long>(seed));
    std::mt19937_64 rng(seed);
    const std::uint64_t sizes[] = {1, 13, 64, 100, 257, 1000, 2600};
    const std::uint64_t n = sizes[rng() % std::size(sizes)];
    BuddyAllocator b(n);
    BruteForceBuddy model(n);
    std::vector<std::pair<std::uint64_t, unsigned>> live_blocks;
    std::vector<std::vector<std::uint64_t>> live_page_sets;
    for (int op = 0; op < 2000; ++op) {
      const unsigned kind = static_cast<unsigned>(rng() % 10);
      if (kind < 4) {
        // Small orders mostly, sometimes up to 11 (refused).
        const unsigned order = rng() % 8 == 0 ? static_cast<unsigned>(rng() % 12) : static_cast<unsigned>(rng() % 4);
        const FailureKind predicted = b.block_failure(order);
        const std::uint64_t free_before = b.free_page_count();
        const int frag = order <= kMaxOrder ? b.fragmentation_index_milli(order) : 0;
        const auto got = b.allocate(order);
        const auto want = order <= kMaxOrder ? model.allocate(order) : std::nullopt;
        ASSERT_EQ(got, want) << "op " << op << " allocate(" << order << ")";
        // The failure classification and the kernel's "would succeed" value agree with the outcome.
        if (order > kMaxOrder) {
          EXPECT_EQ(predicted, FailureKind::kInvalidArgument);
        } else if (got) {
          EXPECT_EQ(predicted, FailureKind::kNone) << "op " << op;
          EXPECT_EQ(frag, -1000) << "op " << op;
        } else {
          EXPECT_EQ(predicted, free_before < (std::uint64_t{1} << order) ? FailureKind::kNoPhysicalMemory
                                                                         : FailureKind::kPhysicalFragmentation)
              << "op " << op;
          EXPECT_NE(frag, -1000) << "op " << op;
        }
        if (got) live_blocks.emplace_back(*got, order);
      } else if (kind < 7) {
        if (live_blocks.empty()) continue;
        const std::size_t i = rng() % live_blocks.size();
        const auto [pfn, order] = live_blocks[i];
        live_blocks.erase(live_blocks.begin() + static_cast<std::ptrdiff_t>(i));
        b.free(pfn, order);
        model.release(pfn, order);
      } else if (kind < 9) {
        const unsigned max_order = static_cast<unsigned>(rng() % 5);
        const unsigned min_order = rng() % 2 == 0 ? 0 : static_cast<unsigned>(rng() % (max_order + 1));
        const std::uint64_t count = (1 + rng() % 40) << min_order;
        std::vector<std::uint64_t> got;
        const bool ok = b.allocate_pages(count, got, max_order, min_order);
        // The model runs the documented rule on its own allocate().
        std::vector<std::pair<std::uint64_t, unsigned>> taken;
        bool model_ok = count <= model.free_count();
        for (std::uint64_t r = count; model_ok && r > 0;) {
          unsigned o = std::min<unsigned>(max_order, 63 - static_cast<unsigned>(__builtin_clzll(r)));
          std::optional<std::uint64_t> p = model.allocate(o);
          while (!p && o > min_order) p = model.allocate(--o);
          if (!p) {
            model_ok = false;
            break;
          }
          taken.emplace_back(*p, o);
          r -= std::uint64_t{1} << o;
        }
        std::vector<std::uint64_t> want;
        if (model_ok) {
          for (auto [p, o] : taken)
            for (std::uint64_t q = p; q < p + (std::uint64_t{1} << o); ++q) want.push_back(q);
        } else {
          for (auto [p, o] : taken) model.release(p, o);
        }
        ASSERT_EQ(ok, model_ok) << "op " << op << " allocate_pages(" << count << ", " << max_order << ", "
                                << min_order << ")";
        ASSERT_EQ(got, want) << "op " << op;
        if (ok && !got.empty()) live_page_sets.push_back(got);
      } else {
        if (live_page_sets.empty()) continue;
        const std::size_t i = rng() % live_page_sets.size();
        std::vector<std::uint64_t> pages = std::move(live_page_sets[i]);
        live_page_sets.erase(live_page_sets.begin() + static_cast<std::ptrdiff_t>(i));
        // Free part of the set page by page, keep the rest: pages of one bulk call are independent.
        const std::size_t keep = rng() % 3 == 0 ? pages.size() / 2 : 0;
        std::vector<std::uint64_t> freed(pages.begin() + static_cast<std::ptrdiff_t>(keep), pages.end());
        b.free_pages(freed);
        for (std::uint64_t p : freed) model.release(p, 0);
        if (keep != 0) live_page_sets.emplace_back(pages.begin(), pages.begin() + static_cast<std::ptrdiff_t>(keep));
      }
      ASSERT_EQ(b.validate(), "") << "op " << op;
      ASSERT_EQ(b.free_page_count(), model.free_count()) << "op " << op;
      Counts want{};
      for (const auto& [pfn, o] : model.blocks()) ++want[o];
      ASSERT_EQ(b.free_blocks_per_order(), want) << "op " << op;
    }
  }
}

}  // namespace
}  // namespace vmfrag
