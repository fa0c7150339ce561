// Seeded pseudo-random numbers for the workload generators.
//
// Why not <random>: std::*_distribution objects are implementation-defined, so libstdc++ and libc++
// turn the same engine output into different values, and a (workload, seed) pair would produce
// different traces on different machines. Here every step is explicit 64-bit integer arithmetic,
// so the same seed yields the same numbers on every compiler, standard library and CPU.
// No floating point anywhere.
#pragma once

#include <cstddef>
#include <cstdint>

#include "allocator/core/splitmix64.h"

namespace vmfrag {

// xoshiro256** 1.0 (Blackman, Vigna, "Scrambled linear pseudorandom number generators", 2018).
// Cost O(1) per draw; never fails; state is 32 bytes.
class Prng {
 public:
  explicit constexpr Prng(std::uint64_t seed) {
    SplitMix64 sm(seed);
    for (auto& word : s_) word = sm.next();
  }

  [[nodiscard]] constexpr std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, bound). bound 0 returns 0 (the caller asked for an empty range; returning a
  // value rather than aborting keeps generators simple where a count can legitimately reach 0).
  // Unbiased: draws below 2^64 mod bound are rejected, so every residue is equally likely.
  [[nodiscard]] constexpr std::uint64_t below(std::uint64_t bound) {
    if (bound == 0) return 0;
    const std::uint64_t threshold = (0 - bound) % bound;  // == 2^64 mod bound
    for (;;) {
      const std::uint64_t r = next();
      if (r >= threshold) return r % bound;
    }
  }

  // Uniform in [lo, hi]; requires lo <= hi.
  [[nodiscard]] constexpr std::uint64_t inclusive(std::uint64_t lo, std::uint64_t hi) {
    if (hi - lo == ~std::uint64_t{0}) return next();
    return lo + below(hi - lo + 1);
  }

  // True with probability numerator/denominator (exact rational, no floating point).
  [[nodiscard]] constexpr bool chance(std::uint64_t numerator, std::uint64_t denominator) {
    return below(denominator) < numerator;
  }

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4] = {};
};

// One entry of a discrete distribution: `weight` out of the table's total weight.
struct WeightedRange {
  std::uint64_t weight;
  std::uint64_t lo;  // inclusive
  std::uint64_t hi;  // inclusive
};

// Picks a bucket by weight, then a uniform value inside it. Deterministic, integer-only.
// Precondition: at least one entry with weight > 0.
template <std::size_t N>
[[nodiscard]] constexpr std::uint64_t pick_weighted(Prng& rng, const WeightedRange (&table)[N]) {
  std::uint64_t total = 0;
  for (const auto& e : table) total += e.weight;
  std::uint64_t r = rng.below(total);
  for (const auto& e : table) {
    if (r < e.weight) return rng.inclusive(e.lo, e.hi);
    r -= e.weight;
  }
  return table[N - 1].hi;  // unreachable: r < total
}

}  // namespace vmfrag
