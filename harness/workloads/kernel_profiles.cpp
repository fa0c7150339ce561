// Kernel-shaped synthetic profiles: thread stacks, BPF programs, 32-bit module loading, large hash
// tables. Each models the vmalloc-space traffic of one kernel subsystem; sizes, alignments and the
// order of allocations follow the kernel code paths named in the comments, and the distributions
// (documented with their sources in README.md) are coarse integer tables, not fitted curves.
#include <algorithm>
#include <cstdint>
#include <deque>
#include <vector>

#include "harness/workloads/emitter.h"
#include "harness/workloads/prng.h"

namespace vmfrag::workload_detail {
namespace {

constexpr std::uint64_t kPage = kPageSize;
constexpr std::uint64_t KiB = 1024;
constexpr std::uint64_t MiB = 1024 * KiB;

constexpr std::uint64_t round_up_pages(std::uint64_t bytes) { return (bytes + kPage - 1) / kPage * kPage; }

// Removes and returns a uniformly chosen element (order of the rest changes; deterministic).
std::uint64_t take_random(Prng& rng, std::vector<std::uint64_t>& v) {
  const std::uint64_t i = rng.below(v.size());
  const std::uint64_t id = v[i];
  v[i] = v.back();
  v.pop_back();
  return id;
}

}  // namespace

// ---- thread_stack_churn ------------------------------------------------------------------------
// kernel/fork.c alloc_thread_stack_node() with CONFIG_VMAP_STACK: __vmalloc_node(THREAD_SIZE,
// THREAD_ALIGN) = 16 KiB aligned to 16 KiB on x86-64 (20480 bytes in /proc/vmallocinfo with the
// guard). Exited stacks go to a per-CPU cache of NR_CACHED_STACKS = 2 before being vfree'd, and a
// new thread takes a cached stack before calling vmalloc; both are modelled (one CPU).
void gen_thread_stack_churn(const Resolved& r, Emitter& e) {
  constexpr std::uint64_t kStack = 16 * KiB;
  constexpr std::size_t kCachedStacks = 2;
  constexpr std::uint64_t kSurvivorCap = 256;  // kthreads, daemons: created, never exit
  Prng rng(r.seed);
  std::vector<std::uint64_t> mortal;  // live threads that will exit
  std::vector<std::uint64_t> cache;
  std::uint64_t survivors = 0;
  auto create = [&](bool boot) {
    std::uint64_t id;
    if (!cache.empty()) {
      id = cache.back();
      cache.pop_back();
    } else {
      id = e.alloc(kStack, kStack);
    }
    if (survivors < kSurvivorCap && rng.chance(boot ? 3 : 1, boot ? 4 : 32)) {
      ++survivors;
    } else {
      mortal.push_back(id);
    }
  };
  auto exit_one = [&] {
    const std::uint64_t id = take_random(rng, mortal);
    if (cache.size() < kCachedStacks) cache.push_back(id);
    else e.free(id);
  };
  // Boot: kthreads and early services, mostly long-lived.
  for (std::uint64_t i = 0; i < 128 && e.emitted() < r.ops; ++i) create(true);
  while (e.emitted() < r.ops) {
    const std::uint64_t burst = 1 + rng.below(32);  // a fork storm (make -j, a shell pipeline)
    const bool fork_burst = mortal.empty() || (mortal.size() < 4096 && rng.chance(1, 2));
    for (std::uint64_t i = 0; i < burst && e.emitted() < r.ops; ++i) {
      if (fork_burst) create(false);
      else if (!mortal.empty()) exit_one();
    }
  }
}

// ---- bpf_prog_churn ----------------------------------------------------------------------------
// kernel/bpf/core.c: bpf_prog_alloc_no_stats() vmallocs round_up(bpf_prog_size(insn_cnt),
// PAGE_SIZE) (1 page for most programs, "pages=1 vmalloc" with 8192 bytes in vmallocinfo);
// the verifier's patching grows it through bpf_prog_realloc() (new area, copy, free old).
// JIT images go to bpf_prog_pack: 2 MiB (PMD) packs from bpf_jit_alloc_exec(), sub-allocated in
// 64-byte chunks, a pack freed when its last program goes. The pack's bitmap is approximated by a
// free-chunk count (no intra-pack fragmentation), which only affects when packs are created.
void gen_bpf_prog_churn(const Resolved& r, Emitter& e) {
  constexpr std::uint64_t kPackSize = 2 * MiB;
  constexpr std::uint64_t kChunk = 64;
  constexpr std::uint64_t kPackChunks = kPackSize / kChunk;
  constexpr WeightedRange kProgPages[] = {
      {70, 1, 1}, {20, 2, 8}, {8, 9, 32}, {2, 33, 96}};  // up to 384 KiB
  struct Pack {
    std::uint64_t id, free_chunks, live;
  };
  struct Prog {
    std::uint64_t id, pack_index, chunks;
  };
  Prng rng(r.seed);
  std::vector<Pack> packs;  // index is stable; a freed pack gets live == 0 and id reused on reopen
  std::vector<bool> pack_open;
  std::vector<Prog> permanent, churn;
  auto load = [&](std::vector<Prog>& into) {
    std::uint64_t pages = pick_weighted(rng, kProgPages);
    std::uint64_t id = e.alloc(pages * kPage);
    if (rng.chance(1, 4)) {  // verifier rewrites grow the program: bpf_prog_realloc()
      const std::uint64_t grown = pages + rng.inclusive(1, pages);
      const std::uint64_t bigger = e.alloc(grown * kPage);
      e.free(id);
      id = bigger;
      pages = grown;
    }
    // The x86 JIT emits roughly as many bytes as the instruction array holds (the 8-byte
    // instructions become 2..15-byte x86 instructions, several per BPF instruction).
    const std::uint64_t chunks = (pages * kPage + kChunk - 1) / kChunk;
    std::uint64_t index = packs.size();
    for (std::uint64_t i = 0; i < packs.size(); ++i)
      if (pack_open[i] && packs[i].free_chunks >= chunks) { index = i; break; }
    if (index == packs.size()) {
      for (std::uint64_t i = 0; i < packs.size(); ++i)
        if (!pack_open[i]) { index = i; break; }
      if (index == packs.size()) {
        packs.push_back({});
        pack_open.push_back(false);
      }
      packs[index] = Pack{e.alloc(kPackSize, kPackSize), kPackChunks, 0};
      pack_open[index] = true;
    }
    packs[index].free_chunks -= chunks;
    ++packs[index].live;
    into.push_back(Prog{id, index, chunks});
  };
  auto unload = [&](std::vector<Prog>& from) {
    const std::uint64_t i = rng.below(from.size());
    const Prog p = from[i];
    from[i] = from.back();
    from.pop_back();
    e.free(p.id);
    Pack& pack = packs[p.pack_index];
    pack.free_chunks += p.chunks;
    if (--pack.live == 0) {
      e.free(pack.id);
      pack_open[p.pack_index] = false;
    }
  };
  // Boot: systemd and friends attach ~64 long-lived programs (cgroup device/socket filters).
  for (int i = 0; i < 64 && e.emitted() < r.ops; ++i) load(permanent);
  constexpr std::uint64_t kChurnTarget = 256;  // tracers, CNI agents reloading programs
  while (e.emitted() < r.ops) {
    const bool want_load = churn.empty() || (churn.size() < kChurnTarget ? rng.chance(2, 3) : rng.chance(1, 3));
    if (want_load) load(churn);
    else unload(churn);
  }
}

// ---- module_load_32bit_x86 / module_load_32bit_arm ---------------------------------------------
namespace {

struct ModuleArch {
  bool separate_module_area;  // ARM: modules live below PAGE_OFFSET, vmalloc only on overflow (PLTs)
  std::uint64_t module_area_bytes;
  std::uint64_t boot_modules;
  std::uint64_t loaded_target;
  std::uint64_t ioremaps;
  std::uint64_t ioremap_max_order;
};

// Core size (text + rodata + data) of a loadable module. Coarse buckets after `lsmod` on desktop
// and embedded distributions: most modules are 16..128 KiB, a few (GPU, filesystems) reach MiBs.
constexpr WeightedRange kModuleBytes[] = {{30, 16 * KiB, 32 * KiB}, {30, 32 * KiB, 64 * KiB},
                                          {20, 64 * KiB, 128 * KiB}, {14, 128 * KiB, 512 * KiB},
                                          {4, 512 * KiB, 1 * MiB},   {2, 1 * MiB, 4 * MiB}};

std::uint64_t ceil_log2(std::uint64_t x) {
  std::uint64_t s = 0;
  while ((std::uint64_t{1} << s) < x) ++s;
  return s;
}

void gen_module_load(const Resolved& r, Emitter& e, const ModuleArch& arch,
                     const WeightedRange (&ioremap_bytes)[3]) {
  struct Module {
    std::vector<std::uint64_t> ids;  // sections that landed in the vmalloc region
    std::uint64_t module_area_used;  // bytes taken from the separate module area
  };
  Prng rng(r.seed);
  std::uint64_t module_area_free = arch.module_area_bytes;
  std::vector<Module> pinned, loaded;
  std::vector<std::uint64_t> init_pending;  // freed by the do_free_init() work one step later
  // One section: module area first when the arch has one (ARM), else / on overflow vmalloc.
  auto place = [&](Module& m, std::uint64_t bytes) {
    bytes = round_up_pages(bytes);
    if (arch.separate_module_area && module_area_free >= bytes) {
      module_area_free -= bytes;
      m.module_area_used += bytes;
      return ~std::uint64_t{0};
    }
    const std::uint64_t id = e.alloc(bytes);
    m.ids.push_back(id);
    return id;
  };
  auto load = [&](std::vector<Module>& into) {
    for (std::uint64_t id : init_pending) e.free(id);
    init_pending.clear();
    const std::uint64_t core = pick_weighted(rng, kModuleBytes);
    const std::uint64_t init = std::max(kPage, core / 16);
    // copy_module_from_user(): the whole .ko is vmalloc'd (symbols and relocations make it larger
    // than the loaded image), freed by free_copy() right before do_init_module().
    const std::uint64_t ko = e.alloc(core + core / 4 + init + rng.below(kPage));
    Module m{{}, 0};
    // Since 6.4 each mod_mem type is its own allocation (module_memory_alloc / execmem_alloc).
    place(m, core * 55 / 100);  // MOD_TEXT
    place(m, core * 20 / 100);  // MOD_RODATA
    place(m, core * 25 / 100);  // MOD_DATA
    Module init_sections{{}, 0};
    place(init_sections, init * 2 / 3);  // MOD_INIT_TEXT
    place(init_sections, init / 3 + 1);  // MOD_INIT_DATA
    e.free(ko);
    // Init sections are freed asynchronously (do_free_init via init_free_wq): at the next load.
    for (std::uint64_t id : init_sections.ids) init_pending.push_back(id);
    module_area_free += init_sections.module_area_used;
    into.push_back(std::move(m));
  };
  auto unload = [&] {
    const std::uint64_t i = rng.below(loaded.size());
    Module m = std::move(loaded[i]);
    loaded[i] = std::move(loaded.back());
    loaded.pop_back();
    for (std::uint64_t id : m.ids) e.free(id);
    module_area_free += m.module_area_used;
  };
  auto ioremap = [&] {
    const std::uint64_t bytes = round_up_pages(pick_weighted(rng, ioremap_bytes));
    // __get_vm_area_node(): VM_IOREMAP areas are aligned to their size order, capped.
    const std::uint64_t order = std::clamp<std::uint64_t>(ceil_log2(bytes), 12, arch.ioremap_max_order);
    e.alloc(bytes, std::uint64_t{1} << order);  // never freed: device MMIO of built-in drivers
  };
  // Boot: drivers probe in turn; each may ioremap its registers before or after its module loads.
  std::uint64_t ioremaps_left = arch.ioremaps;
  for (std::uint64_t i = 0; i < arch.boot_modules && e.emitted() < r.ops; ++i) {
    while (ioremaps_left > 0 && rng.chance(arch.ioremaps, arch.ioremaps + arch.boot_modules)) {
      ioremap();
      --ioremaps_left;
    }
    load(rng.chance(1, 2) ? pinned : loaded);
  }
  for (; ioremaps_left > 0 && e.emitted() < r.ops; --ioremaps_left) ioremap();
  // Runtime: modprobe / rmmod churn (USB devices, netfilter, hot-plugged hardware).
  while (e.emitted() < r.ops) {
    if (loaded.empty() || (loaded.size() < arch.loaded_target ? rng.chance(2, 3) : rng.chance(1, 3))) load(loaded);
    else unload();
  }
}

}  // namespace

void gen_module_load_32bit_x86(const Resolved& r, Emitter& e) {
  // x86-32: modules are allocated in the vmalloc area (MODULES_VADDR = VMALLOC_START);
  // IOREMAP_MAX_ORDER = PMD_SHIFT (22 without PAE).
  constexpr ModuleArch kArch{false, 0, 40, 60, 24, 22};
  constexpr WeightedRange kIoremap[] = {{60, 4 * KiB, 16 * KiB}, {30, 16 * KiB, 1 * MiB}, {10, 4 * MiB, 16 * MiB}};
  gen_module_load(r, e, kArch, kIoremap);
}

void gen_module_load_32bit_arm(const Resolved& r, Emitter& e) {
  // ARM32: a 16 MiB module area below PAGE_OFFSET; with CONFIG_ARM_MODULE_PLTS modules that do
  // not fit fall back to the vmalloc area. SoCs ioremap many small peripheral windows.
  constexpr ModuleArch kArch{true, 16 * MiB, 30, 60, 120, 19};
  constexpr WeightedRange kIoremap[] = {{80, 4 * KiB, 4 * KiB}, {17, 8 * KiB, 64 * KiB}, {3, 1 * MiB, 8 * MiB}};
  gen_module_load(r, e, kArch, kIoremap);
}

// ---- big_hash_tables ---------------------------------------------------------------------------
// Boot: alloc_large_system_hash() tables (vmalloc'd when hashdist is set, the NUMA default), sized
// for a 1 GiB machine, never freed. Runtime: rhashtables (lib/rhashtable.c bucket_table_alloc via
// kvmalloc) that double when 75% full and halve below 30%: the new table is allocated while the
// old one is still live, and the old one is freed after an RCU grace period.
void gen_big_hash_tables(const Resolved& r, Emitter& e) {
  constexpr std::uint64_t kBootTables[] = {
      1 * MiB,    // Dentry cache hash
      512 * KiB,  // Inode-cache hash
      16 * KiB,   // Mount-cache hash
      16 * KiB,   // Mountpoint-cache hash
      256 * KiB,  // TCP established hash
      256 * KiB,  // TCP bind hash
      64 * KiB,   // UDP hash
      64 * KiB,   // UDP-Lite hash
      64 * KiB,   // futex hash
  };
  constexpr std::uint64_t kTables = 16;
  constexpr std::uint64_t kMaxTable = 16 * MiB;
  constexpr std::size_t kGracePeriodResizes = 4;  // old tables wait this many resizes
  Prng rng(r.seed);
  for (std::uint64_t bytes : kBootTables) {
    if (e.emitted() >= r.ops) return;
    e.alloc(bytes);
  }
  struct Table {
    std::uint64_t id, bytes;
  };
  std::vector<Table> tables;
  std::deque<std::uint64_t> retired;
  auto retire = [&](std::uint64_t id) {
    retired.push_back(id);
    while (retired.size() > kGracePeriodResizes) {
      e.free(retired.front());
      retired.pop_front();
    }
  };
  for (std::uint64_t i = 0; i < kTables && e.emitted() < r.ops; ++i) {
    const std::uint64_t bytes = kPage << rng.below(4);
    tables.push_back({e.alloc(bytes), bytes});
  }
  while (e.emitted() < r.ops && !tables.empty()) {
    Table& t = tables[rng.below(tables.size())];
    if (rng.chance(1, 64)) {  // a netns / subsystem instance torn down and a new one created
      retire(t.id);
      t.bytes = kPage;
      t.id = e.alloc(t.bytes);
    } else if (rng.chance(1, 2)) {
      if (t.bytes < kMaxTable) {
        t.bytes *= 2;
        const std::uint64_t old = t.id;
        t.id = e.alloc(t.bytes);
        retire(old);
      }
    } else if (t.bytes > kPage) {
      t.bytes /= 2;
      const std::uint64_t old = t.id;
      t.id = e.alloc(t.bytes);
      retire(old);
    }
  }
}

}  // namespace vmfrag::workload_detail
