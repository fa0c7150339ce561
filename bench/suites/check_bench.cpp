// Vmalloc::check at each CheckDepth on an instance the size of a fuzz input's (fuzz_ops decodes
// regions and physical memory of up to 16 MiB and 4 MiB; this uses 4 MiB of each, backing memfd,
// about 48 live areas of 1-8 pages, some lazily held). fuzz_ops runs a check after every op, so
// the ratio of BM_VmallocCheck/depth:0 (kStructure) to depth:1 (kFull) is the share of its check
// time a switch to kStructure keeps; issue 12 measured about 220 execs/s with kFull checks.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "allocator/core/assert.h"
#include "allocator/vmalloc/vmalloc.h"
#include "bench/perf/benchmark_perf.h"
#include "allocator/core/splitmix64.h"
#include "bench/suites/suites.h"

namespace vmfrag::bench {
namespace {

constexpr std::uint64_t kPage = 4096;

void BM_VmallocCheck(benchmark::State& state) {
  const auto depth = state.range(0) == 0 ? CheckDepth::kStructure : CheckDepth::kFull;
  VmallocConfig c;
  c.space.region_bytes = 4ull << 20;
  c.space.lazy_threshold_pages = 64;
  c.phys_bytes = 4ull << 20;
  c.backing = BackingMode::kMemfd;
  auto created = Vmalloc::create(c);
  VMF_CHECK(created.vm != nullptr, "Vmalloc::create: %s", created.message.c_str());
  Vmalloc& vm = *created.vm;
  std::uint64_t rng = 0xc4ec;
  std::vector<void*> areas;
  for (int i = 0; i < 64; ++i) {
    const VmallocResult r = vm.vmalloc((1 + splitmix64_next(rng) % 8) * kPage);
    VMF_CHECK(r.ok(), "set-up vmalloc %d failed: %s", i, std::string(failure_name(r.failure)).c_str());
    areas.push_back(r.addr);
  }
  for (std::size_t i = 0; i < areas.size(); i += 4) vm.vfree(areas[i]);
  PerfCounters perf;
  perf.start();
  for (auto _ : state) {
    const std::string why = vm.check(depth);
    if (!why.empty()) state.SkipWithError(("check: " + why).c_str());
  }
  perf.report(state);
  state.SetLabel(depth == CheckDepth::kStructure ? "kStructure" : "kFull");
}

}  // namespace

void register_check_benchmarks(const Preset& /*preset*/) {
  benchmark::RegisterBenchmark("BM_VmallocCheck", BM_VmallocCheck)->ArgNames({"depth"})->Arg(0)->Arg(1);
}

}  // namespace vmfrag::bench
