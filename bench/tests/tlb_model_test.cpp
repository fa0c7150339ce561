// TlbModel: hit/miss counts on access streams small enough to work out by hand (each expected
// count is derived in the comment above it), LRU order, set conflicts, page sizes, and the Zen 3
// defaults. The model is what the TLB benchmarks report where no PMU exists, so its counts must be
// exact, not plausible.
#include "bench/tlb/tlb_model.h"

#include <gtest/gtest.h>

namespace vmfrag::bench {
namespace {

constexpr unsigned k4K = 12, k2M = 21, k1G = 30;
constexpr std::uint64_t page(std::uint64_t n) { return n << k4K; }

// L1: 2 entries, fully associative. L2: 4 entries in 2 sets of 2 ways (set = page number % 2).
TlbConfig tiny() { return TlbConfig{TlbLevelConfig{2, 2, 30}, TlbLevelConfig{4, 2, 21}}; }

TEST(TlbModel, RepeatedAccessToOnePageMissesOnce) {
  TlbModel tlb(tiny());
  for (int i = 0; i < 10; ++i) tlb.access(page(7) + 64 * i, k4K);
  EXPECT_EQ(tlb.counts().accesses, 10u);
  EXPECT_EQ(tlb.counts().l1_misses, 1u);
  EXPECT_EQ(tlb.counts().walks, 1u);
}

TEST(TlbModel, L2CatchesWhatL1Evicted) {
  TlbModel tlb(tiny());
  // 0: L1 miss, walk; L1 {0}, L2 set0 {0}
  // 1: L1 miss, walk; L1 {0,1}, L2 set1 {1}
  // 2: L1 miss, walk; L1 evicts LRU 0 -> {1,2}; L2 set0 {0,2}
  // 0: L1 miss, L2 hit; L1 evicts LRU 1 -> {2,0}
  // 2: L1 hit
  // 1: L1 miss, L2 hit (set1 {1}); L1 evicts 0 -> {2,1}
  for (std::uint64_t p : {0, 1, 2, 0, 2, 1}) tlb.access(page(p), k4K);
  EXPECT_EQ(tlb.counts().accesses, 6u);
  EXPECT_EQ(tlb.counts().l1_misses, 5u);
  EXPECT_EQ(tlb.counts().walks, 3u);
}

TEST(TlbModel, ThreePagesInOneTwoWaySetWalkEveryTimeUnderLru) {
  TlbConfig config = tiny();
  config.l1 = TlbLevelConfig{1, 1, 30};  // an L1 of one entry hides nothing
  TlbModel tlb(config);
  // Pages 0, 2, 4 all map to L2 set 0 (2 ways). Cycling through three with LRU evicts exactly the
  // page needed next, so every one of the 9 accesses walks.
  for (int round = 0; round < 3; ++round) {
    for (std::uint64_t p : {0, 2, 4}) tlb.access(page(p), k4K);
  }
  EXPECT_EQ(tlb.counts().l1_misses, 9u);
  EXPECT_EQ(tlb.counts().walks, 9u);
  // Two pages of the set fit: after the first round (2 walks) nothing more walks.
  TlbModel two(config);
  for (int round = 0; round < 3; ++round) {
    for (std::uint64_t p : {0, 2}) two.access(page(p), k4K);
  }
  EXPECT_EQ(two.counts().l1_misses, 6u);
  EXPECT_EQ(two.counts().walks, 2u);
}

TEST(TlbModel, OneHugePageCoversFiveHundredTwelveSmallOnes) {
  TlbModel tlb(tiny());
  for (std::uint64_t p = 0; p < 512; ++p) tlb.access(page(p), k2M);
  EXPECT_EQ(tlb.counts().l1_misses, 1u);
  EXPECT_EQ(tlb.counts().walks, 1u);
  // The same 512 pages as 4 KiB translations: every first touch of a new page misses both levels.
  TlbModel small(tiny());
  for (std::uint64_t p = 0; p < 512; ++p) small.access(page(p), k4K);
  EXPECT_EQ(small.counts().l1_misses, 512u);
  EXPECT_EQ(small.counts().walks, 512u);
}

TEST(TlbModel, PageSizesAreDistinctTranslations) {
  TlbModel tlb(tiny());
  tlb.access(0, k4K);  // miss
  tlb.access(0, k2M);  // a different translation of the same address: miss
  tlb.access(0, k4K);  // L1 still holds both (2 entries): hit
  EXPECT_EQ(tlb.counts().l1_misses, 2u);
}

TEST(TlbModel, A1GiBTranslationSkipsAnL2ThatCannotHoldIt) {
  TlbModel tlb(tiny());  // L2 max_page_shift 21
  // 1 GiB pages 0, 1, 2 cycle through the 2-entry L1; nothing is ever kept in L2, so the L1
  // evictions (from the third access on) all walk: 6 accesses, 6 L1 misses, 6 walks.
  for (int round = 0; round < 2; ++round) {
    for (std::uint64_t g : {0, 1, 2}) tlb.access(g << k1G, k1G);
  }
  EXPECT_EQ(tlb.counts().l1_misses, 6u);
  EXPECT_EQ(tlb.counts().walks, 6u);
}

TEST(TlbModel, ResetCountsKeepsTheTlbWarm) {
  TlbModel tlb(tiny());
  tlb.access(page(1), k4K);
  tlb.reset_counts();
  tlb.access(page(1), k4K);
  EXPECT_EQ(tlb.counts().accesses, 1u);
  EXPECT_EQ(tlb.counts().l1_misses, 0u);
}

TEST(TlbModel, Zen3CoversTwoThousandFortyEightPagesInL2) {
  TlbModel tlb(TlbConfig::zen3());
  // First pass over 2048 consecutive 4 KiB pages: 2048 walks. L2 has 128 sets x 16 ways and
  // consecutive page numbers spread evenly (16 per set), so all stay; L1 keeps the last 64. The
  // second pass misses L1 on every page (LRU over a cyclic stream larger than L1) and hits L2.
  for (int pass = 0; pass < 2; ++pass) {
    for (std::uint64_t p = 0; p < 2048; ++p) tlb.access(page(p), k4K);
  }
  EXPECT_EQ(tlb.counts().l1_misses, 4096u);
  EXPECT_EQ(tlb.counts().walks, 2048u);
  // 64 pages fit the fully associative L1: the second pass hits every time.
  TlbModel small(TlbConfig::zen3());
  for (int pass = 0; pass < 2; ++pass) {
    for (std::uint64_t p = 0; p < 64; ++p) small.access(page(p), k4K);
  }
  EXPECT_EQ(small.counts().l1_misses, 64u);
}

TEST(TlbModelDeathTest, InconsistentConfigAborts) {
  EXPECT_DEATH(TlbModel(TlbConfig{TlbLevelConfig{3, 2, 30}, TlbLevelConfig{4, 2, 21}}), "multiple of ways");
}

}  // namespace
}  // namespace vmfrag::bench
