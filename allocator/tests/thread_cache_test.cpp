// ThreadCachedVmalloc (thread_cache.h): reuse, misuse, cross-thread frees, drain on failure, caps.
// The multi-threaded stress through the caches is in concurrency_stress_test.cpp.
#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <thread>
#include <vector>

#include "allocator/core/asan_poison.h"
#include "allocator/vmalloc/thread_cache.h"

namespace vmfrag {
namespace {

constexpr std::uint64_t P = 4096;

std::unique_ptr<ThreadCachedVmalloc> make(BackingMode backing, std::uint64_t region_pages,
                                          const ThreadCacheConfig& cache = {}) {
  VmallocConfig c;
  c.space.region_bytes = region_pages * P;
  c.space.guard_pages = 1;
  c.space.lazy_threshold_pages = 0;  // eager: the inner allocator's state is easy to reason about
  c.phys_bytes = 16ull << 20;
  c.backing = backing;
  auto created = ThreadCachedVmalloc::create(c, cache);
  EXPECT_NE(created.vm, nullptr) << created.message;
  return std::move(created.vm);
}

TEST(ThreadCache, AFreedAreaIsReusedForTheNextRequestOfItsPageCountOnTheSameThread) {
  auto vm = make(BackingMode::kNone, 1024);
  const VmallocResult a = vm->vmalloc(3 * P);
  const VmallocResult b = vm->vmalloc(3 * P);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(vm->vfree(a.addr), ReleaseStatus::kOk);
  EXPECT_EQ(vm->vfree(b.addr), ReleaseStatus::kOk);
  EXPECT_EQ(vm->inner().stats().vmalloc_areas, 2u);  // cached areas stay live to the inner allocator
  EXPECT_EQ(vm->cache_stats().cached_areas, 2u);
  EXPECT_EQ(vm->cache_stats().cached_pages, 6u);
  // LIFO, and any size with the same page count hits.
  EXPECT_EQ(vm->vmalloc(3 * P - 100).addr, b.addr);
  EXPECT_EQ(vm->vmalloc(2 * P + 1).addr, a.addr);
  // Another page count misses: a new area from the inner allocator.
  const VmallocResult c = vm->vmalloc(2 * P);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(c.addr, a.addr);
  const ThreadCacheStats s = vm->cache_stats();
  EXPECT_EQ(s.hits, 2u);
  EXPECT_EQ(s.misses, 3u);
  EXPECT_EQ(s.cached_areas, 0u);
  EXPECT_EQ(s.threads, 1u);
  EXPECT_EQ(vm->check(), "");
}

TEST(ThreadCache, KmallocBlocksAreCachedByOrder) {
  auto vm = make(BackingMode::kMemfd, 1024);
  const VmallocResult a = vm->kmalloc(3 * P);  // order 2
  ASSERT_TRUE(a.ok());
  const std::uint64_t free_before = vm->inner().stats().phys.free_pages;
  EXPECT_EQ(vm->kfree(a.addr), ReleaseStatus::kOk);
  EXPECT_EQ(vm->inner().stats().phys.free_pages, free_before);  // still the cache's
  EXPECT_EQ(vm->kmalloc(4 * P).addr, a.addr);                   // same order: reused
  static_cast<char*>(a.addr)[4 * P - 1] = 1;                     // the whole block is usable
  EXPECT_EQ(vm->kfree(a.addr), ReleaseStatus::kOk);
  EXPECT_NE(vm->kmalloc(P).addr, a.addr);  // order 0: another block
  EXPECT_EQ(vm->check(), "");
}

TEST(ThreadCache, LargeOrAlignedRequestsBypassTheCache) {
  ThreadCacheConfig cache;
  cache.max_area_pages = 4;
  auto vm = make(BackingMode::kNone, 1024, cache);
  const VmallocResult big = vm->vmalloc(5 * P);
  const VmallocResult aligned = vm->vmalloc(P, 4 * P);
  ASSERT_TRUE(big.ok() && aligned.ok());
  EXPECT_EQ(vm->vfree(big.addr), ReleaseStatus::kOk);
  EXPECT_EQ(vm->vfree(aligned.addr), ReleaseStatus::kOk);
  EXPECT_EQ(vm->inner().stats().vmalloc_areas, 0u);
  EXPECT_EQ(vm->cache_stats().cached_areas, 0u);
  EXPECT_EQ(vm->cache_stats().misses, 0u);
  EXPECT_EQ(vm->vmalloc(0).failure, FailureKind::kInvalidArgument);
}

TEST(ThreadCache, ADoubleFreeOfACachedAreaIsReportedAndChangesNothing) {
  auto vm = make(BackingMode::kMemfd, 1024);
  const VmallocResult a = vm->vmalloc(2 * P);
  const VmallocResult k = vm->kmalloc(P);
  ASSERT_TRUE(a.ok() && k.ok());
  ASSERT_EQ(vm->vfree(a.addr), ReleaseStatus::kOk);
  ASSERT_EQ(vm->kfree(k.addr), ReleaseStatus::kOk);
  const ThreadCacheStats before = vm->cache_stats();
  EXPECT_EQ(vm->vfree(a.addr), ReleaseStatus::kUnknown);
  EXPECT_EQ(vm->kvfree(k.addr), ReleaseStatus::kUnknown);
  const ThreadCacheStats after = vm->cache_stats();
  EXPECT_EQ(after.cached_areas, before.cached_areas);
  EXPECT_EQ(after.misuse_count, 2u);
  const std::vector<std::string> log = vm->misuse_log();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_NE(log[0].find("vfree: unknown address"), std::string::npos) << log[0];
  EXPECT_NE(log[0].find("held in a thread cache"), std::string::npos) << log[0];
  EXPECT_NE(log[1].find("kvfree: unknown address"), std::string::npos) << log[1];
  EXPECT_EQ(vm->check(), "");
  // Still reusable once.
  EXPECT_EQ(vm->vmalloc(2 * P).addr, a.addr);
}

TEST(ThreadCache, OtherMisuseIsClassifiedByTheInnerAllocator) {
  auto vm = make(BackingMode::kMemfd, 1024);
  const VmallocResult a = vm->vmalloc(2 * P);
  const VmallocResult k = vm->kmalloc(P);
  ASSERT_TRUE(a.ok() && k.ok());
  EXPECT_EQ(vm->kfree(a.addr), ReleaseStatus::kWrongFunction);  // kfree of a vmalloc area
  EXPECT_EQ(vm->vfree(k.addr), ReleaseStatus::kWrongFunction);  // vfree of kmalloc memory
  EXPECT_EQ(vm->vfree(static_cast<char*>(a.addr) + P), ReleaseStatus::kUnknown);  // interior
  int local = 0;
  EXPECT_EQ(vm->vfree(&local), ReleaseStatus::kUnknown);  // foreign
  EXPECT_EQ(vm->vfree(nullptr), ReleaseStatus::kNull);
  EXPECT_EQ(vm->inner().stats().misuse_count, 4u);
  EXPECT_EQ(vm->cache_stats().misuse_count, 0u);
  // The areas are intact and still release normally.
  EXPECT_EQ(vm->vfree(a.addr), ReleaseStatus::kOk);
  EXPECT_EQ(vm->kfree(k.addr), ReleaseStatus::kOk);
  EXPECT_EQ(vm->check(), "");
}

TEST(ThreadCache, AnAreaFreedByAnotherThreadLeavesNoStaleRecord) {
  auto vm = make(BackingMode::kMemfd, 1024);
  const VmallocResult a = vm->vmalloc(2 * P);
  ASSERT_TRUE(a.ok());
  ReleaseStatus other = ReleaseStatus::kNull;
  std::thread([&] { other = vm->vfree(a.addr); }).join();
  EXPECT_EQ(other, ReleaseStatus::kOk);
  EXPECT_EQ(vm->inner().stats().vmalloc_areas, 0u);  // freed to the inner allocator, not cached there
  EXPECT_EQ(vm->cache_stats().cached_areas, 0u);
  EXPECT_EQ(vm->check(), "");
  // A second free from the allocating thread is the inner allocator's unknown address.
  EXPECT_EQ(vm->vfree(a.addr), ReleaseStatus::kUnknown);
  EXPECT_EQ(vm->inner().stats().misuse_count, 1u);
  // And a double free of an area cached by another thread is this layer's report.
  const VmallocResult b = vm->vmalloc(P);
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(vm->vfree(b.addr), ReleaseStatus::kOk);
  std::thread([&] { other = vm->vfree(b.addr); }).join();
  EXPECT_EQ(other, ReleaseStatus::kUnknown);
  EXPECT_EQ(vm->cache_stats().misuse_count, 1u);
  EXPECT_EQ(vm->cache_stats().threads, 1u);  // the freeing threads allocated nothing: no cache
  EXPECT_EQ(vm->check(), "");
}

// Cached areas hold address space: a request the inner allocator cannot place until they are
// returned succeeds after the drain-and-retry, and says so in the stats.
TEST(ThreadCache, AFailureForWantOfSpaceDrainsEveryCacheAndRetries) {
  auto vm = make(BackingMode::kNone, 64);
  std::vector<void*> held;
  for (;;) {
    const VmallocResult r = vm->vmalloc(P);  // 1 page + 1 guard page
    if (!r.ok()) break;
    held.push_back(r.addr);
  }
  ASSERT_EQ(held.size(), 32u);
  // Half of them cached on another thread, half on this one.
  std::thread([&] {
    for (std::size_t i = 0; i < held.size(); i += 2) ASSERT_EQ(vm->vfree(held[i]), ReleaseStatus::kOk);
  }).join();
  for (std::size_t i = 1; i < held.size(); i += 2) ASSERT_EQ(vm->vfree(held[i]), ReleaseStatus::kOk);
  // The freeing thread caches only its own allocations: the other thread's frees went to the
  // inner allocator, so 16 areas are cached here and the largest free extent is 2 pages.
  EXPECT_EQ(vm->cache_stats().cached_areas, 16u);
  const VmallocResult big = vm->vmalloc(40 * P);
  ASSERT_TRUE(big.ok()) << failure_name(big.failure);
  EXPECT_EQ(vm->cache_stats().drains, 1u);
  EXPECT_EQ(vm->cache_stats().cached_areas, 0u);
  EXPECT_EQ(vm->check(), "");
  // Nothing cached and still no room: the failure is reported as the inner allocator's.
  EXPECT_EQ(vm->vmalloc(40 * P).failure, FailureKind::kNoVirtualSpace);
}

TEST(ThreadCache, ThePerSizeAndPerThreadCapsSendFreesToTheInnerAllocator) {
  ThreadCacheConfig cache;
  cache.max_per_size = 2;
  cache.max_cached_pages = 5;
  auto vm = make(BackingMode::kNone, 1024, cache);
  std::vector<void*> ones, twos;
  for (int i = 0; i < 3; ++i) ones.push_back(vm->vmalloc(P).addr);
  for (int i = 0; i < 2; ++i) twos.push_back(vm->vmalloc(2 * P).addr);
  for (void* p : ones) ASSERT_EQ(vm->vfree(p), ReleaseStatus::kOk);  // 2 cached, the third freed
  EXPECT_EQ(vm->cache_stats().cached_areas, 2u);
  EXPECT_EQ(vm->inner().stats().vmalloc_areas, 4u);
  ASSERT_EQ(vm->vfree(twos[0]), ReleaseStatus::kOk);  // 4 pages cached
  ASSERT_EQ(vm->vfree(twos[1]), ReleaseStatus::kOk);  // would be 6 > 5: freed
  EXPECT_EQ(vm->cache_stats().cached_pages, 4u);
  EXPECT_EQ(vm->inner().stats().vmalloc_areas, 3u);
  EXPECT_EQ(vm->check(), "");
}

// A thread that exits gives its cache back; purge() leaves caches alone (their areas are live to
// the inner allocator, not lazily freed).
TEST(ThreadCache, AnExitingThreadGivesItsCacheBack) {
  auto vm = make(BackingMode::kMemfd, 1024);
  std::uint64_t cached_before_exit = 0;
  std::thread([&] {
    std::vector<void*> held;
    for (int i = 0; i < 4; ++i) held.push_back(vm->vmalloc((1 + i) * P).addr);
    held.push_back(vm->kmalloc(P).addr);
    for (void* p : held) ASSERT_EQ(vm->kvfree(p), ReleaseStatus::kOk);
    vm->purge();
    cached_before_exit = vm->cache_stats().cached_areas;
  }).join();
  EXPECT_EQ(cached_before_exit, 5u);
  const ThreadCacheStats s = vm->cache_stats();
  EXPECT_EQ(s.cached_areas, 0u);
  EXPECT_EQ(s.given_back_at_exit, 5u);
  EXPECT_EQ(vm->inner().stats().vmalloc_areas, 0u);
  EXPECT_EQ(vm->inner().stats().kmalloc_blocks, 0u);
  EXPECT_EQ(vm->inner().stats().phys.free_pages, vm->inner().stats().phys.total_pages);
  EXPECT_EQ(vm->check(), "");
}

// Many short-lived threads, each leaving an area live: an exited thread's cache is freed (only the
// living threads' caches are held), its counts are kept, and the areas it left live are still
// released normally by another thread, straight to the inner allocator.
TEST(ThreadCache, ExitedThreadsLeaveNoCacheBehind) {
  auto vm = make(BackingMode::kMemfd, 1024);
  constexpr int kThreads = 50;
  std::vector<void*> left_live;
  for (int t = 0; t < kThreads; ++t) {
    std::thread([&] {
      void* cached = vm->vmalloc(P).addr;
      ASSERT_NE(cached, nullptr);
      ASSERT_EQ(vm->vfree(cached), ReleaseStatus::kOk);       // cached, then given back at exit
      ASSERT_EQ(vm->vmalloc(P).addr, cached);                 // a hit
      left_live.push_back(cached);
      ASSERT_EQ(vm->cache_stats().caches, 1u);
    }).join();
  }
  ThreadCacheStats s = vm->cache_stats();
  EXPECT_EQ(s.threads, static_cast<std::uint64_t>(kThreads));
  EXPECT_EQ(s.caches, 0u);
  EXPECT_EQ(s.hits, static_cast<std::uint64_t>(kThreads));
  EXPECT_EQ(s.misses, static_cast<std::uint64_t>(kThreads));
  EXPECT_EQ(vm->inner().stats().vmalloc_areas, static_cast<std::uint64_t>(kThreads));
  EXPECT_EQ(vm->check(), "");
  for (void* p : left_live) EXPECT_EQ(vm->vfree(p), ReleaseStatus::kOk);
  EXPECT_EQ(vm->inner().stats().vmalloc_areas, 0u);
  EXPECT_EQ(vm->cache_stats().cached_areas, 0u);  // this thread allocated nothing: no cache to fill
  EXPECT_EQ(vm->vfree(left_live[0]), ReleaseStatus::kUnknown);  // a double free is still reported
  EXPECT_EQ(vm->check(), "");
}

TEST(ThreadCache, CachedMemoryIsPoisonedUnderAsanAndTheReusedBytesAreNot) {
#ifdef VMFRAG_ASAN
  auto vm = make(BackingMode::kMemfd, 1024);
  const VmallocResult a = vm->vmalloc(2 * P);
  ASSERT_TRUE(a.ok());
  char* p = static_cast<char*>(a.addr);
  EXPECT_FALSE(__asan_address_is_poisoned(p));
  ASSERT_EQ(vm->vfree(p), ReleaseStatus::kOk);
  EXPECT_TRUE(__asan_address_is_poisoned(p));
  EXPECT_TRUE(__asan_address_is_poisoned(p + 2 * P - 1));
  ASSERT_EQ(vm->vmalloc(P + 10).addr, p);
  EXPECT_FALSE(__asan_address_is_poisoned(p + P + 9));
  EXPECT_TRUE(__asan_address_is_poisoned(p + P + 10));  // the tail past the request
#else
  GTEST_SKIP() << "ASan builds only";
#endif
}

TEST(ThreadCache, BadCacheConfigurationsAreRefused) {
  VmallocConfig c;
  c.space.region_bytes = 1 << 20;
  c.phys_bytes = 1 << 20;
  c.backing = BackingMode::kNone;
  for (auto bad : {ThreadCacheConfig{0, 3, 64, 1024}, ThreadCacheConfig{64, kMaxOrder + 1, 64, 1024},
                   ThreadCacheConfig{64, 3, 0, 1024}}) {
    auto created = ThreadCachedVmalloc::create(c, bad);
    EXPECT_EQ(created.vm, nullptr);
    EXPECT_EQ(created.error, EINVAL);
    EXPECT_FALSE(created.message.empty());
  }
  c.space.region_bytes = 0;  // the inner allocator's refusal passes through
  auto created = ThreadCachedVmalloc::create(c);
  EXPECT_EQ(created.vm, nullptr);
  EXPECT_EQ(created.error, EINVAL);
}

// Two instances used by one thread, one after the other: the thread's lookup table never hands
// the second instance the first one's cache.
TEST(ThreadCache, InstancesDoNotShareAThreadsCache) {
  void* first = nullptr;
  {
    auto vm = make(BackingMode::kNone, 1024);
    first = vm->vmalloc(P).addr;
    ASSERT_EQ(vm->vfree(first), ReleaseStatus::kOk);
  }
  auto vm = make(BackingMode::kNone, 1024);
  EXPECT_EQ(vm->cache_stats().threads, 0u);
  const VmallocResult r = vm->vmalloc(P);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(vm->cache_stats().hits, 0u);
  EXPECT_EQ(vm->cache_stats().threads, 1u);
  EXPECT_EQ(vm->check(), "");
}

}  // namespace
}  // namespace vmfrag
