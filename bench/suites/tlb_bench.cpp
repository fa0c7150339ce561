// Suite 4: TLB. A dependent random pointer chase (one 64-byte slot per step, a single random cycle
// through every slot, 256 loads per iteration) over a working set of 1 MiB ... 1 GiB, through:
//   BM_PointerChaseVmalloc    a vmfrag vmalloc area (backing memfd) whose 4 KiB pages are
//                             physically scattered: runs of 16 pfns with 16-pfn gaps (finer
//                             scattering would need one mmap per page, beyond vm.max_map_count)
//   BM_PointerChaseDirectMap  the same bytes, slot for slot, through vmfrag's direct map (a memfd
//                             mapping: 4 KiB pages here, since shmem THP is `never` — the kernel's
//                             direct map would use 2 MiB/1 GiB pages)
//   BM_PointerChaseAnonHuge   anonymous memory, 2 MiB aligned, MADV_HUGEPAGE; `thp_fraction` =
//                             AnonHugePages / size from /proc/self/smaps (below 1: THP not
//                             fully granted, and the label says so)
// Time per access = real_time / 256. Counters per access: the PMU's events where they open, and
// the TlbModel's (AMD Zen 3 defaults) over 2^20 steps of the same chain after 2^18 warm-up steps:
// model_l1_misses, model_walks. The model uses 2 MiB pages for the THP case only when THP was
// granted for the whole range, else 4 KiB.
#include <benchmark/benchmark.h>
#include <sys/mman.h>

#include <cstring>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "allocator/core/assert.h"
#include "allocator/vmalloc/vmalloc.h"
#include "bench/perf/benchmark_perf.h"
#include "allocator/core/splitmix64.h"
#include "bench/suites/suites.h"
#include "bench/tlb/tlb_model.h"

namespace vmfrag::bench {
namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kHuge = 2ull << 20;
constexpr std::uint64_t kSlot = 64;
constexpr int kLoadsPerIteration = 256;
constexpr std::uint64_t kScatterRun = 16;  // pages per physically contiguous run

enum Layout { kVmallocArea = 0, kDirectMap = 1, kAnonHuge = 2, kNoLayout = 3 };

// The three views of a working set, one random cycle through its slots (next[]), and which view
// the chain's pointers are currently written for.
struct ChaseFixture : Fixture {
  explicit ChaseFixture(std::uint64_t bytes) : bytes(bytes), slots(bytes / kSlot) {
    const std::uint64_t pages = bytes / kPage;
    VmallocConfig c;
    c.space.region_bytes = std::max<std::uint64_t>(4 * bytes, 64ull << 20);
    c.space.lazy_threshold_pages = 0;
    c.backing = BackingMode::kMemfd;
    c.phys_bytes = 2 * bytes + (16ull << 20);
    auto created = Vmalloc::create(c);
    VMF_CHECK(created.vm != nullptr, "Vmalloc::create: %s", created.message.c_str());
    vm = std::move(created.vm);
    // Scatter: take every page, give back every other run of 16; the area then gets those runs.
    std::vector<std::uint64_t> all, back;
    VMF_CHECK(vm->alloc_pages(vm->phys().page_count(), all) == FailureKind::kNone, "alloc_pages failed");
    for (std::uint64_t pfn : all)
      if ((pfn / kScatterRun) % 2 == 0) back.push_back(pfn);
    vm->free_pages(back);
    const VmallocResult r = vm->vmalloc(bytes);
    VMF_CHECK(r.ok(), "vmalloc of the chase area failed: %s", std::string(failure_name(r.failure)).c_str());
    area = static_cast<char*>(r.addr);
    for (std::uint64_t i = 0; i < pages; ++i) page_pfn.push_back(*vm->vmalloc_to_pfn(area + i * kPage));

    raw_anon = static_cast<char*>(mmap(nullptr, bytes + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    VMF_CHECK(raw_anon != MAP_FAILED, "mmap of the anon working set failed");
    anon = reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(raw_anon) + kHuge - 1) & ~(kHuge - 1));
    (void)madvise(anon, bytes, MADV_HUGEPAGE);
    std::memset(anon, 0, bytes);
    std::uint64_t huge = 0;
    if (linux_os().anon_huge_bytes(anon, bytes, &huge) != 0) huge = 0;  // unreadable smaps: not granted
    thp_fraction = static_cast<double>(huge) / static_cast<double>(bytes);

    // Sattolo's algorithm: a uniformly random single cycle through all slots.
    next.resize(slots);
    std::iota(next.begin(), next.end(), 0u);
    std::uint64_t state = 0x7ac0 + bytes;
    for (std::uint64_t i = slots - 1; i > 0; --i) std::swap(next[i], next[splitmix64_next(state) % i]);
  }
  ~ChaseFixture() override { munmap(raw_anon, bytes + kHuge); }

  [[nodiscard]] char* slot_address(Layout layout, std::uint64_t slot) const {
    const std::uint64_t offset = slot * kSlot;
    switch (layout) {
      case kVmallocArea: return area + offset;
      case kDirectMap:
        return static_cast<char*>(vm->phys().pfn_to_virt(page_pfn[offset / kPage])) + offset % kPage;
      default: return anon + offset;
    }
  }
  void lay_out(Layout layout) {
    if (written_for == layout) return;
    for (std::uint64_t i = 0; i < slots; ++i)
      *reinterpret_cast<void**>(slot_address(layout, i)) = slot_address(layout, next[i]);
    written_for = layout;
  }
  [[nodiscard]] unsigned model_page_shift(Layout layout) const {
    return layout == kAnonHuge && thp_fraction >= 1.0 ? 21 : 12;
  }
  // The model's counts for a layout, computed once per fixture (they depend only on the chain).
  const TlbCounts& model(Layout layout) {
    std::optional<TlbCounts>& cached = modelled[layout];
    if (!cached) cached = run_model(layout);
    return *cached;
  }
  TlbCounts run_model(Layout layout) const {
    TlbModel tlb(TlbConfig::zen3());
    std::uint64_t slot = 0;
    const unsigned shift = model_page_shift(layout);
    for (int i = 0; i < (1 << 18); ++i, slot = next[slot])
      tlb.access(reinterpret_cast<std::uintptr_t>(slot_address(layout, slot)), shift);
    tlb.reset_counts();
    for (int i = 0; i < (1 << 20); ++i, slot = next[slot])
      tlb.access(reinterpret_cast<std::uintptr_t>(slot_address(layout, slot)), shift);
    return tlb.counts();
  }

  std::uint64_t bytes, slots;
  std::unique_ptr<Vmalloc> vm;
  char* area = nullptr;
  std::vector<std::uint64_t> page_pfn;
  char* raw_anon = nullptr;
  char* anon = nullptr;
  double thp_fraction = 0;
  std::vector<std::uint32_t> next;
  Layout written_for = kNoLayout;
  std::optional<TlbCounts> modelled[kNoLayout];
};

void chase(benchmark::State& state, Layout layout) {
  const auto bytes = static_cast<std::uint64_t>(state.range(0)) << 20;
  auto& f = fixture_slot<ChaseFixture>("chase/" + std::to_string(bytes),
                                       [&] { return std::make_unique<ChaseFixture>(bytes); });
  f.lay_out(layout);
  const TlbCounts& modelled = f.model(layout);
  void* p = f.slot_address(layout, 0);
  PerfCounters perf;
  perf.start();
  for (auto _ : state) {
    for (int i = 0; i < kLoadsPerIteration; ++i) p = *static_cast<void**>(p);
    benchmark::DoNotOptimize(p);
  }
  const double accesses = static_cast<double>(state.iterations()) * kLoadsPerIteration;
  perf.report(state, accesses);
  state.SetItemsProcessed(static_cast<std::int64_t>(accesses));
  state.counters["loads_per_iteration"] = kLoadsPerIteration;
  state.counters["model_l1_misses"] = static_cast<double>(modelled.l1_misses) / static_cast<double>(modelled.accesses);
  state.counters["model_walks"] = static_cast<double>(modelled.walks) / static_cast<double>(modelled.accesses);
  state.counters["model_page_kib"] = static_cast<double>(1u << (f.model_page_shift(layout) - 10));
  if (layout == kAnonHuge) {
    state.counters["thp_fraction"] = f.thp_fraction;
    state.SetLabel(f.thp_fraction >= 1.0 ? "THP granted" : "THP NOT fully granted (see thp_fraction)");
  } else if (layout == kDirectMap) {
    state.SetLabel("4 KiB pages: shmem THP is never here");
  } else {
    state.SetLabel("4 KiB pages, pfns in runs of 16");
  }
}

void BM_PointerChaseVmalloc(benchmark::State& state) { chase(state, kVmallocArea); }
void BM_PointerChaseDirectMap(benchmark::State& state) { chase(state, kDirectMap); }
void BM_PointerChaseAnonHuge(benchmark::State& state) { chase(state, kAnonHuge); }

}  // namespace

void register_tlb_benchmarks(const Preset& preset) {
  const std::vector<std::int64_t> mib = preset.quick ? std::vector<std::int64_t>{1, 16}
                                                     : std::vector<std::int64_t>{1, 16, 256, 1024};
  for (std::int64_t m : mib) {
    using Fn = void (*)(benchmark::State&);
    const std::pair<const char*, Fn> variants[] = {{"BM_PointerChaseVmalloc", BM_PointerChaseVmalloc},
                                                   {"BM_PointerChaseDirectMap", BM_PointerChaseDirectMap},
                                                   {"BM_PointerChaseAnonHuge", BM_PointerChaseAnonHuge}};
    for (const auto& [name, fn] : variants) {
      benchmark::RegisterBenchmark(name, fn)->Arg(m)->ArgNames({"mib"})->Unit(benchmark::kNanosecond);
    }
  }
}

}  // namespace vmfrag::bench
