#include "harness/replay/replay.h"

#include <cinttypes>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "harness/reference/reference_model.h"
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
// `f` is the no-op the format promises rather than a free of someone else's area.
struct IdSlot {
  bool ok = false;
  std::uint64_t offset = 0;
};

class Replayer {
 public:
  Replayer(OpSource& source, const ReplayOptions& options) : source_(source), options_(options) {
    const TraceHeader& h = source.header();
    if (h.backing != Backing::kNone)
      throw InputError(source.name(), 0,
                       "backing '" + std::string(backing_name(h.backing)) +
                           "' needs the physical-memory layer, which replay does not drive yet; "
                           "use 'backing none'");
    VirtualSpaceConfig config;
    config.region_bytes = h.region_bytes;
    config.guard_pages = h.guard_pages;
    config.lazy_threshold_pages = h.lazy_pages;
    auto created = VirtualSpace::create(config);
    if (created.space == nullptr) throw InputError(source.name(), 0, "cannot create the region: " + created.message);
    space_ = std::move(created.space);
    if (options.differential) model_ = std::make_unique<reference::ReferenceModel>(reference::ModelConfig::from_header(h));
    result_.trace_name = source.name();
    result_.header = h;
    result_.differential = options.differential;
  }

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
    return std::move(result_);
  }

 private:
  void step(const Op& op) {
    const std::uint64_t index = result_.ops;
    switch (op.kind) {
      case OpKind::kAlloc: return alloc(index, op);
      case OpKind::kFree: return free(index, op);
      case OpKind::kPurge:
        space_->purge();
        if (model_) model_->purge();
        ++result_.purges_requested;
        compare_stats(index, true);
        notify(index, op, true, FailureKind::kNone, 0);
        return;
      case OpKind::kKmalloc:
      case OpKind::kMapRam:
      case OpKind::kHuge:
        throw InputError(source_.name(), source_.line(),
                         std::string("op '") + static_cast<char>(op.kind) +
                             "' needs the physical-memory layer, which replay does not drive yet");
    }
  }

  void alloc(std::uint64_t index, const Op& op) {
    ++result_.alloc_attempts;
    const Allocation a = space_->vmalloc(op.size, op.align);
    if (model_) {
      const reference::Placement p = model_->alloc(op.size, op.align);
      if (p.failure != a.failure || (a.ok() && p.offset != a.offset)) {
        diverge(index, outcome_text(a.failure, a.offset), outcome_text(p.failure, p.offset));
        return;
      }
    }
    ids_[op.id] = IdSlot{a.ok(), a.offset};
    if (a.ok()) {
      ++result_.allocs;
      result_.placements[op.id] = a.offset;
      const std::uint64_t live = space_->stats().live_bytes;
      if (live > result_.peak_live_bytes) result_.peak_live_bytes = live;
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
    const std::uint64_t offset = it->second.offset;
    ids_.erase(it);
    const FreeStatus status = space_->vfree_offset(offset);
    if (status != FreeStatus::kOk) {
      // The trace freed a live area by its start: any refusal is an allocator bug.
      violation(index, std::string("vfree of live area at ") + hex(offset) + " returned " + free_status_name(status));
      return;
    }
    if (model_) {
      const reference::FreeStatus ms = model_->free(offset);
      if (ms != reference::FreeStatus::kOk) {
        diverge(index, "freed " + hex(offset), "free returned " + std::string(reference::free_status_name(ms)));
        return;
      }
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
    const reference::ModelStats m = model_->stats();
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
    if (std::string why = space_->check(); !why.empty()) violation(result_.ops, "check(): " + why);
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
  std::unique_ptr<VirtualSpace> space_;
  std::unique_ptr<reference::ReferenceModel> model_;
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
  j["backing"] = std::string(backing_name(r.header.backing));
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
