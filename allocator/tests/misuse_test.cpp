// Misuse and bad values at the public API (issue #15), as one table of cases run against the same
// state: a memfd Vmalloc holding a vmalloc area, a kmalloc block, a vmap area, two small vm_map_ram
// mappings in one block, a large vm_map_ram, an area freed and still lazily held and one freed and
// purged. Each case makes one bad call and checks that
//   * it is detected: the documented ReleaseStatus (a release is refused, counted as misuse, and
//     the misuse log's last line names the address) or the documented FailureKind (a clean
//     invalid-argument, or the failure the bad value really meets, e.g. no-physical-memory);
//   * the state is intact: areas, pages, mappings, free+lazy and live bytes, the address map of
//     live areas all as before, and check() passes;
//   * later operations are unaffected: every fixture handle is then released by its own function,
//     a purge leaves nothing behind, and a new vmalloc/vfree works.
// Bad configurations (regions, guards, physical sizes, vmap block sizes) get EINVAL from create()
// with a message naming the parameter, and leave no OS resource behind.
// Arithmetic on sizes near 2^64 runs under UBSan (non-recovering) in the asan flavour.
//
// What other tests already cover, and this table does not repeat:
//   virtual_space_test   VirtualSpace's own FreeStatus classification (interior, in-guard,
//                        not-allocated, outside, already-freed) and its size/region limits;
//   physical_memory_test PhysicalMemory sizes refused without touching the OS;
//   vmalloc_test         MisuseAcrossTheApis (a smoke test of the same release calls) and
//                        FailedCallsLeaveNoTrace (a real no-physical-memory);
//   harness/replay/ops_check  misuse on random states: the fuzz targets issue double, interior,
//                        foreign and cross-API frees after arbitrary operation sequences.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "allocator/os/fault_injection.h"
#include "allocator/tests/reliability_figures.h"
#include "allocator/vmalloc/vmalloc.h"

namespace vmfrag {
namespace {

constexpr std::uint64_t P = 4096;
constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

// The state every case starts from.
struct World {
  std::unique_ptr<Vmalloc> vm;
  char* base = nullptr;
  void* area = nullptr;          // vmalloc, 3 pages (+1 guard)
  void* kmem = nullptr;          // kmalloc, 2 pages (an order-1 block)
  void* vmapped = nullptr;       // vmap of vmap_pages
  void* ram_first = nullptr;     // small vm_map_ram, 3 pages, at the start of its block
  void* ram_second = nullptr;    // small vm_map_ram, 1 page, inside the same block
  void* ram_large = nullptr;     // large vm_map_ram, 80 pages: an area of its own
  void* lazily_freed = nullptr;  // vmalloc'd, vfree'd, still lazily held
  void* purged = nullptr;        // vmalloc'd, vfree'd and purged: free space again
  std::vector<std::uint64_t> vmap_pages, ram_first_pages, ram_second_pages, ram_large_pages;
};

World make_world() {
  World w;
  VmallocConfig c;
  c.space.region_bytes = 16ull << 20;   // room for a 4 MiB vmap block; small keeps 70 worlds cheap
  c.space.lazy_threshold_pages = 1000;  // frees stay lazily held until purge()
  c.phys_bytes = 4ull << 20;
  c.backing = BackingMode::kMemfd;
  auto created = Vmalloc::create(c);
  EXPECT_NE(created.vm, nullptr) << created.message;
  if (created.vm == nullptr) return w;
  w.vm = std::move(created.vm);
  Vmalloc& vm = *w.vm;
  w.base = static_cast<char*>(vm.space().base());
  auto must = [](const VmallocResult& r) {
    EXPECT_TRUE(r.ok()) << failure_name(r.failure);
    return r.addr;
  };
  w.area = must(vm.vmalloc(3 * P));
  w.kmem = must(vm.kmalloc(2 * P));
  EXPECT_EQ(vm.alloc_pages(2, w.vmap_pages), FailureKind::kNone);
  w.vmapped = must(vm.vmap(w.vmap_pages));
  EXPECT_EQ(vm.alloc_pages(3, w.ram_first_pages), FailureKind::kNone);
  w.ram_first = must(vm.vm_map_ram(w.ram_first_pages));
  EXPECT_EQ(vm.alloc_pages(1, w.ram_second_pages), FailureKind::kNone);
  w.ram_second = must(vm.vm_map_ram(w.ram_second_pages));
  EXPECT_EQ(vm.alloc_pages(80, w.ram_large_pages), FailureKind::kNone);
  w.ram_large = must(vm.vm_map_ram(w.ram_large_pages));
  w.lazily_freed = must(vm.vmalloc(2 * P));
  w.purged = must(vm.vmalloc(P));
  EXPECT_EQ(vm.vfree(w.purged), ReleaseStatus::kOk);
  vm.purge();
  EXPECT_EQ(vm.vfree(w.lazily_freed), ReleaseStatus::kOk);
  EXPECT_EQ(vm.check(), "");
  return w;
}

// What must not change. free + lazy bytes, not each: a failed allocation may purge-and-retry,
// which turns lazily-held bytes into free ones (documented), and changes nothing else.
struct Snapshot {
  std::uint64_t vmalloc_areas, vmap_areas, kmalloc_blocks, mapped_pages, mappings_in_use;
  std::uint64_t free_pages, free_or_lazy_bytes, live_bytes, live_areas;
  std::vector<std::uint64_t> live_offsets;
  friend bool operator==(const Snapshot&, const Snapshot&) = default;
};

Snapshot snapshot(Vmalloc& vm) {
  const VmallocStats s = vm.stats();
  Snapshot snap{s.vmalloc_areas, s.vmap_areas,  s.kmalloc_blocks,           s.mapped_pages, s.mappings_in_use,
                s.phys.free_pages, s.space.free_bytes + s.space.lazy_bytes, s.space.live_bytes, s.space.live_areas, {}};
  for (const MapEntry& e : vm.space().address_map())
    if (e.state == MapEntry::State::kBusy) snap.live_offsets.push_back(e.offset);
  return snap;
}

// A case's call: a release (its status, and the address the log must name) or an allocation.
struct Outcome {
  std::string what;               // release_status_name or failure_name
  const void* address = nullptr;  // for a refused release: the address it was given
  bool misuse = false;            // a refused release: counted and logged
};

Outcome release(ReleaseStatus s, const void* addr) {
  return {release_status_name(s), addr, s == ReleaseStatus::kUnknown || s == ReleaseStatus::kWrongFunction};
}
Outcome allocation(const VmallocResult& r) { return {std::string(failure_name(r.failure))}; }
Outcome allocation(FailureKind k) { return {std::string(failure_name(k))}; }

struct Case {
  const char* name;
  const char* expected;
  std::function<Outcome(World&)> call;
};

int static_object = 0;

std::vector<Case> cases() {
  static int another_static_object = 0;
  auto static_address = [] { return static_cast<const void*>(&static_object); };
  return {
      // vfree
      {"vfree of an unknown address in free space", "unknown",
       [](World& w) { return release(w.vm->vfree(w.base + (12ull << 20)), w.base + (12ull << 20)); }},
      {"vfree of an interior address", "unknown",
       [](World& w) {
         char* a = static_cast<char*>(w.area) + P;
         return release(w.vm->vfree(a), a);
       }},
      {"vfree of an unaligned interior address", "unknown",
       [](World& w) {
         char* a = static_cast<char*>(w.area) + 1;
         return release(w.vm->vfree(a), a);
       }},
      {"vfree of an area's guard page", "unknown",
       [](World& w) {
         char* a = static_cast<char*>(w.area) + 3 * P;
         return release(w.vm->vfree(a), a);
       }},
      {"vfree of an area already freed (lazily held)", "unknown",
       [](World& w) { return release(w.vm->vfree(w.lazily_freed), w.lazily_freed); }},
      {"vfree of an area already freed and purged", "unknown",
       [](World& w) { return release(w.vm->vfree(w.purged), w.purged); }},
      {"vfree of a foreign pointer (static object)", "unknown",
       [static_address](World& w) { return release(w.vm->vfree(static_address()), static_address()); }},
      {"vfree of a foreign pointer (heap)", "unknown",
       [](World& w) {
         auto heap = std::make_unique<char[]>(64);
         const void* a = heap.get();
         return release(w.vm->vfree(a), a);
       }},
      {"vfree of the highest address", "unknown",
       [](World& w) {
         const void* a = reinterpret_cast<const void*>(~std::uintptr_t{0});
         return release(w.vm->vfree(a), a);
       }},
      {"vfree of kmalloc memory", "wrong-function", [](World& w) { return release(w.vm->vfree(w.kmem), w.kmem); }},
      {"vfree of a vmap area", "wrong-function",
       [](World& w) { return release(w.vm->vfree(w.vmapped), w.vmapped); }},
      {"vfree of a vm_map_ram block's first mapping", "wrong-function",
       [](World& w) { return release(w.vm->vfree(w.ram_first), w.ram_first); }},
      {"vfree of a vm_map_ram mapping inside a block", "unknown",
       [](World& w) { return release(w.vm->vfree(w.ram_second), w.ram_second); }},
      {"vfree of a large vm_map_ram area", "wrong-function",
       [](World& w) { return release(w.vm->vfree(w.ram_large), w.ram_large); }},
      // kfree
      {"kfree of a vmalloc address", "wrong-function", [](World& w) { return release(w.vm->kfree(w.area), w.area); }},
      {"kfree of an interior kmalloc address", "unknown",
       [](World& w) {
         char* a = static_cast<char*>(w.kmem) + 8;
         return release(w.vm->kfree(a), a);
       }},
      {"kfree of a kmalloc block's second page", "unknown",
       [](World& w) {
         char* a = static_cast<char*>(w.kmem) + P;
         return release(w.vm->kfree(a), a);
       }},
      {"kfree of a direct-map page that is not kmalloc memory", "unknown",
       [](World& w) {
         void* a = w.vm->phys().pfn_to_virt(w.vmap_pages[0]);
         return release(w.vm->kfree(a), a);
       }},
      {"kfree of a foreign pointer", "unknown",
       [static_address](World& w) { return release(w.vm->kfree(static_address()), static_address()); }},
      // vunmap
      {"vunmap of a vmalloc area", "wrong-function", [](World& w) { return release(w.vm->vunmap(w.area), w.area); }},
      {"vunmap of kmalloc memory", "wrong-function", [](World& w) { return release(w.vm->vunmap(w.kmem), w.kmem); }},
      {"vunmap of a large vm_map_ram area", "wrong-function",
       [](World& w) { return release(w.vm->vunmap(w.ram_large), w.ram_large); }},
      {"vunmap of an interior vmap address", "unknown",
       [](World& w) {
         char* a = static_cast<char*>(w.vmapped) + P;
         return release(w.vm->vunmap(a), a);
       }},
      // vm_unmap_ram
      {"vm_unmap_ram of a small mapping with one page too many", "wrong-function",
       [](World& w) { return release(w.vm->vm_unmap_ram(w.ram_first, 4), w.ram_first); }},
      {"vm_unmap_ram of a small mapping with one page too few", "wrong-function",
       [](World& w) { return release(w.vm->vm_unmap_ram(w.ram_first, 2), w.ram_first); }},
      {"vm_unmap_ram of a small mapping with 0 pages", "wrong-function",
       [](World& w) { return release(w.vm->vm_unmap_ram(w.ram_second, 0), w.ram_second); }},
      {"vm_unmap_ram of a small mapping with 2^64-1 pages", "wrong-function",
       [](World& w) { return release(w.vm->vm_unmap_ram(w.ram_second, kMax), w.ram_second); }},
      {"vm_unmap_ram of a large mapping with the wrong count", "wrong-function",
       [](World& w) { return release(w.vm->vm_unmap_ram(w.ram_large, 79), w.ram_large); }},
      {"vm_unmap_ram of a vmalloc area", "wrong-function",
       [](World& w) { return release(w.vm->vm_unmap_ram(w.area, 3), w.area); }},
      {"vm_unmap_ram of a vmap area", "wrong-function",
       [](World& w) { return release(w.vm->vm_unmap_ram(w.vmapped, 2), w.vmapped); }},
      {"vm_unmap_ram of kmalloc memory", "wrong-function",
       [](World& w) { return release(w.vm->vm_unmap_ram(w.kmem, 2), w.kmem); }},
      {"vm_unmap_ram of an address inside a small mapping", "unknown",
       [](World& w) {
         char* a = static_cast<char*>(w.ram_first) + P;
         return release(w.vm->vm_unmap_ram(a, 3), a);
       }},
      // kvfree
      {"kvfree of an interior vmalloc address", "unknown",
       [](World& w) {
         char* a = static_cast<char*>(w.area) + P;
         return release(w.vm->kvfree(a), a);
       }},
      {"kvfree of a vmap area", "wrong-function",
       [](World& w) { return release(w.vm->kvfree(w.vmapped), w.vmapped); }},
      {"kvfree of a foreign pointer", "unknown",
       [](World& w) { return release(w.vm->kvfree(&another_static_object), &another_static_object); }},
      // sizes
      {"vmalloc of 0 bytes", "invalid-argument", [](World& w) { return allocation(w.vm->vmalloc(0)); }},
      {"vmalloc of 2^64-1 bytes", "invalid-argument", [](World& w) { return allocation(w.vm->vmalloc(kMax)); }},
      {"vmalloc of 2^64-4095 bytes (the page rounding overflows)", "invalid-argument",
       [](World& w) { return allocation(w.vm->vmalloc(kMax - P + 2)); }},
      {"vmalloc of 2^64-4096 bytes (the guard overflows)", "invalid-argument",
       [](World& w) { return allocation(w.vm->vmalloc(kMax - P + 1)); }},
      {"vmalloc of 2^63 bytes (fits in 64 bits, not in the region)", "no-virtual-space",
       [](World& w) { return allocation(w.vm->vmalloc(std::uint64_t{1} << 63)); }},
      {"vzalloc of 2^64-1 bytes", "invalid-argument", [](World& w) { return allocation(w.vm->vzalloc(kMax)); }},
      {"vzalloc of 0 bytes", "invalid-argument", [](World& w) { return allocation(w.vm->vzalloc(0)); }},
      {"vmalloc_huge of 2^64-1 bytes", "invalid-argument",
       [](World& w) { return allocation(w.vm->vmalloc_huge(kMax)); }},
      {"vmalloc_huge of 2^64-2 MiB-1 bytes (rounds up to 2^64-2 MiB)", "no-virtual-space",
       [](World& w) { return allocation(w.vm->vmalloc_huge(kMax - kHugeBytes)); }},
      {"vmalloc_huge of 2^64-2 MiB bytes (too large to round up)", "no-virtual-space",
       [](World& w) { return allocation(w.vm->vmalloc_huge(kMax - kHugeBytes + 1)); }},
      {"vmalloc_huge of 0 bytes", "invalid-argument", [](World& w) { return allocation(w.vm->vmalloc_huge(0)); }},
      {"kmalloc of 0 bytes", "invalid-argument", [](World& w) { return allocation(w.vm->kmalloc(0)); }},
      {"kmalloc of 4 MiB + 1 bytes (above the largest order)", "invalid-argument",
       [](World& w) { return allocation(w.vm->kmalloc((4ull << 20) + 1)); }},
      {"kmalloc of 2^64-1 bytes", "invalid-argument", [](World& w) { return allocation(w.vm->kmalloc(kMax)); }},
      {"kvmalloc of 2^64-1 bytes", "invalid-argument", [](World& w) { return allocation(w.vm->kvmalloc(kMax)); }},
      {"kvmalloc of 0 bytes", "invalid-argument", [](World& w) { return allocation(w.vm->kvmalloc(0)); }},
      {"alloc_pages of 2^64-1 pages", "no-physical-memory",
       [](World& w) {
         std::vector<std::uint64_t> pfns;
         const FailureKind k = w.vm->alloc_pages(kMax, pfns);
         EXPECT_TRUE(pfns.empty());
         return allocation(k);
       }},
      {"vmap of no pages", "invalid-argument", [](World& w) { return allocation(w.vm->vmap({})); }},
      {"vmap of a pfn beyond physical memory", "invalid-argument",
       [](World& w) { return allocation(w.vm->vmap({w.vmap_pages[0], w.vm->phys().page_count()})); }},
      {"vmap of pfn 2^64-1", "invalid-argument", [](World& w) { return allocation(w.vm->vmap({kMax})); }},
      {"vm_map_ram of no pages", "invalid-argument", [](World& w) { return allocation(w.vm->vm_map_ram({})); }},
      {"vm_map_ram of a pfn beyond physical memory", "invalid-argument",
       [](World& w) { return allocation(w.vm->vm_map_ram({w.vm->phys().page_count()})); }},
      // alignments
      {"vmalloc with alignment 0", "invalid-argument", [](World& w) { return allocation(w.vm->vmalloc(P, 0)); }},
      {"vmalloc with alignment 3", "invalid-argument", [](World& w) { return allocation(w.vm->vmalloc(P, 3)); }},
      {"vmalloc with alignment 2048 (below a page)", "invalid-argument",
       [](World& w) { return allocation(w.vm->vmalloc(P, 2048)); }},
      {"vmalloc with alignment 3 pages", "invalid-argument",
       [](World& w) { return allocation(w.vm->vmalloc(P, 3 * P)); }},
      {"vmalloc with alignment 2^64-1", "invalid-argument",
       [](World& w) { return allocation(w.vm->vmalloc(P, kMax)); }},
      // 2^63 is a power of two: only offset 0 is aligned, and it is taken, so the fit fails with
      // enough bytes free (alignment beyond the base's is of offsets, see virtual_space.h).
      {"vmalloc with alignment 2^63", "virtual-fragmentation",
       [](World& w) { return allocation(w.vm->vmalloc(P, std::uint64_t{1} << 63)); }},
      {"vmalloc of 2^64-2^63 bytes with alignment 2^63", "no-virtual-space",
       [](World& w) { return allocation(w.vm->vmalloc(std::uint64_t{1} << 63, std::uint64_t{1} << 63)); }},
      // sub-ranges (VirtualSpace::vmalloc_range, the address-space layer's public entry)
      {"vmalloc_range with an empty range", "invalid-argument",
       [](World& w) { return allocation(w.vm->space().vmalloc_range(P, P, 8 * P, 8 * P).failure); }},
      {"vmalloc_range with lo above hi", "invalid-argument",
       [](World& w) { return allocation(w.vm->space().vmalloc_range(P, P, 16 * P, 8 * P).failure); }},
      {"vmalloc_range with an unaligned lo", "invalid-argument",
       [](World& w) { return allocation(w.vm->space().vmalloc_range(P, P, 100, 16 * P).failure); }},
      {"vmalloc_range with hi past the region", "invalid-argument",
       [](World& w) {
         return allocation(w.vm->space().vmalloc_range(P, P, 0, w.vm->space().region_bytes() + P).failure);
       }},
      {"vmalloc_range with hi at 2^64-4096", "invalid-argument",
       [](World& w) { return allocation(w.vm->space().vmalloc_range(P, P, 0, kMax - P + 1).failure); }},
      {"vmalloc_range of 2^64-1 bytes in a valid range", "invalid-argument",
       [](World& w) { return allocation(w.vm->space().vmalloc_range(kMax, P, 0, 16 * P).failure); }},
  };
}

// Every fixture handle released by its own function, a purge, and nothing may be left.
void release_everything_and_check(World& w) {
  Vmalloc& vm = *w.vm;
  EXPECT_EQ(vm.vfree(w.area), ReleaseStatus::kOk);
  EXPECT_EQ(vm.kfree(w.kmem), ReleaseStatus::kOk);
  EXPECT_EQ(vm.vunmap(w.vmapped), ReleaseStatus::kOk);
  EXPECT_EQ(vm.vm_unmap_ram(w.ram_first, 3), ReleaseStatus::kOk);
  EXPECT_EQ(vm.vm_unmap_ram(w.ram_second, 1), ReleaseStatus::kOk);
  EXPECT_EQ(vm.vm_unmap_ram(w.ram_large, 80), ReleaseStatus::kOk);
  for (auto* pages : {&w.vmap_pages, &w.ram_first_pages, &w.ram_second_pages, &w.ram_large_pages})
    vm.free_pages(*pages);
  vm.purge();
  const VmallocStats s = vm.stats();
  EXPECT_EQ(s.vmalloc_areas + s.vmap_areas + s.kmalloc_blocks + s.mapped_pages + s.space.live_bytes +
                s.space.lazy_bytes,
            0u);
  EXPECT_EQ(s.phys.free_pages, s.phys.total_pages);
  const VmallocResult again = vm.vmalloc(5 * P);
  ASSERT_TRUE(again.ok()) << failure_name(again.failure);
  static_cast<char*>(again.addr)[0] = 1;
  EXPECT_EQ(vm.vfree(again.addr), ReleaseStatus::kOk);
  EXPECT_EQ(vm.check(), "");
}

TEST(Misuse, EveryCaseIsDetectedAndChangesNothing) {
  CaseTally tally;
  std::size_t releases = 0, bad_values = 0;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    tally.begin();
    World w = make_world();
    ASSERT_NE(w.vm, nullptr);
    Vmalloc& vm = *w.vm;
    const Snapshot before = snapshot(vm);
    const std::uint64_t misuse_before = vm.stats().misuse_count;
    const Outcome got = c.call(w);
    EXPECT_EQ(got.what, c.expected);
    const std::vector<std::string> log = vm.misuse_log();
    if (got.misuse) {
      ++releases;
      EXPECT_EQ(vm.stats().misuse_count, misuse_before + 1);
      char address[32];
      std::snprintf(address, sizeof address, "%p", got.address);
      ASSERT_FALSE(log.empty());
      EXPECT_NE(log.back().find(address), std::string::npos) << "the log line does not name " << address << ": "
                                                             << log.back();
    } else {
      ++bad_values;
      EXPECT_EQ(vm.stats().misuse_count, misuse_before);
    }
    EXPECT_TRUE(snapshot(vm) == before) << "the state changed";
    EXPECT_EQ(vm.check(), "");
    release_everything_and_check(w);
    tally.end();
  }
  std::printf("[ misuse ] %zu cases (%zu refused releases, %zu bad values), %zu detected cleanly\n", tally.tried(),
              releases, bad_values, tally.passed());
  tally.record();
}

// A bad configuration: EINVAL naming the parameter, and every OS resource taken on the way given
// back (the region is reserved before the physical memory is checked).
struct ConfigCase {
  const char* name;
  const char* parameter;  // the message names it
  std::function<void(VmallocConfig&)> set;
};

TEST(Misuse, BadConfigurationsAreRefusedWithNothingLeft) {
  const std::vector<ConfigCase> config_cases = {
      {"region of 0 bytes", "region_bytes", [](VmallocConfig& c) { c.space.region_bytes = 0; }},
      {"region not a page multiple", "region_bytes", [](VmallocConfig& c) { c.space.region_bytes = (64ull << 20) + 1; }},
      {"region below 64 KiB", "region_bytes", [](VmallocConfig& c) { c.space.region_bytes = 60 << 10; }},
      {"region above 16 TiB", "region_bytes", [](VmallocConfig& c) { c.space.region_bytes = (16ull << 40) + P; }},
      {"region of 2^64-4096 bytes", "region_bytes", [](VmallocConfig& c) { c.space.region_bytes = kMax - P + 1; }},
      {"guard pages filling the region", "guard_pages", [](VmallocConfig& c) { c.space.guard_pages = 16384; }},
      {"2^32-1 guard pages", "guard_pages",
       [](VmallocConfig& c) { c.space.guard_pages = std::numeric_limits<std::uint32_t>::max(); }},
      {"physical memory of 0 bytes", "bytes", [](VmallocConfig& c) { c.phys_bytes = 0; }},
      {"physical memory not a page multiple", "bytes", [](VmallocConfig& c) { c.phys_bytes = (16ull << 20) + 7; }},
      {"physical memory above 1 TiB", "bytes", [](VmallocConfig& c) { c.phys_bytes = kMaxPhysicalBytes + P; }},
      {"physical memory of 2^64-4096 bytes", "bytes", [](VmallocConfig& c) { c.phys_bytes = kMax - P + 1; }},
      {"vmap block of 0 pages", "vmap_block_pages", [](VmallocConfig& c) { c.vmap_block_pages = 0; }},
      {"vmap block of 100 pages (not a power of two)", "vmap_block_pages",
       [](VmallocConfig& c) { c.vmap_block_pages = 100; }},
      {"vmap block of 64 pages (below twice the largest small request)", "vmap_block_pages",
       [](VmallocConfig& c) { c.vmap_block_pages = 64; }},
      {"vmap block of 2^63 pages (its bytes overflow)", "vmap_block_pages",
       [](VmallocConfig& c) { c.vmap_block_pages = std::uint64_t{1} << 63; }},
  };
  CaseTally tally;
  for (const ConfigCase& c : config_cases) {
    SCOPED_TRACE(c.name);
    tally.begin();
    RecordingOs os(linux_os());
    VmallocConfig config;
    config.space.region_bytes = 64ull << 20;
    config.phys_bytes = 16ull << 20;
    config.space.os = &os;
    c.set(config);
    const Vmalloc::CreateResult r = Vmalloc::create(config);
    EXPECT_EQ(r.vm, nullptr);
    EXPECT_EQ(r.error, EINVAL);
    EXPECT_NE(r.message.find(c.parameter), std::string::npos) << r.message;
    std::uint64_t counts[static_cast<std::size_t>(OsCall::kCount)] = {};
    for (const OsCallRecord& call : os.calls()) ++counts[static_cast<std::size_t>(call.call)];
    auto count = [&](OsCall k) { return counts[static_cast<std::size_t>(k)]; };
    EXPECT_EQ(count(OsCall::kReserve), count(OsCall::kRelease)) << "a region was left reserved";
    EXPECT_EQ(count(OsCall::kMemfdCreate), count(OsCall::kCloseFd)) << "a memfd was left open";
    EXPECT_EQ(count(OsCall::kMapShared), count(OsCall::kUnmap)) << "a direct map was left mapped";
    tally.end();
  }
  std::printf("[ misuse ] %zu bad configurations, %zu refused cleanly\n", tally.tried(), tally.passed());
  tally.record();
}

}  // namespace
}  // namespace vmfrag
