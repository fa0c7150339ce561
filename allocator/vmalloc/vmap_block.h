// VmapBlockAllocator: the bookkeeping of the kernel's per-CPU vmap blocks (mm/vmalloc.c: struct
// vmap_block, new_vmap_block, vb_alloc, vb_free, purge_fragmented_blocks), which serve small
// vm_map_ram() requests without a trip to the global vmap-area tree.
//
// Pure data structure: no OS calls, no address space. The caller owns the address space: when no
// block can serve a request it reserves a block-sized range (a vmap area) and hands its start to
// allocate_in_new_block(); when a block is released it gives that range back. Units of block
// starts are the caller's (the lead passes byte offsets in the region); everything inside a block
// is in pages (the page size is the caller's business).
//
// The model, as in the kernel (version read: the one with `free`/`dirty` counters and a per-CPU
// list of blocks that still have free space):
//   - a block is block_pages contiguous pages (VMAP_BBMAP_BITS) owned by one of `cpus` per-CPU
//     queues; the queue lists, in creation order, the blocks whose `free` is not 0;
//   - a request of n pages, 1 <= n <= max_alloc_pages (VMAP_MAX_ALLOC = BITS_PER_LONG = 64), takes
//     2^order pages, order = ceil(log2 n), from the first listed block with free >= 2^order, at
//     page offset block_pages - free (a bump pointer: NOT aligned to 2^order, exactly as vb_alloc);
//   - freeing adds 2^order to the block's `dirty` count and nothing else: freed pages are never
//     handed out again; when dirty reaches block_pages the block is released;
//   - purge_fragmented() releases the listed blocks with free + dirty == block_pages and
//     dirty != block_pages: blocks with no live mapping but some never-used tail.
// This reproduces the hazard the kernel documents on vm_map_ram ("if you mix long-life and
// short-life objects with vm_map_ram(), it could consume lots of address space through
// fragmentation"): one live 1-page mapping keeps a whole block (4 MiB by default) reserved, its
// dirty pages unusable by anyone, and no purge can release it.
//
// What is left out on purpose: the dirty_min/dirty_max range (it only bounds TLB flushes), the
// later kernels' used_map bitmap (debug and vread only) and their VMAP_PURGE_THRESHOLD (a purge
// only when free < block_pages / 4, skipped when the purge is forced, as vm_unmap_aliases does;
// purge_fragmented() is the forced purge).
//
// Not thread-safe; the caller serialises access. Deterministic: results depend only on the
// constructor arguments and the call sequence.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace vmfrag {

// The kernel's VMAP_MAX_ALLOC on 64-bit (BITS_PER_LONG pages, 256 KiB with 4 KiB pages).
inline constexpr std::uint64_t kVmapMaxAllocPages = 64;

// The kernel's VMAP_BBMAP_BITS for a 64-bit build with CONFIG_NR_CPUS = nr_cpus_config:
// min(1024, max(2 * VMAP_MAX_ALLOC, VMALLOC_PAGES / roundup_pow_of_two(NR_CPUS) / 16)), where
// VMALLOC_PAGES is the kernel's rough 64-bit guess of 128 GiB / 4 KiB = 2^25 (it aims at "room
// for at least 16 percpu vmap blocks per CPU"). 1024 pages (4 MiB) for NR_CPUS <= 512, 256 pages
// for the common distro value 8192. nr_cpus_config 0 counts as 1. O(1).
[[nodiscard]] constexpr std::uint64_t kernel_vmap_block_pages(std::uint64_t nr_cpus_config) {
  std::uint64_t cpus_pow2 = 1;
  while (cpus_pow2 < nr_cpus_config) cpus_pow2 <<= 1;
  const std::uint64_t by_space = (std::uint64_t{1} << 25) / cpus_pow2 / 16;
  const std::uint64_t at_least = 2 * kVmapMaxAllocPages;
  const std::uint64_t clamped_low = by_space > at_least ? by_space : at_least;
  return clamped_low < 1024 ? clamped_low : 1024;
}

// The default block size: VMAP_BBMAP_BITS_MAX, what every 64-bit kernel built for at most 512
// CPUs uses. A fixed value rather than one derived from this machine so traces replay the same
// everywhere; pass kernel_vmap_block_pages(8192) to model a distro kernel.
inline constexpr std::uint64_t kDefaultVmapBlockPages = 1024;

// One live allocation: which block, where in it (pages), and how many pages it holds (2^order).
struct VmapBlockRef {
  std::uint64_t block_start = 0;  // caller units, as given to allocate_in_new_block
  std::uint64_t page_offset = 0;  // first page inside the block
  unsigned order = 0;             // the allocation holds 2^order pages
  friend bool operator==(const VmapBlockRef&, const VmapBlockRef&) = default;
};

// Totals over all blocks. used + free + dirty == blocks * block_pages always.
struct VmapBlockStats {
  std::uint64_t blocks = 0;             // blocks held (their ranges are reserved by the caller)
  std::uint64_t full_blocks = 0;        // blocks with free == 0 (off their CPU's list)
  std::uint64_t live_allocations = 0;
  std::uint64_t requested_pages = 0;    // sum of n over live allocations
  std::uint64_t used_pages = 0;         // sum of 2^order over live allocations (>= requested)
  std::uint64_t free_pages = 0;         // never-used tails: the only space allocations can use
  std::uint64_t dirty_pages = 0;        // freed but unusable until their whole block is released
  std::uint64_t purgeable_blocks = 0;   // blocks purge_fragmented() would release now
  std::uint64_t pinned_blocks = 0;      // blocks with dirty pages held by a live allocation:
                                        // the fragmentation hazard (no purge can release them)
  std::uint64_t pinned_dirty_pages = 0; // dirty pages inside pinned blocks
  friend bool operator==(const VmapBlockStats&, const VmapBlockStats&) = default;
};

// One block's state, for inspection.
struct VmapBlockInfo {
  unsigned cpu = 0;
  std::uint64_t free = 0;   // pages in the never-used tail; the next allocation is at block_pages - free
  std::uint64_t dirty = 0;  // freed pages
  std::uint64_t used = 0;   // pages of live allocations
  std::uint64_t live_allocations = 0;
  bool listed = false;      // on its CPU's list (exactly when free > 0)
  friend bool operator==(const VmapBlockInfo&, const VmapBlockInfo&) = default;
};

class VmapBlockAllocator {
 public:
  enum class Result : std::uint8_t {
    kOk,         // *out is the allocation
    kNeedBlock,  // no listed block of this CPU has 2^order free pages: reserve a block-sized
                 // range and call allocate_in_new_block with the same cpu and pages
    kTooLarge,   // pages > max_alloc_pages: not a block request (the kernel maps it as an
                 // ordinary vmap area instead)
    kInvalid,    // pages == 0 or cpu >= cpus
  };

  // Preconditions (VMF_CHECK): cpus >= 1; max_alloc_pages is a power of two >= 1;
  // block_pages >= 2 * max_alloc_pages (the kernel's VMAP_BBMAP_BITS_MIN, which guarantees that a
  // new block always has space left after its first allocation). O(cpus).
  explicit VmapBlockAllocator(std::uint64_t block_pages = kDefaultVmapBlockPages, unsigned cpus = 1,
                              std::uint64_t max_alloc_pages = kVmapMaxAllocPages);
  // Not copyable: blocks hold positions in the per-CPU lists. Moving keeps every block and list
  // position (std::map and std::list move their nodes); the moved-from allocator must only be
  // destroyed or assigned to.
  VmapBlockAllocator(const VmapBlockAllocator&) = delete;
  VmapBlockAllocator& operator=(const VmapBlockAllocator&) = delete;
  VmapBlockAllocator(VmapBlockAllocator&&) noexcept = default;
  VmapBlockAllocator& operator=(VmapBlockAllocator&&) noexcept = default;

  // vb_alloc: serves `pages` from the first block on cpu's list with free >= 2^order, at page
  // offset block_pages - free; a block whose free drops to 0 leaves the list.
  // Failure: kNeedBlock / kTooLarge / kInvalid as documented on Result, with nothing changed and
  // *out untouched. Cost: O(L + log B + log a), L = blocks on cpu's list, B = blocks,
  // a = live allocations in the chosen block.
  [[nodiscard]] Result allocate(unsigned cpu, std::uint64_t pages, VmapBlockRef* out);

  // new_vmap_block: registers a block at block_start (caller units; the caller has reserved
  // block_pages pages there) for cpu, appends it to the end of cpu's list (so older blocks keep
  // being filled first) and serves `pages` from it at page offset 0. Call it after allocate()
  // returned kNeedBlock (it does not look at the other blocks). Taking the request together with
  // the block means no block ever exists without having served an allocation, as in the kernel,
  // so a just-added block can never be purged before its first use.
  // Preconditions (VMF_CHECK): cpu < cpus; 1 <= pages <= max_alloc_pages; no held block starts at
  // block_start. Cost: O(log B).
  [[nodiscard]] VmapBlockRef allocate_in_new_block(unsigned cpu, std::uint64_t pages,
                                                   std::uint64_t block_start);

  // vb_free: the allocation's 2^order pages become dirty (never reused). If that makes the whole
  // block dirty, the block is forgotten and its block_start is returned: the caller releases the
  // block's range to the address space. Otherwise nullopt.
  // Preconditions (VMF_CHECK, always on: a violation is a double free or a forged reference):
  // ref is a live allocation exactly as returned (block, offset and order all match).
  // Cost: O(log B + log a).
  [[nodiscard]] std::optional<std::uint64_t> free(const VmapBlockRef& ref);

  // purge_fragmented_blocks over every CPU (in CPU order, each list in its order): releases each
  // listed block with free + dirty == block_pages and dirty != block_pages, i.e. no live
  // allocation left, but a never-used tail that keeps it from being released by free(). Such a
  // block could still serve requests; releasing it gives its whole range back instead of waiting
  // for the tail to be used up and freed. Pinned blocks (a live allocation) are never released.
  // Returns the released blocks' starts; the caller releases their ranges. The kernel purges this
  // way from vm_unmap_aliases and when the vmap area allocator runs out of space, before retrying.
  // Cost: O(B + r log B) for r released blocks.
  [[nodiscard]] std::vector<std::uint64_t> purge_fragmented();

  [[nodiscard]] VmapBlockStats stats() const;  // O(1): counters kept up to date by every change
  [[nodiscard]] std::optional<VmapBlockInfo> block_info(std::uint64_t block_start) const;  // O(log B)
  [[nodiscard]] std::vector<std::uint64_t> listed_blocks(unsigned cpu) const;  // list order; O(L)

  [[nodiscard]] std::uint64_t block_pages() const { return block_pages_; }
  [[nodiscard]] unsigned cpus() const { return static_cast<unsigned>(lists_.size()); }
  [[nodiscard]] std::uint64_t max_alloc_pages() const { return max_alloc_pages_; }

  // ceil(log2(pages)) for pages >= 1: the order a request of `pages` takes. O(1).
  [[nodiscard]] static unsigned order_for(std::uint64_t pages);

  // Recomputes everything and compares. Per block: used + free + dirty == block_pages; used is the
  // sum of its allocations; dirty < block_pages (a fully dirty block is released at once) and
  // free < block_pages (every block has served an allocation); allocations lie inside the bump
  // prefix [0, block_pages - free), are disjoint, hold 2^order pages for a request with
  // order == order_for(n); listed exactly when free > 0, on its own CPU's list, once. Every listed
  // block is held. The O(1) stats equal the recomputed ones. "" when all hold, else a message
  // naming the first broken invariant. O(B + A log A) for A live allocations.
  [[nodiscard]] std::string validate() const;

 private:
  friend class VmapBlockAllocatorTestAccess;  // tests corrupt state to prove validate() notices

  struct Allocation {
    unsigned order = 0;
    std::uint64_t requested = 0;  // n, for the requested_pages statistic
  };
  struct Block {
    unsigned cpu = 0;
    std::uint64_t free = 0;
    std::uint64_t dirty = 0;
    std::uint64_t used = 0;
    std::uint64_t requested = 0;  // sum of n over its allocations
    std::map<std::uint64_t, Allocation> allocations;  // page offset -> allocation
    bool listed = false;
    std::list<std::uint64_t>::iterator list_pos;  // valid while listed
  };

  VmapBlockRef take(std::uint64_t block_start, Block& block, std::uint64_t pages);
  void unlist(Block& block);
  void release(std::map<std::uint64_t, Block>::iterator it);
  // Adds (sign = +1) or removes (sign = -1) one block's contribution to the derived counters.
  void count_block(const Block& block, int sign);
  [[nodiscard]] bool purgeable(const Block& block) const;

  std::uint64_t block_pages_;
  std::uint64_t max_alloc_pages_;
  std::map<std::uint64_t, Block> blocks_;            // block_start -> block (the kernel's xarray)
  std::vector<std::list<std::uint64_t>> lists_;      // per CPU: block starts with free > 0
  VmapBlockStats stats_;
};

[[nodiscard]] const char* vmap_block_result_name(VmapBlockAllocator::Result r);

}  // namespace vmfrag
