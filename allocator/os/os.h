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
};

// The real Linux implementation; a process-wide stateless singleton.
[[nodiscard]] OsInterface& linux_os();

// The page size the allocator is built for. The harness models 4 KiB pages on every machine so
// traces replay identically; the constructor of a region checks the OS agrees.
inline constexpr std::size_t kOsPageSize = 4096;

// The running system's page size (sysconf), for that check.
[[nodiscard]] std::size_t os_page_size();

}  // namespace vmfrag
