// PhysicalMemory: vmfrag's simulated physical memory. A memfd of N pages stands in for RAM, a
// BuddyAllocator decides which page frames (pfns) are owned, and the whole file is mapped once,
// read-write and MAP_SHARED, at a fixed linear offset: the DIRECT MAP, like the kernel's physmap,
// so pfn p lives at direct_map() + p * 4096 for the object's lifetime.
//
// Why a memfd rather than anonymous memory: a page of a shared file can be mapped any number of
// times, so a vmalloc area built by mapping scattered file pages (map_shared with MAP_FIXED into a
// reserved range) aliases the direct map exactly as in the kernel: a write through either address
// is seen through the other. The buddy allocator is the model of physical ownership; the memfd only
// supplies real pages. Those are allocated lazily by the kernel, on first touch through any mapping
// (the file is sparse), so a 256 MiB PhysicalMemory costs almost nothing until pages are written.
//
// Thread safety: every public member function may be called concurrently (the vmalloc and kmalloc
// paths of the layers above run on several threads); one lock guards the buddy allocator: the
// memory's own, or the lock of the layer that owns it (create's `lock`), which then calls the
// *_locked entry points with that lock held. The address translations read only constants and
// take no lock. Determinism: pfns depend only on the
// page count and the sequence of calls (see BuddyAllocator), never on where the OS put the map.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "allocator/core/check_depth.h"
#include "allocator/core/failure.h"
#include "allocator/core/mutex.h"
#include "allocator/os/os.h"
#include "allocator/phys/buddy_allocator.h"

namespace vmfrag {

inline constexpr std::uint64_t kPhysPageSize = 4096;
// Size bounds: at least one page; at most the BuddyAllocator's 2^28 pages (1 TiB).
inline constexpr std::uint64_t kMaxPhysicalBytes = kMaxBuddyPages * kPhysPageSize;

// The fault-injection seam of the physical layer (the page allocator's counterpart of injecting
// at OsInterface): PhysicalMemory asks it before each page allocation, at its two allocating
// entries, whether to refuse that allocation. An injection point is one call, named by its kind
// and its 0-based index among the calls of that kind ("pages:3" is the fourth alloc_pages);
// allocator/phys/page_fault_injection.h records them or fails a chosen one. on_alloc runs under
// the memory's lock, so calls arrive one at a time in the order the allocations happen.
enum class PageAllocCall : std::uint8_t {
  kBlock,  // alloc_block (kmalloc)
  kPages,  // alloc_pages (vmalloc's pages, vmalloc_huge's blocks, vmap callers' pages)
  kCount
};
[[nodiscard]] constexpr bool is_page_alloc_failure(FailureKind kind) {
  return kind == FailureKind::kNoPhysicalMemory || kind == FailureKind::kPhysicalFragmentation;
}
class PageAllocFaults {
 public:
  virtual ~PageAllocFaults() = default;
  // kNone lets the allocation proceed; kNoPhysicalMemory or kPhysicalFragmentation fails it with
  // that kind (changing nothing, as a real failure of the kind would).
  virtual FailureKind on_alloc(PageAllocCall call) = 0;
};

struct PhysicalMemoryConfig {
  std::uint64_t bytes = 256ull << 20;  // a page multiple in [4 KiB, 1 TiB]
  std::string memfd_name = "vmfrag-phys";  // label in /proc/<pid>/fd; need not be unique
  OsInterface* os = nullptr;               // nullptr = linux_os(); must outlive the memory
  PageAllocFaults* faults = nullptr;       // nullptr = never inject; must outlive the memory
};

// Result of alloc_block. On failure pfn is 0 and `failure` says why.
struct BlockAllocation {
  std::uint64_t pfn = 0;
  FailureKind failure = FailureKind::kNone;
  [[nodiscard]] bool ok() const { return failure == FailureKind::kNone; }
};

class PhysicalMemory {
 public:
  struct CreateResult {
    std::unique_ptr<PhysicalMemory> memory;  // null on failure
    int error = 0;                           // EINVAL for a bad config, else the OS errno
    std::string message;                     // which parameter or which call failed
  };

  // Creates the memfd (sized, sparse), maps all of it as the direct map, and starts with every
  // page free. Fails with
  //   EINVAL      bytes 0, not a multiple of 4096, or above 1 TiB; or the OS page size is not 4096;
  //   the errno   of memfd_create/ftruncate (nothing left open) or of the direct-map mmap (the fd
  //               is closed again before returning).
  // Cost: three or four system calls plus O(N) metadata (BuddyAllocator); no page is touched.
  // `lock`: null = the memory locks itself; otherwise the lock of the layer that owns it (Vmalloc),
  // which must outlive it; the public calls take that lock, the owner's *_locked calls hold it.
  [[nodiscard]] static CreateResult create(const PhysicalMemoryConfig& config, Mutex* lock = nullptr);

  // Unmaps the direct map and closes the memfd; the kernel frees the file's pages once no mapping
  // of it remains (vmalloc mappings made by upper layers must be gone or they keep pages alive).
  ~PhysicalMemory();
  PhysicalMemory(const PhysicalMemory&) = delete;
  PhysicalMemory& operator=(const PhysicalMemory&) = delete;

  [[nodiscard]] int fd() const { return fd_; }                         // for map_shared by upper layers
  [[nodiscard]] void* direct_map() const { return direct_map_; }       // base; bytes() long
  [[nodiscard]] std::uint64_t bytes() const { return bytes_; }
  [[nodiscard]] std::uint64_t page_count() const { return bytes_ / kPhysPageSize; }

  // direct_map() + pfn * 4096. Precondition (VMF_CHECK): pfn < page_count(). O(1), no lock.
  [[nodiscard]] void* pfn_to_virt(std::uint64_t pfn) const;
  // The pfn whose direct-map page contains addr (any byte of the page), nullopt for an address
  // outside the direct map. O(1), no lock.
  [[nodiscard]] std::optional<std::uint64_t> virt_to_pfn(const void* addr) const;

  // BuddyAllocator::allocate under the lock. Failure kinds: kInvalidArgument (order > kMaxOrder),
  // kNoPhysicalMemory (fewer than 2^order pages free), kPhysicalFragmentation (enough free pages,
  // no block of order >= `order`); classified under the same lock, so it describes the very state
  // the allocation failed in. Nothing changes on failure. O(kMaxOrder * log64 N).
  // An allocation refused by config.faults fails with the kind it names, nothing changed.
  [[nodiscard]] BlockAllocation alloc_block(unsigned order);
  // BuddyAllocator::free under the lock; aborts on a bad free (double free, wrong order, ...).
  void free_block(std::uint64_t pfn, unsigned order);

  // BuddyAllocator::allocate_pages under the lock (see its rule and the three modes). Returns kNone
  // on success (pfns appended), else kNoPhysicalMemory (count > free pages) or
  // kPhysicalFragmentation (enough pages, too few blocks of order >= min_order), with nothing
  // changed and pfns untouched (or the kind config.faults injects). Preconditions as
  // BuddyAllocator::allocate_pages (VMF_CHECK).
  [[nodiscard]] FailureKind alloc_pages(std::uint64_t count, std::vector<std::uint64_t>& pfns, unsigned max_order,
                                        unsigned min_order = 0);
  // BuddyAllocator::free_pages under the lock (order-0 pages, merging).
  void free_pages(const std::vector<std::uint64_t>& pfns);

  // Free pages, free blocks per order, largest free order, the kernel's fragmentation and
  // unusable-free indices per order: one consistent snapshot. O(kMaxOrder^2).
  [[nodiscard]] BuddyStats stats() const;

  // Verifies, under the lock: BuddyAllocator::validate() (all that kStructure does: O(N), no
  // system call); then, with kFull, for the lowest free block of each
  // order that has one (at most 11 pages), that the direct map and a second, independent mapping
  // of the same file page (map_shared at a kernel-chosen address) alias: a word written through
  // one is read back through the other, in both directions. The two words are restored and the
  // second mapping removed afterwards, so only the kernel's residency of the sampled pages changes
  // (first touch allocates them). Returns "" or the first problem, including an OS call failing
  // (with its errno). Cost: O(N) plus two system calls per sample.
  [[nodiscard]] std::string check(CheckDepth depth = CheckDepth::kFull) const;

  // The calls above for a caller that already holds lock() (asserted): same results, no lock taken.
  [[nodiscard]] Mutex& lock() const { return mutex_; }
  [[nodiscard]] BlockAllocation alloc_block_locked(unsigned order);
  void free_block_locked(std::uint64_t pfn, unsigned order);
  [[nodiscard]] FailureKind alloc_pages_locked(std::uint64_t count, std::vector<std::uint64_t>& pfns,
                                               unsigned max_order, unsigned min_order = 0);
  void free_pages_locked(std::span<const std::uint64_t> pfns);
  [[nodiscard]] BuddyStats stats_locked() const;

 private:
  PhysicalMemory(OsInterface& os, PageAllocFaults* faults, std::uint64_t bytes, int fd, void* direct_map, Mutex* lock);
  [[nodiscard]] std::string check_alias_locked(std::uint64_t pfn) const;
  [[nodiscard]] FailureKind injected_failure_locked(PageAllocCall call);

  OsInterface& os_;
  PageAllocFaults* const faults_;
  const std::uint64_t bytes_;
  const int fd_;
  void* const direct_map_;

  Mutex own_mutex_;  // unused when the owner's lock is shared
  Mutex& mutex_;      // own_mutex_ or the owner's
  BuddyAllocator buddy_;
};

}  // namespace vmfrag
