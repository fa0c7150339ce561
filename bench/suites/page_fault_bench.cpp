// Suite 3: page faults. First write touch of every page of a fresh 2 MiB area (512 pages), timed
// alone (manual time: creating and freeing the area are outside it), in five kinds of memory:
//   BM_FirstTouchVmallocMemfd  a vmfrag vmalloc area, backing memfd, populate off. vfree keeps the
//                              memfd's pages (no hole punch), so after the first iteration these
//                              are warm page-cache pages: the fault maps, it does not allocate.
//   BM_FirstTouchVmallocAnon   a vmfrag vmalloc area, backing anon, populate off (fresh pages:
//                              vfree's MADV_DONTNEED frees them).
//   BM_FirstTouchFreshMemfd    a raw memfd mapping whose pages are punched out between iterations
//                              (fallocate PUNCH_HOLE): every fault allocates a page.
//   BM_FirstTouchAnon          raw anonymous memory, MADV_NOHUGEPAGE: one 4 KiB fault per page.
//   BM_FirstTouchAnonHuge      raw anonymous memory, 2 MiB aligned, MADV_HUGEPAGE: one fault per
//                              2 MiB where THP grants it; `thp_fraction` = AnonHugePages / size.
// Counters: ns_per_page (timed touch only), minor-faults etc. per page (whole loop: the set-up
// outside the timed part makes no faults).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

#include "allocator/core/assert.h"
#include "allocator/vmalloc/vmalloc.h"
#include "bench/perf/benchmark_perf.h"
#include "bench/suites/suites.h"

namespace vmfrag::bench {
namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kHuge = 2ull << 20;

// Writes one byte per page; returns the seconds it took.
double touch_pages(char* p, std::uint64_t pages) {
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < pages; ++i) static_cast<volatile char*>(p)[i * kPage] = 1;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void finish(benchmark::State& state, PerfCounters& perf, double seconds, std::uint64_t pages) {
  const double total_pages = static_cast<double>(state.iterations() * pages);
  perf.report(state, total_pages);
  state.counters["ns_per_page"] = seconds * 1e9 / total_pages;
  state.SetItemsProcessed(static_cast<std::int64_t>(total_pages));
}

struct VmallocFixture : Fixture {
  explicit VmallocFixture(BackingMode backing) {
    VmallocConfig c;
    c.space.region_bytes = 256ull << 20;
    c.space.lazy_threshold_pages = 0;
    c.backing = backing;
    c.populate = false;
    c.phys_bytes = 64ull << 20;
    auto created = Vmalloc::create(c);
    VMF_CHECK(created.vm != nullptr, "Vmalloc::create: %s", created.message.c_str());
    vm = std::move(created.vm);
  }
  std::unique_ptr<Vmalloc> vm;
};

void first_touch_vmalloc(benchmark::State& state, BackingMode backing) {
  const auto pages = static_cast<std::uint64_t>(state.range(0));
  auto& f = fixture_slot<VmallocFixture>(std::string("faults/") + backing_mode_name(backing),
                                         [&] { return std::make_unique<VmallocFixture>(backing); });
  double seconds = 0;
  PerfCounters perf;
  perf.start();
  for (auto _ : state) {
    const VmallocResult r = f.vm->vmalloc(pages * kPage);
    if (!r.ok()) {
      state.SkipWithError("vmalloc failed");
      break;
    }
    const double s = touch_pages(static_cast<char*>(r.addr), pages);
    seconds += s;
    state.SetIterationTime(s);
    f.vm->vfree(r.addr);
  }
  finish(state, perf, seconds, pages);
}

void BM_FirstTouchVmallocMemfd(benchmark::State& state) {
  first_touch_vmalloc(state, BackingMode::kMemfd);
  state.SetLabel("memfd, warm page cache after the first iteration");
}
void BM_FirstTouchVmallocAnon(benchmark::State& state) {
  first_touch_vmalloc(state, BackingMode::kAnon);
  state.SetLabel("anon, fresh pages");
}

void BM_FirstTouchFreshMemfd(benchmark::State& state) {
  const auto pages = static_cast<std::uint64_t>(state.range(0));
  const std::uint64_t bytes = pages * kPage;
  const int fd = memfd_create("vmfrag-bench-faults", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    state.SkipWithError("memfd_create/ftruncate failed");
    return;
  }
  double seconds = 0;
  PerfCounters perf;
  perf.start();
  for (auto _ : state) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      state.SkipWithError("mmap failed");
      break;
    }
    const double s = touch_pages(static_cast<char*>(p), pages);
    seconds += s;
    state.SetIterationTime(s);
    munmap(p, bytes);
    (void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(bytes));
  }
  finish(state, perf, seconds, pages);
  close(fd);
  state.SetLabel("memfd, fresh pages (hole punched between iterations)");
}

void first_touch_anon(benchmark::State& state, bool huge) {
  const auto pages = static_cast<std::uint64_t>(state.range(0));
  const std::uint64_t bytes = pages * kPage;
  double seconds = 0;
  double thp_fraction = -1;
  PerfCounters perf;
  perf.start();
  for (auto _ : state) {
    // Over-map by 2 MiB so a 2 MiB-aligned run of `bytes` exists inside.
    char* raw = static_cast<char*>(mmap(nullptr, bytes + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (raw == MAP_FAILED) {
      state.SkipWithError("mmap failed");
      break;
    }
    char* p = reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(raw) + kHuge - 1) & ~(kHuge - 1));
    (void)madvise(p, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    const double s = touch_pages(p, pages);
    seconds += s;
    state.SetIterationTime(s);
    if (huge && thp_fraction < 0) {  // read once: outside the manually timed part
      std::uint64_t huge_bytes = 0;
      if (linux_os().anon_huge_bytes(p, bytes, &huge_bytes) != 0) huge_bytes = 0;  // unreadable: not granted
      thp_fraction = static_cast<double>(huge_bytes) / static_cast<double>(bytes);
    }
    munmap(raw, bytes + kHuge);
  }
  finish(state, perf, seconds, pages);
  if (huge) {
    state.counters["thp_fraction"] = thp_fraction;
    state.SetLabel(thp_fraction >= 1.0 ? "THP granted" : "THP NOT granted (see thp_fraction)");
  }
}

void BM_FirstTouchAnon(benchmark::State& state) { first_touch_anon(state, false); }
void BM_FirstTouchAnonHuge(benchmark::State& state) { first_touch_anon(state, true); }

}  // namespace

void register_page_fault_benchmarks(const Preset&) {
  const auto add = [](const char* name, void (*fn)(benchmark::State&)) {
    benchmark::RegisterBenchmark(name, fn)->Arg(512)->ArgNames({"pages"})->UseManualTime()->Unit(benchmark::kMicrosecond);
  };
  add("BM_FirstTouchVmallocMemfd", BM_FirstTouchVmallocMemfd);
  add("BM_FirstTouchVmallocAnon", BM_FirstTouchVmallocAnon);
  add("BM_FirstTouchFreshMemfd", BM_FirstTouchFreshMemfd);
  add("BM_FirstTouchAnon", BM_FirstTouchAnon);
  add("BM_FirstTouchAnonHuge", BM_FirstTouchAnonHuge);
}

}  // namespace vmfrag::bench
