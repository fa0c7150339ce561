// Trace minimiser: shrinks a trace while its first allocation failure keeps its kind, or while a
// caller's predicate holds ("the same bug", "a virtual-fragmentation failure with severity <= S").
//
// Guarantees: the result is a valid trace (id rules hold, ids renumbered densely in order of first
// use so a person can read it) whose replay's first failure has the same kind as the input's, and
// whose last op is that failure. Deterministic: the same input gives the same output. The input
// must fit in memory (minimisation replays it many times).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "allocator/core/failure.h"
#include "harness/trace/op.h"

namespace vmfrag {

struct MinimizeResult {
  TraceHeader header;
  std::vector<Op> ops;
  FailureKind kind = FailureKind::kNone;  // kNone: the input had no failure; ops is then the input
  std::uint64_t original_ops = 0;
  std::uint64_t replays = 0;  // how many candidate replays it took
};

// Shrinks by, in turn until nothing changes: cutting everything after the first failure; halving
// the region (and smaller cuts); removing chunks of ops, halving the chunk size down to single ops
// (delta debugging, complement-only); halving allocation sizes; setting lazy to 0.
// A candidate is "normalised" before it is judged: allocations that fail with another kind before
// the first failure of the wanted kind are dropped (a failed allocation changes no state, except
// the purge it may trigger, which the confirming replay accounts for), as are frees of ids no
// longer allocated. Throws InputError only if `ops` contains ops replay cannot run.
[[nodiscard]] MinimizeResult minimize_trace(const TraceHeader& header, const std::vector<Op>& ops);

// "Still interesting?" for the predicate minimiser: nullopt when the candidate no longer shows the
// behaviour, else the length of the shortest prefix that shows it (the minimiser cuts the rest;
// return ops.size() to keep everything). Must be deterministic. The minimiser offers only valid
// traces (id rules hold, region at least 64 KiB).
using MinimizePredicate = std::function<std::optional<std::size_t>(const TraceHeader&, const std::vector<Op>&)>;

// Shrinks with the same steps as minimize_trace (cut, region, chunks, sizes, lazy 0, renumbered
// ids) while `interesting` holds. kind in the result: kNone. If the input itself is not
// interesting, the result is the input (replays 1). Throws InputError only if the predicate does.
[[nodiscard]] MinimizeResult minimize_trace(const TraceHeader& header, const std::vector<Op>& ops,
                                            const MinimizePredicate& interesting);

// Predicates.
// A failure of `kind` whose hunt severity is at most max_severity: "a virtual-fragmentation failure
// with severity <= S". The trace is scored by run_any_hunt (harness/hunt/phys_hunt.h): a, f and p
// ops by the virtual hunt (peak live need incl. guard and the failing request / region), k, f and
// p by the physical one (peak live block pages / physical pages); any other mix is not interesting.
[[nodiscard]] MinimizePredicate failure_with_severity(FailureKind kind, double max_severity);
// The same bug: replay --differential (check() every op) stops with a divergence or an invariant
// violation whose description starts with `prefix`: the allocator's side of a divergence (e.g.
// "free pages", "offset 0x") or the violation text (e.g. "check(): address space").
[[nodiscard]] MinimizePredicate same_bug(std::string prefix, Backing backing);

}  // namespace vmfrag
