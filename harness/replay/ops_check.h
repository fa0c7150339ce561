// The oracle of fuzz_ops: a decoded input driven through the real Vmalloc and ReferenceVmalloc side
// by side, compared after every op — outcome (failure kind, offset, pfns), the address-space
// statistics, the free page count — with Vmalloc::check(CheckDepth::kStructure) and the
// reference's validate() after every op (`check_every`), and Vmalloc::check(CheckDepth::kFull) at
// the end of the input. The input's misuse actions (double, interior, foreign and cross-API frees) are
// issued on purpose: each must be refused, counted as misuse, and change nothing.
//
// Deterministic: the same input gives the same result. Never throws; the result names the first
// problem and the op index where it happened (the target aborts with it).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "harness/decode/op_decoder.h"

namespace vmfrag {

struct OpsCheckOptions {
  // Vmalloc::check(kStructure) and the reference's validate() every N ops (0: never). kStructure
  // recomputes every structural invariant of the address space, the buddy allocator and the
  // vmalloc layer from their own bookkeeping (trees, tiling, ownership, page accounting, counters)
  // without a system call, so it can run after every op; at the end of the input, whatever N,
  // check(kFull) adds the probes (fit searches against a linear scan, the memfd aliasing probe
  // through a second mapping, sampled writes through areas read back through the direct map),
  // which map pages and cost ~85 % of a run when they ran after every op.
  std::uint64_t check_every = 1;
};

struct OpsCheckResult {
  std::string problem;          // "" when the allocator and the reference agreed throughout
  std::uint64_t op = 0;         // index of the op (or of the op the misuse preceded) at fault
  std::uint64_t ops = 0;        // ops run
  std::uint64_t misuse_issued = 0;
  [[nodiscard]] bool ok() const { return problem.empty(); }
};

class Vmalloc;
struct VmallocConfig;

// The Vmalloc configuration a trace header describes (region, guard, lazy, phys, backing), as
// replay builds it; fuzz_ops and the physical hunt create their instances from it.
[[nodiscard]] VmallocConfig vmalloc_config_of(const TraceHeader& header);

// Allocator instances kept between runs, one per header: creating and destroying one (a memfd, the
// direct map, the region, and TLB shootdowns when they are unmapped) dominated a short run. After a
// run everything still live is released with its matching function and the instance purged; it must
// then be pristine (one free extent covering the region, every page free, no vmap block, nothing
// mapped), which is itself checked: a leak is reported as a problem. Placements and pfns depend
// only on the free extents and free pages, so a pristine reused instance acts as a fresh one.
class OpsInstances {
 public:
  OpsInstances();
  ~OpsInstances();
  OpsInstances(const OpsInstances&) = delete;
  OpsInstances& operator=(const OpsInstances&) = delete;
  static constexpr std::size_t kMaxKept = 8;  // distinct headers kept (oldest dropped first)

 private:
  friend class OpsChecker;
  using Key = std::tuple<std::uint64_t, std::uint32_t, std::uint64_t, std::uint64_t, int>;
  std::map<Key, std::unique_ptr<Vmalloc>> kept_;
  std::map<Key, std::uint64_t> last_use_;
  std::uint64_t clock_ = 0;
};

// Runs `input` (its header: region, guard, lazy, phys, backing) on a fresh instance, or on one of
// `reuse`'s. A header the allocator refuses (it cannot create the instance) is not a problem: the
// run is empty.
[[nodiscard]] OpsCheckResult run_ops_check(const DecodedInput& input, const OpsCheckOptions& options = {},
                                           OpsInstances* reuse = nullptr);

}  // namespace vmfrag
