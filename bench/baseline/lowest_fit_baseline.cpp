#include "bench/baseline/lowest_fit_baseline.h"

namespace vmfrag::bench {
namespace {
constexpr std::uint64_t kPage = 4096;
}

LowestFitBaseline::LowestFitBaseline(const BaselineConfig& config) : config_(config) {
  free_.insert(0, config.region_bytes);
}

std::optional<std::uint64_t> LowestFitBaseline::alloc(std::uint64_t size, std::uint64_t align) {
  const std::uint64_t need = ((size + kPage - 1) & ~(kPage - 1)) + config_.guard_pages * kPage;
  auto fit = free_.lowest_fit(need, align);
  if (!fit && !lazy_.empty()) {
    purge();
    fit = free_.lowest_fit(need, align);
  }
  if (!fit) return std::nullopt;
  // Carve [offset, offset + need) out of the extent: the head keeps the node, a tail after it
  // either moves the node (no head) or becomes a node of its own.
  //   [extent.start ... offset)[offset ... offset+need)[offset+need ... end)
  //          head                       area                   tail
  const FreeExtent e = fit->extent;
  const std::uint64_t head = fit->offset - e.start;
  const std::uint64_t tail = e.start + e.size - (fit->offset + need);
  if (head == 0 && tail == 0) {
    free_.erase(e.start);
  } else if (head == 0) {
    free_.update(e.start, fit->offset + need, tail);
  } else {
    free_.update(e.start, e.start, head);
    if (tail != 0) free_.insert(fit->offset + need, tail);
  }
  live_.insert(fit->offset, need);
  return fit->offset;
}

bool LowestFitBaseline::free(std::uint64_t offset) {
  const std::optional<std::uint64_t> need = live_.take(offset);
  if (!need) return false;
  lazy_.emplace_back(offset, *need);
  lazy_pages_ += *need / kPage;
  if (lazy_pages_ > config_.lazy_threshold_pages) purge();
  return true;
}

void LowestFitBaseline::purge() {
  for (const auto& [start, bytes] : lazy_) release_range(start, bytes);
  lazy_.clear();
  lazy_pages_ = 0;
}

void LowestFitBaseline::release_range(std::uint64_t start, std::uint64_t bytes) {
  const std::uint64_t end = start + bytes;
  const std::optional<FreeExtent> left = free_.below(start);
  const std::optional<FreeExtent> right = free_.at_or_above(end);
  const bool merge_left = left && left->start + left->size == start;
  const bool merge_right = right && right->start == end;
  if (merge_left && merge_right) {
    free_.erase(right->start);
    free_.update(left->start, left->start, left->size + bytes + right->size);
  } else if (merge_left) {
    free_.update(left->start, left->start, left->size + bytes);
  } else if (merge_right) {
    free_.update(right->start, start, bytes + right->size);
  } else {
    free_.insert(start, bytes);
  }
}

}  // namespace vmfrag::bench
