#include "harness/hunt/phys_hunt.h"

#include <algorithm>
#include <array>
#include <bit>

#include "allocator/core/assert.h"
#include "allocator/vmalloc/vmalloc.h"
#include "harness/replay/ops_check.h"

namespace vmfrag {
namespace {

// The physical hunt's state features, frontiers as in frag_hunt.cpp (an input is new to libFuzzer
// only when it improves one):
//   [0, 512)    peak live pages (16 buckets) × the highest end of a block placed at that peak or
//               below (32 buckets of memory/32), all cells up to it: the buddy allocator hands out
//               the lowest block that fits, so a block placed high while little is live means the
//               blocks below are split into pieces too small for it — the road to a failure.
//   [512, 640)  the failure ladder: 128 severity buckets, all from the lowest failure's up
//   [640, 704)  64 buckets of live pages / memory, after each op
//   [704, 880)  failing order (11) × 16 severity buckets, the ladder per order
class PhysFeatures {
 public:
  static constexpr std::size_t kPeakBuckets = 16, kHighBuckets = 32;
  static constexpr std::size_t kHigh = 0, kLadder = 512, kLive = 640, kOrderLadder = 704;
  static_assert(kHigh + kPeakBuckets * kHighBuckets <= kLadder && kOrderLadder + 11 * 16 <= kHuntCounterCount);

  PhysFeatures(std::span<std::uint8_t> c, std::uint64_t total_pages) : c_(c), total_(total_pages) {
    VMF_CHECK(c.empty() || c.size() >= kHuntCounterCount, "too few counters");
  }
  void placed(std::uint64_t peak_pages, std::uint64_t end_pfn) {
    if (c_.empty()) return;
    std::size_t& h = high_[peak_bucket(peak_pages)];
    h = std::max(h, 1 + std::min(kHighBuckets - 1, static_cast<std::size_t>(end_pfn * kHighBuckets / total_)));
  }
  void live(std::uint64_t live_pages) {
    if (c_.empty()) return;
    c_[kLive + fraction_bucket(static_cast<double>(live_pages) / static_cast<double>(total_), 64)] = 1;
  }
  void failure(double severity, unsigned order) {
    if (c_.empty()) return;
    mark_counters(c_, kLadder + fraction_bucket(severity, 128), kLadder + 128);
    const std::size_t row = kOrderLadder + std::min(order, 10u) * 16;
    mark_counters(c_, row + fraction_bucket(severity, 16), row + 16);
  }
  void finish() {
    if (c_.empty()) return;
    std::size_t highest = 0;
    for (std::size_t p = 0; p < kPeakBuckets; ++p) {
      highest = std::max(highest, high_[p]);
      if (highest > 0) mark_counters(c_, kHigh + p * kHighBuckets, kHigh + p * kHighBuckets + highest);
    }
  }

 private:
  std::size_t peak_bucket(std::uint64_t peak_pages) const {
    return std::min(kPeakBuckets - 1, static_cast<std::size_t>(peak_pages * kPeakBuckets / total_));
  }
  std::span<std::uint8_t> c_;
  std::uint64_t total_;
  std::array<std::size_t, kPeakBuckets> high_{};
};

// The pages kmalloc's block holds for `size` bytes: 2^order, order = ceil(log2(pages)).
std::uint64_t block_pages(std::uint64_t size) { return std::bit_ceil((size + kPageSize - 1) / kPageSize); }

std::unique_ptr<Vmalloc> create_vmalloc(const TraceHeader& h) {
  auto created = Vmalloc::create(vmalloc_config_of(h));
  VMF_CHECK(created.vm != nullptr, "cannot create the allocator: %s", created.message.c_str());
  return std::move(created.vm);
}

}  // namespace

PhysHuntSpace::PhysHuntSpace() = default;
PhysHuntSpace::~PhysHuntSpace() = default;

HuntRun run_phys_hunt(const DecodedInput& input, std::span<std::uint8_t> counters, PhysHuntSpace* reuse) {
  const TraceHeader& h = input.header;
  std::unique_ptr<Vmalloc> fresh;  // without `reuse`: this run's own instance
  Vmalloc& vm = reuse != nullptr ? reuse->vm_.for_header(h, create_vmalloc) : *(fresh = create_vmalloc(h));
  std::uint64_t max_id = 0;
  for (const Op& op : input.ops)
    if (op.kind == OpKind::kKmalloc) max_id = std::max(max_id, op.id);
  if (max_id > 4 * input.ops.size() + 1024) return run_phys_hunt(renumbered_ids(input), counters, reuse);
  // Live id -> (address, pages); address nullptr: not live. Kept in `reuse`: no allocation per run.
  std::vector<PhysHuntSpace::Block> local_blocks;
  std::vector<PhysHuntSpace::Block>& blocks = reuse == nullptr ? local_blocks : reuse->blocks_;
  blocks.assign(input.ops.empty() ? 0 : max_id + 1, PhysHuntSpace::Block{});

  const std::uint64_t total = vm.phys().page_count();
  PhysFeatures features(counters, total);
  std::uint64_t live = 0, peak = 0;
  HuntRun run;
  for (const Op& op : input.ops) {
    const std::uint64_t index = run.ops++;
    if (op.kind == OpKind::kFree) {
      if (op.id < blocks.size() && blocks[op.id].addr != nullptr) {
        VMF_CHECK(vm.kfree(blocks[op.id].addr) == ReleaseStatus::kOk, "kfree of id %llu refused",
                  static_cast<unsigned long long>(op.id));
        live -= blocks[op.id].pages;
        blocks[op.id] = PhysHuntSpace::Block{};
      }
    } else if (op.kind == OpKind::kPurge) {
      vm.purge();
    } else {
      VMF_CHECK(op.kind == OpKind::kKmalloc, "the physical hunt runs k, f and p only (got '%c')", static_cast<char>(op.kind));
      const VmallocResult r = vm.kmalloc(op.size);
      const std::uint64_t pages = block_pages(op.size);
      if (r.ok()) {
        blocks[op.id] = PhysHuntSpace::Block{r.addr, pages};
        live += pages;
        features.placed(std::max(peak, live), *vm.phys().virt_to_pfn(r.addr) + pages);
      } else if (r.failure == FailureKind::kPhysicalFragmentation || r.failure == FailureKind::kNoPhysicalMemory) {
        ++run.failures;
        HuntFinding f;
        f.kind = r.failure;
        f.op = index;
        f.need_pages = pages;
        f.peak_need_pages = std::max(peak, live + pages);
        f.region_pages = total;
        f.severity = static_cast<double>(f.peak_need_pages) / static_cast<double>(total);
        f.max_need_pages = pages;
        f.bound_note = "a buddy allocator (kmalloc), not first fit";
        features.failure(f.severity, static_cast<unsigned>(std::countr_zero(pages)));
        if (!run.finding || f.severity < run.finding->severity) {
          const BuddyStats s = vm.phys().stats();
          f.buddy_free_blocks.assign(s.free_blocks.begin(), s.free_blocks.end());
          run.finding = std::move(f);
        }
      }
    }
    peak = std::max(peak, live);
    features.live(live);
  }
  features.finish();
  if (reuse != nullptr) {  // leave the reused instance as a fresh one: every page free
    for (const PhysHuntSpace::Block& b : blocks)
      VMF_CHECK(b.addr == nullptr || vm.kfree(b.addr) == ReleaseStatus::kOk, "phys hunt: cannot free a live block at the end");
    VMF_CHECK(vm.phys().stats().free_pages == total, "phys hunt: the reused instance is not empty after a run");
  }
  return run;
}

std::optional<HuntRun> run_any_hunt(const DecodedInput& input) {
  bool virt = false, phys = false;
  for (const Op& op : input.ops) {
    virt |= op.kind == OpKind::kAlloc;
    phys |= op.kind == OpKind::kKmalloc;
    if (op.kind != OpKind::kAlloc && op.kind != OpKind::kKmalloc && op.kind != OpKind::kFree && op.kind != OpKind::kPurge)
      return std::nullopt;
  }
  if (virt && phys) return std::nullopt;
  return phys ? run_phys_hunt(input, {}) : run_hunt(input, {});
}

}  // namespace vmfrag
