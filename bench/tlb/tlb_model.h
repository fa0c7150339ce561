// TlbModel: a deterministic two-level data-TLB model, so TLB misses can be counted where no PMU
// exists (every CI runner, this VM) and set beside the hardware's count where one does.
//
// What it holds: two levels, each a set-associative array of translations (virtual page number
// plus page size), with true LRU replacement inside a set. A level holds only page sizes up to its
// `max_page_shift` (Zen 3's L2 DTLB holds no 1 GiB translations). Set index = page number modulo
// the number of sets; ways == entries makes a level fully associative.
//
// What an access does (the order matters, it decides what is evicted):
//   L1 hit                 -> LRU update, done.
//   L1 miss, L2 hit        -> l1_misses++, L2 LRU update, fill L1 (evicting its set's LRU entry).
//   L1 miss, L2 miss       -> l1_misses++, walks++, fill L2 (if it holds the size), then fill L1.
// Victims are dropped, not written to the other level. Guarantees: the counts depend only on the
// configuration and the sequence of (address, page size) accesses: same stream, same counts, on
// any machine.
#pragma once

#include <cstdint>
#include <vector>

namespace vmfrag::bench {

struct TlbLevelConfig {
  std::uint32_t entries = 0;         // > 0, a multiple of ways
  std::uint32_t ways = 0;            // > 0; entries == ways: fully associative
  unsigned max_page_shift = 30;      // largest page size (log2 bytes) this level caches
};

struct TlbConfig {
  TlbLevelConfig l1;
  TlbLevelConfig l2;
  // AMD Zen 3 (Family 19h) data TLB, after AMD's Software Optimization Guides: L1 DTLB 64 entries,
  // fully associative, 4 KiB/2 MiB/1 GiB pages; L2 DTLB 2048 entries holding 4 KiB and 2 MiB
  // translations (1 GiB pages are "smashed" into 2 MiB entries there; here they skip L2). AMD
  // describes the L2 as 12-way, but it is skewed-associative (2048 is no multiple of 12, the index
  // is a hash): a plain modulo-indexed array cannot copy it, so the model approximates it with 128
  // sets of 16 ways. Configurable like everything here.
  [[nodiscard]] static TlbConfig zen3();
};

struct TlbCounts {
  std::uint64_t accesses = 0;
  std::uint64_t l1_misses = 0;  // what AMD's PMU reports as L1 DTLB misses
  std::uint64_t walks = 0;      // misses in both levels: page-table walks (Intel's dTLB-load-misses)
};

class TlbModel {
 public:
  // Aborts (VMF_CHECK) on an inconsistent config: zero entries or ways, entries not a multiple of ways.
  explicit TlbModel(const TlbConfig& config);

  // One data access at `address` through a page of 2^page_shift bytes (12, 21 or 30). O(ways).
  void access(std::uint64_t address, unsigned page_shift);

  [[nodiscard]] const TlbCounts& counts() const { return counts_; }
  void reset_counts() { counts_ = TlbCounts{}; }  // keeps the cached translations (a warm TLB)

 private:
  struct Entry {
    std::uint64_t tag = 0;        // page number << 6 | page shift; 0 means empty (shift is never 0)
    std::uint64_t last_use = 0;
  };
  class Level {
   public:
    explicit Level(const TlbLevelConfig& config);
    [[nodiscard]] bool holds(unsigned page_shift) const { return page_shift <= config_.max_page_shift; }
    // True on a hit (and refreshes LRU); false on a miss, leaving the level unchanged.
    bool lookup(std::uint64_t page_number, std::uint64_t tag, std::uint64_t now);
    void fill(std::uint64_t page_number, std::uint64_t tag, std::uint64_t now);

   private:
    TlbLevelConfig config_;
    std::uint32_t sets_;
    std::vector<Entry> entries_;  // set-major: set s is entries_[s * ways, (s + 1) * ways)
  };

  Level l1_;
  Level l2_;
  TlbCounts counts_;
  std::uint64_t clock_ = 0;
};

}  // namespace vmfrag::bench
