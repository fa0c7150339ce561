#include "harness/reference/reference_model.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <utility>

#include "allocator/core/assert.h"

namespace vmfrag::reference {

namespace {

constexpr std::uint64_t kU64Max = std::numeric_limits<std::uint64_t>::max();

bool is_power_of_two(std::uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

// round_up(size, page) + guard_pages * page, or 0 when any step overflows (0 is never a valid span
// because size 0 is rejected before this is called).
std::uint64_t span_for(std::uint64_t size, std::uint64_t guard_pages) {
  if (size > kU64Max - (kPageSize - 1)) return 0;
  const std::uint64_t rounded = (size + kPageSize - 1) / kPageSize * kPageSize;
  if (guard_pages > kU64Max / kPageSize) return 0;
  const std::uint64_t guard = guard_pages * kPageSize;
  if (rounded > kU64Max - guard) return 0;
  return rounded + guard;
}

std::uint64_t round_up_to_page(std::uint64_t size) { return (size + kPageSize - 1) / kPageSize * kPageSize; }

}  // namespace

ModelConfig ModelConfig::from_header(const TraceHeader& header) {
  return ModelConfig{header.region_bytes, header.guard_pages, header.lazy_pages};
}

std::string_view free_status_name(FreeStatus status) {
  switch (status) {
    case FreeStatus::kOk: return "ok";
    case FreeStatus::kNotAllocated: return "not-allocated";
    case FreeStatus::kInterior: return "interior-of-live-area";
    case FreeStatus::kAlreadyFreed: return "already-freed-lazily";
  }
  return "unknown";
}

ReferenceModel::ReferenceModel(const ModelConfig& config) : config_(config) {
  VMF_CHECK(config.region_bytes != 0 && config.region_bytes % kPageSize == 0,
            "ReferenceModel: region_bytes %llu is not a non-zero page multiple",
            static_cast<unsigned long long>(config.region_bytes));
  free_.emplace(0, config.region_bytes);
}

/* First fit by address: the extents are disjoint and ascending, so the first extent holding a fit
 * yields the lowest fitting offset overall (every offset in a later extent is larger). Within an
 * extent clipped to [lo, hi), the lowest aligned candidate is the clipped start rounded up to
 * `align`; if that one does not fit, no higher aligned offset in the same extent does either, as
 * the room after it only shrinks. This is exact: a fit is never missed because of alignment. */
ReferenceModel::Fit ReferenceModel::find_fit(std::uint64_t need, std::uint64_t align, std::uint64_t lo,
                                             std::uint64_t hi) const {
  for (const auto& [start, size] : free_) {
    if (start >= hi) break;
    const std::uint64_t begin = std::max(start, lo);
    const std::uint64_t end = std::min(start + size, hi);  // start + size <= region: no overflow
    if (begin >= end) continue;
    const std::uint64_t misalignment = begin & (align - 1);
    const std::uint64_t padding = misalignment == 0 ? 0 : align - misalignment;
    if (padding >= end - begin) continue;  // also covers begin + padding overflowing
    const std::uint64_t candidate = begin + padding;
    if (end - candidate >= need) return Fit{true, start, candidate};
  }
  return Fit{};
}

std::uint64_t ReferenceModel::free_bytes_in(std::uint64_t lo, std::uint64_t hi) const {
  std::uint64_t total = 0;
  for (const auto& [start, size] : free_) {
    const std::uint64_t begin = std::max(start, lo);
    const std::uint64_t end = std::min(start + size, hi);
    if (begin < end) total += end - begin;
  }
  return total;
}

Placement ReferenceModel::alloc(std::uint64_t size, std::uint64_t align) {
  return alloc_in_range(size, align, 0, config_.region_bytes);
}

Placement ReferenceModel::alloc_in_range(std::uint64_t size, std::uint64_t align, std::uint64_t lo,
                                         std::uint64_t hi) {
  Placement result;
  const std::uint64_t need = size == 0 ? 0 : span_for(size, config_.guard_pages);
  if (need == 0 || !is_power_of_two(align) || align < kPageSize || lo % kPageSize != 0 ||
      hi % kPageSize != 0 || lo >= hi || hi > config_.region_bytes) {
    result.failure = FailureKind::kInvalidArgument;
    return result;
  }
  Fit fit = find_fit(need, align, lo, hi);
  if (!fit.found && lazy_pages_ > 0) {
    purge();
    result.purged = true;
    fit = find_fit(need, align, lo, hi);
  }
  if (!fit.found) {
    result.failure = free_bytes_in(lo, hi) >= need ? FailureKind::kVirtualFragmentation
                                                   : FailureKind::kNoVirtualSpace;
    return result;
  }
  // Carve [offset, offset + need) out of its extent, keeping the pieces on either side.
  const std::uint64_t extent_end = fit.extent_start + free_.at(fit.extent_start);
  free_.erase(fit.extent_start);
  if (fit.offset > fit.extent_start) free_.emplace(fit.extent_start, fit.offset - fit.extent_start);
  if (fit.offset + need < extent_end) free_.emplace(fit.offset + need, extent_end - (fit.offset + need));
  live_.emplace(fit.offset, AreaRecord{need, size, align});
  result.offset = fit.offset;
  result.span = need;
  return result;
}

FreeStatus ReferenceModel::free(std::uint64_t offset) {
  const auto it = live_.find(offset);
  if (it == live_.end()) {
    if (lazy_.count(offset) != 0) return FreeStatus::kAlreadyFreed;
    auto after = live_.upper_bound(offset);
    if (after != live_.begin()) {
      const auto& [start, area] = *std::prev(after);
      if (offset - start < area.span) return FreeStatus::kInterior;
    }
    return FreeStatus::kNotAllocated;
  }
  const std::uint64_t span = it->second.span;
  live_.erase(it);
  lazy_.emplace(offset, span);
  lazy_pages_ += span / kPageSize;
  if (lazy_pages_ > config_.lazy_threshold_pages) purge();
  return FreeStatus::kOk;
}

bool ReferenceModel::unreserve(std::uint64_t offset) {
  const auto it = live_.find(offset);
  if (it == live_.end()) return false;
  std::uint64_t start = offset, size = it->second.span;
  live_.erase(it);
  auto next = free_.lower_bound(start);
  if (next != free_.end() && start + size == next->first) {
    size += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start) {
      prev->second += size;
      return true;
    }
  }
  free_.emplace(start, size);
  return true;
}

/* Merges the two ascending lists (free extents, lazy ranges) into one ascending list and joins
 * touching neighbours in the same pass, so the result is again a coalesced extent list; linear in
 * their total length. Ranges never overlap (validate() checks that), so touching is the only case. */
void ReferenceModel::purge() {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> merged;
  merged.reserve(free_.size() + lazy_.size());
  std::merge(free_.begin(), free_.end(), lazy_.begin(), lazy_.end(), std::back_inserter(merged),
             [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::pair<std::uint64_t, std::uint64_t>> coalesced;
  coalesced.reserve(merged.size());
  for (const auto& range : merged) {
    if (!coalesced.empty() && coalesced.back().first + coalesced.back().second == range.first)
      coalesced.back().second += range.second;
    else
      coalesced.push_back(range);
  }
  free_.clear();
  free_.insert(boost::container::ordered_unique_range, coalesced.begin(), coalesced.end());
  lazy_.clear();
  lazy_pages_ = 0;
  ++purges_;
}

ModelStats ReferenceModel::stats() const {
  ModelStats s;
  for (const auto& [start, size] : free_) {
    s.free_bytes += size;
    s.largest_free_bytes = std::max(s.largest_free_bytes, size);
  }
  s.free_extents = free_.size();
  for (const auto& [start, span] : lazy_) s.lazy_bytes += span;
  for (const auto& [start, area] : live_) s.live_bytes += round_up_to_page(area.requested);
  s.live_areas = live_.size();
  s.external_fragmentation =
      s.free_bytes == 0 ? 0.0
                        : 1.0 - static_cast<double>(s.largest_free_bytes) / static_cast<double>(s.free_bytes);
  return s;
}

std::vector<Extent> ReferenceModel::free_extents() const {
  std::vector<Extent> out;
  out.reserve(free_.size());
  for (const auto& [start, size] : free_) out.push_back({start, size});
  return out;
}

std::vector<Extent> ReferenceModel::lazy_ranges() const {
  std::vector<Extent> out;
  out.reserve(lazy_.size());
  for (const auto& [start, span] : lazy_) out.push_back({start, span});
  return out;
}

std::vector<LiveArea> ReferenceModel::live_areas() const {
  std::vector<LiveArea> out;
  out.reserve(live_.size());
  for (const auto& [start, area] : live_) out.push_back({start, area.span, area.requested, area.align});
  return out;
}

/* Partition check: sort every free, lazy and live range by start and walk them; the space is
 * covered exactly once iff each range starts where the previous one ended, the first at 0 and the
 * last ending at region_bytes (with non-empty ranges, a start before that point is an overlap and
 * one after it a gap). Coalescing is checked separately on the free list alone, because a free
 * extent may legitimately touch a live or lazy range but never another free extent. */
std::string ReferenceModel::validate() const {
  const auto at = [](std::uint64_t offset) { return std::to_string(offset); };
  struct Range {
    std::uint64_t start, size;
    const char* kind;
  };
  std::vector<Range> all;
  std::uint64_t previous_free_end = 0;
  bool first_free = true;
  for (const auto& [start, size] : free_) {
    if (!first_free && start <= previous_free_end)
      return "free extent at " + at(start) + " touches or overlaps the one before (not coalesced)";
    first_free = false;
    previous_free_end = start + size;
    all.push_back({start, size, "free"});
  }
  std::uint64_t lazy_bytes = 0;
  for (const auto& [start, span] : lazy_) {
    lazy_bytes += span;
    all.push_back({start, span, "lazy"});
  }
  if (lazy_bytes / kPageSize != lazy_pages_)
    return "lazy page count " + std::to_string(lazy_pages_) + " but lazy ranges hold " +
           std::to_string(lazy_bytes / kPageSize) + " pages";
  if (lazy_pages_ > config_.lazy_threshold_pages)
    return "lazy page count " + std::to_string(lazy_pages_) + " exceeds the threshold without a purge";
  for (const auto& [start, area] : live_) {
    if (area.requested == 0 || span_for(area.requested, config_.guard_pages) != area.span)
      return "live area at " + at(start) + " has span " + std::to_string(area.span) +
             " for a request of " + std::to_string(area.requested);
    if (!is_power_of_two(area.align) || start % area.align != 0)
      return "live area at " + at(start) + " is not aligned to its align " + std::to_string(area.align);
    all.push_back({start, area.span, "live"});
  }
  std::sort(all.begin(), all.end(), [](const Range& a, const Range& b) { return a.start < b.start; });
  std::uint64_t expected_start = 0;
  for (const Range& r : all) {
    if (r.size == 0 || r.start % kPageSize != 0 || r.size % kPageSize != 0)
      return std::string(r.kind) + " range at " + at(r.start) + " of " + std::to_string(r.size) +
             " bytes is empty or not page-aligned";
    if (r.start != expected_start)
      return std::string(r.kind) + " range at " + at(r.start) +
             (r.start < expected_start ? " overlaps the range before it" : " leaves a gap after ") +
             (r.start < expected_start ? "" : at(expected_start));
    if (r.size > config_.region_bytes - r.start)
      return std::string(r.kind) + " range at " + at(r.start) + " extends beyond the region";
    expected_start = r.start + r.size;
  }
  if (expected_start != config_.region_bytes)
    return "ranges cover [0, " + at(expected_start) + ") but the region is " + at(config_.region_bytes) +
           " bytes";
  return "";
}

}  // namespace vmfrag::reference
