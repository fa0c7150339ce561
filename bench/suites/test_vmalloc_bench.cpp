// Suite 5: replicas of the kernel's lib/test_vmalloc.c cases, so vmfrag's figures can be set beside
// the kernel's published ones. Each case's op stream comes from harness/workloads (seed 1; the
// workloads README says how each follows the kernel's loop) and is replayed against a fresh
// Vmalloc (backing none, the trace header's region, guard and lazy threshold) per iteration;
// creating and destroying the Vmalloc is outside the (manual) timing.
// Counters: ns_per_op, and ns_per_pair (= 2 ops: an allocation and its free) — the unit of the
// kernel's figures (a 1-page vmalloc+vfree pair: 0.556 us in-kernel on a Threadripper 3970X);
// perf events per op, counted over the whole loop (creating a Vmalloc faults in a few pages).
#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "allocator/core/assert.h"
#include "allocator/vmalloc/vmalloc.h"
#include "bench/perf/benchmark_perf.h"
#include "bench/suites/suites.h"
#include "harness/workloads/workload.h"

namespace vmfrag::bench {
namespace {

struct CollectedOps : OpSink {
  void begin(const TraceHeader& h) override { header = h; }
  void emit(const Op& op) override { ops.push_back(op); }
  TraceHeader header;
  std::vector<Op> ops;
};

struct CaseFixture : Fixture {
  CaseFixture(const std::string& name, std::uint64_t ops) {
    WorkloadParams params;
    params.seed = 1;
    params.ops = ops;
    (void)generate(name, params, collected);
  }
  CollectedOps collected;
};

// What an id holds while live, so its free calls the matching release.
struct Held {
  void* addr = nullptr;
  OpKind kind = OpKind::kAlloc;
  std::vector<std::uint64_t> pfns;  // vm_map_ram's pages
};

// Replays the ops; returns the seconds spent in allocator calls' loop. Failed allocations are
// results (the id holds nothing), as in replay.
double replay_once(Vmalloc& vm, const std::vector<Op>& ops, std::vector<Held>& held) {
  const auto t0 = std::chrono::steady_clock::now();
  for (const Op& op : ops) {
    if (op.kind != OpKind::kFree && op.kind != OpKind::kPurge && op.id >= held.size()) held.resize(op.id + 1);
    switch (op.kind) {
      case OpKind::kAlloc: held[op.id] = Held{vm.vmalloc(op.size, op.align).addr, op.kind, {}}; break;
      case OpKind::kHuge: held[op.id] = Held{vm.vmalloc_huge(op.size).addr, op.kind, {}}; break;
      case OpKind::kKmalloc: held[op.id] = Held{vm.kmalloc(op.size).addr, op.kind, {}}; break;
      case OpKind::kMapRam: {
        Held h{nullptr, op.kind, {}};
        if (vm.alloc_pages(op.size, h.pfns) == FailureKind::kNone) {
          h.addr = vm.vm_map_ram(h.pfns).addr;
          if (h.addr == nullptr) vm.free_pages(h.pfns);
        }
        held[op.id] = std::move(h);
        break;
      }
      case OpKind::kFree: {
        Held& h = held[op.id];
        if (h.addr == nullptr) break;
        if (h.kind == OpKind::kMapRam) {
          vm.vm_unmap_ram(h.addr, h.pfns.size());
          vm.free_pages(h.pfns);
        } else if (h.kind == OpKind::kKmalloc) {
          vm.kfree(h.addr);
        } else {
          vm.vfree(h.addr);
        }
        h.addr = nullptr;
        break;
      }
      case OpKind::kPurge: vm.purge(); break;
    }
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void BM_TestVmalloc(benchmark::State& state, const std::string& name, std::uint64_t ops) {
  auto& f = fixture_slot<CaseFixture>("test_vmalloc/" + name + "/" + std::to_string(ops),
                                      [&] { return std::make_unique<CaseFixture>(name, ops); });
  const TraceHeader& h = f.collected.header;
  VmallocConfig config;
  config.space.region_bytes = h.region_bytes;
  config.space.guard_pages = h.guard_pages;
  config.space.lazy_threshold_pages = h.lazy_pages;
  config.phys_bytes = h.phys_bytes;
  config.backing = BackingMode::kNone;
  double seconds = 0;
  std::vector<Held> held;
  PerfCounters perf;
  perf.start();
  for (auto _ : state) {
    auto created = Vmalloc::create(config);
    if (!created.vm) {
      state.SkipWithError(("Vmalloc::create: " + created.message).c_str());
      break;
    }
    held.clear();
    const double s = replay_once(*created.vm, f.collected.ops, held);
    seconds += s;
    state.SetIterationTime(s);
  }
  const double total_ops = static_cast<double>(state.iterations()) * static_cast<double>(f.collected.ops.size());
  perf.report(state, total_ops);
  state.counters["ops"] = static_cast<double>(f.collected.ops.size());
  state.counters["ns_per_op"] = seconds * 1e9 / total_ops;
  state.counters["ns_per_pair"] = 2 * seconds * 1e9 / total_ops;
  state.SetItemsProcessed(static_cast<std::int64_t>(total_ops));
}

}  // namespace

void register_test_vmalloc_benchmarks(const Preset& preset) {
  // Ops per case: the kernel's loops are 1e6 iterations (2e6 ops); a tenth keeps a full run short.
  const std::uint64_t ops = preset.quick ? 20000 : 200000;
  for (const char* name : {"fix_size_alloc_test", "full_fit_alloc_test", "long_busy_list_alloc_test",
                           "random_size_alloc_test", "fix_align_alloc_test", "random_size_align_alloc_test",
                           "pcpu_alloc_test", "vm_map_ram_test"}) {
    benchmark::RegisterBenchmark(("BM_TestVmalloc/" + std::string(name)).c_str(),
                                 [name, ops](benchmark::State& st) { BM_TestVmalloc(st, name, ops); })
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace vmfrag::bench
