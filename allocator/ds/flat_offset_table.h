// FlatOffsetTable<Value>: a hash table from 64-bit offsets to small trivially copyable values, each
// key stored beside its value in one flat array of slots, with a bitmap of the occupied slots.
//
// Why not absl::flat_hash_map: a lookup there reads a group of control bytes and only then the
// slot that matched, two dependent cache misses once the table outgrows the cache; at a million
// live areas they were the largest single item of a random vfree (bench/README.md, "Issue 12, an
// AVL tree and a flat offset table"). Here the key is in the slot, so a lookup at the load kept
// here (at most 1/2) reads one slot, or a few adjacent ones: about one miss. Which slots are empty
// is in a separate bitmap (one bit per slot: 32 KiB at 100k entries, so it stays in the cache), so
// an insert finds its empty slot without reading the slot array and only writes it (a store that
// misses does not stall), and iteration skips empty slots 64 at a time.
//
// Algorithm: open addressing with linear probing from a mixed hash of the key (home()); erase shifts
// later members of the probe run back into the hole (no tombstones), so a lookup stops at the first
// empty slot and probe runs never grow with churn. Guarantees:
//   - find/insert/erase are exact, for every 64-bit key;
//   - insert grows the arrays (doubling, rehashing every entry: O(size)) only when the entries
//     would pass half of the slots, and throws std::bad_alloc from that growth with nothing
//     changed; erase never allocates;
//   - a value's address stays valid until the next insert or erase of any key (both may move
//     entries: growth moves all of them, erase's back shift some of its probe run);
//   - iteration order is a function of the keys and the sequence of operations only (no address,
//     no random seed), though callers should not depend on it.
// Memory: capacity * (sizeof(Slot) + 1/8) bytes, capacity a power of two >= 2 * size (at least
// 64), never shrunk. Not thread-safe; the owner serialises access.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>

namespace vmfrag {

template <class Value>
class FlatOffsetTable {
  static_assert(std::is_trivially_copyable_v<Value>, "entries move by plain copies");

 public:
  FlatOffsetTable() { adopt(make_arrays(kMinCapacity), kMinCapacity); }
  FlatOffsetTable(const FlatOffsetTable&) = delete;
  FlatOffsetTable& operator=(const FlatOffsetTable&) = delete;

  [[nodiscard]] std::size_t size() const { return size_; }
  [[nodiscard]] std::size_t capacity() const { return capacity_; }

  // The value of key, or nullptr. Expected O(1): one slot, or a short run of adjacent ones.
  [[nodiscard]] Value* find(std::uint64_t key) {
    for (std::size_t i = home(key); occupied(i); i = (i + 1) & mask()) {
      if (slots_[i].key == key) return &slots_[i].value;
    }
    return nullptr;
  }
  [[nodiscard]] const Value* find(std::uint64_t key) const { return const_cast<FlatOffsetTable*>(this)->find(key); }

  // Adds key -> value and returns where the value now is. Precondition: key is not present.
  // Throws std::bad_alloc (nothing changed) if growing fails. Amortised O(1).
  Value& insert(std::uint64_t key, const Value& value) {
    if ((size_ + 1) * 2 > capacity_) grow();
    ++size_;
    return place(key, value);
  }

  // Removes the entry whose value `value` points to (from find or insert, with no insert or erase
  // since). Never allocates. O(length of the probe run).
  void erase(Value* value) {
    const Slot* slot = reinterpret_cast<const Slot*>(reinterpret_cast<unsigned char*>(value) - offsetof(Slot, value));
    std::size_t hole = static_cast<std::size_t>(slot - slots_.get());
    // Backward shift: an entry at j may fill the hole only if its home is not cyclically in
    // (hole, j]; otherwise a lookup for it, starting at its home, would stop at the hole.
    for (std::size_t j = (hole + 1) & mask(); occupied(j); j = (j + 1) & mask()) {
      const std::size_t h = home(slots_[j].key);
      const bool home_in_between = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
      if (!home_in_between) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    occupied_[hole / 64] &= ~(std::uint64_t{1} << (hole % 64));
    --size_;
  }

  // Calls f(key, const Value&) for every entry, in slot order. O(capacity / 64 + size).
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t w = 0; w < capacity_ / 64; ++w) {
      for (std::uint64_t bits = occupied_[w]; bits != 0; bits &= bits - 1) {
        const Slot& s = slots_[w * 64 + static_cast<std::size_t>(std::countr_zero(bits))];
        f(s.key, s.value);
      }
    }
  }

 private:
  struct Slot {
    std::uint64_t key;
    Value value;
  };
  struct Arrays {
    std::unique_ptr<Slot[]> slots;             // uninitialised where the bitmap says empty
    std::unique_ptr<std::uint64_t[]> occupied;  // bit i: slot i holds an entry
  };
  static constexpr std::size_t kMinCapacity = 64;  // one bitmap word

  [[nodiscard]] std::size_t mask() const { return capacity_ - 1; }
  [[nodiscard]] bool occupied(std::size_t i) const { return ((occupied_[i / 64] >> (i % 64)) & 1) != 0; }
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
    while (occupied(i)) i = (i + 1) & mask();
    occupied_[i / 64] |= std::uint64_t{1} << (i % 64);
    slots_[i].key = key;
    slots_[i].value = value;
    return slots_[i].value;
  }

  // Both arrays for `capacity` slots, all empty; throws std::bad_alloc with nothing leaked.
  static Arrays make_arrays(std::size_t capacity) {
    Arrays a;
    a.slots = std::make_unique_for_overwrite<Slot[]>(capacity);
    a.occupied = std::make_unique<std::uint64_t[]>(capacity / 64);  // zeroed: all empty
    return a;
  }
  void adopt(Arrays a, std::size_t capacity) {
    slots_ = std::move(a.slots);
    occupied_ = std::move(a.occupied);
    capacity_ = capacity;
    shift_ = 64 - static_cast<unsigned>(std::countr_zero(capacity));
  }

  void grow() {
    Arrays bigger = make_arrays(capacity_ * 2);  // may throw: nothing has changed yet
    const Arrays old{std::move(slots_), std::move(occupied_)};
    const std::size_t old_capacity = capacity_;
    adopt(std::move(bigger), old_capacity * 2);
    for (std::size_t w = 0; w < old_capacity / 64; ++w) {
      for (std::uint64_t bits = old.occupied[w]; bits != 0; bits &= bits - 1) {
        const Slot& s = old.slots[w * 64 + static_cast<std::size_t>(std::countr_zero(bits))];
        place(s.key, s.value);
      }
    }
  }

  std::unique_ptr<Slot[]> slots_;
  std::unique_ptr<std::uint64_t[]> occupied_;
  std::size_t capacity_ = 0;
  unsigned shift_ = 64;
  std::size_t size_ = 0;
};

}  // namespace vmfrag
