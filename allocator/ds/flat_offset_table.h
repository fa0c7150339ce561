// FlatOffsetTable<Value>: a hash table from 64-bit offsets to small trivially copyable values, each
// key stored beside its value in one flat array of slots.
//
// Why not absl::flat_hash_map: a lookup there reads a group of control bytes and only then the
// slot that matched, two dependent cache misses once the table outgrows the cache; at a million
// live areas they were the largest single item of a random vfree (bench/README.md, "Issue 12, an
// AVL tree and a flat offset table"). Here the key is in the slot, so a lookup at the load kept
// here (at most 1/2) reads one slot, or a few adjacent ones: about one miss.
//
// Algorithm: open addressing with linear probing from a mixed hash of the key (home()); erase shifts
// later members of the probe run back into the hole (no tombstones), so a lookup stops at the first
// empty slot and probe runs never grow with churn. Guarantees:
//   - find/insert/erase are exact; the all-ones key marks an empty slot and is never a key;
//   - insert grows the array (doubling, rehashing every entry: O(size)) only when the entries
//     would pass half of the slots, and throws std::bad_alloc from that growth with nothing
//     changed; erase never allocates;
//   - a value's address stays valid until the next insert or erase of any key (both may move
//     entries: growth moves all of them, erase's back shift some of its probe run);
//   - iteration order is a function of the keys and the sequence of operations only (no address,
//     no random seed), though callers should not depend on it.
// Memory: capacity * sizeof(Slot), capacity a power of two >= 2 * size (at least 16), never shrunk.
// Not thread-safe; the owner serialises access.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>

namespace vmfrag {

template <class Value>
class FlatOffsetTable {
  static_assert(std::is_trivially_copyable_v<Value>, "entries move by plain copies");

 public:
  static constexpr std::uint64_t kEmptyKey = ~std::uint64_t{0};

  FlatOffsetTable() { allocate(kMinCapacity); }
  FlatOffsetTable(const FlatOffsetTable&) = delete;
  FlatOffsetTable& operator=(const FlatOffsetTable&) = delete;

  [[nodiscard]] std::size_t size() const { return size_; }
  [[nodiscard]] std::size_t capacity() const { return capacity_; }

  // The value of key, or nullptr. Expected O(1): one slot, or a short run of adjacent ones.
  [[nodiscard]] Value* find(std::uint64_t key) {
    for (std::size_t i = home(key);; i = (i + 1) & mask()) {
      if (slots_[i].key == key) return &slots_[i].value;
      if (slots_[i].key == kEmptyKey) return nullptr;
    }
  }
  [[nodiscard]] const Value* find(std::uint64_t key) const { return const_cast<FlatOffsetTable*>(this)->find(key); }

  // Adds key -> value and returns where the value now is. Preconditions: key != kEmptyKey and key
  // is not present. Throws std::bad_alloc (nothing changed) if growing fails. Amortised O(1).
  Value& insert(std::uint64_t key, const Value& value) {
    if ((size_ + 1) * 2 > capacity_) grow();
    ++size_;
    return place(key, value);
  }

  // Removes the entry whose value `value` points to (from find or insert, with no insert or erase
  // since). Never allocates. O(length of the probe run).
  void erase(Value* value) {
    std::size_t hole = static_cast<std::size_t>(reinterpret_cast<Slot*>(reinterpret_cast<unsigned char*>(value) -
                                                                        offsetof(Slot, value)) -
                                                slots_.get());
    // Backward shift: an entry at j may fill the hole only if its home is not cyclically in
    // (hole, j]; otherwise a lookup for it, starting at its home, would pass the hole's empty slot.
    for (std::size_t j = (hole + 1) & mask(); slots_[j].key != kEmptyKey; j = (j + 1) & mask()) {
      const std::size_t h = home(slots_[j].key);
      const bool home_in_between = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
      if (!home_in_between) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole].key = kEmptyKey;
    --size_;
  }

  // Calls f(key, const Value&) for every entry, in slot order. O(capacity).
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i < capacity_; ++i) {
      if (slots_[i].key != kEmptyKey) f(slots_[i].key, slots_[i].value);
    }
  }

 private:
  struct Slot {
    std::uint64_t key;
    Value value;
  };
  static constexpr std::size_t kMinCapacity = 16;

  [[nodiscard]] std::size_t mask() const { return capacity_ - 1; }
  // MurmurHash3's 64-bit finalizer, whose top bits index the table: every key bit reaches every
  // hash bit, whatever pattern the keys follow (offsets are page multiples, often consecutive).
  [[nodiscard]] std::size_t home(std::uint64_t key) const {
    key ^= key >> 33;
    key *= 0xFF51AFD7ED558CCDull;
    key ^= key >> 33;
    key *= 0xC4CEB9FE1A85EC53ull;
    key ^= key >> 33;
    return static_cast<std::size_t>(key >> shift_);
  }

  Value& place(std::uint64_t key, const Value& value) {
    std::size_t i = home(key);
    while (slots_[i].key != kEmptyKey) i = (i + 1) & mask();
    slots_[i].key = key;
    slots_[i].value = value;
    return slots_[i].value;
  }

  void allocate(std::size_t capacity) {
    slots_ = std::make_unique_for_overwrite<Slot[]>(capacity);
    for (std::size_t i = 0; i < capacity; ++i) slots_[i].key = kEmptyKey;
    capacity_ = capacity;
    shift_ = 64 - static_cast<unsigned>(__builtin_ctzll(capacity));
  }

  void grow() {
    std::unique_ptr<Slot[]> old = std::move(slots_);
    const std::size_t old_capacity = capacity_;
    try {
      allocate(old_capacity * 2);
    } catch (...) {
      slots_ = std::move(old);
      throw;
    }
    for (std::size_t i = 0; i < old_capacity; ++i) {
      if (old[i].key != kEmptyKey) place(old[i].key, old[i].value);
    }
  }

  std::unique_ptr<Slot[]> slots_;
  std::size_t capacity_ = 0;
  unsigned shift_ = 64;
  std::size_t size_ = 0;
};

}  // namespace vmfrag
