// PhysicalMemory: memfd + direct map + BuddyAllocator. See physical_memory.h.
#include "allocator/phys/physical_memory.h"

#include <cerrno>
#include <cstring>

#include "allocator/core/assert.h"

namespace vmfrag {

PhysicalMemory::CreateResult PhysicalMemory::create(const PhysicalMemoryConfig& config, Mutex* lock) {
  CreateResult r;
  if (config.bytes == 0 || config.bytes % kPhysPageSize != 0 || config.bytes > kMaxPhysicalBytes) {
    r.error = EINVAL;
    r.message = "bytes=" + std::to_string(config.bytes) + " must be a multiple of 4096 in [4 KiB, 1 TiB]";
    return r;
  }
  if (os_page_size() != kPhysPageSize) {
    r.error = EINVAL;
    r.message = "the OS page size is " + std::to_string(os_page_size()) + ", vmfrag models 4096";
    return r;
  }
  OsInterface& os = config.os != nullptr ? *config.os : linux_os();
  int fd = -1;
  if (const int err = os.memfd_create(config.memfd_name.c_str(), config.bytes, &fd); err != 0) {
    r.error = err;
    r.message = "creating a memfd of " + std::to_string(config.bytes) + " bytes failed: errno " + std::to_string(err) +
                " (" + std::strerror(err) + ")";
    return r;
  }
  void* direct = nullptr;
  if (const int err = os.map_shared(nullptr, config.bytes, fd, 0, false, false, &direct); err != 0) {
    r.error = err;
    r.message = "mapping the " + std::to_string(config.bytes) + "-byte direct map failed: errno " +
                std::to_string(err) + " (" + std::strerror(err) + ")";
    // The mmap error is the one to report; a close failure on top would only hide it, and a fd
    // that is not even closable leaks nothing the process can still reach.
    (void)os.close_fd(fd);
    return r;
  }
  r.memory.reset(new PhysicalMemory(os, config.faults, config.bytes, fd, direct, lock));
  return r;
}

PhysicalMemory::PhysicalMemory(OsInterface& os, PageAllocFaults* faults, std::uint64_t bytes, int fd, void* direct_map,
                               Mutex* lock)
    : os_(os),
      faults_(faults),
      bytes_(bytes),
      fd_(fd),
      direct_map_(direct_map),
      mutex_(lock != nullptr ? *lock : own_mutex_),
      buddy_(bytes / kPhysPageSize) {}

PhysicalMemory::~PhysicalMemory() {
  // Both are ours alone; failing to give them back would be a kernel bug, not a caller error.
  VMF_CHECK(os_.unmap(direct_map_, bytes_) == 0, "unmapping the direct map at %p failed", direct_map_);
  VMF_CHECK(os_.close_fd(fd_) == 0, "closing memfd %d failed", fd_);
}

void* PhysicalMemory::pfn_to_virt(std::uint64_t pfn) const {
  VMF_CHECK(pfn < page_count(), "pfn %llu >= page count %llu", static_cast<unsigned long long>(pfn),
            static_cast<unsigned long long>(page_count()));
  return static_cast<char*>(direct_map_) + pfn * kPhysPageSize;
}

std::optional<std::uint64_t> PhysicalMemory::virt_to_pfn(const void* addr) const {
  // Unsigned distance from the base: an address below it wraps to a huge value and fails the test.
  const std::uintptr_t delta = reinterpret_cast<std::uintptr_t>(addr) - reinterpret_cast<std::uintptr_t>(direct_map_);
  if (delta >= bytes_) return std::nullopt;
  return delta / kPhysPageSize;
}

BlockAllocation PhysicalMemory::alloc_block(unsigned order) {
  std::lock_guard lock(mutex_);
  return alloc_block_locked(order);
}

BlockAllocation PhysicalMemory::alloc_block_locked(unsigned order) {
  mutex_.assert_held();
  if (const FailureKind injected = injected_failure_locked(PageAllocCall::kBlock); injected != FailureKind::kNone)
    return BlockAllocation{0, injected};
  if (const std::optional<std::uint64_t> pfn = buddy_.allocate(order)) return BlockAllocation{*pfn, FailureKind::kNone};
  return BlockAllocation{0, buddy_.block_failure(order)};
}

FailureKind PhysicalMemory::injected_failure_locked(PageAllocCall call) {
  if (faults_ == nullptr) return FailureKind::kNone;
  const FailureKind f = faults_->on_alloc(call);
  VMF_CHECK(f == FailureKind::kNone || is_page_alloc_failure(f),
            "a page allocation can only fail as no-physical-memory or physical-fragmentation, not %s",
            std::string(failure_name(f)).c_str());
  return f;
}

void PhysicalMemory::free_block(std::uint64_t pfn, unsigned order) {
  std::lock_guard lock(mutex_);
  free_block_locked(pfn, order);
}

void PhysicalMemory::free_block_locked(std::uint64_t pfn, unsigned order) {
  mutex_.assert_held();
  buddy_.free(pfn, order);
}

FailureKind PhysicalMemory::alloc_pages(std::uint64_t count, std::vector<std::uint64_t>& pfns, unsigned max_order,
                                        unsigned min_order) {
  std::lock_guard lock(mutex_);
  return alloc_pages_locked(count, pfns, max_order, min_order);
}

FailureKind PhysicalMemory::alloc_pages_locked(std::uint64_t count, std::vector<std::uint64_t>& pfns,
                                               unsigned max_order, unsigned min_order) {
  mutex_.assert_held();
  if (const FailureKind injected = injected_failure_locked(PageAllocCall::kPages); injected != FailureKind::kNone)
    return injected;
  if (buddy_.allocate_pages(count, pfns, max_order, min_order)) return FailureKind::kNone;
  // A failed call changed nothing, so the counts still describe the state it failed in.
  return count > buddy_.free_page_count() ? FailureKind::kNoPhysicalMemory : FailureKind::kPhysicalFragmentation;
}

void PhysicalMemory::free_pages(const std::vector<std::uint64_t>& pfns) {
  std::lock_guard lock(mutex_);
  free_pages_locked(pfns);
}

void PhysicalMemory::free_pages_locked(std::span<const std::uint64_t> pfns) {
  mutex_.assert_held();
  buddy_.free_pages(pfns);
}

BuddyStats PhysicalMemory::stats() const {
  std::lock_guard lock(mutex_);
  return stats_locked();
}

BuddyStats PhysicalMemory::stats_locked() const {
  mutex_.assert_held();
  return buddy_.stats();
}

std::string PhysicalMemory::check(CheckDepth depth) const {
  std::lock_guard lock(mutex_);
  if (std::string m = buddy_.validate(); !m.empty()) return "buddy allocator: " + m;
  if (depth == CheckDepth::kStructure) return "";
  for (unsigned o = 0; o <= kMaxOrder; ++o) {
    if (const std::optional<std::uint64_t> pfn = buddy_.lowest_free_block(o)) {
      if (std::string m = check_alias_locked(*pfn); !m.empty()) return m;
    }
  }
  return "";
}

// The aliasing probe for one free page. The page is free and the lock is held, so nobody else may
// legitimately touch it meanwhile. Volatile accesses keep the compiler from reusing the value it
// just wrote instead of loading it through the other address (which is the point of the probe).
std::string PhysicalMemory::check_alias_locked(std::uint64_t pfn) const {
  void* alias = nullptr;
  if (const int err = os_.map_shared(nullptr, kPhysPageSize, fd_, pfn * kPhysPageSize, false, false, &alias); err != 0)
    return "check: mapping pfn " + std::to_string(pfn) + " a second time failed: errno " + std::to_string(err);
  constexpr std::size_t kLastWord = kPhysPageSize / sizeof(std::uint64_t) - 1;
  volatile std::uint64_t* direct_words = static_cast<volatile std::uint64_t*>(pfn_to_virt(pfn));
  volatile std::uint64_t* alias_words = static_cast<volatile std::uint64_t*>(alias);
  const std::uint64_t saved_first = direct_words[0];
  const std::uint64_t saved_last = direct_words[kLastWord];
  const std::uint64_t pattern = 0x766d667261670000ull ^ pfn;  // "vmfrag" ^ pfn: differs per page
  std::string problem;
  direct_words[0] = pattern;
  if (alias_words[0] != pattern) problem = "check: pfn " + std::to_string(pfn) + ": a write through the direct map is not seen through a second mapping";
  alias_words[kLastWord] = ~pattern;
  if (problem.empty() && direct_words[kLastWord] != ~pattern)
    problem = "check: pfn " + std::to_string(pfn) + ": a write through a second mapping is not seen through the direct map";
  direct_words[0] = saved_first;
  direct_words[kLastWord] = saved_last;
  if (const int err = os_.unmap(alias, kPhysPageSize); err != 0 && problem.empty())
    problem = "check: unmapping the second mapping of pfn " + std::to_string(pfn) + " failed: errno " + std::to_string(err);
  return problem;
}

}  // namespace vmfrag
