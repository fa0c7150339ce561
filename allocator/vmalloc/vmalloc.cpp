#include "allocator/vmalloc/vmalloc.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <new>
#include <set>

#include "allocator/core/asan_poison.h"
#include "allocator/core/assert.h"

namespace vmfrag {
namespace {

constexpr std::uint64_t kPage = kVirtualPageSize;
constexpr std::size_t kMisuseLogCap = 64;

// ASan's manual poisoning (allocator/core/asan_poison.h): freed areas, guard pages and the tail
// between the requested size and the page end are poisoned.

}  // namespace

const char* backing_mode_name(BackingMode mode) {
  switch (mode) {
    case BackingMode::kNone: return "none";
    case BackingMode::kAnon: return "anon";
    case BackingMode::kMemfd: return "memfd";
  }
  return "none";
}

const char* release_status_name(ReleaseStatus s) {
  switch (s) {
    case ReleaseStatus::kOk: return "ok";
    case ReleaseStatus::kNull: return "null";
    case ReleaseStatus::kUnknown: return "unknown";
    case ReleaseStatus::kWrongFunction: return "wrong-function";
  }
  return "unknown";
}

Vmalloc::CreateResult Vmalloc::create(const VmallocConfig& config) {
  CreateResult r;
  // The block allocator aborts on a block size it cannot use; a configuration is caller input, so
  // refuse it here instead. A block is a power-of-two number of pages (it is allocated aligned to
  // its own size), at least twice the largest small request, and no larger than the largest
  // region (so block_pages * 4096 cannot overflow; a block larger than this region only makes small
  // vm_map_ram calls fail with no-virtual-space).
  const std::uint64_t block_pages = config.vmap_block_pages;
  if (!std::has_single_bit(block_pages) || block_pages < 2 * kVmapMaxAllocPages ||
      block_pages > kMaxRegionBytes / kPage) {
    r.error = EINVAL;
    r.message = "vmap_block_pages=" + std::to_string(block_pages) + " must be a power of two in [" +
                std::to_string(2 * kVmapMaxAllocPages) + ", " + std::to_string(kMaxRegionBytes / kPage) + "]";
    return r;
  }
  // One lock for the whole stack (see the block comment at new_area).
  auto lock = std::make_unique<Mutex>();
  auto space = VirtualSpace::create(config.space, lock.get());
  if (space.space == nullptr) {
    r.error = space.error;
    r.message = space.message;
    return r;
  }
  PhysicalMemoryConfig pc;
  pc.bytes = config.phys_bytes;
  pc.os = config.space.os;
  pc.faults = config.page_faults;
  auto phys = PhysicalMemory::create(pc, lock.get());
  if (phys.memory == nullptr) {
    r.error = phys.error;
    r.message = phys.message;
    return r;
  }
  r.vm.reset(new Vmalloc(config, std::move(lock), std::move(space.space), std::move(phys.memory)));
  return r;
}

Vmalloc::Vmalloc(const VmallocConfig& config, std::unique_ptr<Mutex> lock, std::unique_ptr<VirtualSpace> space,
                 std::unique_ptr<PhysicalMemory> phys)
    : lock_(std::move(lock)),
      config_(config),
      os_(config.space.os != nullptr ? *config.space.os : linux_os()),
      space_(std::move(space)),
      phys_(std::move(phys)),
      vmap_blocks_(config.vmap_block_pages) {
  if (config_.backing != BackingMode::kNone) space_->set_purge_observer(&Vmalloc::on_purge, this);
  std::uint64_t limit = 0;
  if (os_.max_map_count(&limit) == 0) os_map_limit_ = limit;
}

// Areas still mapped at destruction are unmapped with the region (the reservation's release
// covers them); their pages go with the memfd. ASan's shadow outlives the mappings, so what this
// instance poisoned (live and lazily-held areas, kmalloc tails) is unpoisoned first: a later
// mapping at the same addresses must not inherit it.
Vmalloc::~Vmalloc() {
  {
    std::lock_guard lock(*lock_);
    space_->for_each_live_area_locked([](std::uint64_t, const AreaPayload& record) { delete[] area_of(&record).pfns; });
  }
  unpoison(phys_->direct_map(), phys_->bytes());  // kmalloc tails, in every backing
  if (config_.backing == BackingMode::kNone) return;
  for (const MapEntry& e : space_->address_map())
    if (e.state != MapEntry::State::kFree) unpoison(static_cast<char*>(space_->base()) + e.offset, e.bytes);
}

std::optional<std::uint64_t> Vmalloc::region_offset(const void* addr) const {
  const auto base = reinterpret_cast<std::uintptr_t>(space_->base());
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  if (a < base || a - base >= space_->region_bytes()) return std::nullopt;
  return a - base;
}

std::uint64_t Vmalloc::map_limit() const { return config_.map_cap != 0 ? config_.map_cap : os_map_limit_; }

VmallocResult Vmalloc::vmalloc(std::uint64_t size, std::uint64_t align) {
  std::unique_lock lock(*lock_);
  return new_area(lock, AreaKind::kVmalloc, size, align, {}, size);
}

VmallocResult Vmalloc::vzalloc(std::uint64_t size) {
  std::unique_lock lock(*lock_);
  VmallocResult r = new_area(lock, AreaKind::kVmalloc, size, kPage, {}, size);
  lock.unlock();  // the area is this caller's alone until it returns
  // anon pages are zero-filled by the kernel; memfd pages come back from the buddy allocator with
  // whatever their last owner wrote; backing none has no bytes.
  if (r.ok() && config_.backing == BackingMode::kMemfd) std::memset(r.addr, 0, size);
  return r;
}

/*
 * Locking (issue #15's thread scaling). The whole stack has one lock, lock_: VirtualSpace and
 * PhysicalMemory were created with it, and Vmalloc calls their *_locked entry points, so a call
 * takes one lock, not one per layer (three futex handoffs became one). The lock is an absl::Mutex,
 * which spins briefly before sleeping (allocator/core/mutex.h).
 *
 * System calls are made outside lock_, one at a time under os_calls_ (a lock of their own, taken
 * inside lock_ where a call is made under it): the kernel serialises a process's mapping changes
 * on its mmap_lock anyway, and its contended path (sleep and wake-up on the rwsem, TLB shootdowns
 * to the other thread's CPU) costs more than a user-space handoff: unserialised, two memfd threads
 * ran at 0.2x one thread, serialised at 0.45-0.55x (bench/README.md, "Thread scaling"). While one
 * thread is in the kernel, the others do their bookkeeping under lock_.
 *
 * A new area is reserved under lock_ — address range, pages, its record (in the address space's index) in state
 * kMapping, and every counter, mappings included (so map_cap is enforced on the reservation, and
 * check() finds the counters consistent at any moment) — then
 * mapped without it, then committed (kLive) under it again. A release marks the area kUnmapping
 * under the lock, unmaps without it, and returns pages and range under it again. An area that is
 * not kLive belongs to the one thread working on it: no other call touches its range (the address
 * space still holds it busy, so nothing is placed over it and no purge restores it) and the release
 * calls treat it as unknown, so a concurrent double free is still detected and reported, and an
 * address not yet returned cannot be freed. Backing none makes no system call, so its calls stay
 * one critical section each; vm_map_ram's small allocations and purge's reservation restores also
 * stay under the lock (a restore made after it could land on a range another thread has just been
 * given and mapped). Single-threaded, the calls to the layers and the OS come in the same order as
 * with one critical section, so replay is unchanged.
 *
 * A new area, in the order the kernel's __vmalloc_node_range() does it: address range first
 * (alloc_vmap_area), then pages (vm_area_alloc_pages), then page tables (vmap_pages_range). Each
 * step that fails undoes the earlier ones at once, so a failed call leaves no trace: the pages go
 * back to the buddy allocator and the range straight back to free space, not to the lazy list
 * (nothing was ever mapped for a TLB to remember).
 *
 * `pfns` empty: vmalloc, the area owns fresh order-0 pages. Otherwise vmap of caller-owned pages.
 * `lock` is held on entry and on return.
 */
VmallocResult Vmalloc::new_area(std::unique_lock<Mutex>& lock, AreaKind kind, std::uint64_t size, std::uint64_t align,
                                std::vector<std::uint64_t> pfns, std::uint64_t requested) {
  // Metadata comes from the ordinary heap, which can run dry exactly when the process reaches its
  // mapping limit (malloc needs mappings too). Every step below either completes or throws before
  // changing anything, and each throw undoes the steps before it.
  // The area's record is placed with the range: Vmalloc's part (Area) rides in the address space's
  // record, so backing none costs one hash insert here and one lookup in vfree.
  const bool mapped_later = config_.backing != BackingMode::kNone;
  const Area fresh{size, nullptr, 0, kind, mapped_later ? AreaState::kMapping : AreaState::kLive};
  AreaPayload payload;
  payload.as<Area>() = fresh;
  AreaPayload* record = nullptr;
  Allocation va;
  try {
    va = space_->vmalloc_locked(size, align, payload, &record);
  } catch (const std::bad_alloc&) {
    return VmallocResult{nullptr, FailureKind::kOsError, ENOMEM};
  }
  if (!va.ok()) return VmallocResult{nullptr, va.failure, 0};
  const std::uint64_t pages = fresh.pages();  // not read back from the record: its line may still be on its way
  // Backing none is the address space alone: vmalloc areas take no pages (vmap's are the caller's).
  const bool owns_pages =
      (kind == AreaKind::kVmalloc || kind == AreaKind::kHuge) && config_.backing != BackingMode::kNone;
  // Huge areas take whole 2 MiB blocks (order 9) or fail, as vm_area_alloc_pages with
  // page_order = PMD_SHIFT - PAGE_SHIFT; the caller falls back to order-0 pages.
  const unsigned order = kind == AreaKind::kHuge ? kHugeOrder : 0;
  try {
    if (owns_pages) {
      pfns.reserve(pages);
      const FailureKind f = phys_->alloc_pages_locked(pages, pfns, order, order);
      if (f != FailureKind::kNone) {
        abandon_area_locked(va.offset);
        return VmallocResult{nullptr, f, 0};
      }
    }
    // The record's copy: the mapping below reads `pfns` without the lock, when the record may move.
    if (!pfns.empty()) area_of(record).pfns = new std::uint64_t[pages];
  } catch (const std::bad_alloc&) {
    if (owns_pages && pfns.size() == pages) phys_->free_pages_locked(pfns);
    abandon_area_locked(va.offset);
    return VmallocResult{nullptr, FailureKind::kOsError, ENOMEM};
  }
  std::copy(pfns.begin(), pfns.end(), area_of(record).pfns);
  char* const addr = static_cast<char*>(va.addr);
  const std::uint64_t mappings = mappings_needed(pfns);
  int err = within_map_cap(mappings) ? 0 : ENOMEM;
  if (err == 0 && config_.backing != BackingMode::kNone) {
    area_of(record).mappings = static_cast<std::uint32_t>(mappings);
    mappings_in_use_ += mappings;
    mapped_pages_ += pages;
    if (owns_pages) owned_pages_ += pages;
    lock.unlock();
    err = map_pages(addr, pages, pfns, kind == AreaKind::kHuge);
    lock.lock();
    record = area_locked(va.offset);  // still there: a kMapping area is this thread's alone
    if (err != 0) {
      mappings_in_use_ -= mappings;
      mapped_pages_ -= pages;
      if (owns_pages) owned_pages_ -= pages;
    }
  }
  if (err != 0) {
    if (owns_pages) phys_->free_pages_locked(pfns);
    abandon_area_locked(va.offset);
    return VmallocResult{nullptr, err == ENOMEM ? FailureKind::kMapLimit : FailureKind::kOsError, err};
  }
  if (config_.backing != BackingMode::kNone) {
    // Tail and guard poisoned, the requested bytes accessible.
    poison(addr, pages * kPage + std::uint64_t{config_.space.guard_pages} * kPage);
    unpoison(addr, requested);
    for (std::uint64_t pfn : pfns) unpoison(phys_->pfn_to_virt(pfn), kPage);
  }
  area_of(record).state = AreaState::kLive;
  max_area_pfns_ = std::max<std::uint64_t>(max_area_pfns_, pfns.size());
  return VmallocResult{addr, FailureKind::kNone, 0};
}

void Vmalloc::abandon_area_locked(std::uint64_t offset) {
  if (AreaPayload* record = area_locked(offset)) delete[] area_of(record).pfns;
  (void)space_->release_unused_locked(offset);
}

/*
 * The mapping budget: an area costs one kernel VMA per mapped run plus one for the piece of
 * reservation split off after it (the run replaces the middle of a reservation VMA: one VMA
 * becomes three); anon maps one run whatever the pfns. That is the figure compared with map_cap;
 * the OS's own limit is met when mmap or mprotect fails with ENOMEM. 0 in backing none.
 */
std::uint64_t Vmalloc::mappings_needed(const std::vector<std::uint64_t>& pfns) const {
  if (config_.backing == BackingMode::kNone) return 0;
  if (config_.backing == BackingMode::kAnon) return 2;
  std::uint64_t runs = 0;
  for (std::size_t i = 0; i < pfns.size(); ++i)
    if (i == 0 || pfns[i] != pfns[i - 1] + 1) ++runs;
  return runs + 1;
}

bool Vmalloc::within_map_cap(std::uint64_t mappings) const {
  return config_.map_cap == 0 || mappings_in_use_ + mappings <= config_.map_cap;
}

// Maps an area's pages, as the backing mode says, touching nothing but the OS and os_calls_
// (callable without lock_). On failure everything this call mapped is unmapped again and the error
// returned.
int Vmalloc::map_pages(char* addr, std::uint64_t pages, const std::vector<std::uint64_t>& pfns, bool huge) {
  if (config_.backing == BackingMode::kNone) return 0;
  std::lock_guard os_lock(os_calls_);
  const std::uint64_t bytes = pages * kPage;
  if (config_.backing == BackingMode::kAnon) {
    if (const int err = os_.protect(addr, bytes, OsInterface::Protection::kReadWrite); err != 0) return err;
    // Huge areas ask for transparent huge pages before any page is faulted in; whether the kernel
    // grants them is read back from /proc/self/smaps (huge_backed_bytes). A refusal is no failure.
    if (huge) (void)os_.advise_hugepage(addr, bytes);
    if (config_.populate) {
      if (const int err = os_.populate_write(addr, bytes); err != 0) {
        drop_mapping(addr, pfns.size());
        return err;
      }
    }
    return 0;
  }
  // memfd: one MAP_FIXED|MAP_SHARED mmap per physically contiguous run.
  std::size_t done = 0;
  for (std::size_t i = 0; i < pfns.size();) {
    std::size_t j = i + 1;
    while (j < pfns.size() && pfns[j] == pfns[j - 1] + 1) ++j;
    void* out = nullptr;
    const int err = os_.map_shared(addr + i * kPage, (j - i) * kPage, phys_->fd(), pfns[i] * kPage, /*fixed=*/true,
                                   config_.populate, &out);
    if (err != 0) {
      if (done != 0) drop_mapping(addr, done);
      return err;
    }
    done = j;
    i = j;
  }
  return 0;
}

// Drops the pages of [addr, addr+pages) and makes the range inaccessible. Neither call can need a
// new kernel mapping: MADV_DONTNEED never splits a VMA, and the mprotect covers whole VMAs (the
// area's runs, or the one read-write anonymous VMA, which then merges back into the reservation).
// Touches nothing but the OS and os_calls_ (callable without lock_).
void Vmalloc::unmap_pages(char* addr, std::uint64_t pages) {
  if (config_.backing == BackingMode::kNone || pages == 0) return;
  std::lock_guard os_lock(os_calls_);
  drop_mapping(addr, pages);
}

void Vmalloc::drop_mapping(char* addr, std::uint64_t pages) {
  const std::uint64_t bytes = pages * kPage;
  VMF_CHECK(os_.drop_pages(addr, bytes) == 0, "MADV_DONTNEED of an area at %p failed", static_cast<void*>(addr));
  VMF_CHECK(os_.protect(addr, bytes, OsInterface::Protection::kNone) == 0, "mprotect(PROT_NONE) of %p failed",
            static_cast<void*>(addr));
}

// The purge observer (memfd mode): a purged range is free space again, so its PROT_NONE file
// mappings become plain reservation, merging with the neighbours and giving the VMAs back. Best
// effort: at the map limit the placeholder stays, inaccessible and ours, and the next area mapped
// over it replaces it. A range released unused (never mapped, or already restored) is harmless.
// Only the mapped pages are restored, not the guard after them: the guard is still part of the
// reservation VMA, and covering it would split that VMA, which fails at the limit. At the limit
// even a plain MAP_FIXED replacement fails (the old VMA still counts), so the placeholder is
// unmapped first (removing whole VMAs never needs a new one) and the hole re-reserved with
// MAP_FIXED_NOREPLACE. Only another thread of this process mapping into that instant's hole
// could defeat this; the range would then belong to someone else while free space here, so that
// aborts with a message rather than let a later area overwrite a foreign mapping. If even the
// unmap fails, the placeholder stays (inaccessible, ours) and the failure is counted.
void Vmalloc::on_purge(void* self, std::uint64_t offset, std::uint64_t bytes) {
  auto* vm = static_cast<Vmalloc*>(self);
  void* const addr = static_cast<char*>(vm->space_->base()) + offset;
  unpoison(addr, bytes);  // free space again: no stale poison for whatever is placed here next
  if (vm->config_.backing == BackingMode::kMemfd) vm->restore_reservation(addr, bytes);
}

void Vmalloc::restore_reservation(void* addr, std::uint64_t bytes) {
  const std::uint64_t guard = std::uint64_t{config_.space.guard_pages} * kPage;
  if (bytes <= guard) return;
  const std::uint64_t mapped = bytes - guard;
  std::lock_guard os_lock(os_calls_);  // inside lock_: the one order
  if (os_.reserve_fixed(addr, mapped, /*replace=*/true) == 0) return;
  if (os_.unmap(addr, mapped) != 0) {
    ++restore_failures_;
    return;
  }
  const int err = os_.reserve_fixed(addr, mapped, /*replace=*/false);
  VMF_CHECK(err == 0, "re-reserving [%p, +0x%" PRIx64 ") after unmapping it failed with errno %d: the range is no "
            "longer ours", addr, mapped, err);
}

ReleaseStatus Vmalloc::vfree(const void* addr) { return release_area(addr, AreaKind::kVmalloc, "vfree"); }
ReleaseStatus Vmalloc::vunmap(const void* addr) { return release_area(addr, AreaKind::kVmap, "vunmap"); }

// vfree releases vmalloc and vmalloc_huge areas, vunmap vmap areas, vm_unmap_ram vm_map_ram ones;
// each refuses the others' (and vmap blocks, which only the block allocator releases).
ReleaseStatus Vmalloc::release_area(const void* addr, AreaKind wanted, const char* fn) {
  if (addr == nullptr) return ReleaseStatus::kNull;
  std::unique_lock lock(*lock_);
  if (phys_->virt_to_pfn(addr)) return misuse_locked(ReleaseStatus::kWrongFunction, fn, addr);
  const std::optional<std::uint64_t> offset = region_offset(addr);
  if (!offset) return misuse_locked(ReleaseStatus::kUnknown, fn, addr);
  AreaPayload* const record = live_area_locked(*offset);
  if (record == nullptr) return misuse_locked(ReleaseStatus::kUnknown, fn, addr);
  const AreaKind kind = area_of(record).kind == AreaKind::kHuge ? AreaKind::kVmalloc : area_of(record).kind;
  if (kind != wanted) return misuse_locked(ReleaseStatus::kWrongFunction, fn, addr);
  return release_area(lock, *offset, record, fn);
}

AreaPayload* Vmalloc::live_area_locked(std::uint64_t offset) {
  AreaPayload* const record = area_locked(offset);
  return record != nullptr && area_of(record).state == AreaState::kLive ? record : nullptr;
}

// Unmaps without the lock (see the block comment at new_area): the record stays, kUnmapping, so
// the range stays busy in the address space and a second release of it is misuse meanwhile.
ReleaseStatus Vmalloc::release_area(std::unique_lock<Mutex>& lock, std::uint64_t offset, AreaPayload* record,
                                    const char* fn) {
  char* const p = static_cast<char*>(space_->base()) + offset;
  const std::uint64_t pages = area_of(record).pages();
  if (config_.backing != BackingMode::kNone && pages != 0) {
    area_of(record).state = AreaState::kUnmapping;
    lock.unlock();
    unmap_pages(p, pages);
    lock.lock();
    record = area_locked(offset);
    VMF_CHECK(record != nullptr, "%s: the address space lost area %p", fn, static_cast<void*>(p));
  }
  Area& area = area_of(record);
  if (config_.backing != BackingMode::kNone) {
    poison(p, pages * kPage);
    mapped_pages_ -= pages;
  }
  mappings_in_use_ -= area.mappings;
  if ((area.kind == AreaKind::kVmalloc || area.kind == AreaKind::kHuge) && config_.backing != BackingMode::kNone) {
    phys_->free_pages_locked(area.pfn_span());
    owned_pages_ -= pages;
  }
  if (area.kind == AreaKind::kHuge) --huge_areas_;
  delete[] area.pfns;
  area.pfns = nullptr;
  space_->vfree_found_locked(offset, record);
  return ReleaseStatus::kOk;
}

ReleaseStatus Vmalloc::misuse_locked(ReleaseStatus status, const char* fn, const void* addr) {
  ++misuse_count_;
  char msg[160];
  std::snprintf(msg, sizeof msg, "%s: %s address %p", fn,
                status == ReleaseStatus::kWrongFunction ? "wrong function for" : "unknown", addr);
  VMF_CHECK(!config_.space.strict, "strict mode: %s", msg);
  if (misuse_log_.size() < kMisuseLogCap) misuse_log_.emplace_back(msg);
  return status;
}

/*
 * vmalloc_to_pfn without an ordered index of areas. Areas start on page boundaries and never
 * overlap, so the only area that can hold addr is the one with the highest start at or below it;
 * probing the hash map at addr's page, then one page lower, and so on finds that start after d
 * probes, d = addr's page within the area. An area with p pfns covers only its first p pages, so
 * once d reaches the most pfns any area has ever had, no area can answer and the probing stops:
 * O(d) with d bounded by that maximum (0 in backing none, where vmalloc areas own no pages).
 */
std::optional<std::uint64_t> Vmalloc::vmalloc_to_pfn(const void* addr) const {
  std::lock_guard lock(*lock_);
  const std::optional<std::uint64_t> offset = region_offset(addr);
  if (!offset) return std::nullopt;
  auto small = map_ram_.upper_bound(*offset);
  if (small != map_ram_.begin()) {
    --small;
    const std::uint64_t page = (*offset - small->first) / kPage;
    if (page < small->second.pfns.size()) return small->second.pfns[page];
  }
  const std::uint64_t page_start = *offset & ~(kPage - 1);
  const std::uint64_t reach = std::min(max_area_pfns_, page_start / kPage + 1);
  for (std::uint64_t back = 0; back < reach; ++back) {
    const AreaPayload* const record = area_locked(page_start - back * kPage);
    if (record == nullptr) continue;
    const Area& area = area_of(record);
    // An area being mapped or unmapped has no pages the caller may look at yet (or any more).
    if (area.state != AreaState::kLive) return std::nullopt;
    // The nearest area start at or below addr: areas never overlap, so only it can hold addr.
    if (back >= area.pfn_span().size()) return std::nullopt;  // none mode: no pages behind vmalloc
    return area.pfns[back];
  }
  return std::nullopt;
}

/*
 * vm_map_ram, as mm/vmalloc.c does it: up to VMAP_MAX_ALLOC pages come from a vmap block (vb_alloc),
 * a new block-sized, block-aligned area being reserved when no block has room (new_vmap_block);
 * more than that gets an ordinary area. Only the small path is the block allocator's business.
 */
VmallocResult Vmalloc::vm_map_ram(const std::vector<std::uint64_t>& pfns) {
  if (pfns.empty()) return VmallocResult{nullptr, FailureKind::kInvalidArgument, 0};
  for (std::uint64_t pfn : pfns)
    if (pfn >= phys_->page_count()) return VmallocResult{nullptr, FailureKind::kInvalidArgument, 0};
  std::unique_lock lock(*lock_);
  const std::uint64_t pages = pfns.size();
  if (pages > vmap_blocks_.max_alloc_pages()) return new_area(lock, AreaKind::kMapRam, pages * kPage, kPage, pfns, pages * kPage);
  VmapBlockRef ref;
  try {
    if (vmap_blocks_.allocate(0, pages, &ref) == VmapBlockAllocator::Result::kNeedBlock) {
      const std::uint64_t block_bytes = vmap_blocks_.block_pages() * kPage;
      AreaPayload payload;
      payload.as<Area>() = Area{block_bytes, nullptr, 0, AreaKind::kVmapBlock, AreaState::kLive};
      const Allocation block = space_->vmalloc_locked(block_bytes, block_bytes, payload, nullptr);
      if (!block.ok()) return VmallocResult{nullptr, block.failure, 0};
      ref = vmap_blocks_.allocate_in_new_block(0, pages, block.offset);
    }
  } catch (const std::bad_alloc&) {
    return VmallocResult{nullptr, FailureKind::kOsError, ENOMEM};
  }
  char* const addr = static_cast<char*>(space_->base()) + ref.block_start + ref.page_offset * kPage;
  // Mapped under the lock: the block allocator has no in-flight state for a small allocation.
  const std::uint64_t mappings = mappings_needed(pfns);
  if (const int err = within_map_cap(mappings) ? map_pages(addr, pages, pfns, false) : ENOMEM; err != 0) {
    // The block allocator never reuses a freed range: the pages stay dirty in their block, the
    // kernel's behaviour too, and the block goes when all of it is dirty.
    if (const auto released = vmap_blocks_.free(ref)) release_block_locked(*released);
    return VmallocResult{nullptr, err == ENOMEM ? FailureKind::kMapLimit : FailureKind::kOsError, err};
  }
  map_ram_.emplace(static_cast<std::uint64_t>(addr - static_cast<char*>(space_->base())), MapRam{ref, pfns, mappings});
  mappings_in_use_ += mappings;
  if (config_.backing != BackingMode::kNone) {
    mapped_pages_ += pages;
    unpoison(addr, pages * kPage);
    for (std::uint64_t pfn : pfns) unpoison(phys_->pfn_to_virt(pfn), kPage);
  }
  return VmallocResult{addr, FailureKind::kNone, 0};
}

ReleaseStatus Vmalloc::vm_unmap_ram(const void* addr, std::uint64_t pages) {
  if (addr == nullptr) return ReleaseStatus::kNull;
  std::unique_lock lock(*lock_);
  if (phys_->virt_to_pfn(addr)) return misuse_locked(ReleaseStatus::kWrongFunction, "vm_unmap_ram", addr);
  const std::optional<std::uint64_t> offset = region_offset(addr);
  if (!offset) return misuse_locked(ReleaseStatus::kUnknown, "vm_unmap_ram", addr);
  auto small = map_ram_.find(*offset);
  if (small == map_ram_.end()) {
    AreaPayload* const record = live_area_locked(*offset);
    if (record == nullptr) return misuse_locked(ReleaseStatus::kUnknown, "vm_unmap_ram", addr);
    if (area_of(record).kind != AreaKind::kMapRam || area_of(record).pages() != pages)
      return misuse_locked(ReleaseStatus::kWrongFunction, "vm_unmap_ram", addr);
    return release_area(lock, *offset, record, "vm_unmap_ram");
  }
  if (small->second.pfns.size() != pages) return misuse_locked(ReleaseStatus::kWrongFunction, "vm_unmap_ram", addr);
  char* p = static_cast<char*>(const_cast<void*>(addr));
  unmap_pages(p, pages);
  if (config_.backing != BackingMode::kNone) {
    poison(p, pages * kPage);
    mapped_pages_ -= pages;
  }
  mappings_in_use_ -= small->second.mappings;
  const VmapBlockRef ref = small->second.ref;
  map_ram_.erase(small);
  if (const auto released = vmap_blocks_.free(ref)) release_block_locked(*released);
  return ReleaseStatus::kOk;
}

// A vmap block the block allocator gave up: its area goes back to the address space, lazily like
// any freed area (its mappings were already removed one allocation at a time).
void Vmalloc::release_block_locked(std::uint64_t block_offset) {
  AreaPayload* const record = area_locked(block_offset);
  VMF_CHECK(record != nullptr && area_of(record).kind == AreaKind::kVmapBlock, "vmap block at 0x%" PRIx64 " is unknown",
            block_offset);
  space_->vfree_found_locked(block_offset, record);
}

/*
 * vmalloc_huge, as __vmalloc_node_range() with VM_ALLOW_HUGE_VMAP: a request of at least 2 MiB is
 * first tried as a 2 MiB-aligned area of whole 2 MiB blocks (size rounded up to 2 MiB, order-9
 * pages). If anything fails — no such range, no order-9 blocks (physical fragmentation), the
 * mapping — it is retried with 4 KiB pages at page alignment, as the kernel's `fail:` path does.
 */
VmallocResult Vmalloc::vmalloc_huge(std::uint64_t size) {
  std::unique_lock lock(*lock_);
  if (size == 0) return VmallocResult{nullptr, FailureKind::kInvalidArgument, 0};
  if (size >= kHugeBytes && size <= ~std::uint64_t{0} - kHugeBytes) {
    const std::uint64_t huge_size = (size + kHugeBytes - 1) & ~(kHugeBytes - 1);
    VmallocResult r = new_area(lock, AreaKind::kHuge, huge_size, kHugeBytes, {}, size);
    if (r.ok()) {
      ++huge_areas_;
      return r;
    }
    ++huge_fallbacks_;
  }
  return new_area(lock, AreaKind::kVmalloc, size, kPage, {}, size);
}

std::uint64_t Vmalloc::huge_backed_bytes(const void* addr) const {
  std::lock_guard lock(*lock_);
  if (config_.backing != BackingMode::kAnon) return 0;  // shmem THP is off for memfd; none has no pages
  const std::optional<std::uint64_t> offset = region_offset(addr);
  const AreaPayload* const record = offset ? area_locked(*offset) : nullptr;
  if (record == nullptr || area_of(record).state != AreaState::kLive) return 0;
  std::uint64_t bytes = 0;
  if (os_.anon_huge_bytes(const_cast<void*>(addr), area_of(record).pages() * kPage, &bytes) != 0) return 0;
  return bytes;
}

VmallocResult Vmalloc::kmalloc(std::uint64_t size) {
  if (size == 0 || size > (std::uint64_t{1} << kMaxOrder) * kPage)
    return VmallocResult{nullptr, FailureKind::kInvalidArgument, 0};
  const unsigned order = VmapBlockAllocator::order_for((size + kPage - 1) / kPage);
  std::lock_guard lock(*lock_);
  const BlockAllocation b = phys_->alloc_block_locked(order);
  if (!b.ok()) return VmallocResult{nullptr, b.failure, 0};
  kmalloc_.emplace(b.pfn, order);
  void* addr = phys_->pfn_to_virt(b.pfn);
  poison(addr, (std::uint64_t{1} << order) * kPage);
  unpoison(addr, size);
  return VmallocResult{addr, FailureKind::kNone, 0};
}

ReleaseStatus Vmalloc::kfree(const void* addr) {
  if (addr == nullptr) return ReleaseStatus::kNull;
  std::lock_guard lock(*lock_);
  const std::optional<std::uint64_t> pfn = phys_->virt_to_pfn(addr);
  if (!pfn)
    return misuse_locked(region_offset(addr) ? ReleaseStatus::kWrongFunction : ReleaseStatus::kUnknown, "kfree", addr);
  auto it = kmalloc_.find(*pfn);
  if (it == kmalloc_.end() || phys_->pfn_to_virt(*pfn) != addr)
    return misuse_locked(ReleaseStatus::kUnknown, "kfree", addr);
  // Free pages stay addressable through the direct map, as all RAM is through the kernel's
  // physmap (PhysicalMemory::check samples them there); only the kmalloc tail was poisoned.
  unpoison(addr, (std::uint64_t{1} << it->second) * kPage);
  phys_->free_block_locked(it->first, it->second);
  kmalloc_.erase(it);
  return ReleaseStatus::kOk;
}

VmallocResult Vmalloc::kvmalloc(std::uint64_t size) {
  if (size == 0) return VmallocResult{nullptr, FailureKind::kInvalidArgument, 0};
  if (size <= (std::uint64_t{1} << kMaxOrder) * kPage) {
    VmallocResult r = kmalloc(size);
    if (r.ok() || size <= kPage) return r;
  }
  return vmalloc(size);
}

ReleaseStatus Vmalloc::kvfree(const void* addr) {
  if (addr == nullptr) return ReleaseStatus::kNull;
  return phys_->virt_to_pfn(addr) ? kfree(addr) : vfree(addr);
}

VmallocResult Vmalloc::vmap(const std::vector<std::uint64_t>& pfns) {
  if (pfns.empty()) return VmallocResult{nullptr, FailureKind::kInvalidArgument, 0};
  for (std::uint64_t pfn : pfns)
    if (pfn >= phys_->page_count()) return VmallocResult{nullptr, FailureKind::kInvalidArgument, 0};
  std::unique_lock lock(*lock_);
  return new_area(lock, AreaKind::kVmap, pfns.size() * kPage, kPage, pfns, pfns.size() * kPage);
}

FailureKind Vmalloc::alloc_pages(std::uint64_t count, std::vector<std::uint64_t>& pfns) {
  std::lock_guard lock(*lock_);
  const FailureKind f = phys_->alloc_pages_locked(count, pfns, 0);
  if (f == FailureKind::kNone) loose_pages_ += count;
  return f;
}

void Vmalloc::free_pages(const std::vector<std::uint64_t>& pfns) {
  std::lock_guard lock(*lock_);
  phys_->free_pages_locked(pfns);
  loose_pages_ -= pfns.size();
}

void Vmalloc::purge() {
  std::lock_guard lock(*lock_);
  // As vm_unmap_aliases: blocks with no live allocation left go first, then every lazy range.
  for (std::uint64_t block : vmap_blocks_.purge_fragmented()) release_block_locked(block);
  space_->purge_locked();
}

VmallocStats Vmalloc::stats() const {
  std::lock_guard lock(*lock_);
  VmallocStats s;
  s.space = space_->stats_locked();
  s.phys = phys_->stats_locked();
  space_->for_each_live_area_locked([&s](std::uint64_t, const AreaPayload& record) {
    const AreaKind kind = area_of(&record).kind;
    if (kind == AreaKind::kVmalloc || kind == AreaKind::kHuge) ++s.vmalloc_areas;
    if (kind == AreaKind::kVmap || kind == AreaKind::kMapRam) ++s.vmap_areas;
  });
  s.vmap_areas += map_ram_.size();
  s.huge_areas = huge_areas_;
  s.vmap_blocks = vmap_blocks_.stats();
  s.huge_fallbacks = huge_fallbacks_;
  s.kmalloc_blocks = kmalloc_.size();
  s.mapped_pages = mapped_pages_;
  s.mappings_in_use = mappings_in_use_;
  s.map_limit = map_limit();
  s.reservation_restore_failures = restore_failures_;
  s.misuse_count = misuse_count_;
  return s;
}

std::vector<std::string> Vmalloc::misuse_log() const {
  std::lock_guard lock(*lock_);
  return misuse_log_;
}

std::string Vmalloc::check(CheckDepth depth) const {
  if (std::string why = space_->check(depth); !why.empty()) return "address space: " + why;
  if (std::string why = phys_->check(depth); !why.empty()) return "physical memory: " + why;
  std::lock_guard lock(*lock_);
  char buf[256];
  // Every area is a live area of the address space and its pages are allocated.
  std::set<std::uint64_t> owned;
  std::uint64_t kmalloc_pages = 0;
  for (const auto& [pfn, order] : kmalloc_) {
    kmalloc_pages += std::uint64_t{1} << order;
    for (std::uint64_t p = pfn; p < pfn + (std::uint64_t{1} << order); ++p) owned.insert(p);
  }
  std::uint64_t mapped = 0, mappings = 0;
  // In address order, so that the first broken invariant reported and the areas sampled below do
  // not depend on the hash map's iteration order.
  std::vector<std::pair<std::uint64_t, const Area*>> by_offset;
  by_offset.reserve(space_->stats_locked().live_areas);
  space_->for_each_live_area_locked(
      [&by_offset](std::uint64_t offset, const AreaPayload& record) { by_offset.emplace_back(offset, &area_of(&record)); });
  std::sort(by_offset.begin(), by_offset.end());
  for (const auto& [offset, area_ptr] : by_offset) {
    const Area& area = *area_ptr;
    const bool has_pages = area.kind == AreaKind::kVmap || area.kind == AreaKind::kMapRam ||
                           (area.kind != AreaKind::kVmapBlock && config_.backing != BackingMode::kNone);
    if ((area.pfns != nullptr) != has_pages) {
      std::snprintf(buf, sizeof buf, "area at 0x%" PRIx64 ": %s pfns for %" PRIu64 " pages", offset,
                    area.pfns != nullptr ? "has" : "no", area.pages());
      return buf;
    }
    mapped += area.pages();
    mappings += area.mappings;
    if (area.kind != AreaKind::kVmalloc && area.kind != AreaKind::kHuge) continue;
    for (std::uint64_t pfn : area.pfn_span()) {
      if (!owned.insert(pfn).second) {
        std::snprintf(buf, sizeof buf, "pfn %" PRIu64 " of the area at 0x%" PRIx64 " is owned twice", pfn, offset);
        return buf;
      }
    }
  }
  for (const auto& [offset, small] : map_ram_) {
    mapped += small.pfns.size();
    mappings += small.mappings;
  }
  if (std::string why = vmap_blocks_.validate(); !why.empty()) return "vmap blocks: " + why;
  const VmapBlockStats vb = vmap_blocks_.stats();
  if (vb.live_allocations != map_ram_.size()) return "vm_map_ram allocations differ from the block allocator's";
  const BuddyStats ps = phys_->stats_locked();
  const std::uint64_t allocated = phys_->page_count() - ps.free_pages;
  if (allocated != owned.size() + loose_pages_ || owned_pages_ + kmalloc_pages != owned.size()) {
    std::snprintf(buf, sizeof buf,
                  "page accounting: buddy has %" PRIu64 " allocated, areas+kmalloc own %zu, loose %" PRIu64, allocated,
                  owned.size(), loose_pages_);
    return buf;
  }
  if (config_.backing != BackingMode::kNone && mapped != mapped_pages_) return "mapped page count drifted";
  if (mappings != mappings_in_use_) return "mapping count drifted";
  // Aliasing, sampled: a word written through the area is read through the direct map, and back.
  if (depth == CheckDepth::kFull && config_.backing == BackingMode::kMemfd) {
    int sampled = 0;
    for (const auto& [offset, area_ptr] : by_offset) {
      const Area& area = *area_ptr;
      if (sampled++ == 16) break;
      if (area.size < sizeof(std::uint64_t) || area.pfns == nullptr || area.state != AreaState::kLive) continue;  // ASan: only requested bytes
      auto* via_area = reinterpret_cast<volatile std::uint64_t*>(static_cast<char*>(space_->base()) + offset);
      auto* via_direct = static_cast<volatile std::uint64_t*>(phys_->pfn_to_virt(area.pfns[0]));
      const std::uint64_t saved = *via_area;
      *via_area = 0x766d667261670000ull ^ offset;
      const bool ok = *via_direct == (0x766d667261670000ull ^ offset);
      *via_area = saved;
      if (!ok) {
        std::snprintf(buf, sizeof buf, "memfd aliasing: the area at 0x%" PRIx64 " does not show through pfn %" PRIu64,
                      offset, area.pfns[0]);
        return buf;
      }
    }
  }
  return {};
}

}  // namespace vmfrag
