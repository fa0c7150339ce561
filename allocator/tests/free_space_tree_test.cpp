// Tests for FreeSpaceTree (allocator/ds/free_space_tree.h), the free-extent index under the
// vmalloc-style allocator. Every allocation decision and every fragmentation statistic the harness
// reports comes from this structure, so it is tested on three levels:
//   - hand-built layouts for each coalescing case (none/left/right/both), each clip type
//     (whole/left edge/right edge/middle), alignment exactness (including a fit the kernel's
//     size+align-1 search would miss), sub-range clipping at both edges, uint64 edge cases, the
//     range statistics and the histogram;
//   - a randomised differential test against a brute-force std::map model, with validate() after
//     every operation (seeds are printed; VMFRAG_SEED=N replays one);
//   - validate() itself, by corrupting nodes through a test-only friend and expecting a report.
#include "allocator/ds/free_space_tree.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "allocator/core/splitmix64.h"

namespace vmfrag {

// Test-only access to FreeSpaceTree internals (declared a friend in the header).
class FreeSpaceTreeTestAccess {
 public:
  static detail::FreeExtentNode* node_at(FreeSpaceTree& t, uint64_t start) {
    detail::FreeExtentNode* n = t.by_address_.root();
    while (n != nullptr && n->start != start) n = start < n->start ? n->by_address.left : n->by_address.right;
    return n;
  }
  static detail::FreeExtentNode* address_root(FreeSpaceTree& t) { return t.by_address_.root(); }
  static void set_free_bytes(FreeSpaceTree& t, uint64_t v) { t.free_bytes_ = v; }
};

namespace {

constexpr uint64_t K = 1024;
constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

std::vector<Extent> extents_of(const FreeSpaceTree& t) {
  std::vector<Extent> out;
  t.for_each([&](const Extent& e) { out.push_back(e); });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Coalescing on insert.

TEST(FreeSpaceTree, EmptyTreeAnswersNothing) {
  FreeSpaceTree t;
  EXPECT_EQ(t.validate(), "");
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.free_bytes(), 0u);
  EXPECT_EQ(t.largest(), 0u);
  EXPECT_EQ(t.extent_count(), 0u);
  EXPECT_EQ(t.find_lowest_fit(1, 1, 0, kMax), std::nullopt);
  EXPECT_EQ(t.extent_containing(0), std::nullopt);
  EXPECT_EQ(t.first_extent_at_or_after(0), std::nullopt);
  EXPECT_EQ(t.last_extent_at_or_before(kMax), std::nullopt);
  EXPECT_EQ(t.free_bytes_in(0, kMax), 0u);
  EXPECT_EQ(t.bytes_in_extents_smaller_than(kMax), 0u);
  EXPECT_TRUE(extents_of(t).empty());
}

TEST(FreeSpaceTree, InsertWithoutNeighboursAddsSeparateExtents) {
  FreeSpaceTree t;
  t.insert(40 * K, 8 * K);
  t.insert(8 * K, 4 * K);
  t.insert(20 * K, 4 * K);  // gaps on both sides: [12K,20K) and [24K,40K)
  EXPECT_EQ(t.validate(), "");
  EXPECT_EQ(extents_of(t), (std::vector<Extent>{{8 * K, 4 * K}, {20 * K, 4 * K}, {40 * K, 8 * K}}));
  EXPECT_EQ(t.extent_count(), 3u);
  EXPECT_EQ(t.free_bytes(), 16 * K);
  EXPECT_EQ(t.largest(), 8 * K);
}

TEST(FreeSpaceTree, InsertMergesWithLeftNeighbour) {
  FreeSpaceTree t;
  t.insert(8 * K, 4 * K);
  t.insert(40 * K, 4 * K);
  t.insert(12 * K, 8 * K);  // touches [8K,12K) only
  EXPECT_EQ(t.validate(), "");
  EXPECT_EQ(extents_of(t), (std::vector<Extent>{{8 * K, 12 * K}, {40 * K, 4 * K}}));
  EXPECT_EQ(t.largest(), 12 * K);
}

TEST(FreeSpaceTree, InsertMergesWithRightNeighbour) {
  FreeSpaceTree t;
  t.insert(0, 4 * K);
  t.insert(20 * K, 4 * K);
  t.insert(12 * K, 8 * K);  // touches [20K,24K) only: its start moves down
  EXPECT_EQ(t.validate(), "");
  EXPECT_EQ(extents_of(t), (std::vector<Extent>{{0, 4 * K}, {12 * K, 12 * K}}));
  EXPECT_EQ(t.extent_containing(12 * K), (Extent{12 * K, 12 * K}));
}

TEST(FreeSpaceTree, InsertMergesWithBothNeighbours) {
  FreeSpaceTree t;
  t.insert(0, 4 * K);
  t.insert(8 * K, 4 * K);
  t.insert(16 * K, 4 * K);
  t.insert(4 * K, 4 * K);  // closes [0,4K) + [4K,8K) + [8K,12K)
  EXPECT_EQ(t.validate(), "");
  EXPECT_EQ(extents_of(t), (std::vector<Extent>{{0, 12 * K}, {16 * K, 4 * K}}));
  t.insert(12 * K, 4 * K);
  EXPECT_EQ(t.validate(), "");
  EXPECT_EQ(extents_of(t), (std::vector<Extent>{{0, 20 * K}}));
  EXPECT_EQ(t.extent_count(), 1u);
  EXPECT_EQ(t.free_bytes(), 20 * K);
}

TEST(FreeSpaceTree, UnitsNeedNotBePageMultiples) {
  FreeSpaceTree t;
  t.insert(7, 3);
  t.insert(10, 5);  // merges: [7,15)
  t.insert(16, 1);
  EXPECT_EQ(t.validate(), "");
  EXPECT_EQ(extents_of(t), (std::vector<Extent>{{7, 8}, {16, 1}}));
  EXPECT_EQ(t.find_lowest_fit(3, 4, 0, kMax), 8u);
  EXPECT_EQ(t.find_lowest_fit(1, 16, 0, kMax), 16u);
}

// ---------------------------------------------------------------------------------------------
// The four clip types of remove.

TEST(FreeSpaceTree, RemoveWholeExtent) {
  FreeSpaceTree t;
  t.insert(0, 4 * K);
  t.insert(8 * K, 4 * K);
  t.insert(16 * K, 4 * K);
  t.remove(8 * K, 4 * K);
  EXPECT_EQ(t.validate(), "");
  EXPECT_EQ(extents_of(t), (std::vector<Extent>{{0, 4 * K}, {16 * K, 4 * K}}));
  // Freeing it again must merge nothing (its neighbours are still 4K away).
  t.insert(8 * K, 4 * K);
  EXPECT_EQ(t.extent_count(), 3u);
}

TEST(FreeSpaceTree, RemoveLeftEdge) {
  FreeSpaceTree t;
  t.insert(0, 4 * K);
  t.insert(8 * K, 16 * K);
  t.remove(8 * K, 4 * K);
  EXPECT_EQ(t.validate(), "");
  EXPECT_EQ(extents_of(t), (std::vector<Extent>{{0, 4 * K}, {12 * K, 12 * K}}));
  EXPECT_EQ(t.extent_containing(8 * K), std::nullopt);
  EXPECT_EQ(t.extent_containing(12 * K), (Extent{12 * K, 12 * K}));
}

TEST(FreeSpaceTree, RemoveRightEdge) {
  FreeSpaceTree t;
  t.insert(8 * K, 16 * K);
  t.insert(40 * K, 4 * K);
  t.remove(20 * K, 4 * K);
  EXPECT_EQ(t.validate(), "");
  EXPECT_EQ(extents_of(t), (std::vector<Extent>{{8 * K, 12 * K}, {40 * K, 4 * K}}));
  EXPECT_EQ(t.extent_containing(20 * K), std::nullopt);
}

TEST(FreeSpaceTree, RemoveMiddleSplitsExtent) {
  FreeSpaceTree t;
  t.insert(8 * K, 16 * K);
  t.remove(12 * K, 4 * K);
  EXPECT_EQ(t.validate(), "");
  EXPECT_EQ(extents_of(t), (std::vector<Extent>{{8 * K, 4 * K}, {16 * K, 8 * K}}));
  EXPECT_EQ(t.extent_count(), 2u);
  EXPECT_EQ(t.free_bytes(), 12 * K);
  EXPECT_EQ(t.largest(), 8 * K);
  // Giving the middle back restores the single extent.
  t.insert(12 * K, 4 * K);
  EXPECT_EQ(extents_of(t), (std::vector<Extent>{{8 * K, 16 * K}}));
  EXPECT_EQ(t.validate(), "");
}

TEST(FreeSpaceTree, RemoveOutsideAFreeExtentIsACallerBug) {
  FreeSpaceTree t;
  t.insert(8 * K, 8 * K);
  t.insert(20 * K, 4 * K);
  EXPECT_DEATH(t.remove(4 * K, 8 * K), "not inside one free extent");
  EXPECT_DEATH(t.remove(12 * K, 12 * K), "not inside one free extent");  // spans the gap
  EXPECT_DEATH(t.remove(16 * K, 4 * K), "not inside one free extent");   // entirely in the gap
  EXPECT_DEATH(t.remove(8 * K, 0), "empty range");
}

TEST(FreeSpaceTree, OverlappingInsertIsACallerBug) {
  FreeSpaceTree t;
  t.insert(8 * K, 8 * K);
  EXPECT_DEATH(t.insert(4 * K, 8 * K), "overlaps free extent");
  EXPECT_DEATH(t.insert(12 * K, 1), "overlaps free extent");
  EXPECT_DEATH(t.insert(15 * K, 4 * K), "overlaps free extent");
  EXPECT_DEATH(t.insert(kMax - 1, 2), "overflows");
}

// ---------------------------------------------------------------------------------------------
// find_lowest_fit exactness.

TEST(FreeSpaceTree, FindsFitTheKernelSizePlusAlignSearchMisses) {
  // The kernel looks for an extent of at least size + align - 1 = 16K - 1 when align > page size;
  // the only extent is 8K long, so it reports failure. [8K, 16K) is itself 8K-aligned.
  FreeSpaceTree t;
  t.insert(8 * K, 8 * K);
  ASSERT_LT(t.largest(), 8 * K + 8 * K - 1);
  EXPECT_EQ(t.find_lowest_fit(8 * K, 8 * K, 0, kMax), 8 * K);
}

TEST(FreeSpaceTree, SkipsExtentsThatAreLongEnoughButMisaligned) {
  FreeSpaceTree t;
  t.insert(4 * K, 8 * K);   // aligned candidate 8K, needs up to 16K: no
  t.insert(20 * K, 8 * K);  // aligned candidate 24K, needs up to 32K: no
  t.insert(36 * K, 4 * K);  // too small
  t.insert(48 * K, 8 * K);  // 48K is 8K-aligned: yes
  t.insert(64 * K, 64 * K);
  EXPECT_EQ(t.find_lowest_fit(8 * K, 8 * K, 0, kMax), 48 * K);
  EXPECT_EQ(t.find_lowest_fit(8 * K, 4 * K, 0, kMax), 4 * K);
  EXPECT_EQ(t.find_lowest_fit(8 * K, 32 * K, 0, kMax), 64 * K);
  EXPECT_EQ(t.find_lowest_fit(16 * K, 16 * K, 0, kMax), 64 * K);
  EXPECT_EQ(t.find_lowest_fit(4 * K, 16 * K, 0, kMax), 48 * K);
  EXPECT_EQ(t.find_lowest_fit(64 * K, 64 * K, 0, kMax), 64 * K);
  EXPECT_EQ(t.find_lowest_fit(64 * K + 1, 1, 0, kMax), std::nullopt);
  EXPECT_EQ(t.find_lowest_fit(64 * K, 128 * K, 0, kMax), std::nullopt);
}

TEST(FreeSpaceTree, ReturnsLowestAlignedAddressInsideTheFirstFittingExtent) {
  FreeSpaceTree t;
  t.insert(4 * K, 60 * K);  // [4K, 64K)
  EXPECT_EQ(t.find_lowest_fit(4 * K, 1, 0, kMax), 4 * K);
  EXPECT_EQ(t.find_lowest_fit(4 * K, 16 * K, 0, kMax), 16 * K);
  EXPECT_EQ(t.find_lowest_fit(32 * K, 32 * K, 0, kMax), 32 * K);
  EXPECT_EQ(t.find_lowest_fit(33 * K, 32 * K, 0, kMax), std::nullopt);
}

TEST(FreeSpaceTree, SubRangeClipsExtentsAtBothEdges) {
  FreeSpaceTree t;
  t.insert(0, 16 * K);
  t.insert(32 * K, 32 * K);  // [32K, 64K)
  t.insert(96 * K, 8 * K);

  // lo inside an extent: the fit starts at (aligned) lo, not at the extent's start.
  EXPECT_EQ(t.find_lowest_fit(4 * K, 1, 6 * K, kMax), 6 * K);
  EXPECT_EQ(t.find_lowest_fit(4 * K, 4 * K, 6 * K, kMax), 8 * K);
  // lo clips the first extent too short: the next extent answers.
  EXPECT_EQ(t.find_lowest_fit(8 * K, 1, 10 * K, kMax), 32 * K);
  // lo exactly at an extent's start and exactly at an extent's end.
  EXPECT_EQ(t.find_lowest_fit(4 * K, 1, 32 * K, kMax), 32 * K);
  EXPECT_EQ(t.find_lowest_fit(4 * K, 1, 16 * K, kMax), 32 * K);
  // hi inside an extent clips its usable end.
  EXPECT_EQ(t.find_lowest_fit(8 * K, 1, 20 * K, 40 * K), 32 * K);
  EXPECT_EQ(t.find_lowest_fit(8 * K, 1, 20 * K, 39 * K), std::nullopt);
  EXPECT_EQ(t.find_lowest_fit(8 * K, 16 * K, 20 * K, 56 * K), 32 * K);
  EXPECT_EQ(t.find_lowest_fit(16 * K, 16 * K, 40 * K, 64 * K), 48 * K);
  EXPECT_EQ(t.find_lowest_fit(16 * K, 16 * K, 40 * K, 63 * K), std::nullopt);
  // hi exactly at an extent's end and at an extent's start.
  EXPECT_EQ(t.find_lowest_fit(8 * K, 1, 90 * K, 104 * K), 96 * K);
  EXPECT_EQ(t.find_lowest_fit(8 * K, 1, 90 * K, 96 * K), std::nullopt);
  // lo and hi both inside one extent.
  EXPECT_EQ(t.find_lowest_fit(4 * K, 4 * K, 37 * K, 45 * K), 40 * K);
  EXPECT_EQ(t.find_lowest_fit(4 * K, 16 * K, 37 * K, 45 * K), std::nullopt);
  // Empty and too-small ranges.
  EXPECT_EQ(t.find_lowest_fit(1, 1, 40 * K, 40 * K), std::nullopt);
  EXPECT_EQ(t.find_lowest_fit(1, 1, 50 * K, 40 * K), std::nullopt);
  EXPECT_EQ(t.find_lowest_fit(8 * K, 1, 40 * K, 48 * K - 1), std::nullopt);
}

// With one-unit gaps the address pruning is at its tightest: the extent right after x starts at
// exactly x.end + 1, the one before ends at exactly x.start - 1. Consecutive extents are always
// ancestor and descendant in a BST, so over 64 of them both pruning directions get exercised at
// their boundary whatever shape the tree takes.
TEST(FreeSpaceTree, AddressPruningIsExactWithOneUnitGaps) {
  FreeSpaceTree t;
  for (uint64_t k = 0; k < 64; ++k) t.insert(5 * k, 4);  // [5k, 5k+4)
  for (uint64_t k = 0; k + 1 < 64; ++k) {
    // Extent k is clipped by lo; extent k+1 fits and ends exactly at hi.
    EXPECT_EQ(t.find_lowest_fit(4, 1, 5 * k + 1, 5 * k + 9), 5 * k + 5) << k;
    // Extent k fits starting exactly at lo; extent k+1 is clipped by hi.
    EXPECT_EQ(t.find_lowest_fit(4, 1, 5 * k, 5 * k + 8), 5 * k) << k;
    EXPECT_EQ(t.find_lowest_fit(4, 1, 5 * k + 1, 5 * k + 8), std::nullopt) << k;
  }
}

// Extents inserted in address order (the sequential fill every workload starts with) would make
// an unbalanced search tree a list; the AVL tree stays within its height bound, 1.44 log2(n + 2),
// and validate() confirms the balance at every node.
TEST(FreeSpaceTree, StaysBalancedUnderAscendingAndDescendingInserts) {
  FreeSpaceTree t;
  // 1,024 extents: the -Dchecks=full build validates the whole tree after every update.
  constexpr uint64_t kExtents = 1024;  // bound: 1.44 * log2(1026) = 14.4
  for (uint64_t k = 0; k < kExtents; ++k) t.insert(2 * k, 1);
  EXPECT_LE(FreeSpaceTreeTestAccess::address_root(t)->height, 14);
  for (uint64_t k = kExtents; k-- > 0;) t.insert(2 * kExtents + 2 * k, 1);
  EXPECT_LE(FreeSpaceTreeTestAccess::address_root(t)->height, 15);  // 2,048 extents: 1.44 * 11.0
  // Removing every other extent from the low end exercises erase's rebalancing.
  for (uint64_t k = 0; k < kExtents; k += 2) t.remove(2 * k, 1);
  EXPECT_EQ(t.extent_count(), kExtents + kExtents / 2);
  EXPECT_LE(FreeSpaceTreeTestAccess::address_root(t)->height, 15);
  EXPECT_EQ(t.validate(), "");
}

TEST(FreeSpaceTree, HandlesTheTopOfTheAddressSpace) {
  FreeSpaceTree t;
  const uint64_t top = kMax - 16 * K + 1;  // [top, 2^64 - 1): the largest representable end
  t.insert(top, 16 * K - 1);
  t.insert(0, 4 * K);
  EXPECT_EQ(t.validate(), "");
  EXPECT_EQ(t.find_lowest_fit(8 * K, 4 * K, 4 * K, kMax), top);  // 2^64 - 16K is 4K-aligned
  EXPECT_EQ(t.find_lowest_fit(8 * K, 4 * K, top + 1, kMax), top + 4 * K);
  EXPECT_EQ(t.find_lowest_fit(8 * K, uint64_t{1} << 63, 1, kMax), std::nullopt);  // align wraps
  EXPECT_EQ(t.find_lowest_fit(4 * K, uint64_t{1} << 63, 0, kMax), 0u);
  EXPECT_EQ(t.find_lowest_fit(16 * K - 1, 1, 0, kMax), top);
  EXPECT_EQ(t.find_lowest_fit(16 * K, 1, 0, kMax), std::nullopt);
  EXPECT_EQ(t.find_lowest_fit(kMax, 1, 0, kMax), std::nullopt);
  EXPECT_EQ(t.free_bytes_in(0, kMax), 20 * K - 1);
  EXPECT_EQ(t.free_bytes_in(top + 1, kMax), 16 * K - 2);
  t.remove(kMax - 1, 1);
  t.remove(top, 1);
  EXPECT_EQ(t.validate(), "");
  EXPECT_EQ(t.extent_containing(top + 1), (Extent{top + 1, 16 * K - 3}));
}

// ---------------------------------------------------------------------------------------------
// Point lookups, range statistics, histogram.

TEST(FreeSpaceTree, PointLookups) {
  FreeSpaceTree t;
  t.insert(8 * K, 4 * K);
  t.insert(20 * K, 8 * K);
  EXPECT_EQ(t.extent_containing(8 * K - 1), std::nullopt);
  EXPECT_EQ(t.extent_containing(8 * K), (Extent{8 * K, 4 * K}));
  EXPECT_EQ(t.extent_containing(12 * K - 1), (Extent{8 * K, 4 * K}));
  EXPECT_EQ(t.extent_containing(12 * K), std::nullopt);
  EXPECT_EQ(t.first_extent_at_or_after(9 * K), (Extent{20 * K, 8 * K}));
  EXPECT_EQ(t.first_extent_at_or_after(8 * K), (Extent{8 * K, 4 * K}));
  EXPECT_EQ(t.first_extent_at_or_after(20 * K + 1), std::nullopt);
  EXPECT_EQ(t.last_extent_at_or_before(19 * K), (Extent{8 * K, 4 * K}));
  EXPECT_EQ(t.last_extent_at_or_before(8 * K - 1), std::nullopt);
  EXPECT_EQ(t.last_extent_at_or_before(kMax), (Extent{20 * K, 8 * K}));
}

TEST(FreeSpaceTree, RangeStatisticsOnAFixedLayout) {
  FreeSpaceTree t;
  // Sizes 4K, 8K, 4K, 16K, 1K at increasing addresses.
  t.insert(0, 4 * K);
  t.insert(8 * K, 8 * K);
  t.insert(20 * K, 4 * K);
  t.insert(32 * K, 16 * K);
  t.insert(64 * K, 1 * K);
  EXPECT_EQ(t.free_bytes_in(0, 100 * K), 33 * K);
  EXPECT_EQ(t.free_bytes_in(2 * K, 10 * K), 2 * K + 2 * K);
  EXPECT_EQ(t.free_bytes_in(4 * K, 8 * K), 0u);
  EXPECT_EQ(t.free_bytes_in(40 * K, 41 * K), 1 * K);
  EXPECT_EQ(t.free_bytes_in(41 * K, 40 * K), 0u);
  EXPECT_EQ(t.bytes_in_extents_smaller_than(1 * K), 0u);
  EXPECT_EQ(t.bytes_in_extents_smaller_than(1 * K + 1), 1 * K);
  EXPECT_EQ(t.bytes_in_extents_smaller_than(4 * K), 1 * K);
  EXPECT_EQ(t.bytes_in_extents_smaller_than(4 * K + 1), 9 * K);
  EXPECT_EQ(t.bytes_in_extents_smaller_than(16 * K), 17 * K);
  EXPECT_EQ(t.bytes_in_extents_smaller_than(kMax), 33 * K);

  const auto& h = t.histogram();
  EXPECT_EQ(h[10], (FreeSpaceTree::Bucket{1, 1 * K}));
  EXPECT_EQ(h[12], (FreeSpaceTree::Bucket{2, 8 * K}));
  EXPECT_EQ(h[13], (FreeSpaceTree::Bucket{1, 8 * K}));
  EXPECT_EQ(h[14], (FreeSpaceTree::Bucket{1, 16 * K}));
  uint64_t other = 0;
  for (size_t i = 0; i < h.size(); ++i) {
    if (i != 10 && i != 12 && i != 13 && i != 14) other += h[i].extents + h[i].bytes;
  }
  EXPECT_EQ(other, 0u);
  // A merge moves bytes between buckets: [0,4K) + [4K,8K) + [8K,16K) = 16K.
  t.insert(4 * K, 4 * K);
  EXPECT_EQ(h[12], (FreeSpaceTree::Bucket{1, 4 * K}));
  EXPECT_EQ(h[13], (FreeSpaceTree::Bucket{0, 0}));
  EXPECT_EQ(h[14], (FreeSpaceTree::Bucket{2, 32 * K}));
  EXPECT_EQ(t.validate(), "");
}

TEST(FreeSpaceTree, ClearAndMoveLeaveUsableTrees) {
  FreeSpaceTree t;
  for (uint64_t i = 0; i < 3000; ++i) t.insert(i * 8 * K, 4 * K);  // spans several pool chunks
  EXPECT_EQ(t.extent_count(), 3000u);
  t.clear();
  EXPECT_EQ(t.validate(), "");
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.histogram()[12], (FreeSpaceTree::Bucket{0, 0}));
  t.insert(4 * K, 4 * K);
  EXPECT_EQ(extents_of(t), (std::vector<Extent>{{4 * K, 4 * K}}));

  FreeSpaceTree moved(std::move(t));
  EXPECT_EQ(moved.validate(), "");
  EXPECT_EQ(extents_of(moved), (std::vector<Extent>{{4 * K, 4 * K}}));
  EXPECT_TRUE(t.empty());  // NOLINT(bugprone-use-after-move): documented moved-from state
  EXPECT_EQ(t.validate(), "");
  t.insert(0, 1);
  FreeSpaceTree assigned;
  assigned.insert(100, 1);
  assigned = std::move(moved);
  EXPECT_EQ(extents_of(assigned), (std::vector<Extent>{{4 * K, 4 * K}}));
  EXPECT_EQ(assigned.validate(), "");
}

// ---------------------------------------------------------------------------------------------
// validate() notices corruption.

TEST(FreeSpaceTree, ValidateReportsCorruption) {
  auto build = [](FreeSpaceTree& t) {
    for (uint64_t i = 0; i < 64; ++i) t.insert(i * 16 * K, (i % 5 + 1) * K);
    ASSERT_EQ(t.validate(), "");
  };
  {
    FreeSpaceTree t;
    build(t);
    FreeSpaceTreeTestAccess::node_at(t, 20 * 16 * K)->size += K;  // augmentations now stale
    EXPECT_NE(t.validate(), "");
  }
  {
    FreeSpaceTree t;
    build(t);
    FreeSpaceTreeTestAccess::node_at(t, 20 * 16 * K)->start = 19 * 16 * K + 5 * K;  // touches its predecessor
    const std::string message = t.validate();
    EXPECT_NE(message.find("overlap or touch"), std::string::npos) << message;
  }
  {
    FreeSpaceTree t;
    build(t);
    detail::FreeExtentNode* root = FreeSpaceTreeTestAccess::address_root(t);
    ++root->height;
    const std::string message = t.validate();
    EXPECT_NE(message.find("height of"), std::string::npos) << message;
  }
  {
    FreeSpaceTree t;
    build(t);
    // Cutting off a grandchild's subtree (64 extents: height 7, so that subtree is 4 or 5 high)
    // leaves its parent with children whose heights differ by more than one.
    detail::FreeExtentNode* child = FreeSpaceTreeTestAccess::address_root(t)->by_address.left;
    child->by_address.left = nullptr;
    const std::string message = t.validate();
    EXPECT_NE(message.find("unbalanced"), std::string::npos) << message;
  }
  {
    FreeSpaceTree t;
    build(t);
    // The size-class mask feeds bytes_in_extents_smaller_than: a node that forgets its own class.
    detail::FreeExtentNode* n = FreeSpaceTreeTestAccess::node_at(t, 3 * 16 * K);
    n->subtree_size_classes &= ~detail::size_class_bit(n->size);
    const std::string message = t.validate();
    EXPECT_NE(message.find("size classes"), std::string::npos) << message;
  }
  {
    FreeSpaceTree t;
    build(t);
    FreeSpaceTreeTestAccess::set_free_bytes(t, t.free_bytes() + 1);
    const std::string message = t.validate();
    EXPECT_NE(message.find("free_bytes"), std::string::npos) << message;
  }
}

// With -Dchecks=full (the asan flavour) every update walks the tree: a corruption is caught at the
// next insert or remove, with the operation named, not at some later lookup.
#ifdef VMF_CHECKS_FULL
TEST(FreeSpaceTreeDeathTest, FullChecksCatchCorruptionAtTheNextUpdate) {
  EXPECT_DEATH(
      {
        FreeSpaceTree t;
        for (uint64_t i = 0; i < 64; ++i) t.insert(i * 16 * K, (i % 5 + 1) * K);
        FreeSpaceTreeTestAccess::set_free_bytes(t, t.free_bytes() + 1);
        t.insert(5000 * K, 4 * K);
      },
      "after insert \\[5120000, \\+4096\\).*free_bytes");
}
#endif

// ---------------------------------------------------------------------------------------------
// Randomised differential test against a brute-force model.

struct TestRng {
  uint64_t state;
  uint64_t next() { return splitmix64_next(state); }
  uint64_t below(uint64_t n) { return n == 0 ? 0 : next() % n; }
  bool one_in(uint64_t n) { return below(n) == 0; }
};

// The free extents as a plain ordered map start -> size; every query is a linear scan.
class BruteForceFreeSpace {
 public:
  void insert(uint64_t start, uint64_t size) {
    auto next = extents_.lower_bound(start);
    if (next != extents_.end() && next->first == start + size) {
      size += next->second;
      next = extents_.erase(next);
    }
    if (next != extents_.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second == start) {
        prev->second += size;
        return;
      }
    }
    extents_.emplace(start, size);
  }

  void remove(uint64_t start, uint64_t size) {
    auto it = std::prev(extents_.upper_bound(start));
    const uint64_t e_start = it->first;
    const uint64_t e_end = it->first + it->second;
    extents_.erase(it);
    if (e_start < start) extents_.emplace(e_start, start - e_start);
    if (start + size < e_end) extents_.emplace(start + size, e_end - (start + size));
  }

  std::optional<uint64_t> find_lowest_fit(uint64_t size, uint64_t align, uint64_t lo, uint64_t hi) const {
    __extension__ using u128 = unsigned __int128;
    for (const auto& [start, sz] : extents_) {
      const u128 a = std::max<u128>(start, lo);
      const u128 b = std::min<u128>(u128{start} + sz, hi);
      const u128 s = (a + align - 1) / align * align;
      if (s + size <= b) return static_cast<uint64_t>(s);
    }
    return std::nullopt;
  }

  std::optional<Extent> extent_containing(uint64_t addr) const {
    for (const auto& [start, size] : extents_) {
      if (start <= addr && addr - start < size) return Extent{start, size};
    }
    return std::nullopt;
  }

  uint64_t free_bytes_in(uint64_t lo, uint64_t hi) const {
    uint64_t total = 0;
    for (const auto& [start, size] : extents_) {
      const uint64_t a = std::max(start, lo);
      const uint64_t b = std::min(start + size, hi);
      if (a < b) total += b - a;
    }
    return total;
  }

  uint64_t bytes_in_extents_smaller_than(uint64_t limit) const {
    uint64_t total = 0;
    for (const auto& [start, size] : extents_) total += size < limit ? size : 0;
    return total;
  }

  std::array<FreeSpaceTree::Bucket, 64> histogram() const {
    std::array<FreeSpaceTree::Bucket, 64> h{};
    for (const auto& [start, size] : extents_) {
      unsigned b = 0;
      while (b < 63 && (size >> (b + 1)) != 0) ++b;
      ++h[b].extents;
      h[b].bytes += size;
    }
    return h;
  }

  std::vector<Extent> extents() const {
    std::vector<Extent> out;
    for (const auto& [start, size] : extents_) out.push_back({start, size});
    return out;
  }

  const std::map<uint64_t, uint64_t>& map() const { return extents_; }
  void clear() { extents_.clear(); }

 private:
  std::map<uint64_t, uint64_t> extents_;
};

std::vector<uint64_t> seeds_to_run() {
  if (const char* env = std::getenv("VMFRAG_SEED")) return {std::strtoull(env, nullptr, 0)};
  std::vector<uint64_t> seeds;
  for (uint64_t s = 1; s <= 20; ++s) seeds.push_back(s);
  return seeds;
}

// One seed: a managed span [base, base + span) in units of `granule`, starting wholly free.
// Ops: allocate (find + remove) with random size/align/sub-range, free whole or partial blocks,
// carve arbitrary pieces out of free extents (all four clip types), point and range queries, and a
// rare clear. After every op: validate(), the extent list, and the O(1) statistics are compared.
void run_differential(uint64_t seed, int ops) {
  TestRng rng{seed * 0x2545f4914f6cdd1dULL + 7};
  const uint64_t granules[] = {1, 3, 512, 4096};
  const uint64_t granule = granules[rng.below(4)];
  const uint64_t span = 2048 * granule;
  const uint64_t base_choice = rng.below(3);
  const uint64_t base = base_choice == 0 ? 0 : base_choice == 1 ? (uint64_t{1} << 40) + 4096 : kMax - span;
  std::printf("seed=%" PRIu64 " granule=%" PRIu64 " base=%" PRIu64 "\n", seed, granule, base);

  FreeSpaceTree tree;
  BruteForceFreeSpace model;
  std::vector<Extent> allocated;
  tree.insert(base, span);
  model.insert(base, span);

  auto random_address = [&]() {  // anywhere in the span, with a margin on either side
    const uint64_t off = rng.below(span + 2 * granule);
    if (off < granule) return base >= granule - off ? base - (granule - off) : 0;
    return std::min(base + (off - granule), kMax);
  };
  auto random_size = [&]() {
    const uint64_t granule_count = rng.one_in(8) ? 1 + rng.below(512) : 1 + rng.below(16);
    return granule_count * granule + (rng.one_in(4) ? rng.below(granule) : 0);
  };

  for (int op = 0; op < ops; ++op) {
    SCOPED_TRACE(testing::Message() << "seed " << seed << " op " << op);
    const uint64_t kind = rng.below(100);
    if (kind < 40) {
      const uint64_t size = random_size();
      const uint64_t align = uint64_t{1} << (rng.one_in(10) ? rng.below(64) : rng.below(17));
      uint64_t lo = 0;
      uint64_t hi = kMax;
      if (rng.one_in(2)) {
        lo = random_address();
        hi = rng.one_in(8) ? lo : random_address();
        if (rng.one_in(6)) std::swap(lo, hi);  // sometimes reversed or empty on purpose
        if (lo > hi && rng.one_in(2)) std::swap(lo, hi);
      }
      const std::optional<uint64_t> got = tree.find_lowest_fit(size, align, lo, hi);
      const std::optional<uint64_t> want = model.find_lowest_fit(size, align, lo, hi);
      ASSERT_EQ(got, want) << "size=" << size << " align=" << align << " lo=" << lo << " hi=" << hi;
      if (got) {
        tree.remove(*got, size);
        model.remove(*got, size);
        allocated.push_back({*got, size});
      }
    } else if (kind < 70) {
      if (allocated.empty()) continue;
      const size_t i = rng.below(allocated.size());
      const Extent block = allocated[i];
      allocated[i] = allocated.back();
      allocated.pop_back();
      Extent freed = block;
      if (block.size > 1 && rng.one_in(3)) {  // free a piece; the rest stays allocated
        const uint64_t a = rng.below(block.size);
        const uint64_t b = a + 1 + rng.below(block.size - a);
        freed = {block.start + a, b - a};
        if (a > 0) allocated.push_back({block.start, a});
        if (b < block.size) allocated.push_back({block.start + b, block.size - b});
      }
      tree.insert(freed.start, freed.size);
      model.insert(freed.start, freed.size);
    } else if (kind < 80) {
      if (model.map().empty()) continue;
      auto it = model.map().begin();
      std::advance(it, rng.below(model.map().size()));
      const Extent e{it->first, it->second};
      Extent cut = e;
      switch (rng.below(4)) {
        case 0: break;  // whole
        case 1: cut.size = 1 + rng.below(e.size); break;  // left edge (or whole)
        case 2: {  // right edge (or whole)
          cut.size = 1 + rng.below(e.size);
          cut.start = e.end() - cut.size;
          break;
        }
        default: {  // anywhere, usually the middle
          const uint64_t a = rng.below(e.size);
          cut = {e.start + a, 1 + rng.below(e.size - a)};
          break;
        }
      }
      tree.remove(cut.start, cut.size);
      model.remove(cut.start, cut.size);
      allocated.push_back(cut);
    } else if (kind < 98) {
      const uint64_t addr = random_address();
      ASSERT_EQ(tree.extent_containing(addr), model.extent_containing(addr)) << "addr=" << addr;
      const uint64_t lo = random_address();
      const uint64_t hi = rng.one_in(10) ? kMax : random_address();
      ASSERT_EQ(tree.free_bytes_in(lo, hi), model.free_bytes_in(lo, hi)) << "lo=" << lo << " hi=" << hi;
      const uint64_t limit = rng.one_in(10) ? kMax : random_size();
      ASSERT_EQ(tree.bytes_in_extents_smaller_than(limit), model.bytes_in_extents_smaller_than(limit));
      auto after = model.map().lower_bound(addr);
      ASSERT_EQ(tree.first_extent_at_or_after(addr),
                after == model.map().end() ? std::nullopt : std::optional<Extent>(Extent{after->first, after->second}));
      auto upto = model.map().upper_bound(addr);
      ASSERT_EQ(tree.last_extent_at_or_before(addr),
                upto == model.map().begin() ? std::nullopt
                                            : std::optional<Extent>(Extent{std::prev(upto)->first, std::prev(upto)->second}));
      ASSERT_EQ(tree.histogram(), model.histogram());
    } else if (rng.one_in(10)) {
      tree.clear();
      model.clear();
      allocated.clear();
      tree.insert(base, span);
      model.insert(base, span);
    }

    const std::string problem = tree.validate();
    ASSERT_EQ(problem, "");
    ASSERT_EQ(extents_of(tree), model.extents());
    uint64_t total = 0;
    uint64_t largest = 0;
    for (const auto& [start, size] : model.map()) {
      total += size;
      largest = std::max(largest, size);
    }
    ASSERT_EQ(tree.free_bytes(), total);
    ASSERT_EQ(tree.largest(), largest);
    ASSERT_EQ(tree.extent_count(), model.map().size());
  }
}

TEST(FreeSpaceTree, RandomisedAgainstBruteForceModel) {
  for (uint64_t seed : seeds_to_run()) {
    run_differential(seed, 5000);
    if (HasFatalFailure()) return;
  }
}

// take_lowest_fit is find_lowest_fit then remove of its answer: two trees driven alike, one each
// way, through random requests (sizes, alignments, sub-ranges; some never fit) and frees, keep the
// same answers and the same extents. Covers all four cut shapes and the no-fit case.
TEST(FreeSpaceTree, TakeLowestFitIsFindThenRemove) {
  constexpr uint64_t kRegion = 1024 * K;
  FreeSpaceTree taken, found;
  taken.insert(0, kRegion);
  found.insert(0, kRegion);
  TestRng rng{20261201};
  std::vector<std::pair<uint64_t, uint64_t>> live;
  uint64_t fits = 0, misses = 0;
  for (int op = 0; op < 4000; ++op) {
    if (!live.empty() && rng.one_in(2)) {
      const size_t j = rng.below(live.size());
      taken.insert(live[j].first, live[j].second);
      found.insert(live[j].first, live[j].second);
      live[j] = live.back();
      live.pop_back();
    } else {
      const uint64_t size = (1 + rng.below(24)) * K;
      const uint64_t align = K << rng.below(4);
      const uint64_t lo = rng.one_in(4) ? rng.below(kRegion / K) * K : 0;
      const uint64_t hi = rng.one_in(4) ? lo + (1 + rng.below((kRegion - lo) / K)) * K : kRegion;
      const std::optional<uint64_t> t = taken.take_lowest_fit(size, align, lo, hi);
      const std::optional<uint64_t> f = found.find_lowest_fit(size, align, lo, hi);
      ASSERT_EQ(t, f) << "op " << op;
      if (f) {
        found.remove(*f, size);
        live.emplace_back(*f, size);
        ++fits;
      } else {
        ++misses;
      }
    }
    ASSERT_EQ(extents_of(taken), extents_of(found)) << "op " << op;
    ASSERT_EQ(taken.validate(), "") << "op " << op;
  }
  EXPECT_GT(fits, 500u);
  EXPECT_GT(misses, 10u);
}

}  // namespace
}  // namespace vmfrag
