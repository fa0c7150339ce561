#include "harness/replay/replay.h"

#include "harness/replay/ops_check.h"

#include <cinttypes>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "harness/reference/reference_vmalloc.h"
#include "harness/trace/input_error.h"

namespace vmfrag {
namespace {

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}

std::string outcome_text(FailureKind failure, std::uint64_t offset) {
  return failure == FailureKind::kNone ? "offset " + hex(offset) : std::string(failure_name(failure));
}

const char* map_state_name(MapEntry::State s) {
  switch (s) {
    case MapEntry::State::kFree: return "free";
    case MapEntry::State::kBusy: return "busy";
    case MapEntry::State::kLazy: return "lazy";
  }
  return "free";
}

// Which object an id names now. An id whose allocation failed is remembered as such, so that its
// `f` is the no-op the format promises rather than a free of someone else's memory; `f` releases
// with the function that matches the allocating op.
struct IdSlot {
  bool ok = false;
  OpKind kind = OpKind::kAlloc;
  void* addr = nullptr;
  std::vector<std::uint64_t> pfns;  // `m`: the pages vm_map_ram mapped (the trace's, freed with it)
};

class Replayer {
 public:
  Replayer(OpSource& source, const ReplayOptions& options) : source_(source), options_(options) {
    const TraceHeader& h = source.header();
    backing_ = options.backing.value_or(h.backing);
    if (h.phys_bytes == 0) throw InputError(source.name(), 0, "phys 0: replay needs at least one page of physical memory");
    TraceHeader effective = h;
    effective.backing = backing_;
    VmallocConfig config = vmalloc_config_of(effective);
    config.space.os = options.os;
    config.page_faults = options.page_faults;
    if (options.thread_cache) {
      if (options.differential)
        throw InputError(source.name(), 0, "thread caches cannot be replayed in differential mode: the reference "
                                           "model places by exact lowest fit");
      auto created = ThreadCachedVmalloc::create(config, *options.thread_cache);
      if (created.vm == nullptr) throw InputError(source.name(), 0, "cannot create the allocator: " + created.message);
      cached_ = std::move(created.vm);
      vm_ = &cached_->inner();
    } else {
      auto created = Vmalloc::create(config);
      if (created.vm == nullptr) throw InputError(source.name(), 0, "cannot create the allocator: " + created.message);
      plain_ = std::move(created.vm);
      vm_ = plain_.get();
    }
    space_ = &vm_->space();
    if (options.differential) {
      TraceHeader modelled = h;
      modelled.backing = backing_;
      model_ = std::make_unique<reference::ReferenceVmalloc>(modelled);
    }
    result_.trace_name = source.name();
    result_.header = h;
    result_.differential = options.differential;
  }

  // The allocator is torn down after this body: teardown is no op of the trace, and its unmaps are
  // documented never to fail, so the interceptor stops injecting (and counting) here.
  ~Replayer() {
    if (options_.os != nullptr) options_.os->set_paused(true);
  }
  Replayer(const Replayer&) = delete;
  Replayer& operator=(const Replayer&) = delete;

  ReplayResult run() {
    Op op;
    while (!stopped_ && source_.next(op)) {
      step(op);
      ++result_.ops;
      if (options_.check_every != 0 && result_.ops % options_.check_every == 0) check();
    }
    if (options_.check_every != 0 && !stopped_) check();
    if (result_.ops != 0) compare_stats(result_.ops - 1, true);
    result_.final_stats = space_->stats();
    result_.backing = backing_;
    if (cached_) result_.thread_cache = cached_->cache_stats();
    return std::move(result_);
  }

 private:
  // The allocator the trace's a, k and f calls go to: the thread caches when the replay has them
  // (they pass everything else to vm_), else vm_ itself. f gets one or the other.
  template <class F>
  decltype(auto) front(F&& f) {
    return cached_ ? f(*cached_) : f(*vm_);
  }

  void step(const Op& op) {
    const std::uint64_t index = result_.ops;
    switch (op.kind) {
      case OpKind::kAlloc: return alloc(index, op);
      case OpKind::kFree: return free(index, op);
      case OpKind::kPurge:
        front([](auto& a) { a.purge(); });
        if (model_) model_->purge();
        ++result_.purges_requested;
        compare_stats(index, true);
        notify(index, op, true, FailureKind::kNone, 0);
        return;
      case OpKind::kMapRam:
      case OpKind::kKmalloc:
      case OpKind::kHuge:
        return physical(index, op);
    }
  }

  // k, m, h: the physical-memory paths. Their failures are recorded like an `a`'s.
  void physical(std::uint64_t index, const Op& op) {
    ++result_.alloc_attempts;
    VmallocResult r;
    IdSlot slot;
    slot.kind = op.kind;
    if (op.kind == OpKind::kKmalloc) r = front([&](auto& a) { return a.kmalloc(op.size); });
    if (op.kind == OpKind::kHuge) r = vm_->vmalloc_huge(op.size);
    if (op.kind == OpKind::kMapRam) {
      const FailureKind f = op.size == 0 ? FailureKind::kInvalidArgument : vm_->alloc_pages(op.size, slot.pfns);
      if (f != FailureKind::kNone) {
        r.failure = f;
      } else {
        r = vm_->vm_map_ram(slot.pfns);
        if (!r.ok()) {
          vm_->free_pages(slot.pfns);
          slot.pfns.clear();
        }
      }
    }
    if (model_ && !compare_physical(index, op, r)) return;
    slot.ok = r.ok();
    slot.addr = r.addr;
    ids_[op.id] = std::move(slot);
    if (r.ok()) {
      ++result_.allocs;
      note_live();
    } else {
      record_failure(index, op, r.failure);
    }
    notify(index, op, r.ok(), r.failure, 0);
  }

  // The pages behind an area, page by page, as the allocator maps them (empty in backing none
  // for vmalloc areas, which own no pages).
  std::vector<std::uint64_t> area_pfns(const void* addr, std::uint64_t pages) const {
    std::vector<std::uint64_t> pfns;
    for (std::uint64_t i = 0; i < pages; ++i)
      if (auto pfn = vm_->vmalloc_to_pfn(static_cast<const char*>(addr) + i * kPageSize)) pfns.push_back(*pfn);
    return pfns;
  }

  // Compares an area-making op (a, h, m) with the reference's answer: failure kind, offset and,
  // where pages stand behind the area, its pfns in order.
  bool compare_area(std::uint64_t index, const VmallocResult& r, const reference::RefOutcome& m) {
    const std::uint64_t offset = r.ok() ? offset_of(r.addr) : 0;
    bool same = m.failure == r.failure && (!r.ok() || m.offset == offset);
    if (same && r.ok() && !m.pfns.empty()) same = area_pfns(r.addr, m.pfns.size()) == m.pfns;
    if (same && r.ok() && m.pfns.empty()) same = !vm_->vmalloc_to_pfn(r.addr).has_value();
    if (!same) diverge(index, outcome_text(r.failure, offset), outcome_text(m.failure, m.offset));
    return same;
  }

  // The reference's answer to m, k and h. False, with the divergence recorded, when it disagrees
  // with the allocator.
  bool compare_physical(std::uint64_t index, const Op& op, const VmallocResult& r) {
    if (op.kind == OpKind::kMapRam) return compare_area(index, r, model_->vm_map_ram(op.size));
    if (op.kind == OpKind::kHuge) return compare_area(index, r, model_->vmalloc_huge(op.size));
    const reference::RefOutcome m = model_->kmalloc(op.size);
    const std::uint64_t pfn = r.ok() ? *vm_->phys().virt_to_pfn(r.addr) : 0;
    if (m.failure != r.failure || (r.ok() && m.pfn != pfn)) {
      diverge(index, r.ok() ? "pfn " + std::to_string(pfn) : std::string(failure_name(r.failure)),
              m.ok() ? "pfn " + std::to_string(m.pfn) : std::string(failure_name(m.failure)));
      return false;
    }
    return true;
  }

  void note_live() {
    const std::uint64_t live = space_->stats().live_bytes;
    if (live > result_.peak_live_bytes) result_.peak_live_bytes = live;
  }

  void alloc(std::uint64_t index, const Op& op) {
    ++result_.alloc_attempts;
    const VmallocResult v = front([&](auto& a) { return a.vmalloc(op.size, op.align); });
    const Allocation a{v.addr, v.ok() ? offset_of(v.addr) : 0, v.failure};
    if (model_ && !compare_area(index, v, model_->vmalloc(op.size, op.align))) return;
    ids_[op.id] = IdSlot{a.ok(), OpKind::kAlloc, a.addr, {}};
    if (a.ok()) {
      ++result_.allocs;
      result_.placements[op.id] = a.offset;
      note_live();
    } else {
      record_failure(index, op, a.failure);
    }
    compare_stats(index, !a.ok());
    notify(index, op, a.ok(), a.failure, a.offset);
  }

  void free(std::uint64_t index, const Op& op) {
    auto it = ids_.find(op.id);
    // The reader guarantees the id was allocated earlier and is live in the text.
    if (it == ids_.end() || !it->second.ok) {
      ++result_.frees_of_failed;
      if (it != ids_.end()) ids_.erase(it);
      notify(index, op, true, FailureKind::kNone, 0);
      return;
    }
    IdSlot slot = std::move(it->second);
    ids_.erase(it);
    const std::uint64_t offset = slot.kind == OpKind::kKmalloc ? 0 : offset_of(slot.addr);
    ReleaseStatus status = ReleaseStatus::kOk;
    if (slot.kind == OpKind::kAlloc) status = front([&](auto& a) { return a.vfree(slot.addr); });
    if (slot.kind == OpKind::kHuge) status = vm_->vfree(slot.addr);
    if (slot.kind == OpKind::kKmalloc) status = front([&](auto& a) { return a.kfree(slot.addr); });
    if (slot.kind == OpKind::kMapRam) {
      status = vm_->vm_unmap_ram(slot.addr, slot.pfns.size());
      if (status == ReleaseStatus::kOk) vm_->free_pages(slot.pfns);
    }
    if (status != ReleaseStatus::kOk) {
      // The trace freed what the id holds with the matching function: any refusal is a bug.
      violation(index, std::string("freeing id ") + std::to_string(op.id) + " returned " + release_status_name(status));
      return;
    }
    if (model_ && slot.kind == OpKind::kKmalloc) {
      const std::uint64_t pfn = *vm_->phys().virt_to_pfn(slot.addr);
      if (!model_->kfree(pfn)) {
        diverge(index, "kfree of pfn " + std::to_string(pfn), "no such block");
        return;
      }
    } else if (model_ && slot.kind == OpKind::kMapRam) {
      if (!model_->vm_unmap_ram(offset)) {
        diverge(index, "vm_unmap_ram of " + hex(offset), "no such mapping");
        return;
      }
    } else if (model_ && !model_->vfree(offset)) {
      diverge(index, "freed " + hex(offset), "no such area");
      return;
    }
    ++result_.frees;
    compare_stats(index);
    notify(index, op, true, FailureKind::kNone, offset);
  }

  void record_failure(std::uint64_t index, const Op& op, FailureKind kind) {
    ++result_.failures_by_kind[std::string(failure_name(kind))];
    const VirtualSpaceStats s = space_->stats();
    FailureRecord f;
    f.op = index;
    f.line = source_.line();
    f.id = op.id;
    f.size = op.size;
    f.align = op.align;
    f.kind = kind;
    f.free_bytes = s.free_bytes;
    f.largest_free_bytes = s.largest_free_bytes;
    f.lazy_bytes = s.lazy_bytes;
    f.unusable_free_index = space_->unusable_free_index(op.size);
    if (result_.failures.size() < options_.maps_at_failures) f.map = space_->address_map();
    result_.failures.push_back(std::move(f));
    if (options_.stop_at_first_failure) stopped_ = true;
  }

  // Beyond placements, the bookkeeping must agree too: a purge at a different moment shows up
  // here instead of many ops later as a placement difference. The model's stats() is a linear
  // walk, so it is compared at every failure and purge request, every kStatsEvery ops, and at
  // the end; placements and failure kinds are compared at every op.
  static constexpr std::uint64_t kStatsEvery = 256;
  void compare_stats(std::uint64_t index, bool always = false) {
    if (!model_ || stopped_) return;
    if (!always && index % kStatsEvery != 0) return;
    const VirtualSpaceStats s = space_->stats();
    const reference::ModelStats m = model_->space_stats();
    if (vm_->phys().stats().free_pages != model_->free_pages()) {
      diverge(index, "free pages " + std::to_string(vm_->phys().stats().free_pages),
              "free pages " + std::to_string(model_->free_pages()));
      return;
    }
    if (s.free_bytes != m.free_bytes || s.lazy_bytes != m.lazy_bytes || s.largest_free_bytes != m.largest_free_bytes ||
        s.free_extents != m.free_extents || s.live_bytes != m.live_bytes) {
      auto text = [](std::uint64_t free, std::uint64_t largest, std::uint64_t extents, std::uint64_t lazy,
                     std::uint64_t live) {
        return "free " + std::to_string(free) + " largest " + std::to_string(largest) + " extents " +
               std::to_string(extents) + " lazy " + std::to_string(lazy) + " live " + std::to_string(live);
      };
      diverge(index, text(s.free_bytes, s.largest_free_bytes, s.free_extents, s.lazy_bytes, s.live_bytes),
              text(m.free_bytes, m.largest_free_bytes, m.free_extents, m.lazy_bytes, m.live_bytes));
    }
  }

  void check() {
    if (options_.os != nullptr) options_.os->set_paused(true);
    std::string vm_problem = front([](auto& a) { return a.check(); });
    if (options_.os != nullptr) options_.os->set_paused(false);
    if (!vm_problem.empty()) violation(result_.ops, "check(): " + vm_problem);
    if (model_ && !stopped_)
      if (std::string why = model_->validate(); !why.empty()) violation(result_.ops, "reference validate(): " + why);
  }

  void diverge(std::uint64_t index, std::string ours, std::string theirs) {
    result_.divergence = Divergence{index, source_.line(), std::move(ours), std::move(theirs)};
    stopped_ = true;
  }

  void violation(std::uint64_t index, std::string what) {
    result_.invariant_violation = std::move(what);
    result_.invariant_op = index;
    stopped_ = true;
  }

  void notify(std::uint64_t index, const Op& op, bool ok, FailureKind failure, std::uint64_t offset) {
    if (options_.on_op) options_.on_op(index, op, *space_, ok, failure, offset);
  }

  OpSource& source_;
  const ReplayOptions& options_;
  std::uint64_t offset_of(const void* addr) const {
    return static_cast<std::uint64_t>(static_cast<const char*>(addr) - static_cast<const char*>(space_->base()));
  }

  Backing backing_ = Backing::kNone;
  std::unique_ptr<Vmalloc> plain_;               // the allocator, or
  std::unique_ptr<ThreadCachedVmalloc> cached_;  // the caches in front of it (ReplayOptions::thread_cache)
  Vmalloc* vm_ = nullptr;                        // the allocator either way
  VirtualSpace* space_ = nullptr;  // vm_'s address space
  std::unique_ptr<reference::ReferenceVmalloc> model_;
  std::unordered_map<std::uint64_t, IdSlot> ids_;
  ReplayResult result_;
  bool stopped_ = false;
};

}  // namespace

ReplayResult replay(OpSource& source, const ReplayOptions& options) { return Replayer(source, options).run(); }

std::string replay_result_json(const ReplayResult& r) {
  using nlohmann::ordered_json;
  ordered_json j;
  j["format"] = "vmfrag-replay";
  j["version"] = 1;
  j["trace"] = r.trace_name;
  j["region_bytes"] = r.header.region_bytes;
  j["guard_pages"] = r.header.guard_pages;
  j["lazy_pages"] = r.header.lazy_pages;
  j["backing"] = std::string(backing_name(r.backing));
  j["ops"] = r.ops;
  j["allocs"] = r.allocs;
  j["alloc_attempts"] = r.alloc_attempts;
  j["frees"] = r.frees;
  j["frees_of_failed"] = r.frees_of_failed;
  j["purges_requested"] = r.purges_requested;
  j["peak_live_bytes"] = r.peak_live_bytes;
  ordered_json by_kind = ordered_json::object();
  for (const auto& [k, n] : r.failures_by_kind) by_kind[k] = n;
  j["failures_by_kind"] = by_kind;
  ordered_json failures = ordered_json::array();
  for (const FailureRecord& f : r.failures) {
    ordered_json o;
    o["op"] = f.op;
    o["line"] = f.line;
    o["id"] = f.id;
    o["size"] = f.size;
    o["align"] = f.align;
    o["kind"] = std::string(failure_name(f.kind));
    o["free_bytes"] = f.free_bytes;
    o["largest_free_bytes"] = f.largest_free_bytes;
    o["lazy_bytes"] = f.lazy_bytes;
    o["unusable_free_index"] = f.unusable_free_index;
    if (!f.map.empty()) {
      ordered_json map = ordered_json::array();
      for (const MapEntry& e : f.map) map.push_back(ordered_json::array({e.offset, e.bytes, map_state_name(e.state)}));
      o["map"] = map;
    }
    failures.push_back(o);
  }
  j["failures"] = failures;
  // A plain (std::map-backed) object: ordered_json inserts by linear search, quadratic for the
  // million placements of a long trace. Keys come out in string order, deterministically.
  nlohmann::json placements = nlohmann::json::object();
  for (const auto& [id, offset] : r.placements) placements[std::to_string(id)] = offset;
  j["placements"] = placements;
  const VirtualSpaceStats& s = r.final_stats;
  j["final"] = {{"free_bytes", s.free_bytes},
                {"largest_free_bytes", s.largest_free_bytes},
                {"free_extents", s.free_extents},
                {"lazy_bytes", s.lazy_bytes},
                {"live_bytes", s.live_bytes},
                {"live_areas", s.live_areas},
                {"purges", s.purges},
                {"external_fragmentation", s.external_fragmentation()}};
  j["differential"] = r.differential;
  if (r.thread_cache) {
    const ThreadCacheStats& c = *r.thread_cache;
    j["thread_cache"] = {{"hits", c.hits},
                         {"misses", c.misses},
                         {"cached_areas", c.cached_areas},
                         {"cached_pages", c.cached_pages},
                         {"drains", c.drains}};
  }
  if (r.divergence) {
    j["divergence"] = {{"op", r.divergence->op},
                       {"line", r.divergence->line},
                       {"allocator", r.divergence->allocator},
                       {"reference", r.divergence->reference}};
  } else {
    j["divergence"] = nullptr;
  }
  if (!r.invariant_violation.empty()) {
    j["invariant_violation"] = {{"op", r.invariant_op}, {"what", r.invariant_violation}};
  } else {
    j["invariant_violation"] = nullptr;
  }
  return j.dump(2);
}

std::string timeline_line(std::uint64_t op_index, const Op& op, const VirtualSpace& space, bool ok,
                          FailureKind failure, std::uint64_t offset) {
  const VirtualSpaceStats s = space.stats();
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"op\":%" PRIu64 ",\"kind\":\"%c\",\"id\":%" PRIu64 ",\"result\":\"%s\",\"offset\":%" PRIu64
                ",\"live_bytes\":%" PRIu64 ",\"live_areas\":%" PRIu64 ",\"free_bytes\":%" PRIu64
                ",\"largest_free_bytes\":%" PRIu64 ",\"free_extents\":%" PRIu64 ",\"lazy_bytes\":%" PRIu64
                ",\"external_fragmentation\":%.6f}",
                op_index, static_cast<char>(op.kind), op.kind == OpKind::kPurge ? 0 : op.id,
                ok ? "ok" : std::string(failure_name(failure)).c_str(), ok ? offset : 0, s.live_bytes, s.live_areas,
                s.free_bytes, s.largest_free_bytes, s.free_extents, s.lazy_bytes, s.external_fragmentation());
  return buf;
}

}  // namespace vmfrag
