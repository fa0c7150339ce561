// Internal to harness/workloads: the op emitter every generator writes through, and the
// per-family generator entry points the registry (workload.cpp) dispatches to.
#pragma once

#include <cstdint>

#include "harness/workloads/workload.h"

namespace vmfrag::workload_detail {

// Thrown by Emitter when a generator reaches its op cap; generate() catches it and ends the trace.
struct OpCapReached {};

// The most ops `generate` emits for a target of `ops`: the target plus the tolerance every
// workload is held to (max(64, ops / 50)), so a generator whose pattern ignores the target (a
// checkerboard filling a 16 TiB region) still stops near it.
[[nodiscard]] constexpr std::uint64_t op_cap_for(std::uint64_t ops) {
  const std::uint64_t slack = ops / 50 > 64 ? ops / 50 : 64;
  return ops > UINT64_MAX - slack ? UINT64_MAX : ops + slack;
}

// Hands out fresh ids (0, 1, 2, ...) so the live-id rule holds by construction, and counts ops.
// With a cap, the op that would exceed it throws OpCapReached instead of being emitted (a prefix of
// a valid stream is a valid stream). O(1) per op; holds no history.
class Emitter {
 public:
  Emitter(OpSink& sink, const TraceHeader& header, std::uint64_t cap = UINT64_MAX) : sink_(sink), cap_(cap) {
    sink_.begin(header);
  }

  // `a <id> <bytes> [<align>]`; returns the new id. bytes > 0, align a power of two >= 4096.
  std::uint64_t alloc(std::uint64_t bytes, std::uint64_t align = kPageSize) {
    const std::uint64_t id = next_id_++;
    put(Op{OpKind::kAlloc, id, bytes, align});
    return id;
  }
  // `m <id> <pages>` (vm_map_ram; needs the physical layer).
  std::uint64_t map_ram(std::uint64_t pages) {
    const std::uint64_t id = next_id_++;
    put(Op{OpKind::kMapRam, id, pages, kPageSize});
    return id;
  }
  void free(std::uint64_t id) { put(Op{OpKind::kFree, id, 0, kPageSize}); }
  void purge() { put(Op{OpKind::kPurge, 0, 0, kPageSize}); }

  [[nodiscard]] std::uint64_t emitted() const { return emitted_; }

 private:
  void put(const Op& op) {
    if (emitted_ == cap_) throw OpCapReached{};
    sink_.emit(op);
    ++emitted_;
  }
  OpSink& sink_;
  std::uint64_t cap_;
  std::uint64_t next_id_ = 0;
  std::uint64_t emitted_ = 0;
};

// Parameters after defaults are applied: ops and region are never 0 here.
struct Resolved {
  std::uint64_t seed;
  std::uint64_t ops;
  std::uint64_t region_bytes;
  TraceHeader header;  // region set, other directives at the format defaults unless a family changes them
};

[[noreturn]] void throw_bad_args(const std::string& message);

// kernel_test_vmalloc.cpp
void gen_fix_size_alloc(const Resolved&, Emitter&);
void gen_full_fit_alloc(const Resolved&, Emitter&);
void gen_long_busy_list_alloc(const Resolved&, Emitter&);
void gen_random_size_alloc(const Resolved&, Emitter&);
void gen_fix_align_alloc(const Resolved&, Emitter&);
void gen_random_size_align_alloc(const Resolved&, Emitter&);
void gen_align_shift_alloc(const Resolved&, Emitter&);
void gen_pcpu_alloc(const Resolved&, Emitter&);
void gen_kvfree_rcu_1_arg(const Resolved&, Emitter&);
void gen_kvfree_rcu_2_arg(const Resolved&, Emitter&);
void gen_vm_map_ram(const Resolved&, Emitter&);
void gen_no_block_alloc(const Resolved&, Emitter&);
void gen_vrealloc(const Resolved&, Emitter&);
// kernel_profiles.cpp
void gen_thread_stack_churn(const Resolved&, Emitter&);
void gen_bpf_prog_churn(const Resolved&, Emitter&);
void gen_module_load_32bit_x86(const Resolved&, Emitter&);
void gen_module_load_32bit_arm(const Resolved&, Emitter&);
void gen_big_hash_tables(const Resolved&, Emitter&);
// adversarial.cpp
void gen_checkerboard(const Resolved&, Emitter&);
void gen_sawtooth(const Resolved&, Emitter&);
void gen_size_doubling(const Resolved&, Emitter&);

}  // namespace vmfrag::workload_detail

namespace vmfrag::workload_detail {
// vmallocinfo_import.cpp: reads params.profile_path, so it resolves its own defaults.
TraceHeader gen_vmallocinfo_profile(const WorkloadParams& params, std::uint64_t default_ops, OpSink& sink);
}  // namespace vmfrag::workload_detail
