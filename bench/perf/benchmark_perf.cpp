#include "bench/perf/benchmark_perf.h"

#include <fstream>

namespace vmfrag::bench {

void add_perf_context() {
  PerfGroup probe(standard_perf_events());
  for (const PerfOpenOutcome& outcome : probe.outcomes()) {
    benchmark::AddCustomContext("perf." + outcome.name, outcome.describe());
  }
  std::ifstream paranoid("/proc/sys/kernel/perf_event_paranoid");
  std::string value;
  if (!(paranoid >> value)) value = "unreadable";
  benchmark::AddCustomContext("perf.event_paranoid", value);
}

void PerfCounters::report(benchmark::State& state, std::optional<double> units) {
  const std::vector<PerfValue> values = group_.stop();
  const double divisor = units.value_or(static_cast<double>(state.iterations()));
  if (divisor <= 0) return;
  for (const PerfValue& v : values) state.counters[v.name] = benchmark::Counter(v.scaled / divisor);
}

}  // namespace vmfrag::bench
