// Suite 2: mapped operations. A vmalloc+vfree pair of 1, 16 or 256 pages in backing memfd or anon,
// eager (lazy 0, so every pair issues the same calls at the same address), with 1k or 20k 1-page
// areas live around it, beside:
//   BM_BareSyscallsPair  the exact system calls that pair issued, recorded through RecordingOs
//                        from the same Vmalloc and replayed raw (same addresses, same results)
//   BM_MallocFreePair    glibc malloc + free of the same bytes (untouched)
//   BM_AnonMmapPair      mmap(MAP_PRIVATE|MAP_ANONYMOUS) + munmap of the same bytes (unpopulated)
// vmfrag's pair populates its pages (MAP_POPULATE / MADV_POPULATE_WRITE) like the kernel's vmalloc;
// the bare replay does exactly the same work, so BM_VmallocMappedPair / BM_BareSyscallsPair is the
// allocator's own overhead. Counters: syscalls_per_pair (the recorded calls) and the perf events.
// BM_InterleavedMappedVsBare measures that ratio a second way: both sides from one fixture in
// alternating turns of at least 5 ms inside one loop, each turn timed on its own (wall time), so
// load that comes and goes hits both; counters vmfrag_ns, bare_ns, ratio.
#include <benchmark/benchmark.h>
#include <sys/mman.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "allocator/core/assert.h"
#include "allocator/vmalloc/vmalloc.h"
#include "bench/os/raw_syscalls.h"
#include "bench/perf/benchmark_perf.h"
#include "bench/suites/suites.h"

namespace vmfrag::bench {
namespace {

constexpr std::uint64_t kPage = 4096;

// A Vmalloc over a RecordingOs (allocator/os/fault_injection.h) with `live` 1-page areas, and the
// calls of one recorded pair of each size. The recorder is paused except while it records a pair,
// so the timed allocator pays one atomic load per OS call for it.
struct MappedFixture : Fixture {
  MappedFixture(BackingMode backing, std::uint64_t live) : os(linux_os()) {
    os.set_paused(true);
    VmallocConfig c;
    c.space.region_bytes = 1ull << 30;
    c.space.guard_pages = 1;
    c.space.lazy_threshold_pages = 0;
    c.space.os = &os;
    c.phys_bytes = 256ull << 20;
    c.backing = backing;
    auto created = Vmalloc::create(c);
    VMF_CHECK(created.vm != nullptr, "Vmalloc::create: %s", created.message.c_str());
    vm = std::move(created.vm);
    for (std::uint64_t i = 0; i < live; ++i) {
      const VmallocResult r = vm->vmalloc(kPage);
      VMF_CHECK(r.ok(), "filling area %llu failed: %s", static_cast<unsigned long long>(i), std::string(failure_name(r.failure)).c_str());
    }
  }
  std::vector<OsCallRecord> record_pair(std::uint64_t bytes) {
    return record_calls(os, [&] {
      const VmallocResult r = vm->vmalloc(bytes);
      VMF_CHECK(r.ok(), "recorded vmalloc failed");
      VMF_CHECK(vm->vfree(r.addr) == ReleaseStatus::kOk, "recorded vfree failed");
    });
  }
  RecordingOs os;
  std::unique_ptr<Vmalloc> vm;
};

MappedFixture& mapped_fixture(BackingMode backing, std::uint64_t live) {
  const std::string key = std::string("mapped/") + backing_mode_name(backing) + "/" + std::to_string(live);
  return fixture_slot<MappedFixture>(key, [&] { return std::make_unique<MappedFixture>(backing, live); });
}

BackingMode backing_arg(std::int64_t v) { return v == 0 ? BackingMode::kMemfd : BackingMode::kAnon; }

void BM_VmallocMappedPair(benchmark::State& state) {
  const BackingMode backing = backing_arg(state.range(0));
  const std::uint64_t bytes = static_cast<std::uint64_t>(state.range(1)) * kPage;
  MappedFixture& f = mapped_fixture(backing, static_cast<std::uint64_t>(state.range(2)));
  const std::size_t syscalls = f.record_pair(bytes).size();
  PerfCounters perf;
  perf.start();
  for (auto _ : state) {
    const VmallocResult r = f.vm->vmalloc(bytes);
    if (!r.ok()) {
      state.SkipWithError("vmalloc failed");
      break;
    }
    benchmark::DoNotOptimize(r.addr);
    f.vm->vfree(r.addr);
  }
  perf.report(state);
  state.counters["syscalls_per_pair"] = static_cast<double>(syscalls);
  state.SetLabel(backing_mode_name(backing));
}

void BM_BareSyscallsPair(benchmark::State& state) {
  const BackingMode backing = backing_arg(state.range(0));
  const std::uint64_t bytes = static_cast<std::uint64_t>(state.range(1)) * kPage;
  MappedFixture& f = mapped_fixture(backing, static_cast<std::uint64_t>(state.range(2)));
  const std::vector<OsCallRecord> calls = f.record_pair(bytes);
  std::string names;
  for (const OsCallRecord& c : calls) names += (names.empty() ? "" : " + ") + raw_syscall_name(c.call);
  PerfCounters perf;
  perf.start();
  int differences = 0;
  for (auto _ : state) differences += replay_raw(calls);
  perf.report(state);
  if (differences != 0) state.SkipWithError("the raw replay's results differ from the recorded calls");
  state.counters["syscalls_per_pair"] = static_cast<double>(calls.size());
  state.SetLabel(std::string(backing_mode_name(backing)) + ": " + names);
}

// Calls pair() until at least `seconds` of wall time have passed; adds time and count.
template <typename Pair>
void turn(Pair pair, double seconds, double* spent, double* pairs) {
  const auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
    for (int i = 0; i < 8; ++i) pair();
    *pairs += 8;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (elapsed < seconds);
  *spent += elapsed;
}

void BM_InterleavedMappedVsBare(benchmark::State& state) {
  constexpr double kTurnSeconds = 0.005;
  const BackingMode backing = backing_arg(state.range(0));
  const std::uint64_t bytes = static_cast<std::uint64_t>(state.range(1)) * kPage;
  MappedFixture& f = mapped_fixture(backing, static_cast<std::uint64_t>(state.range(2)));
  const std::vector<OsCallRecord> calls = f.record_pair(bytes);
  double vmfrag_s = 0, bare_s = 0, vmfrag_pairs = 0, bare_pairs = 0;
  int differences = 0;
  bool failed = false;
  for (auto _ : state) {
    turn([&] {
      const VmallocResult r = f.vm->vmalloc(bytes);
      if (!r.ok()) {
        failed = true;
        return;
      }
      f.vm->vfree(r.addr);
    }, kTurnSeconds, &vmfrag_s, &vmfrag_pairs);
    turn([&] { differences += replay_raw(calls); }, kTurnSeconds, &bare_s, &bare_pairs);
    if (failed || differences != 0) break;
  }
  if (failed) state.SkipWithError("vmalloc failed");
  if (differences != 0) state.SkipWithError("the raw replay's results differ from the recorded calls");
  const double vmfrag_ns = vmfrag_s * 1e9 / vmfrag_pairs, bare_ns = bare_s * 1e9 / bare_pairs;
  state.counters["vmfrag_ns"] = vmfrag_ns;
  state.counters["bare_ns"] = bare_ns;
  state.counters["ratio"] = vmfrag_ns / bare_ns;
  state.counters["syscalls_per_pair"] = static_cast<double>(calls.size());
  state.SetLabel(std::string(backing_mode_name(backing)) + ", alternating turns of >= 5 ms");
}

void BM_MallocFreePair(benchmark::State& state) {
  const std::size_t bytes = static_cast<std::size_t>(state.range(0)) * kPage;
  PerfCounters perf;
  perf.start();
  for (auto _ : state) {
    void* p = std::malloc(bytes);
    benchmark::DoNotOptimize(p);
    std::free(p);
  }
  perf.report(state);
}

void BM_AnonMmapPair(benchmark::State& state) {
  const std::size_t bytes = static_cast<std::size_t>(state.range(0)) * kPage;
  PerfCounters perf;
  perf.start();
  for (auto _ : state) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      state.SkipWithError("mmap failed");
      break;
    }
    benchmark::DoNotOptimize(p);
    munmap(p, bytes);
  }
  perf.report(state);
}

}  // namespace

void register_mapped_benchmarks(const Preset& preset) {
  const std::vector<std::int64_t> lives = preset.quick ? std::vector<std::int64_t>{1000}
                                                       : std::vector<std::int64_t>{1000, 20000};
  for (std::int64_t backing : {0, 1}) {
    for (std::int64_t live : lives) {
      for (std::int64_t pages : {1, 16, 256}) {
        benchmark::RegisterBenchmark("BM_VmallocMappedPair", BM_VmallocMappedPair)
            ->Args({backing, pages, live})->ArgNames({"backing", "pages", "live"})->Unit(benchmark::kNanosecond);
        benchmark::RegisterBenchmark("BM_BareSyscallsPair", BM_BareSyscallsPair)
            ->Args({backing, pages, live})->ArgNames({"backing", "pages", "live"})->Unit(benchmark::kNanosecond);
        benchmark::RegisterBenchmark("BM_InterleavedMappedVsBare", BM_InterleavedMappedVsBare)
            ->Args({backing, pages, live})->ArgNames({"backing", "pages", "live"})->Unit(benchmark::kNanosecond);
      }
    }
  }
  for (std::int64_t pages : {1, 16, 256}) {
    benchmark::RegisterBenchmark("BM_MallocFreePair", BM_MallocFreePair)
        ->Arg(pages)->ArgNames({"pages"})->Unit(benchmark::kNanosecond);
    benchmark::RegisterBenchmark("BM_AnonMmapPair", BM_AnonMmapPair)
        ->Arg(pages)->ArgNames({"pages"})->Unit(benchmark::kNanosecond);
  }
}

}  // namespace vmfrag::bench
