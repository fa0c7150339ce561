// The test cases of the Linux kernel's lib/test_vmalloc.c (Uladzislau Rezki, 2018; 13 cases as of
// the no_block_alloc_test and vrealloc_test additions), replayed as single-threaded op streams.
// Each generator follows the kernel function's loop structure, sizes and alignments; test_loop_count
// (kernel default 1000000) is replaced by a count derived from the requested op total, and setup
// phases sized by kernel constants (15000, 35000, 32 MiB of 1-page areas) shrink only when the op
// budget is smaller than the setup itself. README.md lists where userspace differs.
#include <algorithm>
#include <cstdint>
#include <deque>
#include <vector>

#include "harness/workloads/emitter.h"
#include "harness/workloads/prng.h"

namespace vmfrag::workload_detail {
namespace {

constexpr std::uint64_t kPage = kPageSize;
// x86-64 without KASAN: THREAD_SIZE = 16 KiB and THREAD_ALIGN defaults to THREAD_SIZE.
constexpr std::uint64_t kThreadAlign = 16 * 1024;
// test_vmalloc's nr_pages parameter defaults to 0, which the cases read as 1 page.
constexpr std::uint64_t kNrPages = 1;

// Page-granular alignments only: the kernel treats any align below PAGE_SIZE like PAGE_SIZE (vmap
// areas start on page boundaries), and the trace format requires align >= 4096.
constexpr std::uint64_t page_align(std::uint64_t align) { return std::max(align, kPage); }

std::uint64_t loops_for(std::uint64_t ops, std::uint64_t ops_per_loop) {
  return std::max<std::uint64_t>(1, ops / ops_per_loop);
}

}  // namespace

void gen_fix_size_alloc(const Resolved& r, Emitter& e) {
  for (std::uint64_t i = 0, n = loops_for(r.ops, 2); i < n; ++i) e.free(e.alloc(kNrPages * kPage));
}

void gen_full_fit_alloc(const Resolved& r, Emitter& e) {
  // junk_length = fls(num_online_cpus()) * (32 MiB / PAGE_SIZE); one CPU gives 8192. Fixed cost
  // 4 * junk + 4 ops; with a smaller budget the junk shrinks so that setup is about half of it.
  constexpr std::uint64_t kKernelJunk = 32 * 1024 * 1024 / kPage;
  std::uint64_t junk = kKernelJunk;
  if (r.ops < 4 * junk + 4 + 2) junk = std::max<std::uint64_t>(1, (r.ops / 2 - std::min<std::uint64_t>(r.ops / 2, 4)) / 4);
  const std::uint64_t fixed = 4 * junk + 4;
  const std::uint64_t loops = r.ops > fixed ? std::max<std::uint64_t>(1, (r.ops - fixed) / 2) : 1;
  const std::uint64_t ptr_array = e.alloc(8 * junk);
  const std::uint64_t junk_array = e.alloc(8 * junk);
  std::vector<std::uint64_t> ptr(junk), junk_ptr(junk);
  for (std::uint64_t i = 0; i < junk; ++i) {
    ptr[i] = e.alloc(kPage);
    junk_ptr[i] = e.alloc(kPage);
  }
  for (std::uint64_t id : junk_ptr) e.free(id);
  for (std::uint64_t i = 0; i < loops; ++i) e.free(e.alloc(kPage));
  for (std::uint64_t id : ptr) e.free(id);
  e.free(ptr_array);
  e.free(junk_array);
}

void gen_long_busy_list_alloc(const Resolved& r, Emitter& e) {
  constexpr std::uint64_t kKernelBusy = 15000;
  std::uint64_t busy = kKernelBusy;
  if (r.ops < 2 * busy + 2 + 4) busy = std::max<std::uint64_t>(1, (r.ops / 2 - std::min<std::uint64_t>(r.ops / 2, 2)) / 2);
  const std::uint64_t fixed = 2 * busy + 2;
  const std::uint64_t loops = r.ops > fixed ? std::max<std::uint64_t>(1, (r.ops - fixed) / 4) : 1;
  const std::uint64_t array = e.alloc(8 * busy);  // vmalloc(sizeof(void *) * 15000)
  std::vector<std::uint64_t> ptr(busy);
  for (auto& id : ptr) id = e.alloc(kPage);
  for (std::uint64_t i = 0; i < loops; ++i) {
    const std::uint64_t p1 = e.alloc(100 * kPage);
    const std::uint64_t p2 = e.alloc(kPage);
    e.free(p1);
    e.free(p2);
  }
  for (std::uint64_t id : ptr) e.free(id);
  e.free(array);
}

void gen_random_size_alloc(const Resolved& r, Emitter& e) {
  Prng rng(r.seed);
  for (std::uint64_t i = 0, n = loops_for(r.ops, 2); i < n; ++i)
    e.free(e.alloc(rng.inclusive(1, 100) * kPage));  // get_random_u32_inclusive(1, 100) pages
}

void gen_fix_align_alloc(const Resolved& r, Emitter& e) {
  for (std::uint64_t i = 0, n = loops_for(r.ops, 2); i < n; ++i)
    e.free(e.alloc(5 * kPage, kThreadAlign << 1));
}

void gen_random_size_align_alloc(const Resolved& r, Emitter& e) {
  Prng rng(r.seed);
  for (std::uint64_t i = 0, n = loops_for(r.ops, 2); i < n; ++i) {
    const std::uint64_t rnd = rng.next() & 0xff;  // get_random_u8(): one byte drives both
    const std::uint64_t align = std::uint64_t{1} << (rnd % 23);
    const std::uint64_t size = ((rnd % 10) + 1) * kPage;
    e.free(e.alloc(size, page_align(align)));
  }
}

void gen_align_shift_alloc(const Resolved& r, Emitter& e) {
  // for (i = 0; i < BITS_PER_LONG; i++) __vmalloc_node(PAGE_SIZE, 1UL << i, ...): 128 ops a run,
  // repeated (test_repeat_count) to reach the budget.
  const std::uint64_t pairs = loops_for(r.ops, 2);
  for (std::uint64_t i = 0; i < pairs; ++i)
    e.free(e.alloc(kPage, page_align(std::uint64_t{1} << (i % 64))));
}

void gen_pcpu_alloc(const Resolved& r, Emitter& e) {
  // vmalloc(sizeof(void __percpu *) * 35000), 35000 x __alloc_percpu(1..PAGE_SIZE/4, 2..2048),
  // free them all, vfree the array: 2 * 35000 + 2 ops a run. Runs repeat; the last one is shortened
  // so the total meets the budget.
  constexpr std::uint64_t kKernelObjects = 35000;
  Prng rng(r.seed);
  std::uint64_t budget = std::max<std::uint64_t>(r.ops, 4);
  std::vector<std::uint64_t> objects;
  while (budget >= 4) {
    const std::uint64_t n = std::min(kKernelObjects, (budget - 2) / 2);
    const std::uint64_t array = e.alloc(8 * n);
    objects.clear();
    for (std::uint64_t i = 0; i < n; ++i) {
      const std::uint64_t size = rng.inclusive(1, kPage / 4);
      const std::uint64_t align = std::uint64_t{1} << rng.inclusive(1, 11);
      objects.push_back(e.alloc(size, page_align(align)));
    }
    for (std::uint64_t id : objects) e.free(id);
    e.free(array);
    budget -= 2 * n + 2;
  }
}

namespace {

// kvfree_rcu() with a grace period modelled as batch boundaries. Pointers are queued in "bulk"
// blocks of KVFREE_BULK_MAX_ENTRIES = (PAGE_SIZE - 16) / 8 = 510; a block becomes freeable one
// block later (the grace period that started when it was closed must have ended), so at most two
// blocks wait and the live set oscillates between 510 and 1020 one-page areas. At the end every
// queued pointer is freed (the module's exit waits for rcu_barrier()).
// one_arg: kvfree_rcu_mightsleep() has no rcu_head to fall back on; when it cannot get a bulk page
// it calls synchronize_rcu() and frees inline. That is modelled as a seeded 1-in-64 chance per free.
void gen_kvfree_rcu(const Resolved& r, Emitter& e, bool one_arg) {
  constexpr std::uint64_t kBulk = (kPage - 16) / 8;
  Prng rng(r.seed);
  std::deque<std::uint64_t> queued;
  for (std::uint64_t i = 0, n = loops_for(r.ops, 2); i < n; ++i) {
    const std::uint64_t p = e.alloc(kPage);
    if (one_arg && rng.chance(1, 64)) {
      e.free(p);
      continue;
    }
    queued.push_back(p);
    if (queued.size() >= 2 * kBulk) {
      for (std::uint64_t k = 0; k < kBulk; ++k) {
        e.free(queued.front());
        queued.pop_front();
      }
    }
  }
  for (std::uint64_t id : queued) e.free(id);
}

}  // namespace

void gen_kvfree_rcu_1_arg(const Resolved& r, Emitter& e) { gen_kvfree_rcu(r, e, true); }
void gen_kvfree_rcu_2_arg(const Resolved& r, Emitter& e) { gen_kvfree_rcu(r, e, false); }

void gen_vm_map_ram(const Resolved& r, Emitter& e) {
  for (std::uint64_t i = 0, n = loops_for(r.ops, 2); i < n; ++i) e.free(e.map_ram(kNrPages));
}

void gen_no_block_alloc(const Resolved& r, Emitter& e) {
  // __vmalloc(nr_pages * PAGE_SIZE, GFP_ATOMIC or GFP_NOWAIT) under preempt_disable(). The coin
  // picks a GFP flag the trace cannot express; it is not drawn, so the stream is seed-independent.
  for (std::uint64_t i = 0, n = loops_for(r.ops, 2); i < n; ++i) e.free(e.alloc(kNrPages * kPage));
}

void gen_vrealloc(const Resolved& r, Emitter& e) {
  // vrealloc(NULL, PAGE_SIZE); grow to 4 pages (beyond the allocation: a new area, copy, vfree of
  // the old); shrink to 1 page, to PAGE_SIZE / 2, grow back to PAGE_SIZE (all in place: the
  // virtual area keeps its size, only tail pages are freed); vfree.
  for (std::uint64_t i = 0, n = loops_for(r.ops, 4); i < n; ++i) {
    const std::uint64_t first = e.alloc(kPage);
    const std::uint64_t grown = e.alloc(4 * kPage);
    e.free(first);
    e.free(grown);
  }
}

}  // namespace vmfrag::workload_detail
