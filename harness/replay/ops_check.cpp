#include "harness/replay/ops_check.h"

#include <cinttypes>
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <vector>

#include "allocator/vmalloc/vmalloc.h"
#include "harness/reference/reference_vmalloc.h"

namespace vmfrag {

VmallocConfig vmalloc_config_of(const TraceHeader& h) {
  VmallocConfig config;
  config.space.region_bytes = h.region_bytes;
  config.space.guard_pages = h.guard_pages;
  config.space.lazy_threshold_pages = h.lazy_pages;
  config.phys_bytes = h.phys_bytes;
  config.backing = h.backing == Backing::kAnon    ? BackingMode::kAnon
                   : h.backing == Backing::kMemfd ? BackingMode::kMemfd
                                                  : BackingMode::kNone;
  return config;
}

OpsInstances::OpsInstances() = default;
OpsInstances::~OpsInstances() = default;

namespace {

std::string outcome(FailureKind f, std::uint64_t v) {
  return f == FailureKind::kNone ? "ok " + std::to_string(v) : std::string(failure_name(f));
}

}  // namespace

class OpsChecker {
 public:
  OpsChecker(const DecodedInput& input, const OpsCheckOptions& options, OpsInstances* reuse)
      : in_(input), options_(options), reuse_(reuse) {}

  OpsCheckResult run() {
    const TraceHeader& h = in_.header;
    const VmallocConfig config = vmalloc_config_of(h);
    const OpsInstances::Key key{h.region_bytes, h.guard_pages, h.lazy_pages, h.phys_bytes, static_cast<int>(h.backing)};
    if (reuse_ != nullptr) {
      auto it = reuse_->kept_.find(key);
      if (it != reuse_->kept_.end()) {
        reused_ = true;
        vm_ = std::move(it->second);
        reuse_->kept_.erase(it);
        reuse_->last_use_.erase(key);
      }
    }
    if (vm_ == nullptr) {
      auto created = Vmalloc::create(config);
      if (created.vm == nullptr) return result_;
      vm_ = std::move(created.vm);
    }
    ref_ = std::make_unique<reference::ReferenceVmalloc>(h);
    std::size_t m = 0;
    for (std::uint64_t i = 0; i < in_.ops.size() && result_.ok(); ++i) {
      for (; m < in_.misuse.size() && in_.misuse[m].before_op == i && result_.ok(); ++m) misuse(i, in_.misuse[m]);
      if (!result_.ok()) break;
      step(i, in_.ops[i]);
      ++result_.ops;
      if (result_.ok()) compare_state(i);
      if (result_.ok() && options_.check_every != 0 && (i + 1) % options_.check_every == 0)
        check(i, CheckDepth::kStructure);
    }
    for (; m < in_.misuse.size() && result_.ok(); ++m) misuse(in_.ops.size(), in_.misuse[m]);
    if (result_.ok()) check(in_.ops.size(), CheckDepth::kFull);
    if (result_.ok()) release_all(in_.ops.size(), key);
    return result_;
  }

  // Releases everything live and purges; the instance must then be pristine (else a leak is the
  // problem). A pristine instance goes back to `reuse_`.
  void release_all(std::uint64_t i, const OpsInstances::Key& key) {
    for (const auto& [id, o] : objs_) {
      ReleaseStatus s = ReleaseStatus::kOk;
      if (o.kind == OpKind::kKmalloc) s = vm_->kfree(o.addr);
      if (o.kind == OpKind::kAlloc || o.kind == OpKind::kHuge) s = vm_->vfree(o.addr);
      if (o.kind == OpKind::kMapRam) {
        s = vm_->vm_unmap_ram(o.addr, o.pfns.size());
        if (s == ReleaseStatus::kOk) vm_->free_pages(o.pfns);
      }
      if (s != ReleaseStatus::kOk) return fail(i, std::string("release at the end: ") + release_status_name(s));
    }
    objs_.clear();
    vm_->purge();
    const VmallocStats s = vm_->stats();
    if (s.space.free_extents != 1 || s.space.free_bytes != in_.header.region_bytes || s.space.lazy_bytes != 0 ||
        s.phys.free_pages != in_.header.phys_bytes / kPageSize || s.mapped_pages != 0 || s.vmap_blocks.blocks != 0)
      return fail(i, "leak: after releasing everything and a purge, free " + std::to_string(s.space.free_bytes) + " in " +
                         std::to_string(s.space.free_extents) + " extents, free pages " + std::to_string(s.phys.free_pages));
    if (reuse_ == nullptr) return;
    if (reuse_->kept_.size() >= OpsInstances::kMaxKept) {
      auto oldest = std::min_element(reuse_->last_use_.begin(), reuse_->last_use_.end(),
                                     [](const auto& a, const auto& b) { return a.second < b.second; });
      reuse_->kept_.erase(oldest->first);
      reuse_->last_use_.erase(oldest);
    }
    reuse_->kept_[key] = std::move(vm_);
    reuse_->last_use_[key] = ++reuse_->clock_;
  }

 private:
  struct Obj {
    OpKind kind;
    void* addr;
    std::uint64_t offset = 0;         // a, h, m
    std::uint64_t pfn = 0;            // k
    std::vector<std::uint64_t> pfns;  // m: the caller-owned pages
  };

  void fail(std::uint64_t op, std::string what) {
    if (!result_.ok()) return;
    result_.problem = std::move(what);
    result_.op = op;
  }

  std::uint64_t offset_of(const void* addr) const {
    return static_cast<std::uint64_t>(static_cast<const char*>(addr) - static_cast<const char*>(vm_->space().base()));
  }

  std::vector<std::uint64_t> area_pfns(const void* addr, std::uint64_t pages) const {
    std::vector<std::uint64_t> pfns;
    for (std::uint64_t i = 0; i < pages; ++i)
      if (auto pfn = vm_->vmalloc_to_pfn(static_cast<const char*>(addr) + i * kPageSize)) pfns.push_back(*pfn);
    return pfns;
  }

  void compare_area(std::uint64_t i, const Op& op, const VmallocResult& r, const reference::RefOutcome& m) {
    const std::uint64_t offset = r.ok() ? offset_of(r.addr) : 0;
    if (r.failure != m.failure || (r.ok() && offset != m.offset)) {
      fail(i, std::string(1, static_cast<char>(op.kind)) + ": allocator " + outcome(r.failure, offset) + ", reference " +
                  outcome(m.failure, m.offset));
      return;
    }
    const bool pfns_differ = m.pfns.empty() ? vm_->vmalloc_to_pfn(r.addr).has_value() : area_pfns(r.addr, m.pfns.size()) != m.pfns;
    if (r.ok() && pfns_differ)
      fail(i, std::string(1, static_cast<char>(op.kind)) + ": the area's pfns differ from the reference's");
  }

  void step(std::uint64_t i, const Op& op) {
    switch (op.kind) {
      case OpKind::kAlloc: {
        const VmallocResult r = vm_->vmalloc(op.size, op.align);
        compare_area(i, op, r, ref_->vmalloc(op.size, op.align));
        if (r.ok()) objs_[op.id] = Obj{op.kind, r.addr, offset_of(r.addr), 0, {}};
        return;
      }
      case OpKind::kHuge: {
        const VmallocResult r = vm_->vmalloc_huge(op.size);
        compare_area(i, op, r, ref_->vmalloc_huge(op.size));
        if (r.ok()) objs_[op.id] = Obj{op.kind, r.addr, offset_of(r.addr), 0, {}};
        return;
      }
      case OpKind::kMapRam: {
        std::vector<std::uint64_t> pfns;
        VmallocResult r;
        r.failure = op.size == 0 ? FailureKind::kInvalidArgument : vm_->alloc_pages(op.size, pfns);
        if (r.ok()) {
          r = vm_->vm_map_ram(pfns);
          if (!r.ok()) vm_->free_pages(pfns);
        }
        const reference::RefOutcome m = ref_->vm_map_ram(op.size);
        compare_area(i, op, r, m);
        if (r.ok()) objs_[op.id] = Obj{op.kind, r.addr, offset_of(r.addr), 0, pfns};
        return;
      }
      case OpKind::kKmalloc: {
        const VmallocResult r = vm_->kmalloc(op.size);
        const reference::RefOutcome m = ref_->kmalloc(op.size);
        const std::uint64_t pfn = r.ok() ? *vm_->phys().virt_to_pfn(r.addr) : 0;
        if (r.failure != m.failure || (r.ok() && pfn != m.pfn))
          fail(i, "k: allocator " + outcome(r.failure, pfn) + ", reference " + outcome(m.failure, m.pfn));
        if (r.ok()) objs_[op.id] = Obj{op.kind, r.addr, 0, pfn, {}};
        return;
      }
      case OpKind::kPurge:
        vm_->purge();
        ref_->purge();
        return;
      case OpKind::kFree: {
        auto it = objs_.find(op.id);
        if (it == objs_.end()) return;  // its allocation failed: a no-op
        const Obj o = std::move(it->second);
        objs_.erase(it);
        ReleaseStatus s = ReleaseStatus::kOk;
        bool ref_ok = true;
        if (o.kind == OpKind::kKmalloc) {
          s = vm_->kfree(o.addr);
          ref_ok = ref_->kfree(o.pfn);
        } else if (o.kind == OpKind::kMapRam) {
          s = vm_->vm_unmap_ram(o.addr, o.pfns.size());
          if (s == ReleaseStatus::kOk) vm_->free_pages(o.pfns);
          ref_ok = ref_->vm_unmap_ram(o.offset);
        } else {
          s = vm_->vfree(o.addr);
          ref_ok = ref_->vfree(o.offset);
          last_freed_ = o.addr;
        }
        if (s != ReleaseStatus::kOk || !ref_ok)
          fail(i, std::string("f: allocator ") + release_status_name(s) + ", reference " + (ref_ok ? "ok" : "refused"));
        return;
      }
    }
  }

  // After every op: the address space's counters and the free pages agree with the reference.
  void compare_state(std::uint64_t i) {
    const VirtualSpaceStats s = vm_->space().stats();
    const reference::ModelStats m = ref_->space_stats();
    char buf[320];
    if (s.free_bytes != m.free_bytes || s.largest_free_bytes != m.largest_free_bytes || s.free_extents != m.free_extents ||
        s.lazy_bytes != m.lazy_bytes || s.live_bytes != m.live_bytes || s.live_areas != m.live_areas) {
      std::snprintf(buf, sizeof buf,
                    "stats: allocator free %" PRIu64 " largest %" PRIu64 " extents %" PRIu64 " lazy %" PRIu64 " live %" PRIu64
                    " areas %" PRIu64 "; reference %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64,
                    s.free_bytes, s.largest_free_bytes, s.free_extents, s.lazy_bytes, s.live_bytes, s.live_areas,
                    m.free_bytes, m.largest_free_bytes, m.free_extents, m.lazy_bytes, m.live_bytes, m.live_areas);
      fail(i, buf);
      return;
    }
    const std::uint64_t free_pages = vm_->phys().stats().free_pages;
    if (free_pages != ref_->free_pages())
      fail(i, "free pages: allocator " + std::to_string(free_pages) + ", reference " + std::to_string(ref_->free_pages()));
  }

  void check(std::uint64_t i, CheckDepth depth) {
    if (std::string why = vm_->check(depth); !why.empty()) return fail(i, "check(): " + why);
    if (std::string why = ref_->validate(); !why.empty()) fail(i, "reference validate(): " + why);
  }

  // The live objects of some kinds, in id order (deterministic).
  std::vector<const Obj*> live(bool areas, bool kmallocs) const {
    std::vector<const Obj*> out;
    for (const auto& [id, o] : objs_) {
      const bool is_area = o.kind == OpKind::kAlloc || o.kind == OpKind::kHuge;
      if ((areas && is_area) || (kmallocs && o.kind == OpKind::kKmalloc)) out.push_back(&o);
    }
    return out;
  }

  // Issues one misuse. The action is skipped when it has no target (or, for a double free, when
  // the address was handed out again since, where the free would be legitimate).
  void misuse(std::uint64_t i, const MisuseAction& a) {
    const VmallocStats before = vm_->stats();
    ReleaseStatus s = ReleaseStatus::kOk;
    std::string what(misuse_kind_name(a.kind));
    switch (a.kind) {
      case MisuseKind::kDoubleFree: {
        if (last_freed_ == nullptr || ref_->classify_free(offset_of(last_freed_)) == reference::FreeStatus::kOk) return;
        s = vm_->vfree(last_freed_);
        break;
      }
      case MisuseKind::kInterior: {
        const std::vector<const Obj*> c = live(true, false);
        if (c.empty()) return;
        const Obj& o = *c[a.selector % c.size()];
        s = vm_->vfree(static_cast<char*>(o.addr) + 1 + a.selector * 97 % (kPageSize - 1));
        break;
      }
      case MisuseKind::kForeign: {
        static int outside = 0;
        s = (a.selector & 1) != 0 ? vm_->kfree(&outside) : vm_->vfree(&outside);
        break;
      }
      case MisuseKind::kCrossApi: {
        const std::vector<const Obj*> c = live(true, true);
        if (c.empty()) return;
        const Obj& o = *c[a.selector % c.size()];
        s = o.kind == OpKind::kKmalloc ? vm_->vfree(o.addr) : vm_->kfree(o.addr);
        break;
      }
    }
    ++result_.misuse_issued;
    if (s == ReleaseStatus::kOk || s == ReleaseStatus::kNull) return fail(i, what + ": accepted (" + release_status_name(s) + ")");
    const VmallocStats after = vm_->stats();
    if (after.misuse_count != before.misuse_count + 1) return fail(i, what + ": not counted as misuse");
    if (after.space.free_bytes != before.space.free_bytes || after.space.lazy_bytes != before.space.lazy_bytes ||
        after.space.live_bytes != before.space.live_bytes || after.phys.free_pages != before.phys.free_pages ||
        after.mapped_pages != before.mapped_pages || after.kmalloc_blocks != before.kmalloc_blocks)
      return fail(i, what + ": changed the allocator's state");
  }

  const DecodedInput& in_;
  const OpsCheckOptions& options_;
  OpsInstances* reuse_;
  bool reused_ = false;

 public:
  [[nodiscard]] bool reused() const { return reused_; }

 private:
  std::unique_ptr<Vmalloc> vm_;
  std::unique_ptr<reference::ReferenceVmalloc> ref_;
  std::map<std::uint64_t, Obj> objs_;  // live id -> object
  void* last_freed_ = nullptr;
  OpsCheckResult result_;
};

OpsCheckResult run_ops_check(const DecodedInput& input, const OpsCheckOptions& options, OpsInstances* reuse) {
  OpsChecker checker(input, options, reuse);
  OpsCheckResult r = checker.run();
  // A problem must reproduce from the input alone: confirm it on a fresh instance.
  if (!r.ok() && checker.reused()) {
    OpsCheckResult fresh = OpsChecker(input, options, nullptr).run();
    if (fresh.ok()) fresh.problem = "only on a reused instance (history-dependent): " + r.problem, fresh.op = r.op;
    return fresh;
  }
  return r;
}

}  // namespace vmfrag
