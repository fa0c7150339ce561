#include "harness/hunt/frag_hunt.h"

#include <algorithm>
#include <array>
#include <ctime>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <unordered_map>

#include "allocator/core/assert.h"
#include "allocator/vspace/virtual_space.h"
#include "harness/workloads/prng.h"

namespace vmfrag {
namespace {

std::uint64_t pages_of(std::uint64_t bytes) { return (bytes + kPageSize - 1) / kPageSize; }

// The state features (IJON-style annotations). Each is a "Pareto" mark: an input is new to
// libFuzzer only when it improves a frontier, never for landing on a worse value than one already
// seen, so the queue is not diluted by inputs that are merely different:
//   - the free-space frontier: for each peak-live-need bucket p, the smallest largest-free extent
//     seen while the peak was at most p. First fit fails exactly when the largest free extent is
//     below the request, so pushing it down while the live need stays low is the road to a failure
//     at low severity: each step down that road is kept.
//   - the high-water frontier: for each peak-live-need bucket p, the highest end of any area
//     placed while the peak was at most p. Robson's adversary works by pushing first fit's
//     placements up the region while little is live (the holes below are all just too small), so
//     each new height reached at a low peak is kept, long before anything fails.
//   - the failure ladder: each new lowest severity bucket, overall and per failing need.
//   - the live need fraction after each op (64 buckets; saturates quickly).
class Features {
 public:
  static constexpr std::size_t kPeakBuckets = 16, kFreeBuckets = 32;
  static constexpr std::size_t kHighBuckets = 32;
  static constexpr std::size_t kFrontier = 0, kLadder = 512, kLive = 640, kNeedLadder = 704, kHigh = 1024;
  static_assert(kFrontier + kPeakBuckets * kFreeBuckets <= kLadder && kNeedLadder + 16 * 16 <= kHigh &&
                kHigh + kPeakBuckets * kHighBuckets <= kHuntCounterCount);

  explicit Features(std::span<std::uint8_t> c, std::uint64_t region_pages) : c_(c), region_pages_(region_pages) {
    VMF_CHECK(c.empty() || c.size() >= kHuntCounterCount, "too few counters");
    min_free_.fill(kFreeBuckets);
    high_.fill(0);
  }
  // After each placement: its end, in pages from the region's start.
  void placed(std::uint64_t peak_pages, std::uint64_t end_pages) {
    if (c_.empty()) return;
    std::size_t& h = high_[peak_bucket(peak_pages)];
    h = std::max(h, 1 + std::min(kHighBuckets - 1, static_cast<std::size_t>(end_pages * kHighBuckets / region_pages_)));
  }
  // After each op: the peak live need so far (pages) and the space's state.
  void state(std::uint64_t peak_pages, const VirtualSpaceStats& s) {
    if (c_.empty()) return;
    const std::size_t p = peak_bucket(peak_pages);
    min_free_[p] = std::min(min_free_[p], free_bucket(s.largest_free_bytes / kPageSize));
    c_[kLive + fraction_bucket(static_cast<double>(s.live_reserved_bytes / kPageSize) / static_cast<double>(region_pages_), 64)] = 1;
  }
  void failure(double severity, std::uint64_t need_pages) {
    if (c_.empty()) return;
    mark_from(kLadder + fraction_bucket(severity, 128), kLadder + 128);
    const std::size_t row = kNeedLadder + std::min<std::uint64_t>(need_pages, 16) % 16 * 16;
    mark_from(row + fraction_bucket(severity, 16), row + 16);
  }
  // At the end of a run: marks the free-space frontier (every cell at or above it).
  void finish() {
    if (c_.empty()) return;
    std::size_t best = kFreeBuckets;
    for (std::size_t p = 0; p < kPeakBuckets; ++p) {
      best = std::min(best, min_free_[p]);
      if (best < kFreeBuckets) mark_from(kFrontier + p * kFreeBuckets + best, kFrontier + (p + 1) * kFreeBuckets);
    }
    std::size_t highest = 0;  // 1 + bucket of the highest end at this peak or below; 0: none yet
    for (std::size_t p = 0; p < kPeakBuckets; ++p) {
      highest = std::max(highest, high_[p]);
      if (highest > 0) mark_from(kHigh + p * kHighBuckets, kHigh + p * kHighBuckets + highest);
    }
  }

 private:
  std::size_t peak_bucket(std::uint64_t peak_pages) const {
    return std::min(kPeakBuckets - 1, static_cast<std::size_t>(peak_pages * kPeakBuckets / region_pages_));
  }
  // Largest free extent in pages: exact below 16 (where requests fail), 15-page steps above.
  static std::size_t free_bucket(std::uint64_t pages) {
    return pages < 16 ? static_cast<std::size_t>(pages) : std::min<std::size_t>(kFreeBuckets - 1, 16 + (pages - 16) / 15);
  }
  void mark_from(std::size_t from, std::size_t to) { mark_counters(c_, from, to); }

  std::span<std::uint8_t> c_;
  std::uint64_t region_pages_;
  std::array<std::size_t, kPeakBuckets> min_free_{};
  std::array<std::size_t, kPeakBuckets> high_{};
};

}  // namespace

std::size_t fraction_bucket(double fraction, std::size_t buckets) {
  if (!(fraction > 0)) return 0;
  return std::min(buckets - 1, static_cast<std::size_t>(fraction * static_cast<double>(buckets)));
}

void mark_counters(std::span<std::uint8_t> c, std::size_t from, std::size_t to) {
  std::fill(c.begin() + static_cast<std::ptrdiff_t>(from), c.begin() + static_cast<std::ptrdiff_t>(to), 1);
}

double robson_floor(std::uint64_t m) {
  VMF_CHECK(m >= 1, "m = 0");
  double h = 0;
  for (std::uint64_t i = 1; i <= m; ++i) h += 1.0 / static_cast<double>(i);
  return std::log(2.0) / h;
}

std::string HuntFinding::signature() const {
  return std::string(failure_name(kind)) + ":need" + std::to_string(need_pages) + ":peak" + std::to_string(peak_need_pages);
}

namespace {

constexpr std::uint64_t kNotLive = ~std::uint64_t{0};

}  // namespace

DecodedInput renumbered_ids(const DecodedInput& input) {
  DecodedInput out = input;
  std::unordered_map<std::uint64_t, std::uint64_t> ids;
  for (Op& op : out.ops) {
    if (op.kind != OpKind::kFree && op.kind != OpKind::kPurge) {
      op.id = ids.emplace(op.id, ids.size()).first->second;
    } else if (op.kind == OpKind::kFree) {
      auto it = ids.find(op.id);
      op.id = it == ids.end() ? kNotLive : it->second;
    }
  }
  return out;
}

namespace {

std::unique_ptr<VirtualSpace> create_space(const TraceHeader& h) {
  VirtualSpaceConfig config;
  config.region_bytes = h.region_bytes;
  config.guard_pages = h.guard_pages;
  config.lazy_threshold_pages = h.lazy_pages;
  auto created = VirtualSpace::create(config);
  VMF_CHECK(created.space != nullptr, "cannot create the space: %s", created.message.c_str());
  return std::move(created.space);
}

}  // namespace

HuntSpace::HuntSpace() = default;
HuntSpace::~HuntSpace() = default;

HuntRun run_hunt(const DecodedInput& input, std::span<std::uint8_t> counters, HuntSpace* reuse,
                 std::vector<LiveArea>* live_before) {
  const TraceHeader& h = input.header;
  std::unique_ptr<VirtualSpace> fresh;  // without `reuse`: this run's own space
  VirtualSpace& space = reuse != nullptr ? reuse->space_.for_header(h, create_space) : *(fresh = create_space(h));
  const std::uint64_t guard_pages = h.guard_pages;
  const std::uint64_t region_pages = h.region_bytes / kPageSize;
  Features features(counters, region_pages);

  // Which bound conditions hold so far (the header's and every op's up to now).
  std::string not_applicable = h.lazy_pages != 0 ? "lazy free (lazy > 0)" : "";
  // Live id -> offset, indexed by id (kNotLive: not live). Decoded inputs have dense ids 0, 1, 2...;
  // a trace with sparse ids is renumbered first. Kept in `reuse` between runs: no allocation per run.
  std::uint64_t max_id = 0;
  for (const Op& op : input.ops)
    if (op.kind == OpKind::kAlloc) max_id = std::max(max_id, op.id);
  if (max_id > 4 * input.ops.size() + 1024) return run_hunt(renumbered_ids(input), counters, reuse, live_before);
  std::vector<std::uint64_t> local_offsets;
  std::vector<std::uint64_t>& offsets = reuse == nullptr ? local_offsets : reuse->offsets_;
  offsets.assign(input.ops.empty() ? 0 : max_id + 1, kNotLive);
  std::uint64_t peak = 0, max_need = 0;
  HuntRun run;
  auto snapshot = [&offsets](std::vector<LiveArea>* out) {
    if (out == nullptr) return;
    out->clear();
    for (std::uint64_t id = 0; id < offsets.size(); ++id)
      if (offsets[id] != kNotLive) out->push_back(LiveArea{id, offsets[id] / kPageSize});
  };
  for (const Op& op : input.ops) {
    const std::uint64_t index = run.ops++;
    if (op.kind == OpKind::kFree) {
      if (op.id < offsets.size() && offsets[op.id] != kNotLive) {
        VMF_CHECK(space.vfree_offset(offsets[op.id]) == FreeStatus::kOk, "free of id %llu refused",
                  static_cast<unsigned long long>(op.id));
        offsets[op.id] = kNotLive;
      }
    } else if (op.kind == OpKind::kPurge) {
      space.purge();
    } else {
      VMF_CHECK(op.kind == OpKind::kAlloc, "the hunt runs a, f and p only (got '%c')", static_cast<char>(op.kind));
      if (op.align != kPageSize && not_applicable.empty()) not_applicable = "alignment above one page";
      const std::uint64_t need = op.size == 0 ? 0 : pages_of(op.size) + guard_pages;
      max_need = std::max(max_need, need);
      const Allocation a = space.vmalloc(op.size, op.align);
      if (a.ok()) {
        offsets[op.id] = a.offset;
        features.placed(std::max(peak, space.stats().live_reserved_bytes / kPageSize), a.offset / kPageSize + need);
      } else if (a.failure == FailureKind::kVirtualFragmentation || a.failure == FailureKind::kNoVirtualSpace) {
        ++run.failures;
        const std::uint64_t live = space.stats().live_reserved_bytes / kPageSize;
        HuntFinding f;
        f.kind = a.failure;
        f.op = index;
        f.need_pages = need;
        f.peak_need_pages = std::max(peak, live + need);
        f.region_pages = region_pages;
        f.severity = static_cast<double>(f.peak_need_pages) / static_cast<double>(region_pages);
        f.max_need_pages = max_need;
        f.bound_applies = not_applicable.empty();
        f.floor = f.bound_applies ? robson_floor(max_need) : 0;
        f.bound_note = not_applicable;
        features.failure(f.severity, need);
        // Knuth/Robson: where the conditions hold, first fit cannot fail this early. On a reused
        // space, confirm on a fresh one first so the abort reproduces from the input alone.
        if (f.bound_applies && !(f.severity > f.floor) && reuse != nullptr) {
          for (const std::uint64_t offset : offsets)
            if (offset != kNotLive) (void)space.vfree_offset(offset);
          space.purge();
          reuse->space_.reset();
          return run_hunt(input, counters, nullptr, live_before);
        }
        VMF_CHECK(!f.bound_applies || f.severity > f.floor,
                  "allocator bug: severity %.6f at op %llu is below the first-fit floor %.6f (m = %llu)", f.severity,
                  static_cast<unsigned long long>(index), f.floor, static_cast<unsigned long long>(max_need));
        if (!run.finding || f.severity < run.finding->severity) {
          run.finding = f;
          snapshot(live_before);
        }
      }
    }
    const VirtualSpaceStats s = space.stats();
    peak = std::max(peak, s.live_reserved_bytes / kPageSize);
    features.state(peak, s);
  }
  features.finish();
  if (!run.finding) snapshot(live_before);
  if (reuse != nullptr) {  // leave the reused space as a fresh one: everything free
    for (const std::uint64_t offset : offsets)
      VMF_CHECK(offset == kNotLive || space.vfree_offset(offset) == FreeStatus::kOk,
                "hunt: cannot free a live area at the end");
    space.purge();
    const VirtualSpaceStats s = space.stats();
    VMF_CHECK(s.free_extents == 1 && s.free_bytes == h.region_bytes, "hunt: the reused space is not empty after a run");
  }
  return run;
}

void HuntProgress::note(const HuntRun& run) {
  ++execs_;
  ops_ += run.ops;
  if (!run.finding || (best_ && run.finding->severity >= *best_)) return;
  best_ = run.finding->severity;
  const double cpu = static_cast<double>(std::clock()) / CLOCKS_PER_SEC;
  std::fprintf(stderr, "vmfrag-hunt: best %.6f kind %s execs %llu ops %llu cpu %.3f\n", *best_,
               std::string(failure_name(run.finding->kind)).c_str(), static_cast<unsigned long long>(execs_),
               static_cast<unsigned long long>(ops_), cpu);
}

HuntReporting HuntReporting::from_environment() {
  HuntReporting r;
  const char* features = std::getenv("VMFRAG_HUNT_FEATURES");
  r.features_ = features == nullptr || std::strcmp(features, "0") != 0;
  if (const char* dir = std::getenv("VMFRAG_FINDINGS_DIR"); dir != nullptr && *dir != '\0')
    r.writer_ = std::make_unique<FindingWriter>(dir);
  if (const char* p = std::getenv("VMFRAG_HUNT_PROGRESS"); p != nullptr && std::strcmp(p, "1") == 0)
    r.progress_ = std::make_unique<HuntProgress>();
  return r;
}

void HuntReporting::record(const DecodedInput& input, const HuntRun& run) {
  if (progress_) progress_->note(run);
  if (run.finding && writer_) (void)writer_->offer(input, *run.finding);
}

DecodedInput blind_trace(std::uint64_t seed, std::uint64_t ops, unsigned free_percent) {
  DecodedInput d;
  d.header = hunt_decode_config().header;
  Prng rng(seed);
  std::vector<std::uint64_t> live;
  std::uint64_t next_id = 0;
  for (std::uint64_t i = 0; i < ops; ++i) {
    if (!live.empty() && rng.below(100) < free_percent) {
      const std::size_t k = static_cast<std::size_t>(rng.below(live.size()));
      d.ops.push_back(Op{OpKind::kFree, live[k], 0, kPageSize});
      live[k] = live.back();
      live.pop_back();
    } else {
      d.ops.push_back(Op{OpKind::kAlloc, next_id, (1 + rng.below(15)) * kPageSize, kPageSize});
      live.push_back(next_id++);
    }
  }
  return d;
}

std::string finding_comment(const HuntFinding& f) {
  char buf[512];
  std::string out;
  std::snprintf(buf, sizeof buf, "finding: %s at op %llu (the last op)\n", std::string(failure_name(f.kind)).c_str(),
                static_cast<unsigned long long>(f.op));
  out += buf;
  const bool physical = f.kind == FailureKind::kPhysicalFragmentation || f.kind == FailureKind::kNoPhysicalMemory;
  std::snprintf(buf, sizeof buf,
                physical ? "severity %.6f = peak live physical pages %llu (the failing request's block of %llu included) / physical memory %llu pages\n"
                         : "severity %.6f = peak live need %llu pages (guard and failing request of %llu included) / region %llu pages\n",
                f.severity, static_cast<unsigned long long>(f.peak_need_pages), static_cast<unsigned long long>(f.need_pages),
                static_cast<unsigned long long>(f.region_pages));
  out += buf;
  if (f.bound_applies) {
    std::snprintf(buf, sizeof buf, "first-fit floor ln2/H_%llu = %.6f, distance %.6f\n",
                  static_cast<unsigned long long>(f.max_need_pages), f.floor, f.severity - f.floor);
  } else {
    std::snprintf(buf, sizeof buf, "first-fit floor not applied: %s\n", f.bound_note.c_str());
  }
  out += buf;
  out += "signature " + f.signature();
  if (!f.buddy_free_blocks.empty()) {
    out += "\nbuddy free blocks by order at the failure:";
    for (const std::uint64_t n : f.buddy_free_blocks) out += " " + std::to_string(n);
  }
  return out;
}

std::filesystem::path FindingWriter::offer(const DecodedInput& input, const HuntFinding& f) {
  const std::string sig = f.signature();
  if (seen_.count(sig) != 0) return {};
  auto best = best_.find(f.kind);
  if (best != best_.end() && f.severity > best->second) return {};
  seen_.insert(sig);
  best_[f.kind] = f.severity;
  DecodedInput cut;
  cut.header = input.header;
  cut.ops.assign(input.ops.begin(), input.ops.begin() + static_cast<std::ptrdiff_t>(f.op + 1));
  char name[160];
  std::snprintf(name, sizeof name, "finding-%s-%.4f-%08zx.vmtrace", std::string(failure_name(f.kind)).c_str(), f.severity,
                std::hash<std::string>{}(sig) & 0xffffffffu);
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  const std::filesystem::path path = dir_ / name;
  const std::filesystem::path tmp = dir_ / (std::string(".") + name + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out || !write_decoded_trace(out, cut, finding_comment(f))) return {};
  }
  std::filesystem::rename(tmp, path, ec);
  return ec ? std::filesystem::path{} : path;
}

}  // namespace vmfrag
