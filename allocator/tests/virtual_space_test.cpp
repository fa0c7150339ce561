// VirtualSpace: placement and failure kinds on hand-computed cases (checkerboard holes, alignment
// 8 KiB..2 MiB including a fit the kernel's size+align-1 rule misses, guard 0 and 1, lazy vs eager,
// purge-and-retry, sub-ranges at the region's edges, 64 KiB and 16 TiB regions), misuse, a death
// test for touching an area in backing `none`, and a randomised run checking every placement
// against a brute-force model written here and check() after every op.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <mutex>
#include <thread>

#include "allocator/tests/test_seeds.h"
#include "allocator/vspace/virtual_space.h"

#if defined(__SANITIZE_THREAD__)
#define VMFRAG_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VMFRAG_UNDER_TSAN 1
#endif
#endif

namespace vmfrag {
namespace {

constexpr std::uint64_t K = 1024, M = K * K, P = 4096;

std::unique_ptr<VirtualSpace> make(std::uint64_t region, std::uint32_t guard = 1, std::uint64_t lazy = 0) {
  VirtualSpaceConfig c;
  c.region_bytes = region;
  c.guard_pages = guard;
  c.lazy_threshold_pages = lazy;
  auto r = VirtualSpace::create(c);
  EXPECT_NE(r.space, nullptr) << r.message;
  return std::move(r.space);
}

std::uint64_t at(const Allocation& a) {
  EXPECT_TRUE(a.ok()) << failure_name(a.failure);
  return a.offset;
}

// Created with its owner's lock (as Vmalloc does), the space's public calls take that lock, and
// the *_locked entry points give the same answers while the owner holds it.
TEST(VirtualSpace, SharedLockIsTakenByPublicCallsAndHeldForLockedOnes) {
  Mutex owner;
  VirtualSpaceConfig c;
  c.region_bytes = 1ull << 20;
  c.lazy_threshold_pages = 0;
  auto created = VirtualSpace::create(c, &owner);
  ASSERT_NE(created.space, nullptr) << created.message;
  VirtualSpace& vs = *created.space;
  EXPECT_EQ(&vs.lock(), &owner);
  const Allocation first = vs.vmalloc(3 * P);
  ASSERT_TRUE(first.ok());
  {
    std::unique_lock held(owner);
    const Allocation second = vs.vmalloc_locked(2 * P);
    ASSERT_TRUE(second.ok());
    EXPECT_EQ(second.offset, 4 * P);  // right after the first area and its guard page
    EXPECT_EQ(vs.stats_locked().live_areas, 2u);
    EXPECT_EQ(vs.vfree_offset_locked(second.offset), FreeStatus::kOk);
    EXPECT_EQ(vs.release_unused_locked(second.offset), FreeStatus::kNotAllocated);  // eager: free space again
    // While the owner holds the lock, a public call on another thread must wait for it.
    std::atomic<bool> finished{false};
    std::thread other([&] {
      (void)vs.stats();
      finished.store(true);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_FALSE(finished.load());
    held.unlock();
    other.join();
    EXPECT_TRUE(finished.load());
  }
  EXPECT_EQ(vs.vfree(first.addr), FreeStatus::kOk);
  EXPECT_EQ(vs.check(), "");
}

TEST(VirtualSpace, LowestFitWithGuard) {
  auto vs = make(1 * M);
  EXPECT_EQ(at(vs->vmalloc(1)), 0u);            // 1 page + guard
  EXPECT_EQ(at(vs->vmalloc(P)), 2 * P);
  EXPECT_EQ(at(vs->vmalloc(P + 1)), 4 * P);     // 2 pages + guard
  EXPECT_EQ(vs->stats().live_bytes, 4 * P);
  EXPECT_EQ(vs->stats().live_reserved_bytes, 7 * P);
  EXPECT_EQ(vs->check(), "");
}

TEST(VirtualSpace, GuardZero) {
  auto vs = make(64 * K, 0);
  for (std::uint64_t i = 0; i < 16; ++i) EXPECT_EQ(at(vs->vmalloc(P)), i * P);
  EXPECT_EQ(vs->vmalloc(P).failure, FailureKind::kNoVirtualSpace);
  EXPECT_EQ(vs->check(), "");
}

// Checkerboard: 16 one-page areas with guard 0, every other freed -> 8 free pages, no two adjacent.
TEST(VirtualSpace, CheckerboardIsFragmentation) {
  auto vs = make(64 * K, 0);
  std::vector<Allocation> a;
  for (int i = 0; i < 16; ++i) a.push_back(vs->vmalloc(P));
  for (int i = 0; i < 16; i += 2) EXPECT_EQ(vs->vfree(a[i].addr), FreeStatus::kOk);
  auto s = vs->stats();
  EXPECT_EQ(s.free_bytes, 8 * P);
  EXPECT_EQ(s.largest_free_bytes, P);
  EXPECT_EQ(s.free_extents, 8u);
  EXPECT_DOUBLE_EQ(s.external_fragmentation(), 1.0 - 1.0 / 8);
  EXPECT_EQ(vs->vmalloc(2 * P).failure, FailureKind::kVirtualFragmentation);
  EXPECT_EQ(vs->vmalloc(9 * P).failure, FailureKind::kNoVirtualSpace);
  EXPECT_DOUBLE_EQ(vs->unusable_free_index(2 * P), 1.0);
  EXPECT_DOUBLE_EQ(vs->unusable_free_index(P), 0.0);
  EXPECT_EQ(vs->check(), "");
  // A failed call leaves no trace.
  EXPECT_EQ(vs->stats().free_bytes, 8 * P);
  EXPECT_EQ(vs->free_histogram()[12].extents, 8u);  // 8 extents of 4 KiB = 2^12
}

TEST(VirtualSpace, AlignmentsFrom8KTo2M) {
  for (std::uint64_t align = 8 * K; align <= 2 * M; align *= 2) {
    auto vs = make(8 * M);
    EXPECT_EQ(at(vs->vmalloc(P)), 0u);                // [0, 8K) with guard
    EXPECT_EQ(at(vs->vmalloc(P, align)), align == 8 * K ? 8 * K : align) << align;
    EXPECT_EQ(vs->check(), "");
  }
}

// Free extent [8K, 16K) only; need 8 KiB (1 page + guard) at 8 KiB alignment. The kernel would
// search for 8K + 8K - 1 bytes, find no such extent and fail; the exact fit is offset 8K.
TEST(VirtualSpace, ExactAlignedFitWhereKernelRuleFails) {
  auto vs = make(64 * K, 0);
  auto a = vs->vmalloc(8 * K);   // [0, 8K)
  auto b = vs->vmalloc(8 * K);   // [8K, 16K)
  auto c = vs->vmalloc(48 * K);  // [16K, 64K)
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(vs->vfree(b.addr), FreeStatus::kOk);
  EXPECT_EQ(at(vs->vmalloc(8 * K, 8 * K)), 8 * K);
  // And 16 KiB alignment for the same extent genuinely fails, as fragmentation.
  EXPECT_EQ(vs->vfree_offset(8 * K), FreeStatus::kOk);
  EXPECT_EQ(vs->vmalloc(8 * K, 16 * K).failure, FailureKind::kVirtualFragmentation);
  EXPECT_EQ(vs->check(), "");
}

TEST(VirtualSpace, BaseIsAlignedForLargeAlignments) {
  auto vs = make(64 * M);
  EXPECT_GE(vs->base_alignment(), 2 * M);
  auto a = vs->vmalloc(P, 2 * M);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a.addr) % (2 * M), 0u);
}

TEST(VirtualSpace, LazyHoldsSpaceUntilThresholdExceeded) {
  auto vs = make(64 * K, 1, /*lazy=*/4);
  auto a = vs->vmalloc(P);      // [0, 8K)
  auto b = vs->vmalloc(P);      // [8K, 16K)
  auto c = vs->vmalloc(P);      // [16K, 24K)
  EXPECT_EQ(vs->vfree(a.addr), FreeStatus::kOk);  // 2 lazy pages <= 4: held
  EXPECT_EQ(vs->stats().lazy_bytes, 2 * P);
  EXPECT_EQ(at(vs->vmalloc(P)), 24 * K);          // the freed range is not reused yet
  EXPECT_EQ(vs->vfree(b.addr), FreeStatus::kOk);  // 4 pages: not more than 4, still held
  EXPECT_EQ(vs->stats().lazy_bytes, 4 * P);
  EXPECT_EQ(vs->vfree(c.addr), FreeStatus::kOk);  // 6 > 4: purge everything
  EXPECT_EQ(vs->stats().lazy_bytes, 0u);
  EXPECT_EQ(at(vs->vmalloc(5 * P)), 0u);          // [0, 24K) coalesced
  EXPECT_EQ(vs->check(), "");
}

TEST(VirtualSpace, EagerFreeReusesAtOnce) {
  auto vs = make(64 * K, 1, 0);
  auto a = vs->vmalloc(P);
  EXPECT_EQ(vs->vfree(a.addr), FreeStatus::kOk);
  EXPECT_EQ(vs->stats().lazy_bytes, 0u);
  EXPECT_EQ(at(vs->vmalloc(P)), 0u);
}

TEST(VirtualSpace, PurgeAndRetryTurnsFailureIntoSuccess) {
  auto vs = make(64 * K, 1, 1000);
  std::vector<Allocation> a;
  for (int i = 0; i < 8; ++i) a.push_back(vs->vmalloc(P));  // fills 64 KiB exactly
  EXPECT_EQ(vs->vmalloc(P).failure, FailureKind::kNoVirtualSpace);
  EXPECT_EQ(vs->vfree(a[3].addr), FreeStatus::kOk);
  EXPECT_EQ(vs->vfree(a[4].addr), FreeStatus::kOk);
  const auto purges = vs->stats().purges;
  EXPECT_EQ(at(vs->vmalloc(3 * P)), 24 * K);  // only after the purge do [24K,40K) coalesce
  EXPECT_EQ(vs->stats().purges, purges + 1);
  EXPECT_EQ(vs->check(), "");
}

TEST(VirtualSpace, FailureAfterPurgeIsClassified) {
  auto vs = make(64 * K, 1, 1000);
  std::vector<Allocation> a;
  for (int i = 0; i < 8; ++i) a.push_back(vs->vmalloc(P));
  EXPECT_EQ(vs->vfree(a[1].addr), FreeStatus::kOk);
  EXPECT_EQ(vs->vfree(a[5].addr), FreeStatus::kOk);
  EXPECT_EQ(vs->vmalloc(3 * P).failure, FailureKind::kVirtualFragmentation);  // 16K free, 8K pieces
  EXPECT_EQ(vs->stats().lazy_bytes, 0u);  // the retry purged
  EXPECT_EQ(vs->vmalloc(8 * P).failure, FailureKind::kNoVirtualSpace);
}

TEST(VirtualSpace, SubRangesAtTheEdges) {
  auto vs = make(1 * M);
  const std::uint64_t R = 1 * M;
  EXPECT_EQ(at(vs->vmalloc_range(P, P, R - 2 * P, R)), R - 2 * P);   // last two pages exactly
  EXPECT_EQ(vs->vmalloc_range(P, P, R - 2 * P, R).failure, FailureKind::kNoVirtualSpace);
  EXPECT_EQ(at(vs->vmalloc_range(P, P, 0, 2 * P)), 0u);              // first two pages
  EXPECT_EQ(at(vs->vmalloc_range(P, 4 * P, P, R)), 4 * P);           // aligned inside the range
  EXPECT_EQ(vs->vmalloc_range(P, P, 0, 0).failure, FailureKind::kInvalidArgument);
  EXPECT_EQ(vs->vmalloc_range(P, P, 1, 2 * P).failure, FailureKind::kInvalidArgument);
  EXPECT_EQ(vs->vmalloc_range(P, P, 0, R + P).failure, FailureKind::kInvalidArgument);
  // Fragmentation is judged inside the range: [2P,4P) and [6P, 8P) are free in [2P, 8P), 4 pages.
  EXPECT_EQ(vs->vmalloc_range(3 * P, P, 2 * P, 8 * P).failure, FailureKind::kVirtualFragmentation);
  EXPECT_EQ(vs->check(), "");
}

TEST(VirtualSpace, InvalidArguments) {
  auto vs = make(1 * M);
  EXPECT_EQ(vs->vmalloc(0).failure, FailureKind::kInvalidArgument);
  EXPECT_EQ(vs->vmalloc(P, 3 * P).failure, FailureKind::kInvalidArgument);
  EXPECT_EQ(vs->vmalloc(P, 2048).failure, FailureKind::kInvalidArgument);
  EXPECT_EQ(vs->vmalloc(~std::uint64_t{0}).failure, FailureKind::kInvalidArgument);
  EXPECT_EQ(vs->vmalloc(~std::uint64_t{0} - P - 100).failure, FailureKind::kInvalidArgument);  // guard overflows
  EXPECT_EQ(vs->vmalloc(~std::uint64_t{0} - 2 * P).failure, FailureKind::kNoVirtualSpace);     // just fits in 64 bits
  EXPECT_EQ(vs->vmalloc(2 * M).failure, FailureKind::kNoVirtualSpace);
  EXPECT_EQ(vs->stats().live_areas, 0u);
  EXPECT_EQ(vs->check(), "");
}

TEST(VirtualSpace, RegionSizeLimits) {
  VirtualSpaceConfig c;
  c.region_bytes = 60 * K;
  EXPECT_EQ(VirtualSpace::create(c).error, EINVAL);
  c.region_bytes = 64 * K + 1;
  EXPECT_EQ(VirtualSpace::create(c).error, EINVAL);
  c.region_bytes = (16ull << 40) + P;
  EXPECT_EQ(VirtualSpace::create(c).error, EINVAL);
}

TEST(VirtualSpace, SixtyFourKiBRegion) {
  auto vs = make(64 * K);
  EXPECT_EQ(at(vs->vmalloc(60 * K)), 0u);
  EXPECT_EQ(vs->stats().free_bytes, 0u);
  EXPECT_EQ(vs->vmalloc(1).failure, FailureKind::kNoVirtualSpace);
}

TEST(VirtualSpace, SixteenTiBRegion) {
  VirtualSpaceConfig c;
  c.region_bytes = 16ull << 40;
  c.lazy_threshold_pages = 0;
  auto r = VirtualSpace::create(c);
#ifdef VMFRAG_UNDER_TSAN
  // TSan's fixed shadow layout leaves no 16 TiB hole for applications; elsewhere it must work.
  if (r.space == nullptr) GTEST_SKIP() << "TSan's address layout refuses a 16 TiB reservation: " << r.message;
#endif
  ASSERT_NE(r.space, nullptr) << r.message;
  auto& vs = *r.space;
  EXPECT_EQ(vs.base_alignment(), 1ull << 30);
  EXPECT_EQ(at(vs.vmalloc(8ull << 40)), 0u);
  EXPECT_EQ(at(vs.vmalloc(P, 1ull << 40)), 9ull << 40);
  // Free: about 1 TiB below the 9 TiB area and 7 TiB above it; 7 TiB + 2 pages fits in neither.
  EXPECT_EQ(vs.vmalloc((7ull << 40) + P).failure, FailureKind::kVirtualFragmentation);
  EXPECT_EQ(vs.vmalloc(9ull << 40).failure, FailureKind::kNoVirtualSpace);
  EXPECT_EQ(vs.check(), "");
}

TEST(VirtualSpace, MisuseIsReportedAndChangesNothing) {
  auto vs = make(1 * M, 1, 100);
  auto a = vs->vmalloc(2 * P);  // [0, 12K): 2 pages + guard
  auto b = vs->vmalloc(P);
  const auto before = vs->address_map();
  char* base = static_cast<char*>(vs->base());
  EXPECT_EQ(vs->vfree(nullptr), FreeStatus::kNull);
  EXPECT_EQ(vs->vfree(base + P), FreeStatus::kInterior);
  EXPECT_EQ(vs->vfree(base + 2 * P), FreeStatus::kInGuard);
  EXPECT_EQ(vs->vfree(base + 100 * P), FreeStatus::kNotAllocated);
  EXPECT_EQ(vs->vfree(base - P), FreeStatus::kOutsideRegion);
  EXPECT_EQ(vs->vfree(base + 1 * M), FreeStatus::kOutsideRegion);
  EXPECT_EQ(vs->address_map().size(), before.size());
  EXPECT_EQ(vs->vfree(b.addr), FreeStatus::kOk);
  EXPECT_EQ(vs->vfree(b.addr), FreeStatus::kAlreadyFreed);
  EXPECT_EQ(vs->stats().misuse_count, 6u);
  const auto log = vs->misuse_log();
  ASSERT_EQ(log.size(), 6u);
  EXPECT_NE(log[0].find("interior"), std::string::npos) << log[0];
  EXPECT_NE(log[0].find("offset 0x1000"), std::string::npos) << log[0];
  EXPECT_EQ(vs->check(), "");
  (void)a;
}

// Misuse is classified without an ordered index of areas, by walking the areas laid end to end
// from the free extent below the address (or from offset 0). Every page of a region filled with
// areas of mixed sizes, some of them lazily held and some purged back to free space, must get the
// answer the address map gives: the start of a lazily-held area is a double free, a page inside a
// live area is interior or guard, anything else (free space, inside a lazily-held area) is not
// allocated.
TEST(VirtualSpace, MisuseClassificationMatchesTheAddressMapOnEveryPage) {
  for (const std::uint64_t seed : seeds_to_run(1, 4)) {
    SCOPED_TRACE(seed_note(seed));
    constexpr std::uint64_t kRegion = 256 * P;
    auto vs = make(kRegion, 1, 1000);
    std::mt19937_64 rng(seed);
    std::vector<std::uint64_t> live;
    for (;;) {
      const Allocation a = vs->vmalloc((1 + rng() % 4) * P);
      if (!a.ok()) break;
      live.push_back(a.offset);
    }
    // Lazily free every third area, purge, then lazily free every fifth of the rest: free extents,
    // lazily-held areas and long runs of live areas with no free extent below them all occur.
    for (std::size_t i = 0; i < live.size(); i += 3) ASSERT_EQ(vs->vfree_offset(live[i]), FreeStatus::kOk);
    vs->purge();
    for (std::size_t i = 1; i < live.size(); i += 5) {
      if (i % 3 == 0) continue;  // purged above
      ASSERT_EQ(vs->vfree_offset(live[i]), FreeStatus::kOk);
    }
    const std::vector<MapEntry> map = vs->address_map();
    std::size_t kinds_seen[8] = {};
    for (const MapEntry& e : map) {
      for (std::uint64_t offset = e.offset; offset < e.offset + e.bytes; offset += P) {
        if (e.state == MapEntry::State::kBusy && offset == e.offset) continue;  // that would free it
        FreeStatus expected = FreeStatus::kNotAllocated;
        if (e.state == MapEntry::State::kLazy && offset == e.offset) expected = FreeStatus::kAlreadyFreed;
        if (e.state == MapEntry::State::kBusy)
          expected = offset >= e.offset + e.bytes - P ? FreeStatus::kInGuard : FreeStatus::kInterior;
        ASSERT_EQ(vs->vfree_offset(offset), expected) << "offset 0x" << std::hex << offset;
        ++kinds_seen[static_cast<int>(expected)];
      }
    }
    for (const FreeStatus s : {FreeStatus::kNotAllocated, FreeStatus::kAlreadyFreed, FreeStatus::kInGuard,
                               FreeStatus::kInterior})
      EXPECT_GT(kinds_seen[static_cast<int>(s)], 0u) << free_status_name(s);
    EXPECT_EQ(vs->address_map().size(), map.size());
    EXPECT_EQ(vs->check(), "");
  }
}

TEST(VirtualSpaceDeathTest, StrictModeAbortsOnMisuse) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  VirtualSpaceConfig c;
  c.region_bytes = 1 * M;
  c.strict = true;
  auto vs = VirtualSpace::create(c).space;
  ASSERT_NE(vs, nullptr);
  auto a = vs->vmalloc(2 * P);
  EXPECT_DEATH((void)vs->vfree(static_cast<char*>(a.addr) + P), "strict mode: vfree: interior address");
}

TEST(VirtualSpaceDeathTest, TouchingAnAreaFaultsInBackingNone) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto vs = make(1 * M);
  auto a = vs->vmalloc(P);
  ASSERT_TRUE(a.ok());
  EXPECT_DEATH({ static_cast<volatile char*>(a.addr)[0] = 1; }, "");
}

TEST(VirtualSpace, ConcurrentCallsKeepInvariants) {
  auto vs = make(64 * M, 1, 64);
  auto worker = [&](unsigned seed) {
    std::mt19937_64 rng(seed);
    std::vector<void*> mine;
    for (int i = 0; i < 2000; ++i) {
      if (mine.empty() || rng() % 3 != 0) {
        auto a = vs->vmalloc((rng() % 16 + 1) * P, P << (rng() % 3));
        if (a.ok()) mine.push_back(a.addr);
      } else {
        const std::size_t k = rng() % mine.size();
        EXPECT_EQ(vs->vfree(mine[k]), FreeStatus::kOk);
        mine[k] = mine.back();
        mine.pop_back();
      }
    }
    for (void* p : mine) EXPECT_EQ(vs->vfree(p), FreeStatus::kOk);
  };
  std::thread t1(worker, 1), t2(worker, 2), t3(worker, 3);
  t1.join();
  t2.join();
  t3.join();
  vs->purge();
  EXPECT_EQ(vs->stats().free_bytes, 64 * M);
  EXPECT_EQ(vs->stats().free_extents, 1u);
  EXPECT_EQ(vs->check(), "");
}

// Brute-force model, written independently here: a bitmap of pages (0 free, 1 busy, 2 lazy).
class BruteForce {
 public:
  BruteForce(std::uint64_t pages, std::uint32_t guard, std::uint64_t lazy)
      : state_(pages, 0), guard_(guard), lazy_threshold_(lazy) {}

  std::pair<FailureKind, std::uint64_t> alloc(std::uint64_t size, std::uint64_t align) {
    const std::uint64_t need = (size + P - 1) / P + guard_, step = align / P;
    auto search = [&]() -> std::optional<std::uint64_t> {
      for (std::uint64_t s = 0; s + need <= state_.size(); s += step) {
        bool ok = true;
        for (std::uint64_t i = s; i < s + need && ok; ++i) ok = state_[i] == 0;
        if (ok) return s;
      }
      return std::nullopt;
    };
    auto fit = search();
    if (!fit && lazy_pages_ > 0) {
      purge();
      fit = search();
    }
    if (!fit) {
      const auto free = static_cast<std::uint64_t>(std::count(state_.begin(), state_.end(), 0));
      return {free >= need ? FailureKind::kVirtualFragmentation : FailureKind::kNoVirtualSpace, 0};
    }
    for (std::uint64_t i = *fit; i < *fit + need; ++i) state_[i] = 1;
    sizes_[*fit] = need;
    return {FailureKind::kNone, *fit * P};
  }
  void free(std::uint64_t offset) {
    const std::uint64_t s = offset / P, n = sizes_.at(s);
    sizes_.erase(s);
    for (std::uint64_t i = s; i < s + n; ++i) state_[i] = 2;
    lazy_pages_ += n;
    if (lazy_pages_ > lazy_threshold_) purge();
  }
  void purge() {
    for (auto& v : state_)
      if (v == 2) v = 0;
    lazy_pages_ = 0;
  }

 private:
  std::vector<std::uint8_t> state_;
  std::map<std::uint64_t, std::uint64_t> sizes_;
  std::uint32_t guard_;
  std::uint64_t lazy_threshold_, lazy_pages_ = 0;
};

// 1e5 random ops in all (20 seeds x 5000), mixed sizes, alignments and lazy thresholds: every
// placement and failure kind equals the brute force's, and check() holds after every op.
TEST(VirtualSpace, RandomOpsAgreeWithBruteForce) {
  for (std::uint64_t seed : seeds_to_run(1, 20)) {
    SCOPED_TRACE(seed_note(seed));
    std::mt19937_64 rng(seed);
    const std::uint64_t pages = 256;
    const std::uint32_t guard = static_cast<std::uint32_t>(rng() % 2);
    const std::uint64_t lazy_choices[] = {0, 4, 32, 1000};
    const std::uint64_t lazy = lazy_choices[rng() % 4];
    auto vs = make(pages * P, guard, lazy);
    BruteForce model(pages, guard, lazy);
    std::vector<std::uint64_t> live;
    for (int op = 0; op < 5000; ++op) {
      const auto r = rng() % 100;
      if (r < 55 || live.empty()) {
        const std::uint64_t size = (rng() % 4 == 0) ? (rng() % 24 + 1) * P : rng() % (4 * P) + 1;
        const std::uint64_t align = P << ((rng() % 4 == 0) ? rng() % 5 : 0);
        const auto a = vs->vmalloc(size, align);
        const auto [kind, offset] = model.alloc(size, align);
        ASSERT_EQ(failure_name(a.failure), failure_name(kind)) << "op " << op;
        if (a.ok()) {
          ASSERT_EQ(a.offset, offset) << "op " << op;
          live.push_back(a.offset);
        }
      } else if (r < 98) {
        const std::size_t k = rng() % live.size();
        ASSERT_EQ(vs->vfree_offset(live[k]), FreeStatus::kOk);
        model.free(live[k]);
        live[k] = live.back();
        live.pop_back();
      } else {
        vs->purge();
        model.purge();
      }
      ASSERT_EQ(vs->check(), "") << "op " << op;
    }
  }
}

}  // namespace
}  // namespace vmfrag
