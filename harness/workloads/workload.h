// Seeded workload generators: the registry and the one entry point `generate`.
//
// A workload turns (name, seed, ops, region) into a vmtrace op stream. Guarantees:
//  * Deterministic: the same name, WorkloadParams (and, for profile-driven workloads, the same
//    profile file bytes) produce byte-identical op streams on every machine, compiler and standard
//    library. Generators use harness/workloads/prng.h and integer arithmetic only.
//  * Streaming: ops go to the sink one at a time; a generator holds only its live set (or less),
//    never the trace, so a 1e6-op trace costs memory proportional to the live areas.
//  * Valid: ids are fresh (each allocating op takes the next unused id, counting from 0), so an
//    allocating op never reuses an id, `f` only names an id allocated earlier and not yet freed,
//    every align is a power of two >= 4096 and every size is > 0.
//  * Op count: close to params.ops (each workload's README entry states its rounding; the tests
//    hold every workload to |emitted - ops| <= max(64, ops / 50)).
// Cost: O(ops) time plus what each README entry states; 1e5 ops take a few milliseconds.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "harness/trace/input_error.h"
#include "harness/trace/op.h"

namespace vmfrag {

// Receives a generated or imported trace: begin() once with the directives, then emit() per op.
class OpSink {
 public:
  virtual ~OpSink() = default;
  virtual void begin(const TraceHeader& header) = 0;
  virtual void emit(const Op& op) = 0;
};

struct WorkloadParams {
  std::uint64_t seed = 0;
  std::uint64_t ops = 0;           // target op count; 0 = the workload's default_ops
  std::uint64_t region_bytes = 0;  // 0 = the workload's default region; else a multiple of 4096
  // Only for workloads with uses_profile: a /proc/vmallocinfo snapshot. Empty = kDefaultProfilePath,
  // the sample snapshot in the source tree (an absolute path fixed at build time, so gen works from
  // any directory).
  std::string profile_path;
};

inline constexpr std::string_view kDefaultProfilePath = VMFRAG_SOURCE_ROOT "/corpus/profiles/vmallocinfo-sample.txt";

struct WorkloadInfo {
  std::string_view name;
  std::string_view summary;
  std::uint64_t default_ops;
  std::uint64_t default_region;  // bytes; for uses_profile workloads, 0 = derived from the profile
  bool needs_physical;  // emits k/m/h ops: replay needs the physical layer
  bool randomised;      // the seed changes the op stream (false: the seed is accepted but unused)
  bool uses_profile;    // reads WorkloadParams::profile_path
};

// Every workload, in a stable order (test_vmalloc cases first, in the kernel's order). O(1).
[[nodiscard]] const std::vector<WorkloadInfo>& workloads();

// The registry entry for `name`, or nullptr. O(number of workloads).
[[nodiscard]] const WorkloadInfo* find_workload(std::string_view name);

// Calls sink.begin(header) then sink.emit() for each op, and returns the header.
// Throws InputError("<args>", 0, ...) for an unknown name, a region that is not a multiple of 4096
// or too small for the workload to make sense; InputError(profile_path, line, ...) for an unreadable
// or malformed profile. Exceptions thrown by the sink propagate. If it throws after begin(), the
// sink has seen a prefix of the stream.
TraceHeader generate(std::string_view name, const WorkloadParams& params, OpSink& sink);

}  // namespace vmfrag
