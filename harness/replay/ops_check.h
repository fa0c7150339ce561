// The oracle of fuzz_ops: a decoded input driven through the real Vmalloc and ReferenceVmalloc side
// by side, compared after every op — outcome (failure kind, offset, pfns), the address-space
// statistics, the free page count — with Vmalloc::check() and the reference's validate() every
// `check_every` ops. The input's misuse actions (double, interior, foreign and cross-API frees) are
// issued on purpose: each must be refused, counted as misuse, and change nothing.
//
// Deterministic: the same input gives the same result. Never throws; the result names the first
// problem and the op index where it happened (the target aborts with it).
#pragma once

#include <cstdint>
#include <string>

#include "harness/decode/op_decoder.h"

namespace vmfrag {

struct OpsCheckOptions {
  // Vmalloc::check() and validate() every N ops and at the end. Not 1: check() probes aliasing with
  // a fresh mmap per buddy order (~11 mappings), which cost 85 % of a run at every op.
  std::uint64_t check_every = 16;
};

struct OpsCheckResult {
  std::string problem;          // "" when the allocator and the reference agreed throughout
  std::uint64_t op = 0;         // index of the op (or of the op the misuse preceded) at fault
  std::uint64_t ops = 0;        // ops run
  std::uint64_t misuse_issued = 0;
  [[nodiscard]] bool ok() const { return problem.empty(); }
};

// Runs `input` (its header: region, guard, lazy, phys, backing). A header the allocator refuses
// (it cannot create the instance) is not a problem: the run is empty.
[[nodiscard]] OpsCheckResult run_ops_check(const DecodedInput& input, const OpsCheckOptions& options = {});

}  // namespace vmfrag
