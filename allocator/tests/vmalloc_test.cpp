// Vmalloc over real mappings: memfd aliasing (a write through the area shows in the direct map at
// vmalloc_to_pfn), pfns scattered after churn, kmalloc failing with physical-fragmentation while
// plenty of pages are free and kvmalloc falling back to vmalloc in exactly that state, failed calls
// leaving no trace, map-limit through the cap and at the OS's real vm.max_map_count (where vfree
// must still work), guard pages and use-after-vfree faulting, ASan catching a one-byte overflow,
// vmap/vunmap, misuse across the APIs, and check() after random mixed ops in each backing.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <set>

#include <sys/resource.h>

#include "allocator/os/fault_injection.h"
#include "allocator/tests/test_seeds.h"
#include "allocator/vmalloc/vmalloc.h"

#if defined(__SANITIZE_ADDRESS__)
#define VMFRAG_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VMFRAG_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define VMFRAG_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VMFRAG_TEST_TSAN 1
#endif
#endif

namespace vmfrag {
namespace {

constexpr std::uint64_t P = 4096;

std::unique_ptr<Vmalloc> make(BackingMode backing, std::uint64_t region = 64ull << 20, std::uint64_t phys = 16ull << 20,
                              std::uint64_t lazy = 0, std::uint64_t map_cap = 0) {
  VmallocConfig c;
  c.space.region_bytes = region;
  c.space.lazy_threshold_pages = lazy;
  c.phys_bytes = phys;
  c.backing = backing;
  c.map_cap = map_cap;
  auto r = Vmalloc::create(c);
  EXPECT_NE(r.vm, nullptr) << r.message;
  return std::move(r.vm);
}

// Physically contiguous runs among an area's pages.
int runs_of(Vmalloc& vm, const char* addr, std::uint64_t pages) {
  int runs = 0;
  std::uint64_t prev = 0;
  for (std::uint64_t i = 0; i < pages; ++i) {
    const std::uint64_t pfn = *vm.vmalloc_to_pfn(addr + i * P);
    if (i == 0 || pfn != prev + 1) ++runs;
    prev = pfn;
  }
  return runs;
}

TEST(Vmalloc, MemfdAreaAliasesTheDirectMap) {
  auto vm = make(BackingMode::kMemfd);
  auto a = vm->vmalloc(3 * P);
  ASSERT_TRUE(a.ok()) << failure_name(a.failure);
  char* p = static_cast<char*>(a.addr);
  for (int i = 0; i < 3; ++i) {
    p[i * P + 7] = static_cast<char>('a' + i);
    const auto pfn = vm->vmalloc_to_pfn(p + i * P + 7);
    ASSERT_TRUE(pfn.has_value());
    EXPECT_EQ(static_cast<char*>(vm->phys().pfn_to_virt(*pfn))[7], 'a' + i);
  }
  static_cast<char*>(vm->phys().pfn_to_virt(*vm->vmalloc_to_pfn(p)))[100] = 'z';  // and the other way
  EXPECT_EQ(p[100], 'z');
  EXPECT_EQ(vm->stats().mapped_pages, 3u);
  EXPECT_EQ(vm->check(), "");
  EXPECT_EQ(vm->vfree(a.addr), ReleaseStatus::kOk);
  EXPECT_EQ(vm->stats().mapped_pages, 0u);
  EXPECT_EQ(vm->check(), "");
}

TEST(Vmalloc, PagesAreScatteredAfterChurn) {
  auto vm = make(BackingMode::kMemfd);
  std::vector<void*> small;
  for (int i = 0; i < 64; ++i) small.push_back(vm->vmalloc(P).addr);
  auto fresh = vm->vmalloc(16 * P);
  EXPECT_EQ(runs_of(*vm, static_cast<char*>(fresh.addr), 16), 1);  // fresh memory: one run
  for (int i = 0; i < 64; i += 2) EXPECT_EQ(vm->vfree(small[i]), ReleaseStatus::kOk);
  auto churned = vm->vmalloc(16 * P);
  ASSERT_TRUE(churned.ok());
  // The lowest free pfns are the 32 holes left by the freed one-page areas: 16 separate runs.
  EXPECT_EQ(runs_of(*vm, static_cast<char*>(churned.addr), 16), 16);
  std::memset(churned.addr, 0x5a, 16 * P);
  EXPECT_EQ(vm->check(), "");
}

// The seed question: with half of physical memory free in single pages, a two-page kmalloc fails
// with physical-fragmentation while vmalloc of the same size succeeds, and kvmalloc falls back.
TEST(Vmalloc, KmallocFailsOnPhysicalFragmentationWhereVmallocSucceeds) {
  for (BackingMode mode : {BackingMode::kNone, BackingMode::kAnon, BackingMode::kMemfd}) {
    SCOPED_TRACE(backing_mode_name(mode));
    auto vm = make(mode, 64ull << 20, 1ull << 20);  // 256 pages
    std::vector<void*> blocks;
    for (int i = 0; i < 256; ++i) blocks.push_back(vm->kmalloc(P).addr);
    EXPECT_EQ(vm->kmalloc(P).failure, FailureKind::kNoPhysicalMemory);
    for (int i = 0; i < 256; i += 2) EXPECT_EQ(vm->kfree(blocks[i]), ReleaseStatus::kOk);
    EXPECT_EQ(vm->stats().phys.free_pages, 128u);
    EXPECT_EQ(vm->kmalloc(2 * P).failure, FailureKind::kPhysicalFragmentation);
    auto v = vm->vmalloc(2 * P);
    EXPECT_TRUE(v.ok()) << failure_name(v.failure);
    auto kv = vm->kvmalloc(2 * P);
    ASSERT_TRUE(kv.ok()) << failure_name(kv.failure);
    EXPECT_FALSE(vm->phys().virt_to_pfn(kv.addr).has_value());  // it is a vmalloc address
    EXPECT_EQ(vm->kvmalloc(P).failure, FailureKind::kNone);     // one page: kmalloc still works
    EXPECT_EQ(vm->kvfree(kv.addr), ReleaseStatus::kOk);
    EXPECT_EQ(vm->check(), "");
  }
}

TEST(Vmalloc, KvmallocPrefersContiguousMemory) {
  auto vm = make(BackingMode::kMemfd);
  auto kv = vm->kvmalloc(8 * P);
  ASSERT_TRUE(kv.ok());
  EXPECT_TRUE(vm->phys().virt_to_pfn(kv.addr).has_value());
  EXPECT_EQ(vm->kvfree(kv.addr), ReleaseStatus::kOk);
  auto big = vm->kvmalloc(8ull << 20);  // above kmalloc's 4 MiB: vmalloc
  ASSERT_TRUE(big.ok());
  EXPECT_FALSE(vm->phys().virt_to_pfn(big.addr).has_value());
  EXPECT_EQ(vm->kvfree(big.addr), ReleaseStatus::kOk);
}

TEST(Vmalloc, FailedCallsLeaveNoTrace) {
  auto vm = make(BackingMode::kMemfd, 64ull << 20, 64 << 10, /*lazy=*/1000);  // 16 pages
  const auto before = vm->stats();
  auto a = vm->vmalloc(17 * P);
  EXPECT_EQ(a.failure, FailureKind::kNoPhysicalMemory);
  const auto after = vm->stats();
  EXPECT_EQ(after.space.free_bytes, before.space.free_bytes);  // straight back, not lazily held
  EXPECT_EQ(after.space.lazy_bytes, 0u);
  EXPECT_EQ(after.phys.free_pages, 16u);
  EXPECT_EQ(after.mappings_in_use, 0u);
  EXPECT_EQ(vm->kmalloc(0).failure, FailureKind::kInvalidArgument);
  EXPECT_EQ(vm->kmalloc(8ull << 20).failure, FailureKind::kInvalidArgument);
  EXPECT_EQ(vm->check(), "");
}

TEST(Vmalloc, MapLimitThroughTheCap) {
  for (BackingMode mode : {BackingMode::kAnon, BackingMode::kMemfd}) {
    SCOPED_TRACE(backing_mode_name(mode));
    auto vm = make(mode, 64ull << 20, 16ull << 20, 0, /*map_cap=*/10);  // 2 mappings an area
    std::vector<void*> areas;
    for (int i = 0; i < 5; ++i) {
      auto a = vm->vmalloc(P);
      ASSERT_TRUE(a.ok()) << i;
      areas.push_back(a.addr);
    }
    const auto before = vm->stats();
    auto a = vm->vmalloc(P);
    EXPECT_EQ(a.failure, FailureKind::kMapLimit);
    EXPECT_EQ(vm->stats().phys.free_pages, before.phys.free_pages);
    EXPECT_EQ(vm->stats().space.free_bytes, before.space.free_bytes);
    EXPECT_EQ(vm->vfree(areas[0]), ReleaseStatus::kOk);
    EXPECT_TRUE(vm->vmalloc(P).ok());
    EXPECT_EQ(vm->check(), "");
  }
}

// The OS's own limit: with a guard after each area a process holds about 32.7k live mapped areas
// at vm.max_map_count = 65530. vmalloc must fail there with map-limit, vfree must still work, and
// once areas are freed and purged vmalloc works again.
TEST(Vmalloc, MapLimitAtTheRealVmMaxMapCount) {
#ifdef VMFRAG_TEST_TSAN
  GTEST_SKIP() << "TSan's own mappings and its address layout make the process-wide VMA budget unpredictable";
#endif
#ifdef VMF_CHECKS_FULL
  GTEST_SKIP() << "-Dchecks=full walks (and so allocates) after every free; this test needs the free path that "
                  "allocates nothing, which the release flavour checks";
#endif
  std::uint64_t limit = 0;
  ASSERT_EQ(linux_os().max_map_count(&limit), 0);
  if (limit > 200000) GTEST_SKIP() << "vm.max_map_count is " << limit << ": too many areas for a unit test";
  auto vm = make(BackingMode::kMemfd, 1ull << 30, (limit / 2 + 4096) * P);
  std::vector<void*> areas;
  areas.reserve(limit);
  VmallocResult last;
  for (std::uint64_t i = 0; i < limit; ++i) {
    last = vm->vmalloc(P);
    if (!last.ok()) break;
    areas.push_back(last.addr);
  }
  ASSERT_FALSE(last.ok()) << "no failure within " << limit << " areas";
  EXPECT_EQ(last.failure, FailureKind::kMapLimit) << failure_name(last.failure) << " errno " << last.os_errno;
  EXPECT_GT(areas.size(), limit / 4);
  EXPECT_LT(areas.size(), limit / 2 + 1);
  // Freeing needs no new mapping, so it works right at the limit.
  for (std::size_t i = 0; i < areas.size(); i += 2) ASSERT_EQ(vm->vfree(areas[i]), ReleaseStatus::kOk);
  vm->purge();
  EXPECT_EQ(vm->stats().reservation_restore_failures, 0u);
  auto again = vm->vmalloc(P);
  EXPECT_TRUE(again.ok()) << failure_name(again.failure) << " errno " << again.os_errno;
  for (std::size_t i = 1; i < areas.size(); i += 2) ASSERT_EQ(vm->vfree(areas[i]), ReleaseStatus::kOk);
  EXPECT_EQ(vm->vfree(again.addr), ReleaseStatus::kOk);
  vm->purge();
  EXPECT_EQ(vm->stats().mappings_in_use, 0u);
  EXPECT_EQ(vm->check(), "");
}

TEST(Vmalloc, VmapMapsCallerPagesAndVunmapKeepsThem) {
  auto vm = make(BackingMode::kMemfd);
  std::vector<std::uint64_t> pfns;
  ASSERT_EQ(vm->alloc_pages(4, pfns), FailureKind::kNone);
  std::swap(pfns[0], pfns[3]);  // any order: the area follows the list
  auto a = vm->vmap(pfns);
  ASSERT_TRUE(a.ok());
  for (int i = 0; i < 4; ++i) {
    static_cast<char*>(a.addr)[i * P] = static_cast<char>(i + 1);
    EXPECT_EQ(*static_cast<char*>(vm->phys().pfn_to_virt(pfns[i])), i + 1);
  }
  EXPECT_EQ(vm->check(), "");
  EXPECT_EQ(vm->vfree(a.addr), ReleaseStatus::kWrongFunction);
  EXPECT_EQ(vm->vunmap(a.addr), ReleaseStatus::kOk);
  EXPECT_EQ(*static_cast<char*>(vm->phys().pfn_to_virt(pfns[2])), 3);  // pages survive vunmap
  EXPECT_EQ(vm->check(), "");
  vm->free_pages(pfns);
  EXPECT_EQ(vm->check(), "");
  // anon: the area is anonymous memory, bookkept against the pages but not aliasing them.
  auto anon = make(BackingMode::kAnon);
  std::vector<std::uint64_t> apfns;
  ASSERT_EQ(anon->alloc_pages(1, apfns), FailureKind::kNone);
  auto av = anon->vmap(apfns);
  ASSERT_TRUE(av.ok());
  *static_cast<volatile char*>(av.addr) = 9;
  EXPECT_NE(*static_cast<char*>(anon->phys().pfn_to_virt(apfns[0])), 9);
  EXPECT_EQ(*anon->vmalloc_to_pfn(av.addr), apfns[0]);
  EXPECT_EQ(anon->check(), "");
  EXPECT_EQ(anon->vunmap(av.addr), ReleaseStatus::kOk);
  anon->free_pages(apfns);
}

TEST(Vmalloc, MisuseAcrossTheApis) {
  auto vm = make(BackingMode::kMemfd);
  auto v = vm->vmalloc(2 * P);
  auto k = vm->kmalloc(P);
  ASSERT_TRUE(v.ok() && k.ok());
  EXPECT_EQ(vm->kfree(v.addr), ReleaseStatus::kWrongFunction);
  EXPECT_EQ(vm->vfree(k.addr), ReleaseStatus::kWrongFunction);
  EXPECT_EQ(vm->vunmap(v.addr), ReleaseStatus::kWrongFunction);
  EXPECT_EQ(vm->vfree(static_cast<char*>(v.addr) + P), ReleaseStatus::kUnknown);
  EXPECT_EQ(vm->kfree(static_cast<char*>(k.addr) + 8), ReleaseStatus::kUnknown);
  int local = 0;
  EXPECT_EQ(vm->vfree(&local), ReleaseStatus::kUnknown);
  EXPECT_EQ(vm->vfree(nullptr), ReleaseStatus::kNull);
  EXPECT_EQ(vm->kfree(nullptr), ReleaseStatus::kNull);
  EXPECT_EQ(vm->stats().misuse_count, 6u);
  ASSERT_EQ(vm->misuse_log().size(), 6u);
  EXPECT_NE(vm->misuse_log()[0].find("kfree: wrong function"), std::string::npos) << vm->misuse_log()[0];
  EXPECT_EQ(vm->vfree(v.addr), ReleaseStatus::kOk);
  EXPECT_EQ(vm->vfree(v.addr), ReleaseStatus::kUnknown);  // double free
  EXPECT_EQ(vm->kfree(k.addr), ReleaseStatus::kOk);
  EXPECT_EQ(vm->kfree(k.addr), ReleaseStatus::kUnknown);
  EXPECT_EQ(vm->check(), "");
}

TEST(Vmalloc, VzallocZeroesReusedPages) {
  auto vm = make(BackingMode::kMemfd);
  auto a = vm->vmalloc(2 * P);
  std::memset(a.addr, 0xff, 2 * P);
  EXPECT_EQ(vm->vfree(a.addr), ReleaseStatus::kOk);
  auto z = vm->vzalloc(2 * P);
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(*vm->vmalloc_to_pfn(z.addr), 0u);  // the same, dirty, pages came back
  for (std::uint64_t i = 0; i < 2 * P; ++i) ASSERT_EQ(static_cast<unsigned char*>(z.addr)[i], 0) << i;
}

TEST(VmallocDeathTest, GuardPageWriteFaults) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto vm = make(BackingMode::kMemfd);
  auto a = vm->vmalloc(P);
  ASSERT_TRUE(a.ok());
  static_cast<volatile char*>(a.addr)[P - 1] = 1;  // the last byte of the area is fine
  EXPECT_DEATH({ static_cast<volatile char*>(a.addr)[P] = 1; }, "");
}

TEST(VmallocDeathTest, UseAfterVfreeFaults) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (BackingMode mode : {BackingMode::kAnon, BackingMode::kMemfd}) {
    auto vm = make(mode, 64ull << 20, 16ull << 20, /*lazy=*/1000);
    auto a = vm->vmalloc(P);
    ASSERT_TRUE(a.ok());
    static_cast<volatile char*>(a.addr)[0] = 1;
    EXPECT_EQ(vm->vfree(a.addr), ReleaseStatus::kOk);
#ifdef VMFRAG_TEST_ASAN
    EXPECT_DEATH({ static_cast<volatile char*>(a.addr)[0] = 1; }, "use-after-poison");
#else
    EXPECT_DEATH({ static_cast<volatile char*>(a.addr)[0] = 1; }, "");
#endif
  }
}

#ifdef VMFRAG_TEST_ASAN
TEST(VmallocDeathTest, AsanCatchesAOneByteOverflowPastTheRequestedSize) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto vm = make(BackingMode::kMemfd);
  auto a = vm->vmalloc(100);
  ASSERT_TRUE(a.ok());
  static_cast<volatile char*>(a.addr)[99] = 1;
  EXPECT_DEATH({ static_cast<volatile char*>(a.addr)[100] = 1; }, "use-after-poison");
  auto k = vm->kmalloc(100);
  EXPECT_DEATH({ static_cast<volatile char*>(k.addr)[100] = 1; }, "use-after-poison");
}
#endif

// The kernel's vm_map_ram hazard: one long-lived one-page mapping pins a whole 4 MiB block whose
// other pages short-lived users came and went through; no purge can give that space back.
TEST(Vmalloc, VmMapRamBlocksAreFragmentedByMixedLifetimes) {
  auto vm = make(BackingMode::kMemfd, 64ull << 20, 16ull << 20);
  std::vector<std::uint64_t> keep, temp;
  ASSERT_EQ(vm->alloc_pages(1, keep), FailureKind::kNone);
  ASSERT_EQ(vm->alloc_pages(1, temp), FailureKind::kNone);
  auto pinned = vm->vm_map_ram(keep);
  ASSERT_TRUE(pinned.ok());
  *static_cast<volatile char*>(pinned.addr) = 7;
  EXPECT_EQ(*static_cast<char*>(vm->phys().pfn_to_virt(keep[0])), 7);  // aliased like vmap
  EXPECT_EQ(*vm->vmalloc_to_pfn(pinned.addr), keep[0]);
  for (int i = 0; i < 1100; ++i) {  // more than the block's 1024 pages: a second block is needed
    auto t = vm->vm_map_ram(temp);
    ASSERT_TRUE(t.ok()) << i;
    ASSERT_EQ(vm->vm_unmap_ram(t.addr, 1), ReleaseStatus::kOk) << i;
  }
  vm->purge();
  const VmapBlockStats vb = vm->stats().vmap_blocks;
  EXPECT_EQ(vb.pinned_blocks, 1u);
  EXPECT_EQ(vb.pinned_dirty_pages, 1023u);  // 4 MiB - 4 KiB of address space nobody can use
  EXPECT_EQ(vm->check(), "");
  EXPECT_EQ(vm->vfree(pinned.addr), ReleaseStatus::kWrongFunction);
  EXPECT_EQ(vm->vm_unmap_ram(pinned.addr, 2), ReleaseStatus::kWrongFunction);  // wrong page count
  EXPECT_EQ(vm->vm_unmap_ram(pinned.addr, 1), ReleaseStatus::kOk);
  vm->purge();
  EXPECT_EQ(vm->stats().vmap_blocks.blocks, 0u);
  EXPECT_EQ(vm->stats().space.live_areas, 0u);
  vm->free_pages(keep);
  vm->free_pages(temp);
  EXPECT_EQ(vm->check(), "");
}

TEST(Vmalloc, LargeVmMapRamGetsItsOwnArea) {
  auto vm = make(BackingMode::kMemfd);
  std::vector<std::uint64_t> pfns;
  ASSERT_EQ(vm->alloc_pages(65, pfns), FailureKind::kNone);
  auto a = vm->vm_map_ram(pfns);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(vm->stats().vmap_blocks.blocks, 0u);
  static_cast<volatile char*>(a.addr)[64 * P] = 3;
  EXPECT_EQ(*static_cast<char*>(vm->phys().pfn_to_virt(pfns[64])), 3);
  EXPECT_EQ(vm->vunmap(a.addr), ReleaseStatus::kWrongFunction);
  EXPECT_EQ(vm->vm_unmap_ram(a.addr, 64), ReleaseStatus::kWrongFunction);
  EXPECT_EQ(vm->vm_unmap_ram(a.addr, 65), ReleaseStatus::kOk);
  vm->free_pages(pfns);
  EXPECT_EQ(vm->check(), "");
}

// The kernel maps every page of a vmalloc area at allocation, so touching it faults nothing;
// populate = false leaves each page to fault on first touch (the benchmarks compare the two).
TEST(Vmalloc, PopulateDecidesWhetherFirstTouchFaults) {
  auto faults_touching = [](BackingMode mode, bool populate) {
    VmallocConfig c;
    c.space.region_bytes = 64ull << 20;
    c.phys_bytes = 16ull << 20;
    c.backing = mode;
    c.populate = populate;
    auto vm = Vmalloc::create(c).vm;
    auto a = vm->vmalloc(256 * P);
    rusage before{}, after{};
    getrusage(RUSAGE_SELF, &before);
    for (std::uint64_t i = 0; i < 256; ++i) static_cast<volatile char*>(a.addr)[i * P] = 1;
    getrusage(RUSAGE_SELF, &after);
    return after.ru_minflt - before.ru_minflt;
  };
  for (BackingMode mode : {BackingMode::kAnon, BackingMode::kMemfd}) {
    SCOPED_TRACE(backing_mode_name(mode));
    // Compared with each other, not with 0: sanitizer shadow memory faults on first touch too.
    const long eager = faults_touching(mode, true), lazy = faults_touching(mode, false);
    EXPECT_GE(lazy - eager, 200) << "populate saved no faults: " << eager << " populated, " << lazy << " not";
  }
}

TEST(Vmalloc, BackingNoneIsAddressSpaceOnly) {
  auto vm = make(BackingMode::kNone, 64ull << 20, 64 << 10);  // 16 pages of physical memory
  auto a = vm->vmalloc(1ull << 20);                           // 256 pages: no pages are taken
  ASSERT_TRUE(a.ok()) << failure_name(a.failure);
  EXPECT_EQ(vm->stats().phys.free_pages, 16u);
  EXPECT_FALSE(vm->vmalloc_to_pfn(a.addr).has_value());
  EXPECT_EQ(vm->kmalloc(32 * P).failure, FailureKind::kNoPhysicalMemory);  // kmalloc still is physical
  EXPECT_EQ(vm->check(), "");
}

TEST(Vmalloc, HugeAreasAreMadeOfWhole2MiBBlocks) {
  auto vm = make(BackingMode::kMemfd, 256ull << 20, 16ull << 20);
  auto small = vm->vmalloc(P);  // so the huge area cannot start at offset 0 by accident
  auto h = vm->vmalloc_huge((4ull << 20) - 100);
  ASSERT_TRUE(h.ok()) << failure_name(h.failure);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(h.addr) % kHugeBytes, 0u);
  for (std::uint64_t page = 0; page < 1024; ++page) {
    const std::uint64_t pfn = *vm->vmalloc_to_pfn(static_cast<char*>(h.addr) + page * P);
    if (page % 512 == 0) {
      EXPECT_EQ(pfn % 512, 0u) << page;  // each 2 MiB starts a naturally aligned block
    } else {
      EXPECT_EQ(pfn, *vm->vmalloc_to_pfn(static_cast<char*>(h.addr) + (page - 1) * P) + 1);
    }
  }
  EXPECT_EQ(vm->stats().huge_areas, 1u);
  std::memset(h.addr, 1, (4ull << 20) - 100);
  EXPECT_EQ(vm->check(), "");
  EXPECT_EQ(vm->vfree(h.addr), ReleaseStatus::kOk);
  EXPECT_EQ(vm->stats().huge_areas, 0u);
  EXPECT_EQ(vm->vfree(small.addr), ReleaseStatus::kOk);
}

// With no free 2 MiB block (every other page held by kmalloc), vmalloc_huge falls back to pages.
TEST(Vmalloc, HugeFallsBackToPagesOnPhysicalFragmentation) {
  auto vm = make(BackingMode::kMemfd, 256ull << 20, 8ull << 20);  // 2048 pages
  std::vector<void*> blocks;
  for (int i = 0; i < 2048; ++i) blocks.push_back(vm->kmalloc(P).addr);
  for (int i = 0; i < 2048; i += 2) ASSERT_EQ(vm->kfree(blocks[i]), ReleaseStatus::kOk);
  auto h = vm->vmalloc_huge(2ull << 20);
  ASSERT_TRUE(h.ok()) << failure_name(h.failure);
  EXPECT_EQ(vm->stats().huge_areas, 0u);
  EXPECT_EQ(vm->stats().huge_fallbacks, 1u);
  EXPECT_EQ(runs_of(*vm, static_cast<char*>(h.addr), 512), 512);  // every page its own run
  EXPECT_EQ(vm->check(), "");
}

TEST(Vmalloc, AnonHugeAreasGetTransparentHugePages) {
  std::FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  char mode[128] = {};
  if (f != nullptr) {
    if (std::fgets(mode, sizeof mode, f) == nullptr) mode[0] = 0;
    std::fclose(f);
  }
  if (std::strstr(mode, "[never]") != nullptr || mode[0] == 0) GTEST_SKIP() << "THP is off here: " << mode;
  auto vm = make(BackingMode::kAnon, 256ull << 20, 64ull << 20);
  auto h = vm->vmalloc_huge(8ull << 20);
  ASSERT_TRUE(h.ok());
  std::memset(h.addr, 1, 8ull << 20);
  const std::uint64_t backed = vm->huge_backed_bytes(h.addr);
  EXPECT_LE(backed, 8ull << 20);
  EXPECT_GT(backed, 0u) << "THP mode '" << mode << "' granted no huge page to an 8 MiB MADV_HUGEPAGE area";
  auto small = vm->vmalloc(8ull << 20);  // no MADV_HUGEPAGE: THP in madvise mode gives none
  std::memset(small.addr, 1, 8ull << 20);
  if (std::strstr(mode, "[madvise]") != nullptr) {
    EXPECT_EQ(vm->huge_backed_bytes(small.addr), 0u);
  }
}

// 1e5 random mixed ops (vmalloc, vzalloc, kmalloc, kvmalloc, vmap, frees, purges) in each
// backing; check() every 500 ops and at the end; every area's first byte carries its own tag,
// so any two areas sharing a page would be caught at its free.
TEST(Vmalloc, RandomMixedOpsKeepEveryInvariant) {
  for (BackingMode mode : {BackingMode::kNone, BackingMode::kAnon, BackingMode::kMemfd}) {
    for (std::uint64_t seed : seeds_to_run(1, 2)) {
      SCOPED_TRACE(std::string(backing_mode_name(mode)) + " " + seed_note(seed));
      std::mt19937_64 rng(seed);
      auto vm = make(mode, 32ull << 20, 4ull << 20, rng() % 2 ? 0 : 64);
      struct Live {
        void* addr;
        int kind;  // 0 vmalloc, 1 kmalloc, 2 kvmalloc, 3 vmap, 4 vm_map_ram, 5 vmalloc_huge
        std::vector<std::uint64_t> pfns;
        unsigned char tag;
      };
      std::vector<Live> live;
      const bool real = mode != BackingMode::kNone;
      for (int op = 0; op < 50000; ++op) {
        const auto r = rng() % 100;
        if (r < 50 || live.empty()) {
          int kind = static_cast<int>(rng() % 6);
          if (kind == 5 && rng() % 8 != 0) kind = 0;  // huge areas are big: keep them rare
          const std::uint64_t size = (rng() % 6 == 0) ? (rng() % 64 + 1) * P : rng() % (3 * P) + 1;
          Live l{nullptr, kind, {}, static_cast<unsigned char>(rng())};
          VmallocResult res;
          if (kind == 0) res = rng() % 2 ? vm->vmalloc(size) : vm->vzalloc(size);
          if (kind == 1) res = vm->kmalloc(size);
          if (kind == 2) res = vm->kvmalloc(size);
          if (kind == 3) {
            if (vm->alloc_pages(size / P + 1, l.pfns) != FailureKind::kNone) continue;
            res = vm->vmap(l.pfns);
            if (!res.ok()) vm->free_pages(l.pfns);
          }
          if (kind == 4) {
            if (vm->alloc_pages(size / P + 1, l.pfns) != FailureKind::kNone) continue;
            res = vm->vm_map_ram(l.pfns);
            if (!res.ok()) vm->free_pages(l.pfns);
          }
          if (kind == 5) res = vm->vmalloc_huge((2ull << 20) + size);
          if (!res.ok()) {
            ASSERT_NE(res.failure, FailureKind::kOsError) << "op " << op << " errno " << res.os_errno;
            continue;
          }
          l.addr = res.addr;
          if (real || kind == 1 || (kind == 2 && vm->phys().virt_to_pfn(res.addr))) *static_cast<unsigned char*>(l.addr) = l.tag;
          live.push_back(std::move(l));
        } else if (r < 97) {
          const std::size_t i = rng() % live.size();
          Live l = std::move(live[i]);
          live[i] = std::move(live.back());
          live.pop_back();
          if (real || l.kind == 1 || (l.kind == 2 && vm->phys().virt_to_pfn(l.addr))) {
            ASSERT_EQ(*static_cast<unsigned char*>(l.addr), l.tag) << "op " << op << ": someone else wrote here";
          }
          ReleaseStatus s = l.kind == 0 || l.kind == 5 ? vm->vfree(l.addr)
                            : l.kind == 1              ? vm->kfree(l.addr)
                            : l.kind == 2              ? vm->kvfree(l.addr)
                            : l.kind == 3              ? vm->vunmap(l.addr)
                                                       : vm->vm_unmap_ram(l.addr, l.pfns.size());
          ASSERT_EQ(s, ReleaseStatus::kOk) << "op " << op;
          if (l.kind == 3 || l.kind == 4) vm->free_pages(l.pfns);
        } else {
          vm->purge();
        }
        if (op % 500 == 0) {
          ASSERT_EQ(vm->check(), "") << "op " << op;
        }
      }
      ASSERT_EQ(vm->check(), "");
    }
  }
}

// check(CheckDepth::kStructure) is the level a fuzz target runs after every op: it must agree with
// kFull on a healthy instance and issue no system call at all, while kFull probes the aliasing
// through a second mapping (map_shared and unmap of each sampled pfn).
TEST(Vmalloc, StructureCheckIssuesNoSystemCall) {
  for (BackingMode mode : {BackingMode::kNone, BackingMode::kAnon, BackingMode::kMemfd}) {
    SCOPED_TRACE(backing_mode_name(mode));
    RecordingOs os(linux_os());
    VmallocConfig c;
    c.space.region_bytes = 4ull << 20;
    c.space.lazy_threshold_pages = 8;
    c.space.os = &os;
    c.phys_bytes = 4ull << 20;
    c.backing = mode;
    auto created = Vmalloc::create(c);
    ASSERT_NE(created.vm, nullptr) << created.message;
    Vmalloc& vm = *created.vm;
    std::vector<void*> areas;
    for (std::uint64_t i = 1; i <= 12; ++i) areas.push_back(vm.vmalloc(i * P).addr);
    for (std::size_t i = 0; i < areas.size(); i += 2) ASSERT_EQ(vm.vfree(areas[i]), ReleaseStatus::kOk);
    const std::size_t calls = os.calls().size();
    EXPECT_EQ(vm.check(CheckDepth::kStructure), "");
    EXPECT_EQ(os.calls().size(), calls) << "kStructure issued a system call";
    EXPECT_EQ(vm.check(CheckDepth::kFull), "");
    EXPECT_GT(os.calls().size(), calls) << "kFull probed nothing";
  }
}

}  // namespace
}  // namespace vmfrag
