// Trace minimiser: shrinks a trace while its first allocation failure keeps its kind.
//
// Guarantees: the result is a valid trace (id rules hold, ids renumbered densely in order of first
// use so a person can read it) whose replay's first failure has the same kind as the input's, and
// whose last op is that failure. Deterministic: the same input gives the same output. The input
// must fit in memory (minimisation replays it many times).
#pragma once

#include <cstdint>
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

}  // namespace vmfrag
