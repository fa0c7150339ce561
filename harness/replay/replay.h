// Replay: runs a vmtrace's ops on a Vmalloc (and, in differential mode, on the independent
// ReferenceVmalloc beside it) and records exactly what happened: placements, failures with their
// kind and the address-space state at that moment, per-op metrics, and the final state.
//
// Guarantees: deterministic (same trace, same result, byte for byte in its JSON); streaming (ops are
// consumed one at a time from an OpSource, memory grows with live ids and recorded failures, not
// with the trace); a failed allocation is a result, not an error.
// Failures of the *run* are reported as exceptions: InputError for a bad trace (at its line) or an
// op this build cannot replay; nothing else escapes.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "allocator/core/failure.h"
#include "allocator/os/fault_injection.h"
#include "allocator/vmalloc/thread_cache.h"
#include "allocator/vmalloc/vmalloc.h"
#include "allocator/vspace/virtual_space.h"
#include "harness/trace/op.h"

namespace vmfrag {

// Where replay gets its ops: a trace file, or an in-memory vector (minimiser, fuzzers, tests).
class OpSource {
 public:
  virtual ~OpSource() = default;
  [[nodiscard]] virtual const TraceHeader& header() const = 0;
  // Next op, or false at the end. May throw InputError.
  [[nodiscard]] virtual bool next(Op& op) = 0;
  // 1-based source line of the op last returned (0 when the source has no lines).
  [[nodiscard]] virtual std::uint64_t line() const = 0;
  [[nodiscard]] virtual const std::string& name() const = 0;
};

class VectorOpSource final : public OpSource {
 public:
  VectorOpSource(TraceHeader header, const std::vector<Op>& ops, std::string name = "<memory>")
      : header_(header), ops_(ops), name_(std::move(name)) {}
  const TraceHeader& header() const override { return header_; }
  bool next(Op& op) override {
    if (pos_ == ops_.size()) return false;
    op = ops_[pos_++];
    return true;
  }
  std::uint64_t line() const override { return 0; }
  const std::string& name() const override { return name_; }

 private:
  TraceHeader header_;
  const std::vector<Op>& ops_;
  std::size_t pos_ = 0;
  std::string name_;
};

struct ReplayOptions {
  bool differential = false;         // run ReferenceVmalloc beside and stop at the first divergence
  std::uint64_t check_every = 0;     // run check() every N ops (and at the end); 0 = never
  std::size_t maps_at_failures = 16; // record the address-space map at the first N failures
  bool stop_at_first_failure = false;  // the minimiser only needs the first one
  std::optional<Backing> backing;      // overrides the trace's `backing` directive
  // An OS interceptor between the allocator and the real OS (a FailingOs for --fail-os); nullptr =
  // the real OS directly. Paused while check() runs, so injection points are the ops' own calls,
  // and left paused when the replay ends (the allocator's teardown is not an op). Must outlive the
  // replay.
  InterceptingOs* os = nullptr;
  // The page allocator's fault-injection seam (a FailingPageAllocs for --fail-phys); nullptr = none.
  // check() allocates no pages, so injection points are the ops' own allocations. Must outlive the
  // replay.
  PageAllocFaults* page_faults = nullptr;
  // Replay `a` (page-aligned, at most max_area_pages) and `k` through a ThreadCachedVmalloc's cache
  // (one thread: the replay's), so its effect on placement and fragmentation shows on any trace:
  // cached areas stay live in the address space. Not with differential (the reference model is
  // exact lowest fit). nullopt = the plain Vmalloc.
  std::optional<ThreadCacheConfig> thread_cache;
  // Called after every op with its index and the op; for timelines. Must not throw.
  std::function<void(std::uint64_t op_index, const Op& op, const VirtualSpace& space, bool ok,
                     FailureKind failure, std::uint64_t offset)>
      on_op;
};

struct FailureRecord {
  std::uint64_t op = 0;    // op index (0-based among op lines)
  std::uint64_t line = 0;  // trace line, 0 when replayed from memory
  std::uint64_t id = 0;
  std::uint64_t size = 0;
  std::uint64_t align = 0;
  FailureKind kind = FailureKind::kNone;
  std::uint64_t free_bytes = 0;          // after the purge-and-retry
  std::uint64_t largest_free_bytes = 0;
  std::uint64_t lazy_bytes = 0;
  double unusable_free_index = 0;        // for this request's size
  std::vector<MapEntry> map;             // empty beyond maps_at_failures
};

struct Divergence {
  std::uint64_t op = 0;
  std::uint64_t line = 0;
  std::string allocator;  // outcome, e.g. "offset 0x3000" or "virtual-fragmentation"
  std::string reference;
};

struct ReplayResult {
  std::string trace_name;
  TraceHeader header;
  Backing backing = Backing::kNone;  // the backing replayed (the header's, or the override)
  std::uint64_t ops = 0;
  std::uint64_t allocs = 0;          // successful allocations
  std::uint64_t alloc_attempts = 0;
  std::uint64_t frees = 0;           // frees that released an area
  std::uint64_t frees_of_failed = 0; // `f` of an id whose allocation failed: a no-op
  std::uint64_t purges_requested = 0;
  std::vector<FailureRecord> failures;
  std::map<std::uint64_t, std::uint64_t> placements;  // id -> offset of its latest successful `a`
  std::uint64_t peak_live_bytes = 0;
  VirtualSpaceStats final_stats;
  std::map<std::string, std::uint64_t> failures_by_kind;
  bool differential = false;
  std::optional<ThreadCacheStats> thread_cache;  // with ReplayOptions::thread_cache: at the end
  std::optional<Divergence> divergence;  // set: the run stopped there (exit 3)
  std::string invariant_violation;       // non-empty: check() failed (exit 3)
  std::uint64_t invariant_op = 0;
};

// Runs the ops on a Vmalloc built from the header (region, guard, lazy, phys, backing): a, f, p
// and the physical-memory ops k (kmalloc), m (vm_map_ram of that many fresh pages), h
// (vmalloc_huge). Differential mode follows every op in every backing (in anon/memfd the pfns of
// each area are compared too). Throws InputError for a bad trace and, at line 0, when the
// allocator cannot be created.
[[nodiscard]] ReplayResult replay(OpSource& source, const ReplayOptions& options);

// The result as the public JSON object (harness/TRACE_FORMAT.md, "Replay results"). Deterministic.
[[nodiscard]] std::string replay_result_json(const ReplayResult& result);

// One timeline line (JSON Lines) for an op: index, op, outcome and the O(1) stats after it.
[[nodiscard]] std::string timeline_line(std::uint64_t op_index, const Op& op, const VirtualSpace& space, bool ok,
                                        FailureKind failure, std::uint64_t offset);

}  // namespace vmfrag
