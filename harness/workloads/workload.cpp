// The workload registry and generate(): resolves defaults, validates parameters, dispatches.
#include <string>

#include "allocator/vspace/virtual_space.h"
#include "harness/workloads/emitter.h"

namespace vmfrag {
namespace workload_detail {

void throw_bad_args(const std::string& message) { throw InputError("<args>", 0, message); }

}  // namespace workload_detail

namespace {

using namespace workload_detail;
using Generator = void (*)(const Resolved&, Emitter&);

constexpr std::uint64_t MiB = 1024 * 1024;
constexpr std::uint64_t GiB = 1024 * MiB;
// Below this no workload's pattern is meaningful (checkerboard needs a few dozen areas).
constexpr std::uint64_t kMinRegion = 1 * MiB;

struct Entry {
  WorkloadInfo info;
  Generator generate;  // nullptr for vmallocinfo_profile (it reads its own profile)
};

// test_vmalloc defaults: test_loop_count = 1000000 loops of the case's op pattern, one thread,
// test_repeat_count = 1. Region: 1 GiB (see README: the x86-64 kernel has 32 TiB, a userspace
// model needs a window whose edges a failure hunt can reach).
const std::vector<Entry>& entries() {
  static const std::vector<Entry> table = {
      {{"fix_size_alloc_test", "test_vmalloc: vmalloc(nr_pages=1 page) + vfree, looped", 2000000, 1 * GiB, false, false, false}, gen_fix_size_alloc},
      {{"full_fit_alloc_test", "test_vmalloc: 8192 pinned 1-page areas interleaved with freed ones, then 1-page alloc/free into the holes", 2032772, 1 * GiB, false, false, false}, gen_full_fit_alloc},
      {{"long_busy_list_alloc_test", "test_vmalloc: 15000 pinned 1-page areas, then 100-page + 1-page alloc/free pairs", 4030002, 1 * GiB, false, false, false}, gen_long_busy_list_alloc},
      {{"random_size_alloc_test", "test_vmalloc: vmalloc(1..100 pages) + vfree, looped", 2000000, 1 * GiB, false, true, false}, gen_random_size_alloc},
      {{"fix_align_alloc_test", "test_vmalloc: 5 pages aligned to THREAD_ALIGN << 1 (32 KiB) + vfree, looped", 2000000, 1 * GiB, false, false, false}, gen_fix_align_alloc},
      {{"random_size_align_alloc_test", "test_vmalloc: 1..10 pages aligned to 1 << (rnd % 23) + vfree, looped", 2000000, 1 * GiB, false, true, false}, gen_random_size_align_alloc},
      {{"align_shift_alloc_test", "test_vmalloc: 1 page aligned to 1 << i for i in 0..63 (xfail in the kernel; here offset 0 of the region satisfies every align)", 128, 1 * GiB, false, false, false}, gen_align_shift_alloc},
      {{"pcpu_alloc_test", "test_vmalloc: 35000 percpu-shaped objects (1..1024 bytes) held, then freed", 70002, 1 * GiB, false, true, false}, gen_pcpu_alloc},
      {{"kvfree_rcu_1_arg_vmalloc_test", "test_vmalloc: 1-page vmalloc freed by kvfree_rcu_mightsleep (batched deferred frees, some inline)", 2000000, 1 * GiB, false, true, false}, gen_kvfree_rcu_1_arg},
      {{"kvfree_rcu_2_arg_vmalloc_test", "test_vmalloc: 1-page vmalloc freed by kvfree_rcu(p, rcu) (batched deferred frees)", 2000000, 1 * GiB, false, false, false}, gen_kvfree_rcu_2_arg},
      {{"vm_map_ram_test", "test_vmalloc: vm_map_ram(1 page) + vm_unmap_ram, looped (m ops)", 2000000, 1 * GiB, true, false, false}, gen_vm_map_ram},
      {{"no_block_alloc_test", "test_vmalloc: GFP_ATOMIC/GFP_NOWAIT vmalloc(1 page) + vfree, looped", 2000000, 1 * GiB, false, false, false}, gen_no_block_alloc},
      {{"vrealloc_test", "test_vmalloc: vrealloc 1 page -> 4 pages (new area, free old) -> shrinks in place, vfree", 4000000, 1 * GiB, false, false, false}, gen_vrealloc},
      {{"thread_stack_churn", "16 KiB THREAD_ALIGN'd vmap stacks: fork/exit bursts, 2-stack cache, long-lived survivors", 100000, 64 * MiB, false, true, false}, gen_thread_stack_churn},
      {{"bpf_prog_churn", "BPF program load/unload: 1..96-page prog images, realloc on verify, 2 MiB JIT packs", 100000, 128 * MiB, false, true, false}, gen_bpf_prog_churn},
      {{"module_load_32bit_x86", "x86-32 128 MiB vmalloc area: module load/unload (16 KiB..4 MiB) with .ko copies and init sections, boot ioremaps", 100000, 128 * MiB, false, true, false}, gen_module_load_32bit_x86},
      {{"module_load_32bit_arm", "ARM32 240 MiB vmalloc area: .ko copies, module-area overflow, many small SoC ioremaps", 100000, 240 * MiB, false, true, false}, gen_module_load_32bit_arm},
      {{"big_hash_tables", "boot-time large system hashes plus rhashtables resized by doubling/halving (new table before old is freed)", 100000, 128 * MiB, false, true, false}, gen_big_hash_tables},
      {{"vmallocinfo_profile", "sizes sampled from a /proc/vmallocinfo snapshot, churned around its live-area count", 100000, 0, false, true, true}, nullptr},
      {{"checkerboard", "fill with equal areas, free every other, ask for a double-size area", 100000, 16 * MiB, false, true, false}, gen_checkerboard},
      {{"sawtooth", "growing sizes with alternating short/long lifetimes: every hole one page too small", 100000, 16 * MiB, false, true, false}, gen_sawtooth},
      {{"size_doubling", "Robson-style: allocate size s, free all but every 2nd, double s, repeat", 100000, 16 * MiB, false, true, false}, gen_size_doubling},
  };
  return table;
}

}  // namespace

const std::vector<WorkloadInfo>& workloads() {
  static const std::vector<WorkloadInfo> infos = [] {
    std::vector<WorkloadInfo> v;
    for (const Entry& e : entries()) v.push_back(e.info);
    return v;
  }();
  return infos;
}

const WorkloadInfo* find_workload(std::string_view name) {
  for (const WorkloadInfo& info : workloads())
    if (info.name == name) return &info;
  return nullptr;
}

TraceHeader generate(std::string_view name, const WorkloadParams& params, OpSink& sink) {
  const Entry* entry = nullptr;
  for (const Entry& e : entries())
    if (e.info.name == name) entry = &e;
  if (entry == nullptr) throw_bad_args("unknown workload '" + std::string(name) + "'");
  if (params.region_bytes % kPageSize != 0)
    throw_bad_args("region " + std::to_string(params.region_bytes) + " is not a multiple of 4096");
  if (params.region_bytes != 0 && params.region_bytes < kMinRegion)
    throw_bad_args("region " + std::to_string(params.region_bytes) + " is below the 1 MiB minimum");
  if (params.region_bytes > kMaxRegionBytes)
    throw_bad_args("region " + std::to_string(params.region_bytes) + " is above the 16T maximum");
  if (entry->generate == nullptr) return gen_vmallocinfo_profile(params, entry->info.default_ops, sink);
  Resolved r{params.seed, params.ops != 0 ? params.ops : entry->info.default_ops,
             params.region_bytes != 0 ? params.region_bytes : entry->info.default_region, TraceHeader{}};
  r.header.region_bytes = r.region_bytes;
  Emitter e(sink, r.header, op_cap_for(r.ops));
  try {
    entry->generate(r, e);
  } catch (const OpCapReached&) {
    // The pattern wanted more ops than asked for: the trace ends at the cap.
  }
  return r.header;
}

}  // namespace vmfrag
