// LowestFitBaseline: the minimal exact-lowest-fit address-space allocator that suite 1 (and issue
// 12's speed goals) measure vmfrag against. Written independently of allocator/: it shares no
// code with VirtualSpace, keeps no statistics and does no misuse classification.
//
// Contract (the same placements as VirtualSpace, which the benchmarks and tests assert):
//   need = round_up(size, 4 KiB) + guard_pages * 4 KiB; an area goes at the lowest offset o with
//   o % align == 0 and [o, o + need) free. A freed area's range is held lazily; right after a free
//   that makes the lazily held pages exceed the threshold (0 = eager), everything lazily held is
//   returned to free space, coalescing; an allocation that finds no fit while ranges are held
//   purges them and searches once more.
// Structures: free extents in ExtentAvlTree (augmented by subtree max size), live areas in a
// FlatOffsetMap (offset -> need), lazy ranges in a vector. alloc is O(log n), free O(1) expected
// plus O(log n) coalescing when eager. Region offsets only: no memory is reserved.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "bench/baseline/extent_avl_tree.h"
#include "bench/baseline/flat_offset_map.h"

namespace vmfrag::bench {

struct BaselineConfig {
  std::uint64_t region_bytes = 1ull << 30;  // non-zero page multiple
  std::uint64_t guard_pages = 1;
  std::uint64_t lazy_threshold_pages = 0;
};

class LowestFitBaseline {
 public:
  explicit LowestFitBaseline(const BaselineConfig& config);

  // The area's offset, or nullopt when nothing fits even after purging. size > 0, align a power of
  // two >= 4 KiB (the caller's contract: no argument checking on this hot path).
  [[nodiscard]] std::optional<std::uint64_t> alloc(std::uint64_t size, std::uint64_t align = 4096);
  // Frees the live area starting at offset; false (nothing changed) if no live area starts there.
  bool free(std::uint64_t offset);
  void purge();

  [[nodiscard]] std::size_t live_areas() const { return live_.size(); }
  [[nodiscard]] const ExtentAvlTree& free_tree() const { return free_; }

 private:
  void release_range(std::uint64_t start, std::uint64_t bytes);  // to free space, coalescing

  BaselineConfig config_;
  ExtentAvlTree free_;
  FlatOffsetMap live_;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> lazy_;  // start, bytes
  std::uint64_t lazy_pages_ = 0;
};

}  // namespace vmfrag::bench
