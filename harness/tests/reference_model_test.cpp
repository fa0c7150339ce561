// Covers ReferenceModel (harness/reference/reference_model.h), the oracle the real allocator is
// checked against: placements and failure kinds computed by hand for each rule of the contract
// (first fit by address, exact alignment up to 2M, guard pages, lazy versus eager free,
// purge-and-retry, sub-ranges at the region edges, misuse statuses, invalid arguments), then
// seeded random op sequences checked against a brute-force search over every aligned offset and
// against validate(). An oracle that is wrong makes every differential check wrong, hence the
// second, independent, slower computation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "harness/reference/reference_model.h"

namespace vmfrag::reference {
namespace {

constexpr std::uint64_t K = 1024;
constexpr std::uint64_t M = 1024 * K;
constexpr std::uint64_t kPage = kPageSize;

// Fixed seeds keep CI deterministic; VMFRAG_SEED=N replays one failing seed alone.
std::vector<std::uint64_t> test_seeds() {
  if (const char* env = std::getenv("VMFRAG_SEED")) return {std::strtoull(env, nullptr, 10)};
  return {1, 2, 3, 42, 1234, 99991, 20240601, 7777777};
}

ReferenceModel make_model(std::uint64_t region, std::uint64_t guard, std::uint64_t lazy = 8192) {
  return ReferenceModel(ModelConfig{region, guard, lazy});
}

// Allocation expected to succeed; returns its offset.
std::uint64_t place(ReferenceModel& m, std::uint64_t size, std::uint64_t align = kPage) {
  const Placement p = m.alloc(size, align);
  EXPECT_TRUE(p.ok()) << "alloc(" << size << ", " << align << ") failed: " << failure_name(p.failure);
  EXPECT_EQ(m.validate(), "");
  return p.offset;
}

TEST(ReferenceModel, StartsAsOneFreeExtent) {
  const ReferenceModel m = make_model(64 * K, 1);
  EXPECT_EQ(m.free_extents(), (std::vector<Extent>{{0, 64 * K}}));
  const ModelStats s = m.stats();
  EXPECT_EQ(s.free_bytes, 64 * K);
  EXPECT_EQ(s.largest_free_bytes, 64 * K);
  EXPECT_EQ(s.free_extents, 1u);
  EXPECT_EQ(s.external_fragmentation, 0.0);
  EXPECT_EQ(m.validate(), "");
}

TEST(ReferenceModel, PlacesFirstFitByAddressWithGuardAtTheEnd) {
  ReferenceModel m = make_model(64 * K, 1);
  const Placement a = m.alloc(4 * K, kPage);
  EXPECT_EQ(a, (Placement{FailureKind::kNone, 0, 8 * K, false}));
  const Placement b = m.alloc(5000, kPage);  // rounds to 8K, plus 4K guard
  EXPECT_EQ(b, (Placement{FailureKind::kNone, 8 * K, 12 * K, false}));
  EXPECT_EQ(place(m, 1), 20 * K);
  EXPECT_EQ(m.free_extents(), (std::vector<Extent>{{28 * K, 36 * K}}));
  EXPECT_EQ(m.live_areas(), (std::vector<LiveArea>{{0, 8 * K, 4 * K, kPage},
                                                   {8 * K, 12 * K, 5000, kPage},
                                                   {20 * K, 8 * K, 1, kPage}}));
  const ModelStats s = m.stats();
  EXPECT_EQ(s.live_bytes, 4 * K + 8 * K + 4 * K);  // guards excluded
  EXPECT_EQ(s.live_areas, 3u);
  EXPECT_EQ(s.free_bytes, 36 * K);
}

TEST(ReferenceModel, GuardZeroAndOneChangeHowManyAreasFit) {
  ReferenceModel no_guard = make_model(32 * K, 0);
  for (std::uint64_t i = 0; i < 4; ++i) EXPECT_EQ(place(no_guard, 8 * K), i * 8 * K);
  EXPECT_EQ(no_guard.alloc(1).failure, FailureKind::kNoVirtualSpace);

  ReferenceModel one_guard = make_model(32 * K, 1);
  EXPECT_EQ(place(one_guard, 8 * K), 0u);
  EXPECT_EQ(place(one_guard, 8 * K), 12 * K);
  const Placement third = one_guard.alloc(8 * K);  // 8K free, 12K needed
  EXPECT_EQ(third.failure, FailureKind::kNoVirtualSpace);
  EXPECT_EQ(one_guard.free_extents(), (std::vector<Extent>{{24 * K, 8 * K}}));
}

TEST(ReferenceModel, CheckerboardHolesAreVirtualFragmentation) {
  ReferenceModel m = make_model(64 * K, 0, 0);
  for (std::uint64_t i = 0; i < 16; ++i) EXPECT_EQ(place(m, kPage), i * kPage);
  for (std::uint64_t i = 0; i < 16; i += 2) EXPECT_EQ(m.free(i * kPage), FreeStatus::kOk);
  const ModelStats s = m.stats();
  EXPECT_EQ(s.free_bytes, 32 * K);
  EXPECT_EQ(s.free_extents, 8u);
  EXPECT_EQ(s.largest_free_bytes, 4 * K);
  EXPECT_DOUBLE_EQ(s.external_fragmentation, 0.875);
  const Placement p = m.alloc(8 * K);
  EXPECT_EQ(p.failure, FailureKind::kVirtualFragmentation);  // 32K free >= 8K needed
  EXPECT_EQ(m.stats(), s);                                   // a failure changes nothing
  EXPECT_EQ(m.alloc(33 * K).failure, FailureKind::kNoVirtualSpace);
  EXPECT_EQ(place(m, kPage), 0u);  // single pages still fit, lowest first
}

TEST(ReferenceModel, ExhaustionIsNoVirtualSpace) {
  ReferenceModel m = make_model(16 * K, 1);
  EXPECT_EQ(place(m, 4 * K), 0u);
  EXPECT_EQ(place(m, 4 * K), 8 * K);
  EXPECT_EQ(m.stats().free_bytes, 0u);
  EXPECT_EQ(m.stats().external_fragmentation, 0.0);
  EXPECT_EQ(m.alloc(1).failure, FailureKind::kNoVirtualSpace);
  ReferenceModel big = make_model(16 * K, 0);
  EXPECT_EQ(big.alloc(16 * K + 1).failure, FailureKind::kNoVirtualSpace);
  EXPECT_EQ(place(big, 16 * K), 0u);
}

TEST(ReferenceModel, AlignsToEveryPowerOfTwoFrom8KTo2M) {
  ReferenceModel m = make_model(8 * M, 1);
  EXPECT_EQ(place(m, 4 * K), 0u);                 // [0, 8K)
  EXPECT_EQ(place(m, 4 * K, 8 * K), 8 * K);       // [8K, 16K): already aligned
  EXPECT_EQ(place(m, 4 * K, 16 * K), 16 * K);     // [16K, 24K)
  EXPECT_EQ(place(m, 4 * K, 64 * K), 64 * K);     // skips [24K, 64K)
  EXPECT_EQ(place(m, 4 * K, 8 * K), 24 * K);      // the skipped gap is used first
  EXPECT_EQ(place(m, 1 * M, 2 * M), 2 * M);       // [2M, 3M + 4K)
  EXPECT_EQ(place(m, 2 * M, 2 * M), 4 * M);       // [4M, 6M + 4K)
  // The only 2M-aligned offsets are 0, 2M, 4M, 6M and all are taken; 6M is inside the guard.
  const Placement p = m.alloc(4 * K, 2 * M);
  EXPECT_EQ(p.failure, FailureKind::kVirtualFragmentation);
  EXPECT_EQ(place(m, 4 * K, 1 * M), 1 * M);      // [1M, 1M + 8K): the first free 1M-aligned
  // 1M-aligned offsets 0..6M are all inside areas; 7M leaves exactly 1M before the region end,
  // one page short of 1M + guard, and exactly enough for 1M - 4K + guard.
  EXPECT_EQ(m.alloc(1 * M, 1 * M).failure, FailureKind::kVirtualFragmentation);
  EXPECT_EQ(place(m, 1 * M - 4 * K, 1 * M), 7 * M);
  EXPECT_EQ(m.validate(), "");
}

TEST(ReferenceModel, AlignmentIsExactWhereAConservativeCheckWouldMiss) {
  // Free extent [28K, 48K) is 20K: less than size + align - page (16K + 32K - 4K), the bound a
  // conservative allocator checks, but the aligned offset 32K fits exactly.
  ReferenceModel m = make_model(64 * K, 0, 0);
  EXPECT_EQ(place(m, 28 * K), 0u);
  EXPECT_EQ(place(m, 20 * K), 28 * K);
  EXPECT_EQ(place(m, 16 * K), 48 * K);
  EXPECT_EQ(m.free(28 * K), FreeStatus::kOk);
  EXPECT_EQ(m.free_extents(), (std::vector<Extent>{{28 * K, 20 * K}}));
  EXPECT_EQ(place(m, 16 * K, 32 * K), 32 * K);
  EXPECT_EQ(m.free_extents(), (std::vector<Extent>{{28 * K, 4 * K}}));
  // One byte more does not fit: 16K + 4K > 16K left after 32K.
  ReferenceModel n = make_model(64 * K, 0, 0);
  EXPECT_EQ(place(n, 28 * K), 0u);
  EXPECT_EQ(place(n, 20 * K), 28 * K);
  EXPECT_EQ(place(n, 16 * K), 48 * K);
  EXPECT_EQ(n.free(28 * K), FreeStatus::kOk);
  EXPECT_EQ(n.alloc(16 * K + 1, 32 * K).failure, FailureKind::kVirtualFragmentation);
}

TEST(ReferenceModel, EagerFreeReusesAtOnceLazyFreeWaitsForTheThreshold) {
  ReferenceModel eager = make_model(64 * K, 0, 0);
  EXPECT_EQ(place(eager, 4 * K), 0u);
  EXPECT_EQ(eager.free(0), FreeStatus::kOk);
  EXPECT_EQ(eager.lazy_pages(), 0u);
  EXPECT_EQ(eager.purges(), 1u);
  EXPECT_EQ(place(eager, 4 * K), 0u);

  ReferenceModel lazy = make_model(64 * K, 0, 2);
  EXPECT_EQ(place(lazy, 4 * K), 0u);
  EXPECT_EQ(place(lazy, 4 * K), 4 * K);
  EXPECT_EQ(lazy.free(0), FreeStatus::kOk);
  EXPECT_EQ(lazy.lazy_pages(), 1u);
  EXPECT_EQ(place(lazy, 4 * K), 8 * K);  // [0, 4K) is held, not reusable
  EXPECT_EQ(lazy.free(4 * K), FreeStatus::kOk);
  EXPECT_EQ(lazy.lazy_pages(), 2u);  // == threshold: no purge yet
  EXPECT_EQ(lazy.purges(), 0u);
  EXPECT_EQ(lazy.lazy_ranges(), (std::vector<Extent>{{0, 4 * K}, {4 * K, 4 * K}}));
  EXPECT_EQ(lazy.stats().lazy_bytes, 8 * K);
  EXPECT_EQ(lazy.free(8 * K), FreeStatus::kOk);  // 3 > 2: purge, everything coalesces
  EXPECT_EQ(lazy.purges(), 1u);
  EXPECT_EQ(lazy.lazy_pages(), 0u);
  EXPECT_EQ(lazy.free_extents(), (std::vector<Extent>{{0, 64 * K}}));
  EXPECT_EQ(lazy.validate(), "");
}

TEST(ReferenceModel, LazyFreeHoldsTheGuardToo) {
  ReferenceModel m = make_model(64 * K, 1, 8192);
  EXPECT_EQ(place(m, 8 * K), 0u);
  EXPECT_EQ(m.free(0), FreeStatus::kOk);
  EXPECT_EQ(m.lazy_pages(), 3u);
  EXPECT_EQ(m.lazy_ranges(), (std::vector<Extent>{{0, 12 * K}}));
}

TEST(ReferenceModel, PurgeAndRetryTurnsAFailureIntoASuccess) {
  ReferenceModel m = make_model(16 * K, 0, 100);
  EXPECT_EQ(place(m, 16 * K), 0u);
  EXPECT_EQ(m.free(0), FreeStatus::kOk);
  EXPECT_EQ(m.stats().free_bytes, 0u);
  const Placement p = m.alloc(8 * K);
  EXPECT_EQ(p, (Placement{FailureKind::kNone, 0, 8 * K, true}));
  EXPECT_EQ(m.purges(), 1u);
  EXPECT_EQ(m.lazy_pages(), 0u);
  EXPECT_EQ(m.free_extents(), (std::vector<Extent>{{8 * K, 8 * K}}));
}

TEST(ReferenceModel, PurgeAndRetryThatStillFailsKeepsThePurge) {
  ReferenceModel m = make_model(16 * K, 0, 100);
  EXPECT_EQ(place(m, 8 * K), 0u);
  EXPECT_EQ(place(m, 4 * K), 8 * K);
  EXPECT_EQ(place(m, 4 * K), 12 * K);
  EXPECT_EQ(m.free(8 * K), FreeStatus::kOk);
  const Placement p = m.alloc(8 * K);
  EXPECT_EQ(p.failure, FailureKind::kNoVirtualSpace);  // 4K free after the purge
  EXPECT_TRUE(p.purged);
  EXPECT_EQ(m.lazy_pages(), 0u);
  EXPECT_EQ(m.free_extents(), (std::vector<Extent>{{8 * K, 4 * K}}));
  // Nothing lazily held: a failure does not purge (the count stays).
  EXPECT_FALSE(m.alloc(8 * K).purged);
  EXPECT_EQ(m.purges(), 1u);
}

TEST(ReferenceModel, SubRangesAtTheRegionEdges) {
  ReferenceModel m = make_model(64 * K, 1);
  EXPECT_EQ(m.alloc_in_range(4 * K, kPage, 56 * K, 64 * K).offset, 56 * K);  // ends at region end
  EXPECT_EQ(m.alloc_in_range(4 * K, kPage, 0, 8 * K).offset, 0u);          // starts at region start
  EXPECT_EQ(m.alloc_in_range(4 * K, kPage, 0, 8 * K).failure, FailureKind::kNoVirtualSpace);
  EXPECT_EQ(m.alloc_in_range(4 * K, kPage, 4 * K, 16 * K).offset, 8 * K);
  EXPECT_EQ(m.alloc_in_range(1, kPage, 60 * K, 64 * K).failure, FailureKind::kNoVirtualSpace);
  EXPECT_EQ(m.validate(), "");
  EXPECT_EQ(m.free_extents(), (std::vector<Extent>{{16 * K, 40 * K}}));
  for (auto [lo, hi] : std::vector<std::pair<std::uint64_t, std::uint64_t>>{
           {0, 0}, {8 * K, 8 * K}, {16 * K, 8 * K}, {0, 68 * K}, {2048, 8 * K}, {0, 8 * K + 1}, {64 * K, 68 * K}})
    EXPECT_EQ(m.alloc_in_range(4 * K, kPage, lo, hi).failure, FailureKind::kInvalidArgument) << lo << " " << hi;
}

TEST(ReferenceModel, SubRangeFailureKindCountsOnlyFreeBytesInsideTheRange) {
  ReferenceModel m = make_model(64 * K, 0, 0);
  for (std::uint64_t i = 0; i < 16; ++i) EXPECT_EQ(place(m, kPage), i * kPage);
  EXPECT_EQ(m.free(1 * kPage), FreeStatus::kOk);
  EXPECT_EQ(m.free(3 * kPage), FreeStatus::kOk);
  // [0, 16K) holds 8K free in two pieces.
  EXPECT_EQ(m.alloc_in_range(8 * K, kPage, 0, 16 * K).failure, FailureKind::kVirtualFragmentation);
  EXPECT_EQ(m.alloc_in_range(8 * K, kPage, 4 * K, 8 * K).failure, FailureKind::kNoVirtualSpace);
  EXPECT_EQ(m.free(2 * kPage), FreeStatus::kOk);  // extent [4K, 16K)
  // Clipped to [8K, 12K) only 4K of that 12K extent counts.
  EXPECT_EQ(m.alloc_in_range(8 * K, kPage, 8 * K, 12 * K).failure, FailureKind::kNoVirtualSpace);
  EXPECT_EQ(m.alloc_in_range(4 * K, kPage, 8 * K, 12 * K).offset, 8 * K);
  EXPECT_EQ(m.alloc_in_range(4 * K, 8 * K, 0, 64 * K).failure, FailureKind::kVirtualFragmentation);
  EXPECT_EQ(m.alloc_in_range(4 * K, kPage, 0, 64 * K).offset, 4 * K);
}

TEST(ReferenceModel, MisuseReportsAStatusAndChangesNothing) {
  ReferenceModel m = make_model(64 * K, 1, 100);
  EXPECT_EQ(m.free(0), FreeStatus::kNotAllocated);
  EXPECT_EQ(place(m, 8 * K), 0u);  // [0, 12K), guard [8K, 12K)
  const auto snapshot = [&] { return std::make_tuple(m.free_extents(), m.lazy_ranges(), m.live_areas(), m.stats()); };
  const auto before = snapshot();
  EXPECT_EQ(m.free(4 * K), FreeStatus::kInterior);
  EXPECT_EQ(m.free(8 * K), FreeStatus::kInterior);  // the guard
  EXPECT_EQ(m.free(12 * K), FreeStatus::kNotAllocated);
  EXPECT_EQ(m.free(64 * K), FreeStatus::kNotAllocated);
  EXPECT_EQ(m.free(UINT64_MAX), FreeStatus::kNotAllocated);
  EXPECT_EQ(snapshot(), before);
  EXPECT_EQ(m.free(0), FreeStatus::kOk);
  const auto after_free = snapshot();
  EXPECT_EQ(m.free(0), FreeStatus::kAlreadyFreed);
  EXPECT_EQ(m.free(4 * K), FreeStatus::kNotAllocated);  // inside a lazily held area
  EXPECT_EQ(snapshot(), after_free);
  m.purge();
  EXPECT_EQ(m.free(0), FreeStatus::kNotAllocated);
  EXPECT_EQ(free_status_name(FreeStatus::kOk), "ok");
  EXPECT_EQ(free_status_name(FreeStatus::kNotAllocated), "not-allocated");
  EXPECT_EQ(free_status_name(FreeStatus::kInterior), "interior-of-live-area");
  EXPECT_EQ(free_status_name(FreeStatus::kAlreadyFreed), "already-freed-lazily");
}

TEST(ReferenceModel, InvalidArgumentsChangeNothingAndDoNotPurge) {
  ReferenceModel m = make_model(64 * K, 1, 100);
  EXPECT_EQ(place(m, 4 * K), 0u);
  EXPECT_EQ(m.free(0), FreeStatus::kOk);
  const std::vector<Extent> lazy = m.lazy_ranges();
  for (auto [size, align] : std::vector<std::pair<std::uint64_t, std::uint64_t>>{
           {0, kPage}, {4 * K, 0}, {4 * K, 2 * K}, {4 * K, 12 * K}, {4 * K, 3}, {4 * K, kPage + 1},
           {UINT64_MAX, kPage}, {UINT64_MAX - 4094, kPage}}) {
    const Placement p = m.alloc(size, align);
    EXPECT_EQ(p, (Placement{FailureKind::kInvalidArgument, 0, 0, false})) << size << " " << align;
  }
  EXPECT_EQ(m.lazy_ranges(), lazy);
  EXPECT_EQ(m.purges(), 0u);
  // round_up(size) + guard overflows by one page with guard 1, fits with guard 0.
  EXPECT_EQ(m.alloc(UINT64_MAX - 4095, kPage).failure, FailureKind::kInvalidArgument);
  ReferenceModel no_guard = make_model(64 * K, 0);
  EXPECT_EQ(no_guard.alloc(UINT64_MAX - 4095, kPage).failure, FailureKind::kNoVirtualSpace);
  EXPECT_EQ(no_guard.alloc(4 * K, std::uint64_t{1} << 63).failure, FailureKind::kNone);  // offset 0
  EXPECT_EQ(no_guard.alloc(4 * K, std::uint64_t{1} << 63).failure, FailureKind::kVirtualFragmentation);
  ReferenceModel huge_guard = make_model(64 * K, std::uint64_t{1} << 52);
  EXPECT_EQ(huge_guard.alloc(1).failure, FailureKind::kInvalidArgument);
}

TEST(ReferenceModel, WorksNearTheTopOfTheAddressSpace) {
  const std::uint64_t region = UINT64_MAX - kPage + 1;  // largest page multiple
  ReferenceModel m = make_model(region, 1, 0);
  EXPECT_EQ(place(m, 4 * K, std::uint64_t{1} << 63), 0u);
  EXPECT_EQ(place(m, 4 * K, std::uint64_t{1} << 63), std::uint64_t{1} << 63);
  EXPECT_EQ(m.alloc_in_range(4 * K, kPage, region - 8 * K, region).offset, region - 8 * K);
  EXPECT_EQ(m.alloc(4 * K, std::uint64_t{1} << 63).failure, FailureKind::kVirtualFragmentation);
  EXPECT_EQ(m.validate(), "");
}

// ---------------------------------------------------------------------------------------------
// Random sequences against a brute-force oracle

// Brute force over every aligned offset in the range: the lowest s with [s, s + need) inside one
// free extent. Independent of find_fit (no per-extent reasoning), and slow, so regions are small.
std::optional<std::uint64_t> brute_force_fit(const std::vector<Extent>& free, std::uint64_t need,
                                             std::uint64_t align, std::uint64_t lo, std::uint64_t hi) {
  for (std::uint64_t s = (lo + align - 1) / align * align; s < hi && hi - s >= need; s += align)
    for (const Extent& e : free)
      if (e.start <= s && s + need <= e.start + e.size) return s;
  return std::nullopt;
}

std::uint64_t free_bytes_between(const std::vector<Extent>& free, std::uint64_t lo, std::uint64_t hi) {
  std::uint64_t total = 0;
  for (const Extent& e : free)
    for (std::uint64_t page = e.start; page < e.start + e.size; page += kPage)
      if (page >= lo && page < hi) total += kPage;
  return total;
}

TEST(ReferenceModel, RandomSequencesMatchBruteForceAndStayValid) {
  for (std::uint64_t seed : test_seeds()) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::printf("RandomSequencesMatchBruteForceAndStayValid seed %llu\n", static_cast<unsigned long long>(seed));
    std::mt19937_64 rng(seed);
    for (int round = 0; round < 6; ++round) {
      const std::uint64_t pages = 16 + rng() % 240;
      const ModelConfig config{pages * kPage, rng() % 3, rng() % 2 ? 0 : rng() % 64};
      ReferenceModel m(config);
      std::vector<std::uint64_t> live;
      std::uint64_t successes = 0, fragmentation_failures = 0;
      for (int step = 0; step < 1500; ++step) {
        const unsigned action = rng() % 20;
        if (action < 9) {
          std::uint64_t size = rng() % 4 == 0 ? 1 + rng() % (8 * kPage) : (1 + rng() % 6) * kPage;
          if (rng() % 50 == 0) size = 0;
          const std::uint64_t align = kPage << (rng() % 4 == 0 ? rng() % 6 : 0);
          std::uint64_t lo = 0, hi = config.region_bytes;
          if (rng() % 3 == 0) {
            lo = rng() % pages * kPage;
            hi = (lo / kPage + 1 + rng() % (pages - lo / kPage)) * kPage;
          }
          const std::vector<Extent> free_before = m.free_extents();
          const bool had_lazy = m.lazy_pages() > 0;
          const Placement p = m.alloc_in_range(size, align, lo, hi);
          const std::uint64_t need = size == 0 ? 0 : (size + kPage - 1) / kPage * kPage + config.guard_pages * kPage;
          if (size == 0) {
            ASSERT_EQ(p.failure, FailureKind::kInvalidArgument);
            continue;
          }
          std::optional<std::uint64_t> expected = brute_force_fit(free_before, need, align, lo, hi);
          ASSERT_EQ(p.purged, !expected && had_lazy);
          // After a purge the oracle must search the purged state, which is the current free
          // list plus whatever the successful placement took.
          if (!expected && had_lazy && p.ok()) {
            std::vector<Extent> purged_free = m.free_extents();
            purged_free.push_back({p.offset, p.span});
            expected = brute_force_fit(purged_free, need, align, lo, hi);
            ASSERT_TRUE(expected.has_value());
          }
          if (expected) {
            ASSERT_TRUE(p.ok()) << failure_name(p.failure);
            ASSERT_EQ(p.offset, *expected);
            ASSERT_EQ(p.span, need);
            live.push_back(p.offset);
            ++successes;
          } else {
            ASSERT_FALSE(p.ok()) << "placed at " << p.offset << " where brute force finds no fit";
            const std::uint64_t free_in_range = free_bytes_between(m.free_extents(), lo, hi);
            ASSERT_EQ(p.failure, free_in_range >= need ? FailureKind::kVirtualFragmentation
                                                       : FailureKind::kNoVirtualSpace);
            fragmentation_failures += p.failure == FailureKind::kVirtualFragmentation;
          }
        } else if (action < 17 && !live.empty()) {
          const std::size_t i = rng() % live.size();
          ASSERT_EQ(m.free(live[i]), FreeStatus::kOk);
          live[i] = live.back();
          live.pop_back();
        } else if (action == 17) {
          m.purge();
          ASSERT_EQ(m.lazy_pages(), 0u);
        } else {
          // Misuse at a random page: must be rejected unless it is a live area's start.
          const std::uint64_t offset = rng() % (pages + 4) * kPage + (rng() % 8 == 0 ? 1 : 0);
          const bool is_live = std::find(live.begin(), live.end(), offset) != live.end();
          const FreeStatus status = m.free(offset);
          ASSERT_EQ(status == FreeStatus::kOk, is_live);
          if (is_live) live.erase(std::find(live.begin(), live.end(), offset));
        }
        ASSERT_EQ(m.validate(), "") << "step " << step;
        const ModelStats s = m.stats();
        std::uint64_t spans = 0;
        for (const LiveArea& a : m.live_areas()) spans += a.span;
        ASSERT_EQ(s.free_bytes + s.lazy_bytes + spans, config.region_bytes);
        ASSERT_EQ(s.live_areas, live.size());
      }
      // The sequences must actually exercise both outcomes, or the comparison proves little.
      EXPECT_GT(successes, 100u);
      EXPECT_GT(fragmentation_failures, 0u) << "pages " << pages;
    }
  }
}

TEST(ReferenceModelDeathTest, RejectsARegionThatIsNotAPageMultiple) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH((void)ReferenceModel(ModelConfig{5000, 1, 0}), "not a non-zero page multiple");
  EXPECT_DEATH((void)ReferenceModel(ModelConfig{0, 1, 0}), "not a non-zero page multiple");
}

}  // namespace
}  // namespace vmfrag::reference
