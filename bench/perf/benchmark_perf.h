// Glue between PerfGroup and Google Benchmark: the run's context says, once, how each standard
// event counts here (or why it cannot), and each benchmark reports the events that did open as
// per-unit counters. An event that cannot be opened is never a counter, so it is never a 0.
#pragma once

#include <benchmark/benchmark.h>

#include <optional>
#include <string>

#include "bench/perf/perf_group.h"

namespace vmfrag::bench {

// Opens the standard events once and adds `perf.<event>` = PerfOpenOutcome::describe() to the
// run's context, plus `perf.event_paranoid` (the sysctl as read). Call before running benchmarks.
void add_perf_context();

// Counts the standard events around a benchmark's timed loop. Open it before the loop (opening is
// set-up), start() right before it, report() right after it.
class PerfCounters {
 public:
  PerfCounters() : group_(standard_perf_events()) {}
  void start() { group_.start(); }
  // Stops counting and adds each event that opened and ran as state.counters[event] = count / units
  // (units: iterations by default; pages, accesses, ... where a benchmark says per what).
  void report(benchmark::State& state, std::optional<double> units = std::nullopt);

 private:
  PerfGroup group_;
};

}  // namespace vmfrag::bench
