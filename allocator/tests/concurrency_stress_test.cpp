// Concurrency stress (issue #15): T threads (2, 4, 8, 16) share one Vmalloc in memfd mode and mix
// vmalloc, vzalloc, vfree, vmap/vunmap, vm_map_ram/vm_unmap_ram, kmalloc/kfree, kvmalloc/kvfree
// and purge. Every area a thread gets is filled with a pattern unique to (thread, op) and read back
// through the direct map at each page's pfn (vmalloc_to_pfn) before it is released, so a page
// handed to two owners, a mapping at the wrong pfn or a torn mapping shows as a corrupted byte.
// check() runs at the quiescent points (after each round's join). Short here — the tsan flavour
// runs it as part of `scripts/vmfrag test`; VMFRAG_SEED=N picks another interleaving of ops and
// VMFRAG_STRESS_OPS=N the ops per thread count and round (default 2400; the nightly job's long
// form, a `stress` unit, runs it with 200,000 under TSan).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "allocator/tests/reliability_figures.h"
#include "allocator/tests/test_seeds.h"
#include "allocator/vmalloc/thread_cache.h"
#include "allocator/vmalloc/vmalloc.h"

namespace vmfrag {
namespace {

constexpr std::uint64_t P = 4096;

struct Held {
  enum class Kind { kVmalloc, kKmalloc, kKvmalloc, kVmap, kMapRam } kind;
  char* addr;
  std::uint64_t bytes;
  std::vector<std::uint64_t> pages;  // vmap / vm_map_ram: the caller's pages
  std::uint8_t pattern;
};

// Fills the first and last byte of every page (cheap, and enough to tell pages apart).
void fill(const Held& h) {
  for (std::uint64_t off = 0; off < h.bytes; off += P) {
    h.addr[off] = static_cast<char>(h.pattern);
    h.addr[std::min(off + P, h.bytes) - 1] = static_cast<char>(h.pattern ^ 0xff);
  }
}

// Reads every page back through the direct map; returns the first disagreement or "".
std::string verify(Vmalloc& vm, const Held& h) {
  for (std::uint64_t off = 0; off < h.bytes; off += P) {
    const char* through_area = h.addr + off;
    const char* through_direct = nullptr;
    if (h.kind == Held::Kind::kKmalloc || (h.kind == Held::Kind::kKvmalloc && !vm.vmalloc_to_pfn(h.addr))) {
      through_direct = through_area;  // kmalloc memory is the direct map already
    } else {
      const std::optional<std::uint64_t> pfn = vm.vmalloc_to_pfn(through_area);
      if (!pfn) return "no pfn behind a live area";
      through_direct = static_cast<const char*>(vm.phys().direct_map()) + *pfn * P;
    }
    const std::uint64_t last = std::min(off + P, h.bytes) - 1 - off;
    if (through_direct[0] != static_cast<char>(h.pattern) || through_direct[last] != static_cast<char>(h.pattern ^ 0xff))
      return "byte at offset " + std::to_string(off) + " differs through the direct map";
  }
  return "";
}

// The stress runs on a plain Vmalloc and on a ThreadCachedVmalloc (vmalloc, kmalloc, kvmalloc and
// their frees through its caches; vzalloc, vmap and vm_map_ram straight to the inner Vmalloc, so
// their areas reach the cache's release path as addresses it does not know).
Vmalloc& inner_of(Vmalloc& vm) { return vm; }
Vmalloc& inner_of(ThreadCachedVmalloc& cached) { return cached.inner(); }

template <class Front>
void release(Front& front, Held& h) {
  Vmalloc& vm = inner_of(front);
  switch (h.kind) {
    case Held::Kind::kVmalloc: EXPECT_EQ(front.vfree(h.addr), ReleaseStatus::kOk); break;
    case Held::Kind::kKmalloc: EXPECT_EQ(front.kfree(h.addr), ReleaseStatus::kOk); break;
    case Held::Kind::kKvmalloc: EXPECT_EQ(front.kvfree(h.addr), ReleaseStatus::kOk); break;
    case Held::Kind::kVmap:
      EXPECT_EQ(vm.vunmap(h.addr), ReleaseStatus::kOk);
      vm.free_pages(h.pages);
      break;
    case Held::Kind::kMapRam:
      EXPECT_EQ(vm.vm_unmap_ram(h.addr, h.pages.size()), ReleaseStatus::kOk);
      vm.free_pages(h.pages);
      break;
  }
}

template <class Front>
void worker(Front& front, std::uint64_t seed, unsigned thread, std::uint64_t ops, std::atomic<std::uint64_t>& corrupt,
            std::atomic<std::uint64_t>& done) {
  Vmalloc& vm = inner_of(front);
  std::mt19937_64 rng(seed * 1000003 + thread);
  std::vector<Held> held;
  for (std::uint64_t i = 0; i < ops; ++i) {
    const auto pattern = static_cast<std::uint8_t>(1 + (thread * 31 + i) % 254);
    const unsigned choice = static_cast<unsigned>(rng() % 16);
    if ((choice < 6 || held.empty()) && held.size() < 24) {
      Held h{Held::Kind::kVmalloc, nullptr, 0, {}, pattern};
      const std::uint64_t pages = 1 + rng() % 8;
      VmallocResult r;
      switch (choice % 5) {
        case 0: r = front.vmalloc(pages * P); break;
        case 1: r = vm.vzalloc(pages * P); break;
        case 2: h.kind = Held::Kind::kKmalloc; r = front.kmalloc(pages * P); break;
        case 3: h.kind = Held::Kind::kKvmalloc; r = front.kvmalloc(pages * P); break;
        default: {
          h.kind = rng() % 2 ? Held::Kind::kVmap : Held::Kind::kMapRam;
          if (vm.alloc_pages(pages, h.pages) != FailureKind::kNone) continue;
          r = h.kind == Held::Kind::kVmap ? vm.vmap(h.pages) : vm.vm_map_ram(h.pages);
          if (!r.ok()) vm.free_pages(h.pages);
        }
      }
      if (!r.ok()) continue;  // physical memory is shared: failures under pressure are fine
      h.addr = static_cast<char*>(r.addr);
      h.bytes = pages * P;
      fill(h);
      held.push_back(std::move(h));
    } else if (choice < 15) {
      const std::size_t k = rng() % held.size();
      if (!verify(vm, held[k]).empty()) corrupt.fetch_add(1);
      release(front, held[k]);
      held[k] = std::move(held.back());
      held.pop_back();
    } else {
      front.purge();
    }
    done.fetch_add(1, std::memory_order_relaxed);
  }
  for (Held& h : held) {
    if (!verify(vm, h).empty()) corrupt.fetch_add(1);
    release(front, h);
  }
}

// Two rounds of `threads` workers on one instance, check() after each (a quiescent point: the
// workers have joined; a plain Vmalloc then has nothing live, a cached one only its caches).
template <class Front>
void run_rounds(Front& front, unsigned threads, std::uint64_t seed, std::uint64_t ops_per_thread,
                std::atomic<std::uint64_t>& corrupt, std::atomic<std::uint64_t>& done) {
  for (int round = 0; round < 2; ++round) {
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t)
      pool.emplace_back(worker<Front>, std::ref(front), seed + round, t, ops_per_thread, std::ref(corrupt),
                        std::ref(done));
    for (std::thread& t : pool) t.join();
    EXPECT_EQ(front.check(), "") << "after round " << round;
  }
}

TEST(ConcurrencyStress, MixedOpsOnSharedInstanceStayCorrectAndTheStructuresStayValid) {
  // Figures: per thread count, the ops run (threads x ops x rounds) and whether they all passed;
  // the tsan flavour's run is the TSan-clean figure (a TSan report aborts the test).
  CaseTally tally;
  std::uint64_t ops_run = 0;
  for (std::uint64_t seed : seeds_to_run(1, 1)) {
    for (unsigned threads : {2u, 4u, 8u, 16u}) {
      SCOPED_TRACE(seed_note(seed) + ", " + std::to_string(threads) + " threads");
      tally.begin();
      VmallocConfig c;
      c.space.region_bytes = 256ull << 20;
      c.space.lazy_threshold_pages = 64;
      c.phys_bytes = 64ull << 20;
      c.backing = BackingMode::kMemfd;
      auto created = Vmalloc::create(c);
      ASSERT_NE(created.vm, nullptr) << created.message;
      Vmalloc& vm = *created.vm;
      std::atomic<std::uint64_t> corrupt{0}, done{0};
      const std::uint64_t ops_per_thread = stress_count("VMFRAG_STRESS_OPS", 2400) / threads;
      run_rounds(vm, threads, seed, ops_per_thread, corrupt, done);
      EXPECT_EQ(corrupt.load(), 0u);
      EXPECT_EQ(done.load(), 2 * threads * ops_per_thread);
      const VmallocStats s = vm.stats();
      EXPECT_EQ(s.vmalloc_areas + s.vmap_areas + s.kmalloc_blocks, 0u);
      EXPECT_EQ(s.phys.free_pages, s.phys.total_pages);
      std::printf("[ stress ] %u threads x %llu ops x 2 rounds: %llu corrupted areas\n", threads,
                  static_cast<unsigned long long>(ops_per_thread), static_cast<unsigned long long>(corrupt.load()));
      tally.end();
      ops_run += done.load();
      RecordProperty("ops_" + std::to_string(threads) + "_threads", std::to_string(done.load()));  // nightly counts exceed int
    }
  }
  RecordProperty("ops", std::to_string(ops_run));
  tally.record();
}

// The same stress through per-thread caches (thread_cache.h): cached areas keep their pages and
// mappings and are handed to the next request of their size on the same thread, so every reused
// area's bytes are written and read back through the direct map like fresh ones. At the quiescent
// points the caches may hold areas (they are live to the inner Vmalloc): check() covers both, and
// after drain() nothing is left.
TEST(ConcurrencyStress, MixedOpsThroughThreadCachesStayCorrect) {
  for (std::uint64_t seed : seeds_to_run(1, 1)) {
    for (unsigned threads : {2u, 4u}) {
      SCOPED_TRACE(seed_note(seed) + ", " + std::to_string(threads) + " threads");
      VmallocConfig c;
      c.space.region_bytes = 256ull << 20;
      c.space.lazy_threshold_pages = 64;
      c.phys_bytes = 64ull << 20;
      c.backing = BackingMode::kMemfd;
      ThreadCacheConfig cache;
      cache.max_area_pages = 8;
      cache.max_per_size = 4;  // small, so that frees also overflow to the inner Vmalloc
      auto created = ThreadCachedVmalloc::create(c, cache);
      ASSERT_NE(created.vm, nullptr) << created.message;
      ThreadCachedVmalloc& front = *created.vm;
      std::atomic<std::uint64_t> corrupt{0}, done{0};
      const std::uint64_t ops_per_thread = stress_count("VMFRAG_STRESS_OPS", 2400) / threads;
      run_rounds(front, threads, seed, ops_per_thread, corrupt, done);
      EXPECT_EQ(corrupt.load(), 0u);
      EXPECT_GT(front.cache_stats().hits, 0u);
      front.drain();
      const VmallocStats s = front.inner().stats();
      EXPECT_EQ(s.vmalloc_areas + s.vmap_areas + s.kmalloc_blocks, 0u);
      EXPECT_EQ(s.phys.free_pages, s.phys.total_pages);
      EXPECT_EQ(front.cache_stats().cached_areas, 0u);
      EXPECT_EQ(front.check(), "");
    }
  }
}

// memfd areas are unmapped outside the lock (vmalloc.cpp, new_area's block comment): while one
// thread's vfree unmaps an area, a second vfree of it must still be refused as unknown, so two
// threads freeing the same area at once get exactly one kOk and one reported misuse, whichever
// wins, and the state stays intact.
TEST(ConcurrencyStress, RacingDoubleFreeIsDetectedOnce) {
  VmallocConfig c;
  c.space.region_bytes = 64ull << 20;
  c.phys_bytes = 16ull << 20;
  c.backing = BackingMode::kMemfd;
  auto created = Vmalloc::create(c);
  ASSERT_NE(created.vm, nullptr) << created.message;
  Vmalloc& vm = *created.vm;
  constexpr int kRounds = 64;
  for (int round = 0; round < kRounds; ++round) {
    const VmallocResult r = vm.vmalloc(4 * P);
    ASSERT_TRUE(r.ok());
    std::atomic<int> ready{0};
    ReleaseStatus status[2];
    auto racer = [&](int i) {
      ready.fetch_add(1);
      while (ready.load() < 2) std::this_thread::yield();
      status[i] = vm.vfree(r.addr);
    };
    std::thread a(racer, 0), b(racer, 1);
    a.join();
    b.join();
    const int ok = (status[0] == ReleaseStatus::kOk) + (status[1] == ReleaseStatus::kOk);
    const int unknown = (status[0] == ReleaseStatus::kUnknown) + (status[1] == ReleaseStatus::kUnknown);
    ASSERT_EQ(ok, 1) << "round " << round;
    ASSERT_EQ(unknown, 1) << "round " << round;
  }
  EXPECT_EQ(vm.stats().misuse_count, static_cast<std::uint64_t>(kRounds));
  EXPECT_EQ(vm.stats().vmalloc_areas, 0u);
  EXPECT_EQ(vm.check(), "");
}

}  // namespace
}  // namespace vmfrag
