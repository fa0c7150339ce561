// ASan's manual poisoning, for memory the allocator hands out and takes back inside memory that is
// mapped all along (areas, kmalloc blocks in the direct map, areas held in a thread cache): poisoned
// bytes are reported at the access, even before it reaches an inaccessible page. No-ops without ASan.
#pragma once

#include <cstdint>

#if defined(__SANITIZE_ADDRESS__)
#define VMFRAG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VMFRAG_ASAN 1
#endif
#endif
#ifdef VMFRAG_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace vmfrag {

inline void poison(const void* addr, std::uint64_t bytes) {
#ifdef VMFRAG_ASAN
  ASAN_POISON_MEMORY_REGION(addr, bytes);
#else
  (void)addr, (void)bytes;
#endif
}

inline void unpoison(const void* addr, std::uint64_t bytes) {
#ifdef VMFRAG_ASAN
  ASAN_UNPOISON_MEMORY_REGION(addr, bytes);
#else
  (void)addr, (void)bytes;
#endif
}

}  // namespace vmfrag
