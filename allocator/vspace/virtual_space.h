// VirtualSpace: the address-space layer of vmfrag's vmalloc (backing `none`: no pages behind areas).
//
// One region of address space is reserved from the OS (PROT_NONE, MAP_NORESERVE) and handed out as
// areas by exact lowest-address fit, each followed by guard pages, with lazy free and
// purge-and-retry as in Linux mm/vmalloc.c. Every failure says why (FailureKind). Metadata lives on
// the ordinary heap, never inside the region.
//
// Offsets: placements are decided on offsets from the region base. The base is aligned to
// base_alignment() (at least 2 MiB, up to 1 GiB for regions of 1 GiB and more), so an alignment up
// to that also holds for absolute addresses; beyond it, alignment is of the offset only.
//
// Thread safety: every public member function may be called concurrently; one lock serialises
// them: the space's own, or the lock of the layer that owns the space (create's `lock`), which
// then calls the *_locked entry points with that lock held, so that one call of that layer takes
// one lock, not one per layer. Determinism: results depend only on the configuration and the sequence of calls, never on
// where the OS put the region, on timing or on the machine.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "allocator/core/check_depth.h"
#include "allocator/core/failure.h"
#include "allocator/core/mutex.h"
#include "allocator/ds/flat_offset_table.h"
#include "allocator/ds/free_space_tree.h"
#include "allocator/os/os.h"

namespace vmfrag {

inline constexpr std::uint64_t kVirtualPageSize = 4096;
// The region sizes a VirtualSpace accepts (page multiples in between): below 64 KiB no workload
// means anything; 16 TiB is half the x86-64 kernel's vmalloc range and what one reservation can
// get on every machine we run on. The vmtrace format states the same bounds.
inline constexpr std::uint64_t kMinRegionBytes = 64ull << 10;
inline constexpr std::uint64_t kMaxRegionBytes = 16ull << 40;

// The kernel's lazy_max_pages(): fls(online CPUs) * 32 MiB / PAGE_SIZE. Machine-dependent, so the
// library default only; traces fix their own threshold (8192, the one-CPU value).
[[nodiscard]] std::uint64_t kernel_lazy_threshold_pages();

struct VirtualSpaceConfig {
  std::uint64_t region_bytes = 1ull << 30;  // page multiple, kMinRegionBytes .. kMaxRegionBytes
  std::uint32_t guard_pages = 1;            // inaccessible pages after every area; 0 allowed
  // Lazily freed pages (guards included) that may be held before a purge; 0 = eager free.
  // Trade-off, as in the kernel: a higher threshold batches the expensive part of a free (TLB
  // flushes in the kernel, munmap here) but leaves more space unusable until the next purge, which
  // raises fragmentation failures that purge-and-retry then has to rescue.
  std::uint64_t lazy_threshold_pages = kernel_lazy_threshold_pages();
  bool strict = false;             // misuse aborts (VMF_CHECK) instead of being reported
  OsInterface* os = nullptr;       // nullptr = linux_os(); must outlive the space
};

// Result of an allocation. On failure `failure` says why and addr is null; offset is then 0.
struct Allocation {
  void* addr = nullptr;
  std::uint64_t offset = 0;
  FailureKind failure = FailureKind::kNone;
  [[nodiscard]] bool ok() const { return failure == FailureKind::kNone; }
};

// Outcome of vfree. Anything but kOk/kNull is misuse: state is untouched, the misuse counter grows,
// and (non-strict mode) a message naming the address goes to the misuse log.
enum class FreeStatus : std::uint8_t {
  kOk,
  kNull,            // vfree(nullptr): a no-op, as in the kernel
  kOutsideRegion,   // address not inside the region at all
  kNotAllocated,    // inside the region, in free space
  kInterior,        // inside a live area but not its start
  kAlreadyFreed,    // start of an area that was freed and is still lazily held (double free)
  kInGuard,         // inside a live area's guard pages
};
[[nodiscard]] const char* free_status_name(FreeStatus s);

struct VirtualSpaceStats {
  std::uint64_t region_bytes = 0;
  std::uint64_t free_bytes = 0;          // in the free tree (reusable now)
  std::uint64_t largest_free_bytes = 0;
  std::uint64_t free_extents = 0;
  std::uint64_t lazy_bytes = 0;          // freed, held until the next purge (guards included)
  std::uint64_t lazy_areas = 0;
  std::uint64_t live_bytes = 0;          // page-rounded sizes of live areas, guards excluded
  std::uint64_t live_reserved_bytes = 0; // same with guards: free + lazy + this == region
  std::uint64_t live_areas = 0;
  std::uint64_t purges = 0;              // purges done so far (threshold, retry or explicit)
  std::uint64_t misuse_count = 0;
  // 1 - largest/free; 0 when nothing is free. 0 = all free space in one extent.
  [[nodiscard]] double external_fragmentation() const {
    return free_bytes == 0 ? 0.0 : 1.0 - static_cast<double>(largest_free_bytes) / static_cast<double>(free_bytes);
  }
};

// One entry of the address-space map, in address order; together the entries tile the region.
struct MapEntry {
  enum class State : std::uint8_t { kFree, kBusy, kLazy };
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;        // guard included for busy/lazy
  std::uint32_t guard_pages = 0;  // of those bytes, the trailing guard
  State state = State::kFree;
};

// The layer above's own data about one area, kept inside the space's record of the area so that
// the whole stack finds an area with one hash lookup, not one per layer (issue 12: Vmalloc's map of
// areas and the space's were two cache misses on every vfree). Opaque to the space, which only
// stores and moves it with the record: the owner keeps in it a trivially copyable struct of at most
// kBytes (as<T>()). All zero for areas placed through vmalloc/vmalloc_range.
struct AreaPayload {
  static constexpr std::size_t kBytes = 24;
  // The owner's view. T is trivially copyable (an implicit-lifetime type: the byte array's storage
  // provides it, and the record's copies carry it along).
  template <class T>
  [[nodiscard]] T& as() {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= kBytes && alignof(T) <= 8);
    return *std::launder(reinterpret_cast<T*>(bytes));
  }
  template <class T>
  [[nodiscard]] const T& as() const {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= kBytes && alignof(T) <= 8);
    return *std::launder(reinterpret_cast<const T*>(bytes));
  }
  alignas(8) unsigned char bytes[kBytes] = {};
};

class VirtualSpace {
 public:
  struct CreateResult {
    std::unique_ptr<VirtualSpace> space;  // null on failure
    int error = 0;                        // EINVAL for a bad config, else the OS errno
    std::string message;                  // says which parameter or call failed
  };
  // Reserves the region. Fails with EINVAL if region_bytes is not a page multiple or outside
  // [64 KiB, 16 TiB], or with the OS's errno if the reservation fails.
  // `lock`: null = the space locks itself; otherwise the lock of the layer that owns the space
  // (Vmalloc), which must outlive it. Every public call below then takes that lock, and the owner
  // makes its own calls through the *_locked entry points while it holds it.
  [[nodiscard]] static CreateResult create(const VirtualSpaceConfig& config, Mutex* lock = nullptr);
  ~VirtualSpace();
  VirtualSpace(const VirtualSpace&) = delete;
  VirtualSpace& operator=(const VirtualSpace&) = delete;

  // vmalloc: the lowest offset s with s % align == 0 and [s, s+need) free, where
  // need = round_up(size, page) + guard_pages*page. Fails with
  //   invalid-argument       size 0, align not a power of two or < page, need overflows;
  //   no-virtual-space       free bytes < need even after purging;
  //   virtual-fragmentation  free bytes >= need but no extent fits, even after purging.
  // On a miss with lazily-held areas it purges them all and retries once (a purge is the only
  // state a failed call may leave behind). Throws std::bad_alloc if the metadata heap is
  // exhausted, with nothing changed but that purge. vfree, purge and release_unused never
  // allocate: they work even when the process can get no more memory. Cost: O(log n) at page alignment; with a larger
  // alignment O((k+1) log n), k = free extents below the answer that are big enough but fit only
  // when misaligned (see FreeSpaceTree::find_lowest_fit).
  [[nodiscard]] Allocation vmalloc(std::uint64_t size, std::uint64_t align = kVirtualPageSize);

  // As vmalloc, but [s, s+need) must also lie in [lo, hi) (offsets; the kernel's
  // __vmalloc_node_range). invalid-argument also for lo/hi not page multiples, lo >= hi or
  // hi > region. The free-bytes test that tells the two space failures apart counts only free
  // bytes inside [lo, hi).
  [[nodiscard]] Allocation vmalloc_range(std::uint64_t size, std::uint64_t align, std::uint64_t lo,
                                         std::uint64_t hi);

  // vfree: the area starting at addr becomes lazily held; if the lazily-held pages then exceed the
  // threshold, everything lazily held is purged. Misuse is reported (see FreeStatus), or aborts in
  // strict mode. O(1) expected, plus the purge when one happens; misuse is classified in
  // O(log n + k), k = areas between the address and the free extent below it.
  FreeStatus vfree(const void* addr);
  FreeStatus vfree_offset(std::uint64_t offset);

  // Returns a live area straight to free space, bypassing lazy free: for an allocation that a
  // layer above abandoned before anything was mapped in it (so no stale translation can exist).
  // Misuse as vfree. O(log n).
  FreeStatus release_unused(std::uint64_t offset);

  // Returns every lazily-held range to the free tree (coalescing), in address order.
  // O(k log n) for k lazy areas.
  void purge();

  // Called with (offset, bytes) of every lazily-held range as a purge returns it to free space,
  // under the space's lock: the layer above turns such ranges back into plain reservation. It must
  // not call back into this VirtualSpace, throw, or allocate (it runs at the map limit too).
  // Set once, before the space is shared between threads.
  using PurgeObserver = void (*)(void* context, std::uint64_t offset, std::uint64_t bytes);
  void set_purge_observer(PurgeObserver observer, void* context);

  [[nodiscard]] VirtualSpaceStats stats() const;                 // O(1)
  // Free bytes in extents smaller than the need of a `size`-byte request (guard included):
  // the numerator of the kernel-style unusable-free-space index. O(log n).
  [[nodiscard]] std::uint64_t unusable_free_bytes(std::uint64_t size) const;
  // unusable_free_bytes(size) / free bytes; 0 when nothing is free. O(log n).
  [[nodiscard]] double unusable_free_index(std::uint64_t size) const;
  // Free-extent counts and bytes in power-of-two buckets of size in bytes. O(1) to read.
  [[nodiscard]] std::array<FreeSpaceTree::Bucket, 64> free_histogram() const;
  // The whole region as free/busy/lazy runs in address order. O(n).
  [[nodiscard]] std::vector<MapEntry> address_map() const;

  // Verifies the invariants from scratch (see the block comment in virtual_space.cpp). Returns ""
  // when all hold, else which invariant broke and where.
  //   kStructure: the free tree's own invariants, the tiling of the region by free extents, live
  //               and lazily-held areas, the lazy list and the counters. O(n log n).
  //   kFull:      kStructure plus 72 fit probes, each the tree's answer against a linear scan's.
  //               O(n * probes).
  [[nodiscard]] std::string check(CheckDepth depth = CheckDepth::kFull) const;

  // Misuse messages so far (non-strict mode), one line each, naming the address; capped at 64.
  [[nodiscard]] std::vector<std::string> misuse_log() const;

  // The calls above for a caller that already holds lock() (asserted: aborts otherwise): the same
  // results, the same VMF_ASSERT_FULL walks, no lock taken.
  [[nodiscard]] Mutex& lock() const { return mutex_; }
  [[nodiscard]] Allocation vmalloc_locked(std::uint64_t size, std::uint64_t align = kVirtualPageSize);
  FreeStatus vfree_offset_locked(std::uint64_t offset);
  FreeStatus release_unused_locked(std::uint64_t offset);
  void purge_locked();
  [[nodiscard]] VirtualSpaceStats stats_locked() const;

  // For the owner that keeps its per-area data in the space's records (AreaPayload), with lock()
  // held. A payload pointer stays valid until the next call that places or frees any area (the
  // index may then move its records: growth moves all, a removal's back shift some).
  // vmalloc_locked that stores `payload` in the new area's record and, if `stored` is not null,
  // sets *stored to where it now is. Failures as vmalloc; nothing stored then.
  [[nodiscard]] Allocation vmalloc_locked(std::uint64_t size, std::uint64_t align, const AreaPayload& payload,
                                          AreaPayload** stored);
  // The payload of the live (not lazily-held) area starting at offset, or nullptr if none does.
  // One hash lookup; nothing reported (the owner classifies its own misuse).
  [[nodiscard]] AreaPayload* live_area_locked(std::uint64_t offset);
  [[nodiscard]] const AreaPayload* live_area_locked(std::uint64_t offset) const;
  // vfree_offset_locked of the live area at offset whose payload live_area_locked (or
  // vmalloc_locked) returned, with no placing or freeing call since: the same effect, its one more
  // lookup on the slot the first one brought into the cache (aborts if payload is not that area's).
  void vfree_found_locked(std::uint64_t offset, AreaPayload* payload);
  // Calls f(offset, payload) for every live area, in no particular order. O(n + c / 64), c the
  // index's capacity (below 4 times the most areas it has held, and at least 64).
  template <class F>
  void for_each_live_area_locked(F&& f) const {
    mutex_.assert_held();
    areas_.for_each([&](std::uint64_t offset, const AreaRecord& record) { f(offset, record.payload); });
  }

  [[nodiscard]] void* base() const { return base_; }
  [[nodiscard]] std::uint64_t region_bytes() const { return config_.region_bytes; }
  [[nodiscard]] std::uint64_t base_alignment() const { return base_align_; }
  [[nodiscard]] const VirtualSpaceConfig& config() const { return config_; }

 private:
  // The one record of a live area, for the whole stack: the owner's payload and the area's need
  // (page-rounded size plus guard, a page multiple). 32 bytes; 40 with its key in the index.
  struct AreaRecord {
    AreaPayload payload;
    std::uint64_t bytes;
  };
  // Offset -> record for every live area. A flat table with each key in its slot: a vfree finds
  // its area with about one cache miss, where an ordered node-based map missed once per tree level
  // and absl::flat_hash_map twice (control bytes, then the slot). The order that misuse
  // classification needs comes from the free tree (classify_misuse_locked).
  using AreaIndex = FlatOffsetTable<AreaRecord>;
  // A lazily-held area: out of the index (vfree erased its record) and in the lazy list only, so
  // a purge touches no hash-map slot, as the kernel's purge list holds vmap areas off its busy tree.
  struct LazyArea {
    std::uint64_t offset;
    std::uint64_t bytes;
    friend auto operator<=>(const LazyArea&, const LazyArea&) = default;
  };

  VirtualSpace(const VirtualSpaceConfig& config, void* base, std::uint64_t base_align, Mutex* lock);
  // `stored`: as vmalloc_locked's.
  Allocation allocate_locked(std::uint64_t size, std::uint64_t align, std::uint64_t lo, std::uint64_t hi,
                             const AreaPayload& payload, AreaPayload** stored);
  FreeStatus free_locked(std::uint64_t offset, bool in_region);
  // vfree of the live area at offset, whose record is `record`: the record leaves the index, the
  // area the lazy list; then the threshold's purge. Allocates nothing.
  void hold_lazily_locked(std::uint64_t offset, AreaRecord* record);
  // Sorts the lazy list in place (its order matters to nothing: purge sorts it too) and classifies.
  FreeStatus classify_misuse_locked(std::uint64_t offset);
  // The live area at offset, with the live counters already reduced by it; on misuse reports it,
  // sets *status and returns nullptr. Allocates nothing.
  AreaRecord* take_live_locked(std::uint64_t offset, FreeStatus* status);
  void forget_live_locked(const AreaRecord& record);  // the live counters, reduced by record
  void purge_lazy_locked();
  [[nodiscard]] std::vector<MapEntry> address_map_locked() const;
  // check()'s O(n) part: free tree, tiling, counters. "" when they hold.
  [[nodiscard]] std::string structure_error_locked(const std::vector<MapEntry>& map) const;
  // With -Dchecks=full: structure_error_locked() must be "" (VMF_ASSERT_FULL), else nothing.
  void assert_full_locked(const char* after) const;
  void report_misuse_locked(FreeStatus status, std::uint64_t offset);
  [[nodiscard]] std::uint64_t saturating_need(std::uint64_t size) const;
  [[nodiscard]] std::uint64_t guard_bytes() const { return std::uint64_t{config_.guard_pages} * kVirtualPageSize; }

  const VirtualSpaceConfig config_;
  OsInterface& os_;
  void* const base_;
  const std::uint64_t base_align_;

  Mutex own_mutex_;  // unused when the owner's lock is shared
  Mutex& mutex_;      // own_mutex_ or the owner's
  FreeSpaceTree free_;
  AreaIndex areas_;  // live and lazily-held areas
  // The lazily-held areas, in vfree order (or sorted, after a misuse). Its capacity is kept at
  // least areas_.size() + its size by every allocation, so a vfree appends without allocating.
  std::vector<LazyArea> lazy_;
  std::uint64_t lazy_bytes_ = 0;
  std::uint64_t live_bytes_ = 0;
  std::uint64_t live_reserved_bytes_ = 0;
  std::uint64_t purges_ = 0;
  PurgeObserver purge_observer_ = nullptr;
  void* purge_context_ = nullptr;
  std::uint64_t misuse_count_ = 0;
  std::vector<std::string> misuse_log_;
};

}  // namespace vmfrag
