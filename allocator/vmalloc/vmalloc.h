// Vmalloc: vmfrag's vmalloc, kmalloc, kvmalloc and vmap on top of the address-space layer
// (VirtualSpace) and the simulated physical memory (PhysicalMemory).
//
// vmalloc exists because physically contiguous memory is hard to get: its areas are virtually
// contiguous but backed by order-0 pages taken wherever the buddy allocator has them, while kmalloc
// hands out physically contiguous power-of-two blocks through the direct map. Here both are real:
//
//   backing none   address space only (VirtualSpace); pages are still accounted in the buddy
//                  allocator, so physical failures are reported, but nothing is mapped.
//   backing anon   each area's pages are anonymous memory made accessible at its address
//                  (mprotect of the reservation); pages are bookkept but not aliased.
//   backing memfd  each area's pfns are mapped MAP_SHARED|MAP_FIXED from the memfd, one mmap per
//                  physically contiguous run: a write through the area is visible through the
//                  direct map at its pfn, exactly as vmalloc memory is visible through the
//                  kernel's physmap.
//
// Unmapping never needs a new kernel mapping, so vfree cannot fail even at vm.max_map_count:
// a freed area's pages are dropped (MADV_DONTNEED) and its range made inaccessible (mprotect
// PROT_NONE over whole VMAs, which never splits one). Its address range then stays lazily held as
// in VirtualSpace; when the lazy range is purged it is turned back into plain reservation (one
// mmap that merges with its neighbours), best effort: if that fails at the map limit the range is
// still inaccessible and still ours, and the next area mapped there replaces it.
//
// Thread safety: every public function may run concurrently. One lock for the whole stack (the
// layers below share it), taken once per call; system calls are made outside it, one at a time
// (see the block comment at Vmalloc::new_area). Determinism: placements and pfns depend only on
// the configuration and the call sequence.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "allocator/core/failure.h"
#include "allocator/core/mutex.h"
#include "allocator/os/os.h"
#include "allocator/phys/physical_memory.h"
#include "allocator/vmalloc/vmap_block.h"
#include "allocator/vspace/virtual_space.h"

namespace vmfrag {

enum class BackingMode : std::uint8_t { kNone, kAnon, kMemfd };

inline constexpr std::uint64_t kHugeBytes = 2ull << 20;  // PMD_SIZE on x86-64
inline constexpr unsigned kHugeOrder = 9;                // 2 MiB / 4 KiB = 2^9 pages
[[nodiscard]] const char* backing_mode_name(BackingMode mode);

struct VmallocConfig {
  VirtualSpaceConfig space;             // region, guard pages, lazy threshold, strict, os
  std::uint64_t phys_bytes = 256ull << 20;
  BackingMode backing = BackingMode::kMemfd;
  // The kernel's vmalloc maps every page when it allocates, so no page fault follows; memfd mode
  // does the same (MAP_POPULATE) and anon mode uses MADV_POPULATE_WRITE. false leaves pages to
  // fault on first touch (the benchmarks compare both).
  bool populate = true;
  // An injectable cap on the mappings (kernel VMAs) this instance may create, so tests reach
  // map-limit without exhausting the process; 0 = only the OS's own limit.
  std::uint64_t map_cap = 0;
  // Pages per vm_map_ram block (the kernel's VMAP_BBMAP_BITS; see vmap_block.h). One "CPU" list of
  // blocks, so traces replay the same on every machine.
  std::uint64_t vmap_block_pages = kDefaultVmapBlockPages;
  // Fault injection at the page allocator (see PhysicalMemoryConfig::faults); nullptr = none.
  PageAllocFaults* page_faults = nullptr;
};

// Outcome of a release (vfree, kfree, vunmap, kvfree). Anything but kOk/kNull is misuse: nothing
// changes, the misuse counter grows, a line naming the address is logged (strict mode aborts).
enum class ReleaseStatus : std::uint8_t {
  kOk,
  kNull,           // nullptr: a no-op
  kUnknown,        // not the start of anything this instance handed out (or already freed)
  kWrongFunction,  // e.g. kfree of a vmalloc address, vunmap of a vmalloc area, vfree of kmalloc memory
};
[[nodiscard]] const char* release_status_name(ReleaseStatus s);

struct VmallocResult {
  void* addr = nullptr;
  FailureKind failure = FailureKind::kNone;
  int os_errno = 0;  // set with kOsError (and with kMapLimit when the OS refused)
  [[nodiscard]] bool ok() const { return failure == FailureKind::kNone; }
};

struct VmallocStats {
  VirtualSpaceStats space;
  BuddyStats phys;
  std::uint64_t vmalloc_areas = 0, vmap_areas = 0, kmalloc_blocks = 0;
  std::uint64_t mapped_pages = 0;        // pages mapped into areas now (memfd/anon)
  std::uint64_t mappings_in_use = 0;     // kernel VMAs this instance accounts for (see map_cap)
  std::uint64_t map_limit = 0;           // map_cap, or vm.max_map_count when no cap
  std::uint64_t reservation_restore_failures = 0;  // purged ranges left as inaccessible placeholders
  std::uint64_t misuse_count = 0;
  std::uint64_t huge_areas = 0;       // live vmalloc_huge areas granted whole 2 MiB blocks
  std::uint64_t huge_fallbacks = 0;   // vmalloc_huge calls that fell back to 4 KiB pages
  VmapBlockStats vmap_blocks;         // vm_map_ram's blocks: free, dirty and pinned pages
};

class Vmalloc {
 public:
  struct CreateResult {
    std::unique_ptr<Vmalloc> vm;
    int error = 0;
    std::string message;
  };
  // Creates the region and the physical memory. Fails like VirtualSpace::create and
  // PhysicalMemory::create (EINVAL for bad sizes, else the OS errno), with nothing left behind;
  // EINVAL also for a vmap_block_pages that is not a power of two in [128, 2^32].
  [[nodiscard]] static CreateResult create(const VmallocConfig& config);
  ~Vmalloc();
  Vmalloc(const Vmalloc&) = delete;
  Vmalloc& operator=(const Vmalloc&) = delete;

  // vmalloc: an area from VirtualSpace (exact lowest fit; its failure kinds), then
  // round_up(size)/4096 order-0 pages from the buddy allocator (lowest pfns first; kNoPhysicalMemory
  // when too few are free), then the mapping (kMapLimit when the OS or map_cap refuses another
  // mapping, kOsError with errno for anything else). A failed call leaves no trace: pages and the
  // address range are given back at once (not lazily). Contents are unspecified (vzalloc zeroes).
  [[nodiscard]] VmallocResult vmalloc(std::uint64_t size, std::uint64_t align = kVirtualPageSize);
  [[nodiscard]] VmallocResult vzalloc(std::uint64_t size);
  ReleaseStatus vfree(const void* addr);

  // The pfn behind the page of a vmalloc/vmap area containing addr (any byte of the area's pages),
  // or nullopt. O(log m + d): m small vm_map_ram allocations, d <= the most pages any area has
  // had, the pages from the area's start to addr (see the block comment in vmalloc.cpp).
  [[nodiscard]] std::optional<std::uint64_t> vmalloc_to_pfn(const void* addr) const;

  // kmalloc: a physically contiguous block of 2^order pages, order = ceil(log2(pages)), returned
  // through the direct map. kInvalidArgument for size 0 or above 4 MiB (order 10, the buddy's
  // largest); kNoPhysicalMemory when fewer than 2^order pages are free; kPhysicalFragmentation when
  // enough are free but no block of the order exists.
  [[nodiscard]] VmallocResult kmalloc(std::uint64_t size);
  ReleaseStatus kfree(const void* addr);

  // kvmalloc as mm/util.c kvmalloc_node(): try kmalloc first; if it fails and size > one page, fall
  // back to vmalloc (a failing small request is not retried: the kernel deems them cheap enough to
  // succeed physically). Sizes above kmalloc's maximum go straight to vmalloc.
  [[nodiscard]] VmallocResult kvmalloc(std::uint64_t size);
  ReleaseStatus kvfree(const void* addr);  // kfree or vfree, whichever owns addr

  // vmalloc_huge: for size >= 2 MiB, a 2 MiB-aligned area of whole 2 MiB physical blocks (size
  // rounded up to 2 MiB); in anon mode with MADV_HUGEPAGE so the MMU really uses 2 MiB pages where
  // THP grants them (huge_backed_bytes tells). When that fails in any way (physical fragmentation
  // included) it falls back to a page-granular vmalloc, like the kernel. Freed with vfree.
  [[nodiscard]] VmallocResult vmalloc_huge(std::uint64_t size);
  // Bytes of the area at addr backed by transparent huge pages now (AnonHugePages in
  // /proc/self/smaps); 0 outside anon mode or for an unknown address. Cost: reads smaps.
  [[nodiscard]] std::uint64_t huge_backed_bytes(const void* addr) const;

  // vmap: maps n caller-owned pfns (from alloc_pages) contiguously at a new area. The pages stay
  // the caller's; vunmap releases only the area. In backing anon the area is anonymous memory: the
  // pages are bookkept but, as for every anon area, not aliased.
  [[nodiscard]] VmallocResult vmap(const std::vector<std::uint64_t>& pfns);
  ReleaseStatus vunmap(const void* addr);

  // vm_map_ram: maps caller-owned pfns contiguously, like vmap, but a small request (at most 64
  // pages) is carved bump-style out of a vmap block (a block-sized area reserved on demand, see
  // vmap_block.h): space freed inside a block is reused only once the whole block is free, the
  // kernel's documented hazard when long- and short-lived users mix. Larger requests get an area
  // of their own. Released with vm_unmap_ram(addr, pages), which must name the same page count.
  // Unlike the kernel, a block area is followed by the space's guard pages like any other area.
  // In backing anon the mapping is anonymous memory (not aliased), as for vmap.
  [[nodiscard]] VmallocResult vm_map_ram(const std::vector<std::uint64_t>& pfns);
  ReleaseStatus vm_unmap_ram(const void* addr, std::uint64_t pages);
  // Pages for vmap (order 0, lowest first). kNoPhysicalMemory when too few are free.
  [[nodiscard]] FailureKind alloc_pages(std::uint64_t count, std::vector<std::uint64_t>& pfns);
  void free_pages(const std::vector<std::uint64_t>& pfns);

  void purge();  // VirtualSpace::purge, then the purged ranges become plain reservation again

  [[nodiscard]] VmallocStats stats() const;
  // VirtualSpace::check and PhysicalMemory::check at the same depth, then: every area's pfns are
  // allocated, owned by exactly that area and disjoint from kmalloc blocks; pages accounted =
  // buddy allocated pages; mapped pages, mappings, vm_map_ram blocks and live areas agree with
  // their counters. "" or the first broken invariant.
  //   kStructure: all of that, and nothing that issues a system call or writes through a mapping
  //               (the level for a check after every operation, as the fuzz targets do).
  //   kFull:      also the probes: the address space's fit probes, the physical memory's aliasing
  //               probe through a second mapping, and, in memfd mode, a sampled word written
  //               through each of up to 16 areas read back through the direct map at its pfn (and
  //               restored).
  [[nodiscard]] std::string check(CheckDepth depth = CheckDepth::kFull) const;
  [[nodiscard]] std::vector<std::string> misuse_log() const;

  [[nodiscard]] VirtualSpace& space() { return *space_; }
  [[nodiscard]] PhysicalMemory& phys() { return *phys_; }
  [[nodiscard]] BackingMode backing() const { return config_.backing; }

 private:
  // kHuge: made of order-9 blocks; kMapRam: a large vm_map_ram; kVmapBlock: a vm_map_ram block
  // (pages 0: its mappings belong to the small vm_map_ram allocations carved from it).
  enum class AreaKind : std::uint8_t { kVmalloc, kVmap, kHuge, kMapRam, kVmapBlock };
  // kMapping: reserved, being mapped without the lock; kUnmapping: being released, unmapped
  // without the lock. Either way the area is its one thread's: releases treat it as unknown.
  enum class AreaState : std::uint8_t { kLive, kMapping, kUnmapping };
  struct MapRam {  // one small vm_map_ram allocation inside a block
    VmapBlockRef ref;
    std::vector<std::uint64_t> pfns;
    std::uint64_t mappings;
  };
  // Vmalloc's part of an area's one record: it lives in the address space's record of the area
  // (AreaPayload), so a vfree finds both with one hash lookup. 24 bytes.
  struct Area {
    std::uint64_t size;      // bytes new_area was asked for (huge: rounded up to 2 MiB)
    std::uint64_t* pfns;     // pages() pfns (new[], owned) where the area has pages, else nullptr
    std::uint32_t mappings;  // VMAs accounted to it: at most pages + 1, pages < 2^28 (1 TiB of RAM)
    AreaKind kind;
    AreaState state;
    // Mapped pages: round_up(size)/page; 0 for a vmap block (its pages are its allocations').
    [[nodiscard]] std::uint64_t pages() const {
      return kind == AreaKind::kVmapBlock ? 0 : (size + kVirtualPageSize - 1) / kVirtualPageSize;
    }
    [[nodiscard]] std::span<const std::uint64_t> pfn_span() const {
      return {pfns, pfns == nullptr ? 0 : pages()};
    }
  };

  Vmalloc(const VmallocConfig& config, std::unique_ptr<Mutex> lock, std::unique_ptr<VirtualSpace> space,
          std::unique_ptr<PhysicalMemory> phys);
  // Held on entry and on return; released while the OS calls run.
  VmallocResult new_area(std::unique_lock<Mutex>& lock, AreaKind kind, std::uint64_t size, std::uint64_t align,
                         std::vector<std::uint64_t> pfns, std::uint64_t requested);
  [[nodiscard]] std::uint64_t mappings_needed(const std::vector<std::uint64_t>& pfns) const;
  [[nodiscard]] bool within_map_cap(std::uint64_t mappings) const;
  // OS calls only: callable without the lock.
  [[nodiscard]] int map_pages(char* addr, std::uint64_t pages, const std::vector<std::uint64_t>& pfns, bool huge);
  void unmap_pages(char* addr, std::uint64_t pages);
  void drop_mapping(char* addr, std::uint64_t pages);  // unmap_pages's OS calls; os_calls_ held
  static void on_purge(void* self, std::uint64_t offset, std::uint64_t bytes);
  void restore_reservation(void* addr, std::uint64_t bytes);
  ReleaseStatus release_area(const void* addr, AreaKind wanted, const char* fn);
  // The record of the area at offset (any AreaState), or nullptr: the address space's record,
  // whose payload is Vmalloc's Area (area_of), found with the one hash lookup of the stack. Valid
  // until the next call that places an area.
  [[nodiscard]] AreaPayload* area_locked(std::uint64_t offset) { return space_->live_area_locked(offset); }
  [[nodiscard]] const AreaPayload* area_locked(std::uint64_t offset) const { return space_->live_area_locked(offset); }
  static Area& area_of(AreaPayload* record) { return record->as<Area>(); }
  static const Area& area_of(const AreaPayload* record) { return record->as<Area>(); }
  // The kLive area at offset, or nullptr.
  [[nodiscard]] AreaPayload* live_area_locked(std::uint64_t offset);
  // Held on entry and on return; released while the area is unmapped.
  ReleaseStatus release_area(std::unique_lock<Mutex>& lock, std::uint64_t offset, AreaPayload* record,
                             const char* fn);
  // The space's area at offset goes straight back to free space, its pfns array freed (new_area's
  // undo: nothing was ever mapped there).
  void abandon_area_locked(std::uint64_t offset);
  void release_block_locked(std::uint64_t block_offset);
  ReleaseStatus misuse_locked(ReleaseStatus status, const char* fn, const void* addr);
  [[nodiscard]] std::uint64_t map_limit() const;
  // addr's offset in the region, nullopt outside it. O(1).
  [[nodiscard]] std::optional<std::uint64_t> region_offset(const void* addr) const;

  // The one lock of the stack: space_ and phys_ were created with it (declared first, it outlives
  // them). It guards everything below them too.
  const std::unique_ptr<Mutex> lock_;
  const VmallocConfig config_;
  OsInterface& os_;
  // Held around every OS call that maps, unmaps or restores an area's range (see new_area); taken
  // last, never held while waiting for another lock.
  mutable Mutex os_calls_;
  std::unique_ptr<VirtualSpace> space_;
  std::unique_ptr<PhysicalMemory> phys_;

  // The areas themselves are in space_'s index (Area in each record's AreaPayload).
  std::uint64_t max_area_pfns_ = 0;            // the most pfns any area has had (vmalloc_to_pfn)
  std::map<std::uint64_t, unsigned> kmalloc_;  // first pfn -> order
  VmapBlockAllocator vmap_blocks_;
  std::map<std::uint64_t, MapRam> map_ram_;    // offset of a small vm_map_ram -> its state
  std::uint64_t owned_pages_ = 0;     // pages owned by vmalloc areas
  std::uint64_t loose_pages_ = 0;     // pages handed out by alloc_pages (the vmap callers')
  std::uint64_t mapped_pages_ = 0;
  std::uint64_t mappings_in_use_ = 0;
  std::atomic<std::uint64_t> restore_failures_{0};  // written by the purge observer
  std::uint64_t misuse_count_ = 0;
  std::vector<std::string> misuse_log_;
  std::uint64_t os_map_limit_ = 0;  // vm.max_map_count, 0 if unreadable
  std::uint64_t huge_areas_ = 0;     // live areas made of 2 MiB blocks
  std::uint64_t huge_fallbacks_ = 0; // vmalloc_huge calls that fell back to 4 KiB pages
};

}  // namespace vmfrag
