// Every operating-system call the allocator makes goes through this one interface, so that a test
// or a fault-injecting build can replace it (the reliability work injects failures here).
//
// Contract for every call: returns 0 on success or a positive errno value on failure; never throws,
// never aborts, never writes errno-dependent state anywhere else. Preconditions (page alignment,
// non-zero lengths) are the caller's and are checked once, here at the interface, in debug builds.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vmfrag {

class OsInterface {
 public:
  virtual ~OsInterface() = default;

  // Reserves `bytes` of inaccessible address space (PROT_NONE, MAP_NORESERVE: no memory or swap is
  // committed) whose base is a multiple of `align` (a power of two, >= the page size). On success
  // *base is set. Cost: one or two mmap/munmap calls whatever the size.
  [[nodiscard]] virtual int reserve(std::size_t bytes, std::size_t align, void** base) = 0;

  // Returns a reservation (or any part of one) to the OS. Never needs a new kernel mapping.
  [[nodiscard]] virtual int release(void* base, std::size_t bytes) = 0;

  // --- Shared memory files (the physical-memory layer, allocator/phys/) ---

  // Creates an anonymous memory file (memfd_create, close-on-exec) named `name` (a debugging label
  // shown in /proc/self/fd; need not be unique) and sizes it to `bytes` (ftruncate). The file is
  // sparse: the kernel allocates a page on first touch through any mapping, so creation commits no
  // memory whatever the size. On success *fd is set. On failure nothing is left open (an ftruncate
  // failure closes the new fd) and *fd is untouched. Cost: two system calls.
  [[nodiscard]] virtual int memfd_create(const char* name, std::size_t bytes, int* fd) = 0;

  // Closes a file descriptor made by memfd_create. Mappings of the file stay valid after it.
  [[nodiscard]] virtual int close_fd(int fd) = 0;

  // Maps `bytes` of file `fd` from `offset` (a page multiple) read-write and MAP_SHARED, so every
  // mapping of the same file offset sees the same page. With `fixed`, the mapping goes exactly at
  // `addr` (MAP_FIXED: whatever was mapped there, e.g. part of a reserve()d range, is replaced);
  // without it `addr` must be null and the kernel picks the address. `populate` (MAP_POPULATE)
  // faults every page in now instead of on first touch. On success *out is set; on failure nothing
  // is mapped (a MAP_FIXED failure may have unmapped what was at `addr`, as mmap(2) allows) and
  // *out is untouched. ENOMEM includes hitting vm.max_map_count. Cost: one mmap, plus the page
  // faults with `populate`.
  [[nodiscard]] virtual int map_shared(void* addr, std::size_t bytes, int fd, std::uint64_t offset, bool fixed,
                                       bool populate, void** out) = 0;

  // Removes any mapping of [addr, addr+bytes) (munmap). Unmapping part of a mapping splits it,
  // which can itself fail with ENOMEM at vm.max_map_count.
  [[nodiscard]] virtual int unmap(void* addr, std::size_t bytes) = 0;

  // --- Backing areas (allocator/vmalloc/) ---

  enum class Protection : std::uint8_t { kNone, kReadWrite };
  // mprotect. Changing part of a VMA splits it (ENOMEM at vm.max_map_count); changing whole VMAs
  // never needs a new one, which is what the unmap path relies on.
  [[nodiscard]] virtual int protect(void* addr, std::size_t bytes, Protection protection) = 0;

  // MADV_DONTNEED: drops the pages of the range (anonymous memory reads back as zero, a shared
  // file mapping re-reads the file). Never splits a VMA.
  [[nodiscard]] virtual int drop_pages(void* addr, std::size_t bytes) = 0;

  // MADV_POPULATE_WRITE (Linux 5.14+): faults every page in writable now, as the kernel's vmalloc
  // maps every page at allocation. EINVAL on older kernels.
  [[nodiscard]] virtual int populate_write(void* addr, std::size_t bytes) = 0;

  // Turns [addr, addr+bytes) back into plain reservation (PROT_NONE anonymous MAP_NORESERVE),
  // which merges with reserved neighbours. `replace`: MAP_FIXED over whatever is there (the
  // kernel counts the old mapping against vm.max_map_count until it is gone, so this fails at the
  // limit); otherwise MAP_FIXED_NOREPLACE into a hole (EEXIST if something else took it).
  [[nodiscard]] virtual int reserve_fixed(void* addr, std::size_t bytes, bool replace) = 0;

  // vm.max_map_count from /proc/sys/vm/max_map_count.
  [[nodiscard]] virtual int max_map_count(std::uint64_t* out) = 0;

  // MADV_HUGEPAGE: asks for transparent huge pages in the range (THP "madvise" mode).
  [[nodiscard]] virtual int advise_hugepage(void* addr, std::size_t bytes) = 0;

  // Sum of AnonHugePages over the VMAs of /proc/self/smaps that lie inside [addr, addr+bytes).
  [[nodiscard]] virtual int anon_huge_bytes(void* addr, std::size_t bytes, std::uint64_t* out) = 0;
};

// Forwards every call to another OsInterface: tests and fault injection derive from it and
// override only the calls they observe or fail.
class ForwardingOs : public OsInterface {
 public:
  explicit ForwardingOs(OsInterface& inner) : inner_(inner) {}
  int reserve(std::size_t bytes, std::size_t align, void** base) override { return inner_.reserve(bytes, align, base); }
  int release(void* base, std::size_t bytes) override { return inner_.release(base, bytes); }
  int memfd_create(const char* name, std::size_t bytes, int* fd) override { return inner_.memfd_create(name, bytes, fd); }
  int close_fd(int fd) override { return inner_.close_fd(fd); }
  int map_shared(void* addr, std::size_t bytes, int fd, std::uint64_t offset, bool fixed, bool populate,
                 void** out) override {
    return inner_.map_shared(addr, bytes, fd, offset, fixed, populate, out);
  }
  int unmap(void* addr, std::size_t bytes) override { return inner_.unmap(addr, bytes); }
  int protect(void* addr, std::size_t bytes, Protection protection) override {
    return inner_.protect(addr, bytes, protection);
  }
  int drop_pages(void* addr, std::size_t bytes) override { return inner_.drop_pages(addr, bytes); }
  int populate_write(void* addr, std::size_t bytes) override { return inner_.populate_write(addr, bytes); }
  int reserve_fixed(void* addr, std::size_t bytes, bool replace) override {
    return inner_.reserve_fixed(addr, bytes, replace);
  }
  int max_map_count(std::uint64_t* out) override { return inner_.max_map_count(out); }
  int advise_hugepage(void* addr, std::size_t bytes) override { return inner_.advise_hugepage(addr, bytes); }
  int anon_huge_bytes(void* addr, std::size_t bytes, std::uint64_t* out) override {
    return inner_.anon_huge_bytes(addr, bytes, out);
  }

 private:
  OsInterface& inner_;
};

// The real Linux implementation; a process-wide stateless singleton.
[[nodiscard]] OsInterface& linux_os();

// The page size the allocator is built for. The harness models 4 KiB pages on every machine so
// traces replay identically; the constructor of a region checks the OS agrees.
inline constexpr std::size_t kOsPageSize = 4096;

// The running system's page size (sysconf), for that check.
[[nodiscard]] std::size_t os_page_size();

}  // namespace vmfrag
