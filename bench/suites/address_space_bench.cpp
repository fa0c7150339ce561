// Suite 1: address-space operations (backing none). One vmalloc+vfree pair per iteration at a
// constant number of live areas, in three orders, eager and with the library's default lazy
// threshold, through four implementations of the same placement contract:
//   BM_VmallocVfreePair     vmfrag's Vmalloc (backing none: the whole stack, no pages)
//   BM_VirtualSpacePair     vmfrag's address-space layer alone
//   BM_BaselinePair         bench/baseline's minimal exact-lowest-fit allocator
//   BM_ReferenceModelPair   the harness's linear reference model (live <= 10k only: O(n) per op)
// Every implementation runs the same seeded op stream; each reports a hash of the placements of
// its set-up phase (fill and churn, up to 1.25M placements) as `placement_hash`, and
// `scripts/vmfrag bench` fails when two implementations of one configuration disagree.
//
// Orders (arg `order`):
//   0  LIFO after a sequential fill: fill `live` areas, then alloc and free the same area.
//   1  LIFO after fragmenting churn: fill, then min(live, 250k) pairs of (alloc, free a random
//      live area), then LIFO pairs as in 0.
//   2  random frees: fill and churn as in 1, then each pair allocates and frees a random live area.
// Sizes are 1-16 pages, uniform, from a fixed ring; guard 1 page.
//
// BM_InterleavedVmallocVsBaseline (live 100k and 1M; --quick: 10k) holds a Vmalloc and a baseline
// filled alike and alternates between them inside one timed loop, each side running pairs for at
// least 5 ms per turn, timed on its own: load that changes while the benchmark runs hits both
// sides alike. Turns much shorter than that measure something else: each side would start every
// turn with the caches the other one left (256-pair turns made the baseline 3x slower at 10k).
// Counters: vmfrag_ns and baseline_ns per pair, and their ratio (issue 12's yardstick).
//
// BM_HeapPerLiveArea (live 100k and 1M; --quick: 10k; arg half_freed 0 or 1) measures the memory
// side of issue 12: all heap bytes (glibc mallinfo2: arena in use + mmapped chunks) that a
// backing-none Vmalloc with the default lazy threshold holds after `live` vmallocs of the op
// stream's sizes, per live area; with half_freed 1, after every other one of them was then freed
// (the index keeps its peak capacity). One iteration: it measures bytes, not time.
#include <malloc.h>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "allocator/core/assert.h"
#include "allocator/vmalloc/vmalloc.h"
#include "allocator/vspace/virtual_space.h"
#include "bench/baseline/lowest_fit_baseline.h"
#include "bench/perf/benchmark_perf.h"
#include "allocator/core/splitmix64.h"
#include "bench/suites/suites.h"
#include "harness/reference/reference_model.h"

namespace vmfrag::bench {
namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::size_t kRing = 1 << 16;
constexpr std::uint64_t kMaxChurn = 250000;

enum Order : std::int64_t { kLifoAfterFill = 0, kLifoAfterChurn = 1, kRandomFrees = 2 };
const char* order_name(std::int64_t order) {
  switch (order) {
    case kLifoAfterFill: return "LIFO after a sequential fill";
    case kLifoAfterChurn: return "LIFO after fragmenting churn";
    default: return "random frees";
  }
}

struct OpStream {
  std::vector<std::uint64_t> sizes;    // bytes, 1-16 pages
  std::vector<std::uint32_t> victims;  // scaled to [0, live) by multiply-shift
};
const OpStream& op_stream() {
  static const OpStream stream = [] {
    OpStream s;
    std::uint64_t state = 20261201;
    for (std::size_t i = 0; i < kRing; ++i) {
      s.sizes.push_back((1 + splitmix64_next(state) % 16) * kPage);
      s.victims.push_back(static_cast<std::uint32_t>(splitmix64_next(state)));
    }
    return s;
  }();
  return stream;
}
std::size_t pick(std::uint32_t victim, std::size_t n) {
  return static_cast<std::size_t>((static_cast<std::uint64_t>(victim) * n) >> 32);
}

std::uint64_t region_for(std::uint64_t live) {
  std::uint64_t region = 64ull << 20;
  while (region < 2 * live * 17 * kPage) region <<= 1;
  return region;
}

// --- The four implementations behind one shape: alloc(size) -> offset, free(offset). ---

struct BaselineImpl {
  explicit BaselineImpl(std::uint64_t region, std::uint64_t lazy) : b(BaselineConfig{region, 1, lazy}) {}
  std::uint64_t alloc(std::uint64_t size) {
    const std::optional<std::uint64_t> o = b.alloc(size);
    VMF_CHECK(o.has_value(), "baseline: allocation failed");
    return *o;
  }
  void free(std::uint64_t offset) { VMF_CHECK(b.free(offset), "baseline: free failed"); }
  LowestFitBaseline b;
};

struct VirtualSpaceImpl {
  explicit VirtualSpaceImpl(std::uint64_t region, std::uint64_t lazy) {
    VirtualSpaceConfig c;
    c.region_bytes = region;
    c.guard_pages = 1;
    c.lazy_threshold_pages = lazy;
    auto created = VirtualSpace::create(c);
    VMF_CHECK(created.space != nullptr, "VirtualSpace::create: %s", created.message.c_str());
    space = std::move(created.space);
  }
  std::uint64_t alloc(std::uint64_t size) {
    const Allocation a = space->vmalloc(size);
    VMF_CHECK(a.ok(), "VirtualSpace: allocation failed");
    return a.offset;
  }
  void free(std::uint64_t offset) { VMF_CHECK(space->vfree_offset(offset) == FreeStatus::kOk, "VirtualSpace: free"); }
  std::unique_ptr<VirtualSpace> space;
};

struct VmallocImpl {
  explicit VmallocImpl(std::uint64_t region, std::uint64_t lazy) {
    VmallocConfig c;
    c.space.region_bytes = region;
    c.space.guard_pages = 1;
    c.space.lazy_threshold_pages = lazy;
    c.backing = BackingMode::kNone;
    auto created = Vmalloc::create(c);
    VMF_CHECK(created.vm != nullptr, "Vmalloc::create: %s", created.message.c_str());
    vm = std::move(created.vm);
    base = static_cast<char*>(vm->space().base());
  }
  std::uint64_t alloc(std::uint64_t size) {
    const VmallocResult r = vm->vmalloc(size);
    VMF_CHECK(r.ok(), "Vmalloc: allocation failed");
    return static_cast<std::uint64_t>(static_cast<char*>(r.addr) - base);
  }
  void free(std::uint64_t offset) { VMF_CHECK(vm->vfree(base + offset) == ReleaseStatus::kOk, "Vmalloc: vfree"); }
  std::unique_ptr<Vmalloc> vm;
  char* base = nullptr;
};

struct ReferenceImpl {
  explicit ReferenceImpl(std::uint64_t region, std::uint64_t lazy) : model(reference::ModelConfig{region, 1, lazy}) {}
  std::uint64_t alloc(std::uint64_t size) {
    const reference::Placement p = model.alloc(size);
    VMF_CHECK(p.ok(), "reference model: allocation failed");
    return p.offset;
  }
  void free(std::uint64_t offset) { VMF_CHECK(model.free(offset) == reference::FreeStatus::kOk, "reference: free"); }
  reference::ReferenceModel model;
};

// A space filled (and churned) to `live` areas; kept between the repetitions of a benchmark.
template <typename Impl>
struct FilledSpace : Fixture {
  FilledSpace(std::uint64_t live, std::int64_t order, std::uint64_t lazy) : impl(region_for(live), lazy) {
    const OpStream& s = op_stream();
    const auto note = [&](std::uint64_t offset) { hash = (hash ^ static_cast<std::uint32_t>(offset >> 12)) * 16777619u; };
    offsets.reserve(live);
    for (std::uint64_t i = 0; i < live; ++i) {
      offsets.push_back(impl.alloc(s.sizes[cursor++ % kRing]));
      note(offsets.back());
    }
    if (order != kLifoAfterFill) {
      for (std::uint64_t i = 0; i < std::min(live, kMaxChurn); ++i) {
        const std::uint64_t offset = impl.alloc(s.sizes[cursor % kRing]);
        note(offset);
        const std::size_t j = pick(s.victims[cursor % kRing], offsets.size());
        impl.free(offsets[j]);
        offsets[j] = offset;
        ++cursor;
      }
    }
  }
  Impl impl;
  std::vector<std::uint64_t> offsets;  // live areas
  std::uint32_t hash = 2166136261u;    // FNV-1a over the set-up placements
  std::size_t cursor = 0;
};

template <typename Impl>
void BM_Pair(benchmark::State& state, const char* impl_name) {
  const auto live = static_cast<std::uint64_t>(state.range(0));
  const std::int64_t order = state.range(1);
  const std::uint64_t lazy = state.range(2) != 0 ? kernel_lazy_threshold_pages() : 0;
  const std::string key = std::string(impl_name) + "/" + std::to_string(live) + "/" + std::to_string(order) + "/" +
                          std::to_string(lazy);
  auto& f = fixture_slot<FilledSpace<Impl>>(key, [&] { return std::make_unique<FilledSpace<Impl>>(live, order, lazy); });
  const OpStream& s = op_stream();
  std::size_t c = f.cursor;
  PerfCounters perf;
  perf.start();
  if (order == kRandomFrees) {
    const std::size_t n = f.offsets.size();
    for (auto _ : state) {
      const std::uint64_t offset = f.impl.alloc(s.sizes[c % kRing]);
      const std::size_t j = pick(s.victims[c % kRing], n);
      f.impl.free(f.offsets[j]);
      f.offsets[j] = offset;
      ++c;
    }
  } else {
    for (auto _ : state) {
      const std::uint64_t offset = f.impl.alloc(s.sizes[c % kRing]);
      benchmark::DoNotOptimize(offset);
      f.impl.free(offset);
      ++c;
    }
  }
  perf.report(state);
  f.cursor = c;
  state.counters["placement_hash"] = static_cast<double>(f.hash);
  state.counters["live_areas"] = static_cast<double>(live);
  state.SetLabel(std::string(order_name(order)) + (lazy != 0 ? ", lazy " + std::to_string(lazy) + " pages" : ", eager"));
}

// Runs pairs on f in its order, 64 at a time, until at least `seconds` of wall time have passed.
// Adds the time and the pairs run to *spent and *pairs_run.
template <typename Impl>
void run_pairs_for(FilledSpace<Impl>& f, std::int64_t order, double seconds, double* spent, double* pairs_run) {
  constexpr int kBatch = 64;
  const OpStream& s = op_stream();
  std::size_t c = f.cursor;
  const auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0;
  std::uint64_t batches = 0;
  do {
    if (order == kRandomFrees) {
      const std::size_t n = f.offsets.size();
      for (int i = 0; i < kBatch; ++i, ++c) {
        const std::uint64_t offset = f.impl.alloc(s.sizes[c % kRing]);
        const std::size_t j = pick(s.victims[c % kRing], n);
        f.impl.free(f.offsets[j]);
        f.offsets[j] = offset;
      }
    } else {
      for (int i = 0; i < kBatch; ++i, ++c) {
        const std::uint64_t offset = f.impl.alloc(s.sizes[c % kRing]);
        benchmark::DoNotOptimize(offset);
        f.impl.free(offset);
      }
    }
    ++batches;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (elapsed < seconds);
  f.cursor = c;
  *spent += elapsed;
  *pairs_run += static_cast<double>(batches * kBatch);
}

struct VmallocBesideBaseline : Fixture {
  VmallocBesideBaseline(std::uint64_t live, std::int64_t order, std::uint64_t lazy)
      : vmfrag(live, order, lazy), baseline(live, order, lazy) {}
  FilledSpace<VmallocImpl> vmfrag;
  FilledSpace<BaselineImpl> baseline;
};

void BM_InterleavedVmallocVsBaseline(benchmark::State& state) {
  constexpr double kTurnSeconds = 0.005;
  const auto live = static_cast<std::uint64_t>(state.range(0));
  const std::int64_t order = state.range(1);
  const std::uint64_t lazy = state.range(2) != 0 ? kernel_lazy_threshold_pages() : 0;
  const std::string key = "interleaved/" + std::to_string(live) + "/" + std::to_string(order) + "/" + std::to_string(lazy);
  auto& f = fixture_slot<VmallocBesideBaseline>(
      key, [&] { return std::make_unique<VmallocBesideBaseline>(live, order, lazy); });
  if (f.vmfrag.hash != f.baseline.hash) {
    state.SkipWithError("Vmalloc and the baseline placed the set-up differently");
    return;
  }
  double vmfrag_s = 0, baseline_s = 0, vmfrag_pairs = 0, baseline_pairs = 0;
  for (auto _ : state) {
    run_pairs_for(f.vmfrag, order, kTurnSeconds, &vmfrag_s, &vmfrag_pairs);
    run_pairs_for(f.baseline, order, kTurnSeconds, &baseline_s, &baseline_pairs);
  }
  const double vmfrag_ns = vmfrag_s * 1e9 / vmfrag_pairs, baseline_ns = baseline_s * 1e9 / baseline_pairs;
  state.counters["vmfrag_ns"] = vmfrag_ns;
  state.counters["baseline_ns"] = baseline_ns;
  state.counters["ratio"] = vmfrag_ns / baseline_ns;
  state.counters["placement_hash"] = static_cast<double>(f.vmfrag.hash);
  state.counters["live_areas"] = static_cast<double>(live);
  state.SetLabel(std::string(order_name(order)) + (lazy != 0 ? ", lazy " + std::to_string(lazy) + " pages" : ", eager") +
                 ", alternating turns of >= 5 ms");
}

std::uint64_t heap_bytes_in_use() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

void BM_HeapPerLiveArea(benchmark::State& state) {
  const auto live = static_cast<std::uint64_t>(state.range(0));
  const bool half_freed = state.range(1) != 0;
  const OpStream& s = op_stream();
  double per_area = 0;
  for (auto _ : state) {
    std::vector<std::uint64_t> offsets;  // the benchmark's own, allocated before the first reading
    offsets.reserve(live);
    const std::uint64_t before = heap_bytes_in_use();
    VmallocConfig c;
    c.space.region_bytes = region_for(live);
    c.space.guard_pages = 1;
    c.backing = BackingMode::kNone;
    auto created = Vmalloc::create(c);
    VMF_CHECK(created.vm != nullptr, "Vmalloc::create: %s", created.message.c_str());
    Vmalloc& vm = *created.vm;
    char* const base = static_cast<char*>(vm.space().base());
    for (std::uint64_t i = 0; i < live; ++i) {
      const VmallocResult r = vm.vmalloc(s.sizes[i % kRing]);
      VMF_CHECK(r.ok(), "Vmalloc: allocation failed");
      offsets.push_back(static_cast<std::uint64_t>(static_cast<char*>(r.addr) - base));
    }
    std::uint64_t remaining = live;
    if (half_freed) {
      for (std::uint64_t i = 1; i < live; i += 2) {
        VMF_CHECK(vm.vfree(base + offsets[i]) == ReleaseStatus::kOk, "Vmalloc: vfree");
        --remaining;
      }
    }
    per_area = static_cast<double>(heap_bytes_in_use() - before) / static_cast<double>(remaining);
  }
  state.counters["heap_bytes_per_live_area"] = per_area;
  state.counters["live_areas"] = static_cast<double>(half_freed ? live - live / 2 : live);
  state.SetLabel(half_freed ? "every other area freed" : "after the fill");
}

}  // namespace

void register_address_space_benchmarks(const Preset& preset) {
  const std::vector<std::int64_t> lives =
      preset.quick ? std::vector<std::int64_t>{1000, 10000} : std::vector<std::int64_t>{1000, 10000, 100000, 1000000};
  for (std::int64_t live : lives) {
    for (std::int64_t order : {kLifoAfterFill, kLifoAfterChurn, kRandomFrees}) {
      for (std::int64_t lazy : {0, 1}) {
        const auto add = [&](const char* name, auto fn) {
          benchmark::RegisterBenchmark(name, fn)
              ->Args({live, order, lazy})
              ->ArgNames({"live", "order", "lazy"})
              ->Unit(benchmark::kNanosecond);
        };
        add("BM_VmallocVfreePair", [](benchmark::State& st) { BM_Pair<VmallocImpl>(st, "vmalloc"); });
        add("BM_VirtualSpacePair", [](benchmark::State& st) { BM_Pair<VirtualSpaceImpl>(st, "vspace"); });
        add("BM_BaselinePair", [](benchmark::State& st) { BM_Pair<BaselineImpl>(st, "baseline"); });
        if (live <= 10000) {
          add("BM_ReferenceModelPair", [](benchmark::State& st) { BM_Pair<ReferenceImpl>(st, "reference"); });
        }
        if (live >= (preset.quick ? 10000 : 100000)) add("BM_InterleavedVmallocVsBaseline", BM_InterleavedVmallocVsBaseline);
      }
    }
  }
  for (std::int64_t live : preset.quick ? std::vector<std::int64_t>{10000} : std::vector<std::int64_t>{100000, 1000000}) {
    for (std::int64_t half_freed : {0, 1}) {
      benchmark::RegisterBenchmark("BM_HeapPerLiveArea", BM_HeapPerLiveArea)
          ->Args({live, half_freed})
          ->ArgNames({"live", "half_freed"})
          ->Iterations(1)
          ->Unit(benchmark::kMillisecond);
    }
  }
}

}  // namespace vmfrag::bench
