// FlatOffsetMap: the baseline's index of live areas, offset -> need, in one flat array.
//
// Open addressing with linear probing and backward-shift deletion (no tombstones), so a lookup is
// one hash and, at the load factor kept here (<= 1/2), one or two adjacent slots: the cache miss a
// node-based map pays per level is paid about once. Keys are page-multiple offsets; the all-ones
// value marks an empty slot and is never a key. Guarantees: find/insert/erase are exact; insert
// grows (rehashing everything, O(size)) only when the load would pass 1/2; erase never allocates.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace vmfrag::bench {

class FlatOffsetMap {
 public:
  FlatOffsetMap() { slots_.resize(16); }

  // Inserts key -> value; the key must not be present. Amortised O(1).
  void insert(std::uint64_t key, std::uint64_t value) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    place(key, value);
    ++size_;
  }

  // Removes key and returns its value, or nullopt when absent. O(1) expected; never allocates.
  std::optional<std::uint64_t> take(std::uint64_t key) {
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = home(key);
    while (slots_[i].key != key) {
      if (slots_[i].key == kEmpty) return std::nullopt;
      i = (i + 1) & mask;
    }
    const std::uint64_t value = slots_[i].value;
    // Backward shift: pull later members of the probe run into the hole so no lookup ever stops
    // early at it. An entry at j may move to hole i only if its home is not in (i, j].
    std::size_t hole = i;
    for (std::size_t j = (i + 1) & mask; slots_[j].key != kEmpty; j = (j + 1) & mask) {
      const std::size_t h = home(slots_[j].key);
      const bool home_between = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
      if (!home_between) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole].key = kEmpty;
    --size_;
    return value;
  }

  [[nodiscard]] std::size_t size() const { return size_; }

 private:
  static constexpr std::uint64_t kEmpty = ~std::uint64_t{0};
  struct Slot {
    std::uint64_t key = kEmpty;
    std::uint64_t value = 0;
  };
  [[nodiscard]] std::size_t home(std::uint64_t key) const {
    // Fibonacci hashing of the page number; the top bits index the power-of-two table.
    return static_cast<std::size_t>(((key >> 12) * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  void place(std::uint64_t key, std::uint64_t value) {
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = home(key);
    while (slots_[i].key != kEmpty) i = (i + 1) & mask;
    slots_[i] = Slot{key, value};
  }
  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    --shift_;
    for (const Slot& s : old) {
      if (s.key != kEmpty) place(s.key, s.value);
    }
  }

  std::vector<Slot> slots_;
  std::size_t size_ = 0;
  unsigned shift_ = 60;  // 64 - log2(slots_.size())
};

}  // namespace vmfrag::bench
