// Thread scaling (issue #15): throughput of one shared Vmalloc against the number of threads that
// call it. Each thread runs the same mix on its own live set (at most 64 areas): vmalloc, kmalloc
// or kvmalloc of 1..8 pages, or a free of one of its areas, and a purge every 256 ops. Total work
// grows with the threads (each runs the benchmark's iterations), so perfect scaling on N free cores
// is N times the one-thread items_per_second; 1.0x means adding a thread bought nothing, below 1.0x
// is the collapse issue #15 measured (lock handoffs between the layers' mutexes, system calls made
// under a lock). Read BM_ThreadScaling/backing:B/threads:2 items_per_second against threads:1.
// The instance is created by thread 0 before the timed loop (Google Benchmark starts and stops all
// threads of a run together) and destroyed after it, which releases whatever the threads still hold.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "allocator/core/assert.h"
#include "allocator/vmalloc/vmalloc.h"
#include "allocator/core/splitmix64.h"
#include "bench/suites/suites.h"

namespace vmfrag::bench {
namespace {

constexpr std::uint64_t kPage = 4096;
std::unique_ptr<Vmalloc> g_shared;  // one instance per run, shared by its threads

void BM_ThreadScaling(benchmark::State& state) {
  const auto backing = static_cast<BackingMode>(state.range(0));
  if (state.thread_index() == 0) {
    VmallocConfig c;
    c.space.region_bytes = 1ull << 30;
    c.phys_bytes = 256ull << 20;
    c.backing = backing;
    auto created = Vmalloc::create(c);
    VMF_CHECK(created.vm != nullptr, "Vmalloc::create: %s", created.message.c_str());
    g_shared = std::move(created.vm);
  }
  struct Held {
    void* addr;
    int kind;  // 0 vmalloc, 1 kmalloc, 2 kvmalloc
  };
  std::vector<Held> held;
  held.reserve(64);
  std::uint64_t rng_state = 0x5eed0000u + static_cast<std::uint64_t>(state.thread_index());
  std::uint64_t op = 0;
  for (auto _ : state) {
    Vmalloc& vm = *g_shared;
    const std::uint64_t r = splitmix64_next(rng_state);
    if (++op % 256 == 0) {
      vm.purge();
    } else if (held.size() < 64 && (held.empty() || r % 2 == 0)) {
      const std::uint64_t bytes = (1 + (r >> 8) % 8) * kPage;
      const int kind = static_cast<int>((r >> 16) % 5) < 3 ? 0 : static_cast<int>((r >> 16) % 5) - 2;
      const VmallocResult v = kind == 0 ? vm.vmalloc(bytes) : kind == 1 ? vm.kmalloc(bytes) : vm.kvmalloc(bytes);
      if (v.ok()) held.push_back({v.addr, kind});
    } else {
      const std::size_t i = (r >> 8) % held.size();
      const Held h = held[i];
      held[i] = held.back();
      held.pop_back();
      benchmark::DoNotOptimize(h.kind == 1 ? vm.kfree(h.addr) : h.kind == 2 ? vm.kvfree(h.addr) : vm.vfree(h.addr));
    }
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) g_shared.reset();
}

}  // namespace

void register_thread_scaling_benchmarks(const Preset& preset) {
  auto* b = benchmark::RegisterBenchmark("BM_ThreadScaling", BM_ThreadScaling)
                ->ArgNames({"backing"})
                ->Arg(static_cast<int>(BackingMode::kNone))
                ->Arg(static_cast<int>(BackingMode::kMemfd))
                ->UseRealTime()
                ->Threads(1)
                ->Threads(2);
  if (!preset.quick) b->Threads(4);
}

}  // namespace vmfrag::bench
