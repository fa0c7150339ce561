// vmfrag_bench: every suite in one binary, so each comparison runs side by side in one process.
// Takes Google Benchmark's flags plus --vmfrag_quick (small sizes). The run's context records how
// each perf event counts here (or "unsupported: <errno name>"), THP settings and the preset.
#include <benchmark/benchmark.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "bench/perf/benchmark_perf.h"
#include "bench/suites/suites.h"

namespace vmfrag::bench {
FixtureSlot& the_fixture_slot() {
  static FixtureSlot slot;
  return slot;
}
}  // namespace vmfrag::bench

namespace {

std::string first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) return "unreadable";
  return line;
}

}  // namespace

int main(int argc, char** argv) {
  vmfrag::bench::Preset preset;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--vmfrag_quick") == 0) {
      preset.quick = true;
    } else {
      args.push_back(argv[i]);
    }
  }
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 2;

  vmfrag::bench::add_perf_context();
  benchmark::AddCustomContext("vmfrag.preset", preset.quick ? "quick" : "full");
  benchmark::AddCustomContext("thp.enabled", first_line("/sys/kernel/mm/transparent_hugepage/enabled"));
  benchmark::AddCustomContext("thp.shmem_enabled", first_line("/sys/kernel/mm/transparent_hugepage/shmem_enabled"));
  benchmark::AddCustomContext("vm.max_map_count", first_line("/proc/sys/vm/max_map_count"));

  vmfrag::bench::register_address_space_benchmarks(preset);
  vmfrag::bench::register_mapped_benchmarks(preset);
  vmfrag::bench::register_page_fault_benchmarks(preset);
  vmfrag::bench::register_tlb_benchmarks(preset);
  vmfrag::bench::register_test_vmalloc_benchmarks(preset);
  vmfrag::bench::register_thread_scaling_benchmarks(preset);
  vmfrag::bench::register_check_benchmarks(preset);

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
