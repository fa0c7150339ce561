// The suite-1 baseline must place exactly as vmfrag does, or its timings compare different work.
// Random streams of allocations (1-16 pages, some with 2^k-page alignment) and frees in a small
// region — so allocations also fail and purge-and-retry happens — are run through the baseline,
// vmfrag's VirtualSpace and the harness's ReferenceModel, eager and lazy: every placement and
// every failure must agree, and the baseline's tree must validate throughout. The flat hash map is
// checked against std::unordered_map with keys chosen to collide.
#include <gtest/gtest.h>

#include <random>
#include <unordered_map>
#include <vector>

#include "allocator/tests/test_seeds.h"
#include "allocator/vspace/virtual_space.h"
#include "bench/baseline/flat_offset_map.h"
#include "bench/baseline/lowest_fit_baseline.h"
#include "harness/reference/reference_model.h"

namespace vmfrag::bench {
namespace {

constexpr std::uint64_t kPage = 4096;

void run_same_stream(std::uint64_t seed, std::uint64_t lazy_pages) {
  SCOPED_TRACE(seed_note(seed) + " lazy " + std::to_string(lazy_pages));
  constexpr std::uint64_t kRegion = 4ull << 20;
  VirtualSpaceConfig vc;
  vc.region_bytes = kRegion;
  vc.guard_pages = 1;
  vc.lazy_threshold_pages = lazy_pages;
  auto created = VirtualSpace::create(vc);
  ASSERT_TRUE(created.space) << created.message;
  VirtualSpace& space = *created.space;
  LowestFitBaseline baseline(BaselineConfig{kRegion, 1, lazy_pages});
  reference::ReferenceModel model(reference::ModelConfig{kRegion, 1, lazy_pages});

  std::mt19937_64 rng(seed);
  std::vector<std::uint64_t> live;
  int failures = 0;
  for (int op = 0; op < 6000; ++op) {
    if (live.empty() || rng() % 100 < 55) {
      const std::uint64_t size = (1 + rng() % 16) * kPage - (rng() % 2) * 100;
      const std::uint64_t align = rng() % 8 == 0 ? kPage << (rng() % 5) : kPage;
      const Allocation a = space.vmalloc(size, align);
      const std::optional<std::uint64_t> b = baseline.alloc(size, align);
      const reference::Placement m = model.alloc(size, align);
      ASSERT_EQ(a.ok(), b.has_value()) << "op " << op;
      ASSERT_EQ(a.ok(), m.ok()) << "op " << op;
      if (a.ok()) {
        ASSERT_EQ(a.offset, *b) << "op " << op;
        ASSERT_EQ(a.offset, m.offset) << "op " << op;
        live.push_back(a.offset);
      } else {
        ++failures;
      }
    } else {
      const std::size_t i = rng() % live.size();
      ASSERT_EQ(space.vfree_offset(live[i]), FreeStatus::kOk);
      ASSERT_TRUE(baseline.free(live[i]));
      ASSERT_EQ(model.free(live[i]), reference::FreeStatus::kOk);
      live[i] = live.back();
      live.pop_back();
    }
    if (op % 500 == 0) {
      ASSERT_EQ(baseline.free_tree().validate(), "") << "op " << op;
    }
  }
  EXPECT_EQ(baseline.live_areas(), live.size());
  EXPECT_GT(failures, 0) << "the region should be small enough to fail sometimes";
  EXPECT_FALSE(baseline.free(123 * kPage + 1)) << "not the start of a live area";
}

TEST(LowestFitBaseline, PlacesExactlyAsVirtualSpaceAndTheReferenceModelEager) {
  for (std::uint64_t seed : seeds_to_run(1, 4)) run_same_stream(seed, 0);
}

TEST(LowestFitBaseline, PlacesExactlyAsVirtualSpaceAndTheReferenceModelLazy) {
  for (std::uint64_t seed : seeds_to_run(11, 4)) run_same_stream(seed, 64);
}

TEST(LowestFitBaseline, FreeCoalescesBackToOneExtent) {
  LowestFitBaseline baseline(BaselineConfig{1 << 20, 1, 0});
  std::vector<std::uint64_t> offsets;
  for (int i = 0; i < 20; ++i) offsets.push_back(*baseline.alloc(kPage * (1 + i % 3)));
  for (std::size_t i = 0; i < offsets.size(); i += 2) ASSERT_TRUE(baseline.free(offsets[i]));
  for (std::size_t i = 1; i < offsets.size(); i += 2) ASSERT_TRUE(baseline.free(offsets[i]));
  const std::vector<FreeExtent> extents = baseline.free_tree().extents();
  ASSERT_EQ(extents.size(), 1u);
  EXPECT_EQ(extents[0].start, 0u);
  EXPECT_EQ(extents[0].size, 1u << 20);
}

TEST(FlatOffsetMap, MatchesUnorderedMapUnderCollidingChurn) {
  for (std::uint64_t seed : seeds_to_run(21, 3)) {
    SCOPED_TRACE(seed_note(seed));
    std::mt19937_64 rng(seed);
    FlatOffsetMap map;
    std::unordered_map<std::uint64_t, std::uint64_t> want;
    for (int op = 0; op < 50000; ++op) {
      const std::uint64_t key = (rng() % 4096) * kPage;  // few keys: long probe runs, many shifts
      if (rng() % 2 == 0 && !want.contains(key)) {
        map.insert(key, op);
        want[key] = static_cast<std::uint64_t>(op);
      } else {
        const std::optional<std::uint64_t> got = map.take(key);
        const auto it = want.find(key);
        ASSERT_EQ(got.has_value(), it != want.end()) << "op " << op;
        if (got) {
          ASSERT_EQ(*got, it->second);
          want.erase(it);
        }
      }
      ASSERT_EQ(map.size(), want.size());
    }
  }
}

}  // namespace
}  // namespace vmfrag::bench
