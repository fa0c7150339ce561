// Linux implementation of OsInterface: the only file in allocator/ that calls mmap and friends.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdint>

#include "allocator/core/assert.h"
#include "allocator/os/os.h"

namespace vmfrag {
namespace {

[[maybe_unused]] bool is_page_aligned(std::uintptr_t v) { return (v & (kOsPageSize - 1)) == 0; }

class LinuxOs final : public OsInterface {
 public:
  // mmap only promises page alignment, so over-reserve by `align` and trim both ends: the result is
  // aligned and nothing outside it stays reserved.
  int reserve(std::size_t bytes, std::size_t align, void** base) override {
    VMF_ASSERT(bytes > 0 && is_page_aligned(bytes), "reserve: bytes=%zu", bytes);
    VMF_ASSERT(align >= kOsPageSize && (align & (align - 1)) == 0, "reserve: align=%zu", align);
    if (bytes > SIZE_MAX - align) return ENOMEM;
    const std::size_t span = bytes + align;
    void* p = mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return errno;
    const auto raw = reinterpret_cast<std::uintptr_t>(p);
    const std::uintptr_t aligned = (raw + align - 1) & ~(std::uintptr_t{align} - 1);
    const std::size_t head = aligned - raw;
    const std::size_t tail = span - head - bytes;
    // munmap of a sub-range of our own fresh mapping cannot fail short of a kernel bug.
    if (head != 0) VMF_CHECK(munmap(p, head) == 0, "trim head errno=%d", errno);
    if (tail != 0)
      VMF_CHECK(munmap(reinterpret_cast<void*>(aligned + bytes), tail) == 0, "trim tail errno=%d", errno);
    *base = reinterpret_cast<void*>(aligned);
    return 0;
  }

  int release(void* base, std::size_t bytes) override {
    VMF_ASSERT(is_page_aligned(reinterpret_cast<std::uintptr_t>(base)) && is_page_aligned(bytes),
               "release: base=%p bytes=%zu", base, bytes);
    return munmap(base, bytes) == 0 ? 0 : errno;
  }

  int memfd_create(const char* name, std::size_t bytes, int* fd) override {
    VMF_ASSERT(name != nullptr && is_page_aligned(bytes), "memfd_create: bytes=%zu", bytes);
    if (bytes > static_cast<std::size_t>(INT64_MAX)) return EFBIG;  // off_t cannot hold it
    const int new_fd = ::memfd_create(name, MFD_CLOEXEC);
    if (new_fd < 0) return errno;
    if (ftruncate(new_fd, static_cast<off_t>(bytes)) != 0) {
      const int err = errno;  // close() may overwrite errno; the ftruncate error is the one to report
      ::close(new_fd);
      return err;
    }
    *fd = new_fd;
    return 0;
  }

  int close_fd(int fd) override { return ::close(fd) == 0 ? 0 : errno; }

  int map_shared(void* addr, std::size_t bytes, int fd, std::uint64_t offset, bool fixed, bool populate,
                 void** out) override {
    VMF_ASSERT(bytes > 0 && is_page_aligned(bytes) && is_page_aligned(offset), "map_shared: bytes=%zu offset=%llu",
               bytes, static_cast<unsigned long long>(offset));
    VMF_ASSERT(fixed ? is_page_aligned(reinterpret_cast<std::uintptr_t>(addr)) : addr == nullptr,
               "map_shared: addr=%p fixed=%d", addr, fixed);
    if (offset > static_cast<std::uint64_t>(INT64_MAX)) return EOVERFLOW;
    const int flags = MAP_SHARED | (fixed ? MAP_FIXED : 0) | (populate ? MAP_POPULATE : 0);
    void* p = mmap(addr, bytes, PROT_READ | PROT_WRITE, flags, fd, static_cast<off_t>(offset));
    if (p == MAP_FAILED) return errno;
    *out = p;
    return 0;
  }

  int unmap(void* addr, std::size_t bytes) override {
    VMF_ASSERT(is_page_aligned(reinterpret_cast<std::uintptr_t>(addr)) && bytes > 0 && is_page_aligned(bytes),
               "unmap: addr=%p bytes=%zu", addr, bytes);
    return munmap(addr, bytes) == 0 ? 0 : errno;
  }

  int protect(void* addr, std::size_t bytes, Protection protection) override {
    VMF_ASSERT(is_page_aligned(reinterpret_cast<std::uintptr_t>(addr)) && is_page_aligned(bytes),
               "protect: addr=%p bytes=%zu", addr, bytes);
    const int prot = protection == Protection::kReadWrite ? PROT_READ | PROT_WRITE : PROT_NONE;
    return mprotect(addr, bytes, prot) == 0 ? 0 : errno;
  }

  int drop_pages(void* addr, std::size_t bytes) override {
    return madvise(addr, bytes, MADV_DONTNEED) == 0 ? 0 : errno;
  }

  int populate_write(void* addr, std::size_t bytes) override {
#ifdef MADV_POPULATE_WRITE
    return madvise(addr, bytes, MADV_POPULATE_WRITE) == 0 ? 0 : errno;
#else
    (void)addr, (void)bytes;
    return EINVAL;
#endif
  }

  int reserve_fixed(void* addr, std::size_t bytes, bool replace) override {
    const int fixed = replace ? MAP_FIXED : MAP_FIXED_NOREPLACE;
    void* p = mmap(addr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | fixed, -1, 0);
    if (p == MAP_FAILED) return errno;
    // Kernels before 4.17 ignore MAP_FIXED_NOREPLACE and may place the mapping elsewhere.
    if (p != addr) {
      (void)munmap(p, bytes);
      return EEXIST;
    }
    return 0;
  }

  int max_map_count(std::uint64_t* out) override {
    std::FILE* f = std::fopen("/proc/sys/vm/max_map_count", "re");
    if (f == nullptr) return errno;
    unsigned long long v = 0;
    const int n = std::fscanf(f, "%llu", &v);
    std::fclose(f);
    if (n != 1) return EINVAL;
    *out = v;
    return 0;
  }

  int advise_hugepage(void* addr, std::size_t bytes) override {
    return madvise(addr, bytes, MADV_HUGEPAGE) == 0 ? 0 : errno;
  }

  // smaps lists each VMA as "start-end perms ..." followed by "Key: value kB" lines.
  int anon_huge_bytes(void* addr, std::size_t bytes, std::uint64_t* out) override {
    std::FILE* f = std::fopen("/proc/self/smaps", "re");
    if (f == nullptr) return errno;
    const auto lo = reinterpret_cast<std::uintptr_t>(addr), hi = lo + bytes;
    bool inside = false;
    std::uint64_t total = 0;
    char line[512];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      unsigned long start = 0, end = 0;
      unsigned long long kb = 0;
      if (std::sscanf(line, "%lx-%lx ", &start, &end) == 2) {
        inside = start >= lo && end <= hi;
      } else if (inside && std::sscanf(line, "AnonHugePages: %llu kB", &kb) == 1) {
        total += kb * 1024;
      }
    }
    std::fclose(f);
    *out = total;
    return 0;
  }
};

}  // namespace

OsInterface& linux_os() {
  static LinuxOs os;
  return os;
}

std::size_t os_page_size() { return static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); }

}  // namespace vmfrag
