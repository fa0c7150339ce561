// VirtualSpace policy: sizes, guards, lazy free, purge-and-retry and failure classification, on top
// of FreeSpaceTree (the data structure) and OsInterface (the OS calls).
#include "allocator/vspace/virtual_space.h"

#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <limits>

#include "allocator/core/assert.h"

namespace vmfrag {
namespace {

constexpr std::uint64_t kPage = kVirtualPageSize;
constexpr std::size_t kMisuseLogCap = 64;

bool is_pow2(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// The base alignment: 2 MiB at least (huge-page friendly, as the kernel's vmalloc range), up to
// 1 GiB when the region is that large, so that every alignment a real caller asks for is absolute.
std::uint64_t base_alignment_for(std::uint64_t region) {
  const std::uint64_t floor_pow2 = std::bit_floor(region);
  return std::max<std::uint64_t>(2ull << 20, std::min<std::uint64_t>(floor_pow2, 1ull << 30));
}

}  // namespace

std::uint64_t kernel_lazy_threshold_pages() {
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  const auto n = static_cast<std::uint64_t>(cpus > 0 ? cpus : 1);
  const auto fls = static_cast<std::uint64_t>(std::bit_width(n));  // fls(1) == 1
  return fls * ((32ull << 20) / kPage);
}

const char* free_status_name(FreeStatus s) {
  switch (s) {
    case FreeStatus::kOk: return "ok";
    case FreeStatus::kNull: return "null";
    case FreeStatus::kOutsideRegion: return "outside-region";
    case FreeStatus::kNotAllocated: return "not-allocated";
    case FreeStatus::kInterior: return "interior";
    case FreeStatus::kAlreadyFreed: return "already-freed";
    case FreeStatus::kInGuard: return "in-guard";
  }
  return "unknown";
}

VirtualSpace::CreateResult VirtualSpace::create(const VirtualSpaceConfig& config, Mutex* lock) {
  CreateResult r;
  if (config.region_bytes % kPage != 0 || config.region_bytes < kMinRegionBytes || config.region_bytes > kMaxRegionBytes) {
    r.error = EINVAL;
    r.message = "region_bytes=" + std::to_string(config.region_bytes) +
                " must be a multiple of 4096 in [64 KiB, 16 TiB]";
    return r;
  }
  if (std::uint64_t{config.guard_pages} * kPage >= config.region_bytes) {
    r.error = EINVAL;
    r.message = "guard_pages=" + std::to_string(config.guard_pages) + " leaves no room in the region";
    return r;
  }
  if (os_page_size() != kPage) {
    r.error = EINVAL;
    r.message = "the OS page size is " + std::to_string(os_page_size()) + ", vmfrag models 4096";
    return r;
  }
  OsInterface& os = config.os != nullptr ? *config.os : linux_os();
  const std::uint64_t align = base_alignment_for(config.region_bytes);
  void* base = nullptr;
  if (const int err = os.reserve(config.region_bytes, align, &base); err != 0) {
    r.error = err;
    r.message = "reserving " + std::to_string(config.region_bytes) + " bytes failed: errno " + std::to_string(err);
    return r;
  }
  r.space.reset(new VirtualSpace(config, base, align, lock));
  return r;
}

VirtualSpace::VirtualSpace(const VirtualSpaceConfig& config, void* base, std::uint64_t base_align, Mutex* lock)
    : config_(config),
      os_(config.os != nullptr ? *config.os : linux_os()),
      base_(base),
      base_align_(base_align),
      mutex_(lock != nullptr ? *lock : own_mutex_) {
  free_.insert(0, config_.region_bytes);
}

VirtualSpace::~VirtualSpace() {
  // The region is ours alone; failing to return it would be a kernel bug, not a caller error.
  VMF_CHECK(os_.release(base_, config_.region_bytes) == 0, "releasing the region at %p failed", base_);
}

Allocation VirtualSpace::vmalloc(std::uint64_t size, std::uint64_t align) {
  std::lock_guard lock(mutex_);
  return vmalloc_locked(size, align);
}

Allocation VirtualSpace::vmalloc_locked(std::uint64_t size, std::uint64_t align) {
  mutex_.assert_held();
  const Allocation a = allocate_locked(size, align, 0, config_.region_bytes, AreaPayload{}, nullptr);
  assert_full_locked("vmalloc");
  return a;
}

Allocation VirtualSpace::vmalloc_locked(std::uint64_t size, std::uint64_t align, const AreaPayload& payload,
                                        AreaPayload** stored) {
  mutex_.assert_held();
  const Allocation a = allocate_locked(size, align, 0, config_.region_bytes, payload, stored);
  assert_full_locked("vmalloc");
  return a;
}

Allocation VirtualSpace::vmalloc_range(std::uint64_t size, std::uint64_t align, std::uint64_t lo, std::uint64_t hi) {
  std::lock_guard lock(mutex_);
  if (lo % kPage != 0 || hi % kPage != 0 || lo >= hi || hi > config_.region_bytes)
    return Allocation{nullptr, 0, FailureKind::kInvalidArgument};
  const Allocation a = allocate_locked(size, align, lo, hi, AreaPayload{}, nullptr);
  assert_full_locked("vmalloc_range");
  return a;
}

/*
 * Allocation, as alloc_vmap_area() does it, with two deliberate differences:
 *
 *  1. The fit is exact for every alignment. The kernel looks for an extent of size+align-1 when
 *     align > PAGE_SIZE, which guarantees that an aligned start exists in that extent but misses
 *     extents that are big enough only at one aligned offset, and so can fail or place higher
 *     than necessary. FreeSpaceTree::find_lowest_fit checks such extents individually.
 *  2. The failure is classified. After the purge-and-retry, if the free bytes inside [lo, hi)
 *     could hold the request the failure is fragmentation, otherwise exhaustion.
 *
 * The purge-and-retry mirrors the kernel's `purged` flag: one purge of every lazily-held area,
 * one more search. Without lazily-held areas the retry could not change the answer, so it is
 * skipped.
 */
Allocation VirtualSpace::allocate_locked(std::uint64_t size, std::uint64_t align, std::uint64_t lo, std::uint64_t hi,
                                         const AreaPayload& payload, AreaPayload** stored) {
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  if (size == 0 || !is_pow2(align) || align < kPage || size > max - (kPage - 1))
    return Allocation{nullptr, 0, FailureKind::kInvalidArgument};
  const std::uint64_t rounded = (size + kPage - 1) & ~(kPage - 1);
  if (rounded > max - guard_bytes()) return Allocation{nullptr, 0, FailureKind::kInvalidArgument};
  const std::uint64_t need = rounded + guard_bytes();

  // Free extents never outnumber the areas between them plus one, so with the pool kept this far
  // ahead, purges and frees never allocate (they must work at the process's mapping limit).
  // Throws std::bad_alloc here, before anything changed.
  free_.reserve_nodes(areas_.size() + lazy_.size() + 2);
  // The fit is found and carved out of its extent in one search (take_lowest_fit).
  std::optional<std::uint64_t> fit = free_.take_lowest_fit(need, align, lo, hi);
  if (!fit && !lazy_.empty()) {
    purge_lazy_locked();
    fit = free_.take_lowest_fit(need, align, lo, hi);
  }
  if (!fit) {
    const std::uint64_t free_in_range = free_.free_bytes_in(lo, hi);
    return Allocation{nullptr, 0,
                      free_in_range >= need ? FailureKind::kVirtualFragmentation : FailureKind::kNoVirtualSpace};
  }
  // Both may throw std::bad_alloc: then the range goes back to free space (coalescing restores
  // the very extents it was cut from, without allocating: the pool holds a node for every case)
  // and only the purge happened. The lazy list's capacity grows geometrically ahead of the
  // areas, so that every later vfree appends to it without allocating.
  try {
    const std::size_t areas = areas_.size() + lazy_.size() + 1;
    if (lazy_.capacity() < areas) lazy_.reserve(std::max<std::size_t>(areas, 2 * lazy_.capacity()));
    AreaRecord& record = areas_.insert(*fit, AreaRecord{payload, need});
    if (stored != nullptr) *stored = &record.payload;
  } catch (const std::bad_alloc&) {
    free_.insert(*fit, need);
    throw;
  }
  live_reserved_bytes_ += need;
  live_bytes_ += rounded;
  return Allocation{static_cast<char*>(base_) + *fit, *fit, FailureKind::kNone};
}

FreeStatus VirtualSpace::vfree(const void* addr) {
  if (addr == nullptr) return FreeStatus::kNull;
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  const auto b = reinterpret_cast<std::uintptr_t>(base_);
  std::lock_guard lock(mutex_);
  const bool in_region = a >= b && a - b < config_.region_bytes;
  const FreeStatus status = free_locked(in_region ? a - b : 0, in_region);
  assert_full_locked("vfree");
  return status;
}

FreeStatus VirtualSpace::vfree_offset(std::uint64_t offset) {
  std::lock_guard lock(mutex_);
  return vfree_offset_locked(offset);
}

FreeStatus VirtualSpace::vfree_offset_locked(std::uint64_t offset) {
  mutex_.assert_held();
  const FreeStatus status = free_locked(offset, offset < config_.region_bytes);
  assert_full_locked("vfree_offset");
  return status;
}

FreeStatus VirtualSpace::free_locked(std::uint64_t offset, bool in_region) {
  if (!in_region) {
    report_misuse_locked(FreeStatus::kOutsideRegion, offset);
    return FreeStatus::kOutsideRegion;
  }
  FreeStatus status = FreeStatus::kOk;
  AreaRecord* const record = take_live_locked(offset, &status);
  if (record == nullptr) return status;
  hold_lazily_locked(offset, record);
  return FreeStatus::kOk;
}

void VirtualSpace::hold_lazily_locked(std::uint64_t offset, AreaRecord* record) {
  const LazyArea lazy{offset, record->bytes};
  areas_.erase(record);
  lazy_.push_back(lazy);  // within the capacity reserved by the allocation: no allocation
  lazy_bytes_ += lazy.bytes;
  // "Exceeds", strictly: a threshold of 0 therefore purges after every free (eager).
  if (lazy_bytes_ / kPage > config_.lazy_threshold_pages) purge_lazy_locked();
}

AreaPayload* VirtualSpace::live_area_locked(std::uint64_t offset) {
  mutex_.assert_held();
  AreaRecord* const record = areas_.find(offset);
  return record == nullptr ? nullptr : &record->payload;
}

const AreaPayload* VirtualSpace::live_area_locked(std::uint64_t offset) const {
  mutex_.assert_held();
  const AreaRecord* const record = areas_.find(offset);
  return record == nullptr ? nullptr : &record->payload;
}

// The lookup again, to check the caller's record: the slot is the one live_area_locked has just
// brought into the cache, so this one does not miss.
void VirtualSpace::vfree_found_locked(std::uint64_t offset, AreaPayload* payload) {
  mutex_.assert_held();
  AreaRecord* const record = areas_.find(offset);
  VMF_CHECK(record != nullptr && &record->payload == payload,
            "vfree_found: 0x%" PRIx64 " is not the live area found there", offset);
  forget_live_locked(*record);
  hold_lazily_locked(offset, record);
  assert_full_locked("vfree_found");
}

FreeStatus VirtualSpace::release_unused(std::uint64_t offset) {
  std::lock_guard lock(mutex_);
  return release_unused_locked(offset);
}

FreeStatus VirtualSpace::release_unused_locked(std::uint64_t offset) {
  mutex_.assert_held();
  if (offset >= config_.region_bytes) {
    report_misuse_locked(FreeStatus::kOutsideRegion, offset);
    return FreeStatus::kOutsideRegion;
  }
  FreeStatus status = FreeStatus::kOk;
  AreaRecord* const record = take_live_locked(offset, &status);
  if (record == nullptr) return status;
  const std::uint64_t bytes = record->bytes;
  areas_.erase(record);
  free_.insert(offset, bytes);
  assert_full_locked("release_unused");
  return FreeStatus::kOk;
}

VirtualSpace::AreaRecord* VirtualSpace::take_live_locked(std::uint64_t offset, FreeStatus* status) {
  AreaRecord* const record = areas_.find(offset);
  if (record == nullptr) {
    *status = classify_misuse_locked(offset);
    report_misuse_locked(*status, offset);
    return nullptr;
  }
  forget_live_locked(*record);
  return record;
}

void VirtualSpace::forget_live_locked(const AreaRecord& record) {
  live_reserved_bytes_ -= record.bytes;
  live_bytes_ -= record.bytes - guard_bytes();
}

/*
 * Misuse classification of an offset at which no live area starts, without an ordered index of
 * areas. Free extents, live areas and lazily-held areas tile the region (check() verifies it), so
 * the runs between the free extent at or below the offset and the offset itself are areas laid
 * end to end: starting at that extent's end (or at 0), each area's record — in the index if live,
 * in the lazy list if lazily held — gives where the next begins. The walk stops at the area
 * containing the offset. The lazy list is sorted in place first (nothing depends on its order; a
 * purge sorts it anyway), so each lazy lookup is a binary search. Cost: O(l log l) for l
 * lazily-held areas, O(log n) for the free-tree search, and one hash lookup plus one binary search
 * per area passed, k; only the misuse path pays it, so vfree itself needs no ordered structure.
 * The answers are those an ordered map of live and lazily-held areas gave: the start of a
 * lazily-held area is a double free; inside a live area, guard or interior; otherwise not
 * allocated — the interior of a lazily-held area included.
 */
FreeStatus VirtualSpace::classify_misuse_locked(std::uint64_t offset) {
  std::sort(lazy_.begin(), lazy_.end());
  const auto lazy_at = [this](std::uint64_t start) -> const LazyArea* {
    const auto it = std::lower_bound(lazy_.begin(), lazy_.end(), LazyArea{start, 0});
    return it != lazy_.end() && it->offset == start ? &*it : nullptr;
  };
  if (lazy_at(offset) != nullptr) return FreeStatus::kAlreadyFreed;
  const std::optional<Extent> below = free_.last_extent_at_or_before(offset);
  if (below && offset < below->end()) return FreeStatus::kNotAllocated;
  std::uint64_t start = below ? below->end() : 0;
  while (start <= offset) {
    const AreaRecord* const live = areas_.find(start);
    const LazyArea* const lazy = live == nullptr ? lazy_at(start) : nullptr;
    if (live == nullptr && lazy == nullptr) break;  // a free extent starts here: not in an area
    const std::uint64_t end = start + (lazy != nullptr ? lazy->bytes : live->bytes);
    if (offset < end) {
      if (lazy != nullptr) return FreeStatus::kNotAllocated;
      return offset >= end - guard_bytes() ? FreeStatus::kInGuard : FreeStatus::kInterior;
    }
    start = end;
  }
  return FreeStatus::kNotAllocated;
}

void VirtualSpace::report_misuse_locked(FreeStatus status, std::uint64_t offset) {
  ++misuse_count_;
  char msg[160];
  if (status == FreeStatus::kOutsideRegion) {
    std::snprintf(msg, sizeof msg, "vfree: address outside the region [%p, +0x%" PRIx64 ")", base_,
                  config_.region_bytes);
  } else {
    std::snprintf(msg, sizeof msg, "vfree: %s address %p (offset 0x%" PRIx64 ")", free_status_name(status),
                  static_cast<void*>(static_cast<char*>(base_) + offset), offset);
  }
  VMF_CHECK(!config_.strict, "strict mode: %s", msg);
  if (misuse_log_.size() < kMisuseLogCap) misuse_log_.emplace_back(msg);
}

void VirtualSpace::purge() {
  std::lock_guard lock(mutex_);
  purge_locked();
}

void VirtualSpace::purge_locked() {
  mutex_.assert_held();
  purge_lazy_locked();
  assert_full_locked("purge");
}

// Every lazily-held range goes back at once. The result does not depend on insertion order:
// coalescing leaves the same maximal extents whatever order the ranges arrive in.
void VirtualSpace::set_purge_observer(PurgeObserver observer, void* context) {
  std::lock_guard lock(mutex_);
  purge_observer_ = observer;
  purge_context_ = context;
}

// Sorting first keeps the observer's calls (the OS calls of the layer above) in address order, as
// they were when lazily-held areas lived in an ordered map; std::sort works in place.
void VirtualSpace::purge_lazy_locked() {
  std::sort(lazy_.begin(), lazy_.end());
  for (const auto& [offset, bytes] : lazy_) {
    if (purge_observer_ != nullptr) purge_observer_(purge_context_, offset, bytes);
    free_.insert(offset, bytes);
  }
  lazy_.clear();
  lazy_bytes_ = 0;
  ++purges_;
}

VirtualSpaceStats VirtualSpace::stats() const {
  std::lock_guard lock(mutex_);
  return stats_locked();
}

VirtualSpaceStats VirtualSpace::stats_locked() const {
  mutex_.assert_held();
  VirtualSpaceStats s;
  s.region_bytes = config_.region_bytes;
  s.free_bytes = free_.free_bytes();
  s.largest_free_bytes = free_.largest();
  s.free_extents = free_.extent_count();
  s.lazy_bytes = lazy_bytes_;
  s.lazy_areas = lazy_.size();
  s.live_bytes = live_bytes_;
  s.live_reserved_bytes = live_reserved_bytes_;
  s.live_areas = areas_.size();
  s.purges = purges_;
  s.misuse_count = misuse_count_;
  return s;
}

// The need of a request, saturating instead of overflowing: a request too big to express cannot
// fit anywhere, so every free byte is unusable for it.
std::uint64_t VirtualSpace::saturating_need(std::uint64_t size) const {
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  if (size > max - (kPage - 1)) return max;
  const std::uint64_t rounded = (size + kPage - 1) & ~(kPage - 1);
  return rounded > max - guard_bytes() ? max : rounded + guard_bytes();
}

std::uint64_t VirtualSpace::unusable_free_bytes(std::uint64_t size) const {
  std::lock_guard lock(mutex_);
  return free_.bytes_in_extents_smaller_than(saturating_need(size));
}

double VirtualSpace::unusable_free_index(std::uint64_t size) const {
  std::lock_guard lock(mutex_);
  const std::uint64_t free = free_.free_bytes();
  if (free == 0) return 0.0;
  return static_cast<double>(free_.bytes_in_extents_smaller_than(saturating_need(size))) / static_cast<double>(free);
}

std::array<FreeSpaceTree::Bucket, 64> VirtualSpace::free_histogram() const {
  std::lock_guard lock(mutex_);
  return free_.histogram();
}

std::vector<MapEntry> VirtualSpace::address_map() const {
  std::lock_guard lock(mutex_);
  return address_map_locked();
}

std::vector<MapEntry> VirtualSpace::address_map_locked() const {
  std::vector<MapEntry> map;
  map.reserve(free_.extent_count() + areas_.size() + lazy_.size());
  free_.for_each([&](const Extent& e) { map.push_back(MapEntry{e.start, e.size, 0, MapEntry::State::kFree}); });
  areas_.for_each([&](std::uint64_t offset, const AreaRecord& area) {
    map.push_back(MapEntry{offset, area.bytes, config_.guard_pages, MapEntry::State::kBusy});
  });
  for (const auto& [offset, bytes] : lazy_)
    map.push_back(MapEntry{offset, bytes, config_.guard_pages, MapEntry::State::kLazy});
  std::sort(map.begin(), map.end(), [](const MapEntry& a, const MapEntry& b) { return a.offset < b.offset; });
  return map;
}

std::vector<std::string> VirtualSpace::misuse_log() const {
  std::lock_guard lock(mutex_);
  return misuse_log_;
}

/*
 * check(): every invariant, recomputed from scratch.
 *   1. The free tree's own invariants (order, balance, augmented maxima and sums, coalescing).
 *   2. Free extents, busy areas and lazily-held areas tile [0, region) exactly: sorted by offset,
 *      each run starts where the previous ended, nothing overlaps, nothing is missing.
 *   3. The counters (live, reserved, lazy bytes) equal their recomputed values.
 *   4. The tree's fit equals a linear scan's fit for probe sizes and alignments (and one
 *      sub-range): the exactness that every placement relies on.
 * 1-3 are O(n) and, with -Dchecks=full, run after every mutating call (assert_full_locked), as
 * the kernel's augment_tree_propagate_check walks its tree under DEBUG_AUGMENT_PROPAGATE_CHECK;
 * they are all of check(CheckDepth::kStructure). 4 costs 72 linear scans and runs only when
 * check(CheckDepth::kFull) is called.
 * 2 also covers the lazy list (the lazily-held areas' only record): each is a run of the tiling,
 * so none is listed twice or overlaps a live area; and its capacity covers every area, so a vfree
 * never allocates.
 */
void VirtualSpace::assert_full_locked(const char* after) const {
#ifdef VMF_CHECKS_FULL
  const std::string why = structure_error_locked(address_map_locked());
  VMF_ASSERT_FULL(why.empty(), "VirtualSpace after %s: %s", after, why.c_str());
#else
  (void)after;
#endif
}

std::string VirtualSpace::structure_error_locked(const std::vector<MapEntry>& map) const {
  char buf[256];
  if (std::string why = free_.validate(); !why.empty()) return "free tree: " + why;

  std::uint64_t expect = 0, busy_bytes = 0, lazy_bytes = 0, busy_areas = 0;
  const MapEntry* prev = nullptr;
  for (const MapEntry& e : map) {
    if (e.offset != expect) {
      std::snprintf(buf, sizeof buf, "tiling: run at 0x%" PRIx64 " follows one ending at 0x%" PRIx64 " (%s)",
                    e.offset, expect, e.offset < expect ? "overlap" : "gap");
      return buf;
    }
    if (e.bytes == 0 || e.bytes % kPage != 0) {
      std::snprintf(buf, sizeof buf, "tiling: run at 0x%" PRIx64 " has size 0x%" PRIx64, e.offset, e.bytes);
      return buf;
    }
    if (e.state == MapEntry::State::kFree && prev != nullptr && prev->state == MapEntry::State::kFree) {
      std::snprintf(buf, sizeof buf, "coalescing: free extents at 0x%" PRIx64 " and 0x%" PRIx64 " touch",
                    prev->offset, e.offset);
      return buf;
    }
    if (e.state != MapEntry::State::kFree && e.bytes <= guard_bytes()) {
      std::snprintf(buf, sizeof buf, "area at 0x%" PRIx64 " of 0x%" PRIx64 " bytes is no bigger than its guard",
                    e.offset, e.bytes);
      return buf;
    }
    if (e.state == MapEntry::State::kBusy) {
      busy_bytes += e.bytes;
      ++busy_areas;
    }
    if (e.state == MapEntry::State::kLazy) lazy_bytes += e.bytes;
    expect = e.offset + e.bytes;
    prev = &e;
  }
  if (expect != config_.region_bytes) {
    std::snprintf(buf, sizeof buf, "tiling: runs end at 0x%" PRIx64 ", region ends at 0x%" PRIx64, expect,
                  config_.region_bytes);
    return buf;
  }
  if (busy_bytes != live_reserved_bytes_ || lazy_bytes != lazy_bytes_ ||
      live_bytes_ != live_reserved_bytes_ - busy_areas * guard_bytes()) {
    std::snprintf(buf, sizeof buf,
                  "counters: reserved %" PRIu64 " vs %" PRIu64 ", lazy %" PRIu64 " vs %" PRIu64 ", live %" PRIu64,
                  live_reserved_bytes_, busy_bytes, lazy_bytes_, lazy_bytes, live_bytes_);
    return buf;
  }
  // The lazy list is the set of lazily-held areas (the tiling above saw each of them once, and no
  // live record at the same offset); its capacity covers every area, so a vfree never allocates.
  if (lazy_.capacity() < areas_.size() + lazy_.size()) {
    std::snprintf(buf, sizeof buf, "lazy list: capacity %zu below %zu areas (a vfree could allocate)",
                  lazy_.capacity(), areas_.size() + lazy_.size());
    return buf;
  }
  return {};
}

std::string VirtualSpace::check(CheckDepth depth) const {
  std::lock_guard lock(mutex_);
  const std::vector<MapEntry> map = address_map_locked();
  if (std::string why = structure_error_locked(map); !why.empty()) return why;
  if (depth == CheckDepth::kStructure) return {};
  char buf[256];

  // Linear-scan fit over the map's free runs: the obviously correct answer.
  auto linear_fit = [&](std::uint64_t need, std::uint64_t align, std::uint64_t lo, std::uint64_t hi)
      -> std::optional<std::uint64_t> {
    for (const MapEntry& e : map) {
      if (e.state != MapEntry::State::kFree) continue;
      const std::uint64_t from = std::max(e.offset, lo), to = std::min(e.offset + e.bytes, hi);
      if (from >= to) continue;
      const std::uint64_t s = (from + align - 1) & ~(align - 1);
      if (s < to && to - s >= need) return s;
    }
    return std::nullopt;
  };
  const std::uint64_t largest = free_.largest();
  const std::uint64_t probe_sizes[] = {kPage, 2 * kPage, 3 * kPage, 5 * kPage, 16 * kPage, 257 * kPage,
                                       largest > kPage ? largest - kPage : kPage, largest == 0 ? kPage : largest,
                                       largest + kPage};
  const std::uint64_t probe_aligns[] = {kPage, 2 * kPage, 16 * kPage, 512 * kPage};
  const std::uint64_t region = config_.region_bytes;
  const std::uint64_t quarter = (region / 4) & ~(kPage - 1);
  const std::pair<std::uint64_t, std::uint64_t> ranges[] = {{0, region}, {quarter, region - quarter}};
  for (auto [lo, hi] : ranges) {
    if (lo >= hi) continue;
    for (std::uint64_t need : probe_sizes) {
      for (std::uint64_t align : probe_aligns) {
        const auto tree = free_.find_lowest_fit(need, align, lo, hi);
        const auto scan = linear_fit(need, align, lo, hi);
        if (tree != scan) {
          std::snprintf(buf, sizeof buf,
                        "fit: need 0x%" PRIx64 " align 0x%" PRIx64 " in [0x%" PRIx64 ",0x%" PRIx64
                        "): tree %s0x%" PRIx64 ", linear scan %s0x%" PRIx64,
                        need, align, lo, hi, tree ? "" : "none ", tree.value_or(0), scan ? "" : "none ",
                        scan.value_or(0));
          return buf;
        }
      }
    }
  }
  return {};
}

}  // namespace vmfrag
