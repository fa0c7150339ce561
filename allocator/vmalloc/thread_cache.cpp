#include "allocator/vmalloc/thread_cache.h"

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <utility>

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>

#include "allocator/core/asan_poison.h"
#include "allocator/core/assert.h"

namespace vmfrag {
namespace {

constexpr std::uint64_t kPage = kVirtualPageSize;
constexpr std::size_t kMisuseLogCap = 64;

/*
 * Finding the calling thread's cache without a shared lock. Each thread keeps a small table of
 * (instance id, instance, its cache in that instance); a lookup scans it (one entry in the common
 * case of one instance). Ids come from a process-wide counter and are never reused, so an entry
 * left by a destroyed instance can never match a new one; when a thread registers with an
 * instance it drops the entries of instances no longer alive. The set of live ids has its own
 * lock, taken only on that slow path, by constructors and destructors, and at thread exit: an
 * exiting thread gives its caches back to the instances still alive (the destructor cannot
 * remove an id, and so cannot destroy the instance, while that runs).
 */
Mutex& live_ids_lock() {
  static Mutex lock;
  return lock;
}
absl::flat_hash_set<std::uint64_t>& live_ids() {
  static absl::flat_hash_set<std::uint64_t> ids;
  return ids;
}

std::atomic<std::uint64_t> g_next_id{1};

bool is_space_or_memory_failure(FailureKind f) {
  return f == FailureKind::kNoVirtualSpace || f == FailureKind::kVirtualFragmentation ||
         f == FailureKind::kNoPhysicalMemory || f == FailureKind::kPhysicalFragmentation ||
         f == FailureKind::kMapLimit;
}

}  // namespace

// One thread's cache. `entries` records every cacheable area or block this thread's calls handed
// out (live) or hold (cached); the lists hold the cached ones by page count (areas) or order
// (blocks), last freed on top. Guarded by `lock`. Cache-line aligned, so that two threads' caches
// (written on every call) never share a line.
struct alignas(64) ThreadCachedVmalloc::ThreadCache {
  struct Entry {
    std::uint32_t size_class;  // pages (kVmalloc) or order (kKmalloc)
    Kind kind;
    bool cached;
  };
  explicit ThreadCache(const ThreadCacheConfig& config)
      : areas(config.max_area_pages + 1), blocks(config.max_kmalloc_order + 1) {
    for (auto& list : areas) list.reserve(config.max_per_size);  // the free path never allocates
    for (auto& list : blocks) list.reserve(config.max_per_size);
  }
  [[nodiscard]] static std::uint64_t pages_of(const Entry& e) {
    return e.kind == Kind::kVmalloc ? e.size_class : std::uint64_t{1} << e.size_class;
  }
  std::vector<void*>& list_of(const Entry& e) { return e.kind == Kind::kVmalloc ? areas[e.size_class] : blocks[e.size_class]; }

  mutable Mutex lock;
  absl::flat_hash_map<const void*, Entry> entries;
  std::vector<std::vector<void*>> areas;
  std::vector<std::vector<void*>> blocks;
  std::uint64_t cached_count = 0, cached_pages = 0, hits = 0, misses = 0;
};

// The calling thread's table (see the block comment above); its destructor runs at thread exit.
struct ThreadCachedVmalloc::ThreadSlots {
  struct Slot {
    std::uint64_t id;
    ThreadCachedVmalloc* owner;
    ThreadCache* cache;
  };
  std::vector<Slot> slots;
  ~ThreadSlots() {
    std::lock_guard ids(live_ids_lock());
    for (const Slot& slot : slots)
      if (live_ids().contains(slot.id)) slot.owner->retire(slot.cache);
    slots.clear();
  }
};

namespace {
thread_local ThreadCachedVmalloc::ThreadSlots t_slots;
}  // namespace

ThreadCachedVmalloc::CreateResult ThreadCachedVmalloc::create(const VmallocConfig& config,
                                                              const ThreadCacheConfig& cache) {
  if (cache.max_area_pages == 0 || cache.max_area_pages > (1u << 20) || cache.max_kmalloc_order > kMaxOrder ||
      cache.max_per_size == 0 || cache.max_per_size > (1u << 16))
    return CreateResult{nullptr, EINVAL,
                        "thread cache: max_area_pages must be in [1, 2^20], max_kmalloc_order at most 10, "
                        "max_per_size in [1, 2^16]"};
  Vmalloc::CreateResult inner = Vmalloc::create(config);
  if (!inner.vm) return CreateResult{nullptr, inner.error, std::move(inner.message)};
  return CreateResult{std::unique_ptr<ThreadCachedVmalloc>(new ThreadCachedVmalloc(std::move(inner.vm), cache)), 0, ""};
}

ThreadCachedVmalloc::ThreadCachedVmalloc(std::unique_ptr<Vmalloc> inner, const ThreadCacheConfig& cache)
    : config_(cache), id_(g_next_id.fetch_add(1, std::memory_order_relaxed)), inner_(std::move(inner)) {
  std::lock_guard ids(live_ids_lock());
  live_ids().insert(id_);
}

ThreadCachedVmalloc::~ThreadCachedVmalloc() {
  {
    std::lock_guard ids(live_ids_lock());
    live_ids().erase(id_);
  }
  // Cached areas and blocks are live to the inner Vmalloc: its teardown releases them with the rest
  // (and clears the ASan shadow of its live areas and of the direct map, cached ones included).
}

ThreadCachedVmalloc::ThreadCache* ThreadCachedVmalloc::find_local() const {
  for (const ThreadSlots::Slot& slot : t_slots.slots)
    if (slot.id == id_) return slot.cache;
  return nullptr;
}

ThreadCachedVmalloc::ThreadCache& ThreadCachedVmalloc::local() {
  ThreadCache* cache = find_local();
  return cache != nullptr ? *cache : register_thread();
}

ThreadCachedVmalloc::ThreadCache& ThreadCachedVmalloc::register_thread() {
  auto made = std::make_unique<ThreadCache>(config_);
  ThreadCache* cache = made.get();
  {
    std::lock_guard registry(registry_lock_);
    caches_.push_back(std::move(made));
    ++threads_;
  }
  {
    std::lock_guard ids(live_ids_lock());
    std::erase_if(t_slots.slots, [](const ThreadSlots::Slot& s) { return !live_ids().contains(s.id); });
  }
  t_slots.slots.push_back(ThreadSlots::Slot{id_, this, cache});
  return *cache;
}

VmallocResult ThreadCachedVmalloc::allocate(Kind kind, std::uint64_t size, std::uint64_t align) {
  const bool cacheable = size != 0 && (kind == Kind::kVmalloc
                                           ? align == kPage && size <= config_.max_area_pages * kPage
                                           : size <= (std::uint64_t{1} << config_.max_kmalloc_order) * kPage);
  ThreadCache* cache = nullptr;  // set for a cacheable request: its record goes there
  std::uint32_t size_class = 0;
  if (cacheable) {
    const std::uint64_t pages = (size + kPage - 1) / kPage;
    size_class = static_cast<std::uint32_t>(kind == Kind::kVmalloc ? pages : VmapBlockAllocator::order_for(pages));
    cache = &local();
    std::lock_guard own(cache->lock);
    std::vector<void*>& list = kind == Kind::kVmalloc ? cache->areas[size_class] : cache->blocks[size_class];
    if (!list.empty()) {
      void* addr = list.back();
      list.pop_back();
      ThreadCache::Entry& e = cache->entries.find(addr)->second;
      e.cached = false;
      --cache->cached_count;
      cache->cached_pages -= ThreadCache::pages_of(e);
      ++cache->hits;
      unpoison(addr, size);
      VMF_ASSERT_FULL(cache_error_locked(*cache).empty(), "thread cache: %s", cache_error_locked(*cache).c_str());
      return VmallocResult{addr, FailureKind::kNone, 0};
    }
    ++cache->misses;
  }
  const auto call_inner = [&] { return kind == Kind::kVmalloc ? inner_->vmalloc(size, align) : inner_->kmalloc(size); };
  VmallocResult r = call_inner();
  if (!r.ok() && is_space_or_memory_failure(r.failure) && give_back(nullptr) > 0) r = call_inner();
  if (r.ok() && cache != nullptr) {
    std::lock_guard own(cache->lock);
    cache->entries.emplace(r.addr, ThreadCache::Entry{size_class, kind, false});
  }
  return r;
}

// A use after free of a cached area or block is still reported: cached memory is poisoned. Not in
// backing none, where areas are never accessible and the inner Vmalloc leaves their shadow alone.
bool ThreadCachedVmalloc::poisons(Kind kind) const {
  return kind == Kind::kKmalloc || inner_->backing() != BackingMode::kNone;
}

ReleaseStatus ThreadCachedVmalloc::release_to_inner(std::optional<Kind> kind, const void* addr) {
  if (!kind) return inner_->kvfree(addr);
  return *kind == Kind::kVmalloc ? inner_->vfree(addr) : inner_->kfree(addr);
}

ReleaseStatus ThreadCachedVmalloc::cached_misuse(const char* fn, const void* addr) {
  char msg[160];
  std::snprintf(msg, sizeof msg, "%s: unknown address %p (already freed: held in a thread cache)", fn, addr);
  VMF_CHECK(!inner_->space().config().strict, "strict mode: %s", msg);
  std::lock_guard registry(registry_lock_);
  ++misuse_count_;
  if (misuse_log_.size() < kMisuseLogCap) misuse_log_.emplace_back(msg);
  return ReleaseStatus::kUnknown;
}

/*
 * What one cache's record of a released address decides. A cached address is a double free. A
 * live one of another kind than the release wants (vfree of a kmalloc block) goes to the inner
 * Vmalloc as the caller named it, which reports the misuse; the record stays. A live one of the
 * wanted kind goes on top of its list when may_cache (the releasing thread's own cache) and the
 * list and the cache have room, else its record is dropped and the inner Vmalloc frees it.
 */
ThreadCachedVmalloc::Taken ThreadCachedVmalloc::take_record_locked(ThreadCache& cache, std::optional<Kind> wanted,
                                                                   const void* addr, bool may_cache) {
  auto it = cache.entries.find(addr);
  if (it == cache.entries.end()) return Taken{Taken::Outcome::kNotFound, Kind::kVmalloc};
  ThreadCache::Entry& e = it->second;
  if (e.cached) return Taken{Taken::Outcome::kDoubleFree, e.kind};
  if (wanted && *wanted != e.kind) return Taken{Taken::Outcome::kToInner, *wanted};
  const Kind kind = e.kind;
  const std::uint64_t pages = ThreadCache::pages_of(e);
  std::vector<void*>& list = cache.list_of(e);
  if (may_cache && list.size() < config_.max_per_size && cache.cached_pages + pages <= config_.max_cached_pages) {
    e.cached = true;
    list.push_back(const_cast<void*>(addr));
    ++cache.cached_count;
    cache.cached_pages += pages;
    if (poisons(kind)) poison(addr, pages * kPage);
    return Taken{Taken::Outcome::kCached, kind};
  }
  cache.entries.erase(it);
  return Taken{Taken::Outcome::kToInner, kind};
}

/*
 * A release. The calling thread's own record decides in the common case, under its own lock only.
 * An address it does not know may be another thread's (freed by a thread other than the one that
 * allocated it): the other caches are searched under the registry lock, and their record decides
 * the same way, except that the address is not cached there (it is not theirs to reuse). An
 * address no cache knows goes to the inner Vmalloc, which classifies it as it always does
 * (unknown, interior, foreign, wrong function).
 */
ReleaseStatus ThreadCachedVmalloc::release(std::optional<Kind> wanted, const void* addr, const char* fn) {
  if (addr == nullptr) return ReleaseStatus::kNull;
  // A thread that never allocated here has no cache and gets none: the free path allocates nothing.
  ThreadCache* own = find_local();
  Taken taken{Taken::Outcome::kNotFound, Kind::kVmalloc};
  if (own != nullptr) {
    std::lock_guard own_lock(own->lock);
    taken = take_record_locked(*own, wanted, addr, /*may_cache=*/true);
    VMF_ASSERT_FULL(cache_error_locked(*own).empty(), "thread cache: %s", cache_error_locked(*own).c_str());
  }
  if (taken.outcome == Taken::Outcome::kNotFound) {
    std::shared_lock registry(registry_lock_);
    for (const auto& other : caches_) {
      if (other.get() == own) continue;
      std::lock_guard other_lock(other->lock);
      taken = take_record_locked(*other, wanted, addr, /*may_cache=*/false);
      if (taken.outcome != Taken::Outcome::kNotFound) break;
    }
  }
  switch (taken.outcome) {
    case Taken::Outcome::kCached: return ReleaseStatus::kOk;
    case Taken::Outcome::kDoubleFree: return cached_misuse(fn, addr);
    case Taken::Outcome::kToInner: return release_to_inner(taken.inner_kind, addr);
    case Taken::Outcome::kNotFound: break;
  }
  return release_to_inner(wanted, addr);
}

VmallocResult ThreadCachedVmalloc::vmalloc(std::uint64_t size, std::uint64_t align) {
  return allocate(Kind::kVmalloc, size, align);
}
ReleaseStatus ThreadCachedVmalloc::vfree(const void* addr) { return release(Kind::kVmalloc, addr, "vfree"); }
VmallocResult ThreadCachedVmalloc::kmalloc(std::uint64_t size) { return allocate(Kind::kKmalloc, size, kPage); }
ReleaseStatus ThreadCachedVmalloc::kfree(const void* addr) { return release(Kind::kKmalloc, addr, "kfree"); }
ReleaseStatus ThreadCachedVmalloc::kvfree(const void* addr) { return release(std::nullopt, addr, "kvfree"); }

// As Vmalloc::kvmalloc (mm/util.c kvmalloc_node): kmalloc first; on failure, vmalloc for a request
// above one page; sizes above kmalloc's largest block go straight to vmalloc.
VmallocResult ThreadCachedVmalloc::kvmalloc(std::uint64_t size) {
  if (size > (std::uint64_t{1} << kMaxOrder) * kPage) return vmalloc(size);
  VmallocResult r = kmalloc(size);
  if (!r.ok() && size > kPage) r = vmalloc(size);
  return r;
}

void ThreadCachedVmalloc::purge() { inner_->purge(); }

void ThreadCachedVmalloc::drain() { (void)give_back(nullptr); }

/*
 * Cached areas and blocks back to the inner Vmalloc: all of every cache (a drain: on demand, or
 * when the inner Vmalloc failed a request for want of space or memory), or all of one cache (its
 * thread is exiting). The lists are emptied and the records dropped under each cache's lock; the
 * addresses are freed afterwards, with no cache lock held. Records of live areas stay.
 *
 * Why not the kernel's decay: decay_va_pool_node() gives back a quarter of every pool at each
 * purge, but the kernel purges rarely (when lazily freed pages pass lazy_max_pages); here purge()
 * is also an explicit, frequent call (the thread-scaling mix purges every 256 ops). Decaying at
 * every purge took the caches' hit rate from 99.99 % to 95 % and two threads from 1.8x to
 * 0.3-0.45x one thread's work; decaying only caches unused since the previous purge fed back in
 * memfd mode (a thread slowed by a system call looked idle to the other's purges, lost its cache,
 * missed more: 0.05x). Giving a cache back when its thread exits bounds what idle threads hold
 * without either.
 */
std::uint64_t ThreadCachedVmalloc::give_back(ThreadCache* only) {
  std::vector<std::pair<Kind, void*>> taken;
  {
    std::lock_guard registry(registry_lock_);
    for (const auto& cache : caches_) {
      if (only != nullptr && cache.get() != only) continue;
      std::lock_guard lock(cache->lock);
      for (auto* lists : {&cache->areas, &cache->blocks}) {
        const Kind kind = lists == &cache->areas ? Kind::kVmalloc : Kind::kKmalloc;
        for (std::vector<void*>& list : *lists) {
          for (void* addr : list) {
            taken.emplace_back(kind, addr);
            cache->entries.erase(addr);
          }
          list.clear();
        }
      }
      cache->cached_count = 0;
      cache->cached_pages = 0;
    }
    if (only == nullptr && !taken.empty()) ++drains_;
    if (only != nullptr) given_back_at_exit_ += taken.size();
  }
  for (const auto& [kind, addr] : taken) {
    const ReleaseStatus s = release_to_inner(kind, addr);
    VMF_CHECK(s == ReleaseStatus::kOk, "thread cache: the inner Vmalloc refused a cached address %p (%s)", addr,
              release_status_name(s));
  }
  return taken.size();
}

/*
 * A thread exits: its cached areas and blocks go back to the inner Vmalloc, and its cache is freed.
 * The records it still holds are of areas it allocated that are live; they are dropped with it: a
 * later release of one (by any thread) finds no record and goes to the inner Vmalloc, which frees
 * it or classifies the misuse, exactly what a record with no cache to return to would decide.
 * Other threads reach a cache only under the registry lock (release's search, drains, stats,
 * check), so removing it under that lock leaves no dangling pointer; its own thread, the only
 * one that caches into it, is the one exiting.
 */
void ThreadCachedVmalloc::retire(ThreadCache* cache) {
  (void)give_back(cache);
  std::unique_ptr<ThreadCache> freed;  // destroyed after the registry lock is released
  std::lock_guard registry(registry_lock_);
  const auto it = std::find_if(caches_.begin(), caches_.end(), [&](const auto& c) { return c.get() == cache; });
  VMF_CHECK(it != caches_.end(), "thread cache: an exiting thread's cache is not registered");
  {
    std::lock_guard lock(cache->lock);
    retired_hits_ += cache->hits;
    retired_misses_ += cache->misses;
  }
  freed = std::move(*it);
  caches_.erase(it);
}

ThreadCacheStats ThreadCachedVmalloc::cache_stats() const {
  ThreadCacheStats s;
  std::shared_lock registry(registry_lock_);
  s.threads = threads_;
  s.caches = caches_.size();
  s.drains = drains_;
  s.given_back_at_exit = given_back_at_exit_;
  s.misuse_count = misuse_count_;
  s.hits = retired_hits_;
  s.misses = retired_misses_;
  for (const auto& cache : caches_) {
    std::lock_guard lock(cache->lock);
    s.hits += cache->hits;
    s.misses += cache->misses;
    s.cached_areas += cache->cached_count;
    s.cached_pages += cache->cached_pages;
  }
  return s;
}

std::string ThreadCachedVmalloc::cache_error_locked(const ThreadCache& cache) {
  char msg[200];
  std::uint64_t listed = 0, pages = 0;
  const auto check_lists = [&](const std::vector<std::vector<void*>>& lists, Kind kind) -> bool {
    for (std::size_t size_class = 0; size_class < lists.size(); ++size_class) {
      for (const void* addr : lists[size_class]) {
        auto it = cache.entries.find(addr);
        if (it == cache.entries.end() || !it->second.cached || it->second.kind != kind ||
            it->second.size_class != size_class) {
          std::snprintf(msg, sizeof msg, "cached %p in the list of size class %zu has no matching cached record",
                        addr, size_class);
          return false;
        }
        ++listed;
        pages += ThreadCache::pages_of(it->second);
      }
    }
    return true;
  };
  if (!check_lists(cache.areas, Kind::kVmalloc) || !check_lists(cache.blocks, Kind::kKmalloc)) return msg;
  std::uint64_t cached_records = 0;
  for (const auto& [addr, e] : cache.entries) cached_records += e.cached ? 1 : 0;
  if (cached_records != listed || listed != cache.cached_count || pages != cache.cached_pages) {
    std::snprintf(msg, sizeof msg,
                  "%" PRIu64 " cached records, %" PRIu64 " listed, count %" PRIu64 "; %" PRIu64
                  " pages listed, count %" PRIu64,
                  cached_records, listed, cache.cached_count, pages, cache.cached_pages);
    return msg;
  }
  return "";
}

/*
 * The inner Vmalloc's check runs with every cache locked and the cached areas unpoisoned: they
 * are live to it, and its kFull probe writes a word through sampled live areas (ASan would report
 * the write into a poisoned cached area). Quiescent use only, as for Vmalloc::check.
 */
std::string ThreadCachedVmalloc::check(CheckDepth depth) const {
  std::lock_guard registry(registry_lock_);
  std::vector<std::unique_lock<Mutex>> locks;
  for (const auto& cache : caches_) locks.emplace_back(cache->lock);
  const auto for_each_cached = [&](auto&& f) {
    for (const auto& cache : caches_)
      for (const auto& [addr, e] : cache->entries)
        if (e.cached && poisons(e.kind)) f(addr, ThreadCache::pages_of(e) * kPage);
  };
  for_each_cached([](const void* addr, std::uint64_t bytes) { unpoison(addr, bytes); });
  std::string error = inner_->check(depth);
  for_each_cached([](const void* addr, std::uint64_t bytes) { poison(addr, bytes); });
  if (!error.empty()) return error;
  absl::flat_hash_set<const void*> seen;
  std::uint64_t areas = 0, blocks = 0;
  for (const auto& cache : caches_) {
    error = cache_error_locked(*cache);
    if (!error.empty()) return "thread cache: " + error;
    for (const auto& [addr, e] : cache->entries) {
      if (!seen.insert(addr).second) {
        char msg[120];
        std::snprintf(msg, sizeof msg, "thread cache: %p is recorded by two threads", addr);
        return msg;
      }
      (e.kind == Kind::kVmalloc ? areas : blocks) += 1;
    }
  }
  const VmallocStats inner = inner_->stats();
  if (areas > inner.vmalloc_areas || blocks > inner.kmalloc_blocks) {
    char msg[200];
    std::snprintf(msg, sizeof msg,
                  "thread cache: %" PRIu64 " vmalloc areas and %" PRIu64 " kmalloc blocks recorded, the inner "
                  "allocator has only %" PRIu64 " and %" PRIu64 " live",
                  areas, blocks, inner.vmalloc_areas, inner.kmalloc_blocks);
    return msg;
  }
  return "";
}

std::vector<std::string> ThreadCachedVmalloc::misuse_log() const {
  std::vector<std::string> log = inner_->misuse_log();
  std::shared_lock registry(registry_lock_);
  log.insert(log.end(), misuse_log_.begin(), misuse_log_.end());
  return log;
}

}  // namespace vmfrag
