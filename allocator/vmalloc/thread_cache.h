// ThreadCachedVmalloc: a Vmalloc with a cache per thread of freed small areas and kmalloc blocks,
// the userspace counterpart of the kernel's per-node pools of freed vmap areas ("vmap nodes",
// mm/vmalloc.c since 6.9: node_alloc() takes an area of the exact size from the current CPU's pool
// before it touches the global free tree) and of the page allocator's per-CPU page lists.
//
// Why: one Vmalloc has one lock for the whole stack (allocator/core/mutex.h). Its critical sections
// are ~100 ns, so two threads spend their time handing the lock and the free tree's cache lines
// back and forth: 2 threads do 0.13-0.15x the work of one in backing none and 0.5x in memfd
// (bench/README.md, "Thread scaling"). A thread whose vmalloc finds an area of the same page count
// in its own cache takes no shared lock and touches no shared line; in memfd mode it also makes no
// system call, because a cached area keeps its pages and its mapping (the kernel's pools keep only
// the address range; a userspace map costs a system call where the kernel writes a page table).
//
// What it changes, and why it is opt-in (VmallocConfig stays the default everywhere, replay uses
// the plain Vmalloc): placement is no longer exact lowest fit — a cached area is reused for the
// next request of its page count on the same thread, wherever it lies — and cached areas stay live
// to the inner allocator, holding address space and pages, which is exactly the fragmentation the
// kernel's pools trade for speed. One thread's sequence of calls still gives the same placements
// every run (the caches are per thread and LIFO); with several threads the placements depend on the
// interleaving, as they do without the cache.
//
// Guarantees:
// - Nothing is lost: when the inner allocator fails a request for want of space or memory (virtual
//   fragmentation, no virtual space, no physical memory, physical fragmentation, map limit), every
//   thread's cache is drained back to it and the request is retried once, as vmalloc purges and
//   retries. drain() does the same on demand; a thread that exits gives its cache back and the
//   cache itself is freed (so a process that starts many short-lived threads holds caches only
//   for the living ones); the destructor leaves cached areas to the inner allocator's teardown.
// - Misuse is still detected: a release of an address held in a cache (a double free) is reported
//   with its address and changes nothing (misuse_log(); strict mode aborts, as Vmalloc's does);
//   everything else (unknown, interior, foreign, wrong function) is classified by the inner Vmalloc.
// - The free path allocates nothing: a cache's lists are reserved when the thread's cache is made
//   (at its first allocation; a thread that only frees gets no cache).
// - Thread safety: every call may come from any thread. A thread's own cache is guarded by its own
//   lock (uncontended unless another thread drains it or frees an area this thread allocated);
//   lock order: the registry, then a thread's cache, then the inner Vmalloc's lock.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "allocator/core/check_depth.h"
#include "allocator/core/mutex.h"
#include "allocator/vmalloc/vmalloc.h"

namespace vmfrag {

struct ThreadCacheConfig {
  // vmalloc areas of at most this many pages, page-aligned, are cached (the kernel pools areas of
  // up to MAX_VA_SIZE_PAGES = 256 pages).
  std::uint64_t max_area_pages = 64;
  // kmalloc blocks of at most this order are cached (the per-CPU page lists keep orders up to
  // PAGE_ALLOC_COSTLY_ORDER = 3).
  unsigned max_kmalloc_order = 3;
  // Per thread: at most this many areas or blocks per size, and this many pages in all.
  std::uint64_t max_per_size = 64;
  std::uint64_t max_cached_pages = 1024;
};

struct ThreadCacheStats {
  std::uint64_t threads = 0;        // threads that have allocated through this instance
  std::uint64_t caches = 0;         // their caches still held: those threads that have not exited
  std::uint64_t hits = 0;           // allocations served from the calling thread's cache
  std::uint64_t misses = 0;         // cacheable allocations the inner Vmalloc served
  std::uint64_t cached_areas = 0;   // areas and kmalloc blocks held in caches now
  std::uint64_t cached_pages = 0;
  std::uint64_t drains = 0;         // drains that gave something back (drain(), or on a failed request)
  std::uint64_t given_back_at_exit = 0;  // areas and blocks given back by exiting threads
  std::uint64_t misuse_count = 0;   // releases of a cached address (the inner Vmalloc counts the rest)
};

class ThreadCachedVmalloc {
 public:
  struct CreateResult {
    std::unique_ptr<ThreadCachedVmalloc> vm;
    int error = 0;
    std::string message;
  };
  // Vmalloc::create(config), then the caches (EINVAL for max_area_pages 0 or a max_kmalloc_order
  // above kMaxOrder).
  [[nodiscard]] static CreateResult create(const VmallocConfig& config, const ThreadCacheConfig& cache = {});
  ~ThreadCachedVmalloc();
  ThreadCachedVmalloc(const ThreadCachedVmalloc&) = delete;
  ThreadCachedVmalloc& operator=(const ThreadCachedVmalloc&) = delete;

  // As Vmalloc's, with the calling thread's cache in front: a page-aligned request of at most
  // max_area_pages pages (kmalloc: of at most max_kmalloc_order) is served from the cache when it
  // holds one of the same page count (order), else by the inner Vmalloc. A cache hit is O(1) and
  // takes only the thread's own lock.
  [[nodiscard]] VmallocResult vmalloc(std::uint64_t size, std::uint64_t align = kVirtualPageSize);
  ReleaseStatus vfree(const void* addr);
  [[nodiscard]] VmallocResult kmalloc(std::uint64_t size);
  ReleaseStatus kfree(const void* addr);
  [[nodiscard]] VmallocResult kvmalloc(std::uint64_t size);  // kmalloc, then vmalloc above a page
  ReleaseStatus kvfree(const void* addr);

  void purge();  // the inner Vmalloc's purge; cached areas are live to it and stay cached
  void drain();  // every thread's cache back to the inner Vmalloc

  [[nodiscard]] ThreadCacheStats cache_stats() const;
  // At a quiescent point: the inner Vmalloc's check(depth), then every cache's own invariants
  // (each cached address is recorded as cached exactly once, in the list of its size, and its
  // pages add up to the cache's count; no address is recorded by two threads). "" or the first
  // broken invariant.
  [[nodiscard]] std::string check(CheckDepth depth = CheckDepth::kFull) const;
  // The inner Vmalloc's misuse lines, then this layer's (double frees of cached addresses).
  [[nodiscard]] std::vector<std::string> misuse_log() const;
  // The allocator underneath: vmap, vm_map_ram, stats and the rest go to it directly.
  [[nodiscard]] Vmalloc& inner() { return *inner_; }
  [[nodiscard]] const Vmalloc& inner() const { return *inner_; }

  // The calling thread's table of its caches (thread_cache.cpp); public only so that the
  // thread_local table can be declared there.
  struct ThreadSlots;

 private:
  struct ThreadCache;
  enum class Kind : std::uint8_t { kVmalloc, kKmalloc };
  // What a cache's record says about a released address (take_record_locked).
  struct Taken {
    enum class Outcome : std::uint8_t { kNotFound, kCached, kDoubleFree, kToInner } outcome;
    Kind inner_kind;  // with kToInner: how the inner Vmalloc is to be called
  };

  ThreadCachedVmalloc(std::unique_ptr<Vmalloc> inner, const ThreadCacheConfig& cache);
  [[nodiscard]] ThreadCache* find_local() const;  // the calling thread's cache, or nullptr
  ThreadCache& local();                           // the calling thread's cache, made on its first call
  ThreadCache& register_thread();
  VmallocResult allocate(Kind kind, std::uint64_t size, std::uint64_t align);
  // wanted: kVmalloc for vfree, kKmalloc for kfree, nullopt for kvfree.
  ReleaseStatus release(std::optional<Kind> wanted, const void* addr, const char* fn);
  Taken take_record_locked(ThreadCache& cache, std::optional<Kind> wanted, const void* addr, bool may_cache);
  ReleaseStatus release_to_inner(std::optional<Kind> kind, const void* addr);
  [[nodiscard]] bool poisons(Kind kind) const;
  ReleaseStatus cached_misuse(const char* fn, const void* addr);
  std::uint64_t give_back(ThreadCache* only);  // every cache (nullptr) or one; the number given back
  void retire(ThreadCache* cache);             // its thread exits: give back, keep its counts, free it
  [[nodiscard]] static std::string cache_error_locked(const ThreadCache& cache);

  const ThreadCacheConfig config_;
  const std::uint64_t id_;  // never reused, so a thread's lookup table cannot mistake instances
  std::unique_ptr<Vmalloc> inner_;
  mutable Mutex registry_lock_;  // guards caches_, misuse_log_; taken before any cache's lock
  std::vector<std::unique_ptr<ThreadCache>> caches_;
  std::vector<std::string> misuse_log_;
  std::uint64_t drains_ = 0;
  std::uint64_t given_back_at_exit_ = 0;
  std::uint64_t threads_ = 0;                                // caches ever made
  std::uint64_t retired_hits_ = 0, retired_misses_ = 0;  // the counts of freed caches
  std::uint64_t misuse_count_ = 0;
};

}  // namespace vmfrag
