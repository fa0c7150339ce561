// Fault injection at every point where the allocator meets the OS (issue #15). A representative
// sequence — create, vmalloc (page and 16-page alignment), vmalloc_huge, kmalloc, kvmalloc, vmap,
// small and large vm_map_ram, frees of each kind, lazy purges, explicit purges — runs once per
// backing under a RecordingOs to list its injection points (allocator/os/fault_injection.h). Then
// it runs again once per fallible point and per errno, with exactly that call failing, and checks:
//   * the call that met the failure reports it: os-error with that errno, or map-limit for ENOMEM
//     of a mapping call, or succeeds through a documented fallback (vmalloc_huge to pages; THP
//     advice and smaps reads are best effort) — never another kind, never a crash;
//   * every other step has the outcome it had without the failure (a failed call leaves no trace);
//   * check() passes after every step (with injection paused while it runs);
//   * after everything is freed and purged, no area, mapping or page is left (LSan, in the asan
//     flavour, also sees every heap byte);
//   * a create that meets the failure returns its errno and leaves nothing behind.
// Calls the allocator relies on never failing (release, close_fd, protect-none, drop_pages) are
// listed and not injected; `vmfrag replay --fail-os` exposes the same mechanism for any trace.
// PageFaultInjection walks the same sequence at the page allocator's seam instead (every page and
// block allocation refused once, as no-physical-memory and as physical-fragmentation).
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <functional>
#include <variant>
#include <string>
#include <vector>

#include "allocator/os/fault_injection.h"
#include "allocator/phys/page_fault_injection.h"
#include "allocator/tests/reliability_figures.h"
#include "allocator/vmalloc/vmalloc.h"

namespace vmfrag {
namespace {

constexpr std::uint64_t P = 4096;

struct Outcome {
  FailureKind kind = FailureKind::kNone;
  int os_errno = 0;
  bool skipped = false;  // a release of something whose allocation failed
  friend bool operator==(const Outcome&, const Outcome&) = default;
};

std::string describe(const Outcome& o) {
  if (o.skipped) return "skipped";
  return std::string(failure_name(o.kind)) + (o.os_errno ? " errno " + std::to_string(o.os_errno) : "");
}

// The sequence's live handles, by step.
struct Handles {
  void* area[16] = {};
  std::vector<std::uint64_t> pages[16];
};

using Step = std::function<Outcome(Vmalloc&, Handles&)>;

Outcome of(const VmallocResult& r, void*& slot) {
  slot = r.addr;
  return {r.failure, r.failure == FailureKind::kOsError || r.failure == FailureKind::kMapLimit ? r.os_errno : 0};
}

Outcome released(ReleaseStatus s) {
  EXPECT_EQ(s, ReleaseStatus::kOk) << release_status_name(s);
  return {};
}

Step alloc_step(int slot, std::function<VmallocResult(Vmalloc&)> f) {
  return [slot, f](Vmalloc& vm, Handles& h) { return of(f(vm), h.area[slot]); };
}

// alloc_pages + vmap or vm_map_ram; a failed mapping gives its pages back.
Step map_step(int slot, std::uint64_t pages, bool map_ram) {
  return [=](Vmalloc& vm, Handles& h) {
    if (const FailureKind k = vm.alloc_pages(pages, h.pages[slot]); k != FailureKind::kNone) return Outcome{k, 0};
    const VmallocResult r = map_ram ? vm.vm_map_ram(h.pages[slot]) : vm.vmap(h.pages[slot]);
    if (!r.ok()) {
      vm.free_pages(h.pages[slot]);
      h.pages[slot].clear();
    }
    return of(r, h.area[slot]);
  };
}

Step free_step(int slot, std::function<ReleaseStatus(Vmalloc&, void*, std::uint64_t)> f) {
  return [slot, f](Vmalloc& vm, Handles& h) {
    if (h.area[slot] == nullptr) return Outcome{FailureKind::kNone, 0, true};
    const Outcome o = released(f(vm, h.area[slot], h.pages[slot].size()));
    if (!h.pages[slot].empty()) vm.free_pages(h.pages[slot]);
    h.area[slot] = nullptr;
    h.pages[slot].clear();
    return o;
  };
}

// Steps whose call falls back on a failed page allocation, as documented: vmalloc_huge retries
// with 4 KiB pages, kvmalloc above one page retries with vmalloc.
constexpr std::size_t kHugeStep = 2, kKvmallocStep = 4;

std::vector<Step> sequence() {
  auto vfree = [](Vmalloc& vm, void* a, std::uint64_t) { return vm.vfree(a); };
  return {
      alloc_step(0, [](Vmalloc& vm) { return vm.vmalloc(3 * P); }),
      alloc_step(1, [](Vmalloc& vm) { return vm.vmalloc(5 * P, 16 * P); }),
      alloc_step(2, [](Vmalloc& vm) { return vm.vmalloc_huge(4ull << 20); }),
      alloc_step(3, [](Vmalloc& vm) { return vm.kmalloc(16 * 1024); }),
      alloc_step(4, [](Vmalloc& vm) { return vm.kvmalloc(64 * 1024); }),
      map_step(5, 4, false),
      map_step(6, 2, true),
      map_step(7, 80, true),
      alloc_step(8, [](Vmalloc& vm) { return vm.vzalloc(7 * P); }),
      free_step(0, vfree),
      free_step(1, vfree),
      free_step(5, [](Vmalloc& vm, void* a, std::uint64_t) { return vm.vunmap(a); }),
      free_step(6, [](Vmalloc& vm, void* a, std::uint64_t n) { return vm.vm_unmap_ram(a, n); }),
      [](Vmalloc& vm, Handles&) {
        vm.purge();
        return Outcome{};
      },
      alloc_step(9, [](Vmalloc& vm) { return vm.vmalloc(2 * P); }),
      free_step(4, [](Vmalloc& vm, void* a, std::uint64_t) { return vm.kvfree(a); }),
      free_step(2, vfree),
      free_step(3, [](Vmalloc& vm, void* a, std::uint64_t) { return vm.kfree(a); }),
      free_step(7, [](Vmalloc& vm, void* a, std::uint64_t n) { return vm.vm_unmap_ram(a, n); }),
      free_step(8, vfree),
      free_step(9, vfree),
      [](Vmalloc& vm, Handles&) {
        vm.purge();
        return Outcome{};
      },
  };
}

VmallocConfig config_for(BackingMode backing, OsInterface* os, PageAllocFaults* page_faults) {
  VmallocConfig c;
  c.space.region_bytes = 64ull << 20;
  c.space.lazy_threshold_pages = 24;  // some frees purge on their own, some wait for purge()
  c.space.os = os;
  c.phys_bytes = 8ull << 20;  // four 2 MiB blocks: room for the 4 MiB vmalloc_huge
  c.backing = backing;
  c.page_faults = page_faults;
  return c;
}

struct RunResult {
  bool created = false;
  int create_error = 0;
  std::vector<Outcome> outcomes;
  std::vector<std::uint64_t> injected_after;  // failures injected once each step has run
  std::string problem;                        // a check() failure or leftover state
};

RunResult run_sequence(BackingMode backing, InterceptingOs& os, const std::function<std::uint64_t()>& injected,
                       PageAllocFaults* page_faults = nullptr) {
  RunResult result;
  auto created = Vmalloc::create(config_for(backing, &os, page_faults));
  if (created.vm == nullptr) {
    result.create_error = created.error;
    return result;
  }
  result.created = true;
  Vmalloc& vm = *created.vm;
  Handles handles;
  for (const Step& step : sequence()) {
    result.outcomes.push_back(step(vm, handles));
    result.injected_after.push_back(injected());
    os.set_paused(true);
    if (std::string why = vm.check(); !why.empty() && result.problem.empty())
      result.problem = "check() after step " + std::to_string(result.outcomes.size() - 1) + ": " + why;
    os.set_paused(false);
  }
  os.set_paused(true);
  const VmallocStats s = vm.stats();
  if (result.problem.empty() &&
      (s.vmalloc_areas != 0 || s.vmap_areas != 0 || s.kmalloc_blocks != 0 || s.mapped_pages != 0 ||
       s.phys.free_pages != s.phys.total_pages || s.space.live_bytes != 0 || s.space.lazy_bytes != 0)) {
    result.problem = "left behind: areas " + std::to_string(s.vmalloc_areas) + "+" + std::to_string(s.vmap_areas) +
                     ", kmalloc blocks " + std::to_string(s.kmalloc_blocks) + ", mapped pages " +
                     std::to_string(s.mapped_pages) + ", pages in use " +
                     std::to_string(s.phys.total_pages - s.phys.free_pages) + ", live bytes " +
                     std::to_string(s.space.live_bytes) + ", lazy bytes " + std::to_string(s.space.lazy_bytes);
  }
  return result;
}

// Compares a run that met one injected failure with the run without it. The step during which the
// failure was injected goes to `judge`, which checks what that step reported and returns whether it
// failed; a release may be skipped (its allocation failed) only after a failed step; every other
// step must have the baseline's outcome: a failed call leaves no trace.
void expect_only_the_injected_step_differs(const RunResult& r, const RunResult& baseline,
                                           const std::function<bool(std::size_t, const Outcome&)>& judge) {
  ASSERT_EQ(r.outcomes.size(), baseline.outcomes.size());
  bool failed_step_seen = false;
  for (std::size_t i = 0; i < r.outcomes.size(); ++i) {
    const bool injected_here = r.injected_after[i] == 1 && (i == 0 || r.injected_after[i - 1] == 0);
    const Outcome& got = r.outcomes[i];
    if (injected_here) {
      failed_step_seen = judge(i, got) || failed_step_seen;
      continue;
    }
    if (got.skipped) {
      EXPECT_TRUE(failed_step_seen) << "step " << i << " skipped a release with no failed allocation";
      continue;
    }
    EXPECT_EQ(got, baseline.outcomes[i]) << "step " << i << ": " << describe(got) << " where the run without "
                                         << "the failure had " << describe(baseline.outcomes[i]);
  }
}

// The errnos worth injecting at a call: EIO (an OS error) everywhere, and ENOMEM where the OS
// uses it for the map limit or memory exhaustion.
std::vector<int> errors_for(OsCall call) {
  switch (call) {
    case OsCall::kReserve:
    case OsCall::kMemfdCreate:
    case OsCall::kMapShared:
    case OsCall::kProtectReadWrite:
    case OsCall::kReserveFixed:
    case OsCall::kPopulateWrite:
      return {EIO, ENOMEM};
    default:
      return {EIO};
  }
}

class FaultInjection : public ::testing::TestWithParam<BackingMode> {};

TEST_P(FaultInjection, EveryFallibleOsCallFailsCleanly) {
  const BackingMode backing = GetParam();
  RecordingOs recorder(linux_os());
  const RunResult baseline = run_sequence(backing, recorder, [] { return std::uint64_t{0}; });
  ASSERT_TRUE(baseline.created);
  ASSERT_EQ(baseline.problem, "");
  for (const Outcome& o : baseline.outcomes) ASSERT_EQ(o.kind, FailureKind::kNone) << describe(o);

  std::size_t points = 0, not_injected = 0;
  CaseTally tally;
  for (const OsCallRecord& point : recorder.calls()) {
    ++points;
    if (!os_call_is_fallible(point.call)) {
      ++not_injected;
      continue;
    }
    for (const int error : errors_for(point.call)) {
      tally.begin();
      const std::string where = std::string(os_call_name(point.call)) + ":" + std::to_string(point.index) +
                                " errno " + std::to_string(error);
      SCOPED_TRACE(where);
      FailingOs failing(linux_os(), FailingOs::Nth{point.call, point.index, error});
      const RunResult r = run_sequence(backing, failing, [&] { return failing.failures_injected(); });
      ASSERT_EQ(failing.failures_injected(), 1u) << "the recorded call was not reached again";
      if (!r.created) {
        EXPECT_EQ(r.create_error, error);
        tally.end();
        continue;
      }
      EXPECT_EQ(r.problem, "");
      // The call that met the failure reports it, or succeeds through a documented fallback
      // (vmalloc_huge to pages; THP advice and smaps reads are best effort).
      expect_only_the_injected_step_differs(r, baseline, [&](std::size_t i, const Outcome& got) {
        if (got.kind == FailureKind::kNone) return false;
        const bool os_error = got.kind == FailureKind::kOsError && got.os_errno == error;
        const bool map_limit = got.kind == FailureKind::kMapLimit && error == ENOMEM;
        EXPECT_TRUE(os_error || map_limit) << "step " << i << " reported " << describe(got);
        return true;
      });
      tally.end();
    }
  }
  std::printf("[ fault injection ] backing %s: %zu OS calls, %zu never-failing not injected, %zu failures injected, "
              "%zu passed\n", backing_mode_name(backing), points, not_injected, tally.tried(), tally.passed());
  RecordProperty("points", static_cast<int>(points));
  tally.record();
  // Backing none meets the OS only to create (reserve, memfd, direct map, map-count read).
  EXPECT_GE(tally.tried(), backing == BackingMode::kNone ? 4u : 30u);
}

INSTANTIATE_TEST_SUITE_P(Backings, FaultInjection,
                         ::testing::Values(BackingMode::kNone, BackingMode::kAnon, BackingMode::kMemfd),
                         [](const auto& info) { return std::string(backing_mode_name(info.param)); });

// The same walk at the page allocator's seam (allocator/phys/page_fault_injection.h): every page
// or block allocation of the sequence is refused once, as no-physical-memory and as
// physical-fragmentation. The call that met it reports exactly that kind, or succeeds through its
// documented fallback (vmalloc_huge, kvmalloc); everything else is as without the failure,
// check() passes after every step, and nothing is left at the end.
class PageFaultInjection : public ::testing::TestWithParam<BackingMode> {};

TEST_P(PageFaultInjection, EveryPageAllocationFailsCleanly) {
  const BackingMode backing = GetParam();
  RecordingOs os(linux_os());
  RecordingPageAllocs recorder;
  const RunResult baseline = run_sequence(backing, os, [] { return std::uint64_t{0}; }, &recorder);
  ASSERT_TRUE(baseline.created);
  ASSERT_EQ(baseline.problem, "");
  for (const Outcome& o : baseline.outcomes) ASSERT_EQ(o.kind, FailureKind::kNone) << describe(o);

  std::size_t reported = 0, fell_back = 0;
  CaseTally tally;
  for (const PageAllocPoint& point : recorder.points()) {
    for (const FailureKind kind : {FailureKind::kNoPhysicalMemory, FailureKind::kPhysicalFragmentation}) {
      tally.begin();
      SCOPED_TRACE(std::string(page_alloc_call_name(point.call)) + ":" + std::to_string(point.index) + " " +
                   std::string(failure_name(kind)));
      RecordingOs inner(linux_os());
      FailingPageAllocs failing(point, kind);
      const RunResult r = run_sequence(backing, inner, [&] { return failing.failures_injected(); }, &failing);
      ASSERT_TRUE(r.created);
      ASSERT_EQ(failing.failures_injected(), 1u) << "the recorded allocation was not reached again";
      EXPECT_EQ(r.problem, "");
      expect_only_the_injected_step_differs(r, baseline, [&](std::size_t i, const Outcome& got) {
        if (got.kind == FailureKind::kNone) {
          ++fell_back;
          EXPECT_TRUE(i == kHugeStep || i == kKvmallocStep) << "step " << i << " hid a failed page allocation";
          return false;
        }
        ++reported;
        EXPECT_EQ(got.kind, kind) << "step " << i << " reported " << describe(got);
        return true;
      });
      tally.end();
    }
  }
  std::printf("[ page fault injection ] backing %s: %zu page allocations, %zu failures injected (%zu reported, "
              "%zu absorbed by a documented fallback), %zu passed\n",
              backing_mode_name(backing), recorder.points().size(), tally.tried(), reported, fell_back, tally.passed());
  RecordProperty("points", static_cast<int>(recorder.points().size()));
  tally.record();
  // Backing none takes pages only for kmalloc, kvmalloc and the vmap callers; the others also for
  // every vmalloc.
  EXPECT_GE(tally.tried(), backing == BackingMode::kNone ? 8u : 20u);
}

INSTANTIATE_TEST_SUITE_P(Backings, PageFaultInjection,
                         ::testing::Values(BackingMode::kNone, BackingMode::kAnon, BackingMode::kMemfd),
                         [](const auto& info) { return std::string(backing_mode_name(info.param)); });

TEST(FaultInjectionSpec, ParsesKindIndexAndErrno) {
  std::string why;
  auto spec = parse_fail_os_spec("map_shared:3", &why);
  ASSERT_TRUE(spec.has_value()) << why;
  auto nth = std::get<FailingOs::Nth>(*spec);
  EXPECT_EQ(nth.call, OsCall::kMapShared);
  EXPECT_EQ(nth.index, 3u);
  EXPECT_EQ(nth.error, EIO);
  spec = parse_fail_os_spec("reserve_fixed:0:ENOMEM", &why);
  ASSERT_TRUE(spec.has_value()) << why;
  nth = std::get<FailingOs::Nth>(*spec);
  EXPECT_EQ(nth.call, OsCall::kReserveFixed);
  EXPECT_EQ(nth.error, ENOMEM);
  spec = parse_fail_os_spec("rate:3/40:17:EAGAIN", &why);
  ASSERT_TRUE(spec.has_value()) << why;
  const auto rate = std::get<FailingOs::Rate>(*spec);
  EXPECT_EQ(rate.numerator, 3u);
  EXPECT_EQ(rate.denominator, 40u);
  EXPECT_EQ(rate.seed, 17u);
  EXPECT_EQ(rate.error, EAGAIN);
  EXPECT_EQ(std::get<FailingOs::Rate>(*parse_fail_os_spec("rate:1/1:0", &why)).error, EIO);
  for (const char* bad : {"map_shared", "map_shared:", "map_shared:x", "map_shared:-1", "nope:1", ":1", "",
                          "map_shared:1:EBOGUS", "map_shared:1:ENOMEM:2", "map_shared:1:", "rate", "rate:1/2",
                          "rate:0/2:1", "rate:3/2:1", "rate:1/0:1", "rate:1:1", "rate:1/2:x", "rate:1/2:1:",
                          "rate:1/2:1:EIO:2", "rate:/2:1"}) {
    why.clear();
    EXPECT_FALSE(parse_fail_os_spec(bad, &why).has_value()) << bad;
    EXPECT_FALSE(why.empty()) << bad;
  }
  for (int i = 0; i < static_cast<int>(OsCall::kCount); ++i)
    EXPECT_EQ(os_call_from_name(os_call_name(static_cast<OsCall>(i))), static_cast<OsCall>(i));
}

TEST(FaultInjectionSpec, ParsesPageAllocationPointsAndRates) {
  std::string why;
  auto spec = parse_fail_phys_spec("pages:3", &why);
  ASSERT_TRUE(spec.has_value()) << why;
  auto point = std::get<PageAllocPoint>(spec->which);
  EXPECT_EQ(point.call, PageAllocCall::kPages);
  EXPECT_EQ(point.index, 3u);
  EXPECT_EQ(spec->kind, FailureKind::kNoPhysicalMemory);
  spec = parse_fail_phys_spec("block:0:physical-fragmentation", &why);
  ASSERT_TRUE(spec.has_value()) << why;
  point = std::get<PageAllocPoint>(spec->which);
  EXPECT_EQ(point.call, PageAllocCall::kBlock);
  EXPECT_EQ(spec->kind, FailureKind::kPhysicalFragmentation);
  spec = parse_fail_phys_spec("rate:1/20:7", &why);
  ASSERT_TRUE(spec.has_value()) << why;
  const auto rate = std::get<FailingPageAllocs::Rate>(spec->which);
  EXPECT_EQ(rate.numerator, 1u);
  EXPECT_EQ(rate.denominator, 20u);
  EXPECT_EQ(rate.seed, 7u);
  for (const char* bad : {"pages", "page:1", "pages:x", "pages:1:os-error", "pages:1:virtual-fragmentation",
                          "pages:1:EIO", "rate:2/1:1", "rate:1/2", "block:1:no-physical-memory:1", ""}) {
    why.clear();
    EXPECT_FALSE(parse_fail_phys_spec(bad, &why).has_value()) << bad;
    EXPECT_FALSE(why.empty()) << bad;
  }
}

// A seeded rate fails the same calls on every run: two identical sequences, identical outcomes.
TEST(FaultInjectionRate, IsDeterministicForASeed) {
  auto outcomes = [](std::uint64_t seed) {
    FailingOs failing(linux_os(), FailingOs::Rate{1, 4, seed, EIO});
    const RunResult r = run_sequence(BackingMode::kMemfd, failing, [&] { return failing.failures_injected(); });
    EXPECT_EQ(r.problem, "");
    std::string text = r.created ? "created" : "create failed " + std::to_string(r.create_error);
    for (const Outcome& o : r.outcomes) text += "," + describe(o);
    return text + " / " + std::to_string(failing.failures_injected());
  };
  EXPECT_EQ(outcomes(7), outcomes(7));
  EXPECT_EQ(outcomes(8), outcomes(8));
}

// The page allocator's seeded rate: the same seed fails the same allocations, each reported with
// the injected kind, and the sequence stays consistent (run_sequence checks after every step).
TEST(PageFaultInjectionRate, IsDeterministicForASeedAndFailsSome) {
  auto outcomes = [](std::uint64_t seed, std::uint64_t* injected) {
    FailingPageAllocs failing(FailingPageAllocs::Rate{1, 3, seed}, FailureKind::kPhysicalFragmentation);
    RecordingOs inner(linux_os());
    const RunResult r = run_sequence(BackingMode::kMemfd, inner, [&] { return failing.failures_injected(); }, &failing);
    EXPECT_EQ(r.problem, "");
    std::string text = r.created ? "created" : "create failed " + std::to_string(r.create_error);
    for (const Outcome& o : r.outcomes) text += "," + describe(o);
    *injected = failing.failures_injected();
    return text;
  };
  std::uint64_t a = 0, b = 0, c = 0;
  const std::string first = outcomes(11, &a);
  EXPECT_EQ(first, outcomes(11, &b));
  EXPECT_EQ(a, b);
  EXPECT_GT(a, 0u) << "a 1-in-3 rate over the representative sequence failed nothing";
  EXPECT_NE(first.find("physical-fragmentation"), std::string::npos) << first;
  (void)outcomes(12, &c);
  EXPECT_GT(c, 0u);
}

}  // namespace
}  // namespace vmfrag
