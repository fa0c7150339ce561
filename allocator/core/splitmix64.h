// SplitMix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014):
// the project's one seeded stream of 64-bit numbers. Every step is explicit integer arithmetic, so
// the same seed gives the same numbers on every compiler, standard library and CPU; any seed,
// including 0, is fine. Users: seeded fault injection (OS and page allocator), the workload
// generators (seeding xoshiro), the benchmarks' sizes and victims.
#pragma once

#include <cstdint>

namespace vmfrag {

// Advances `state` and returns the next number of its stream.
[[nodiscard]] constexpr std::uint64_t splitmix64_next(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The same stream as an object, for callers that keep it as a member.
class SplitMix64 {
 public:
  explicit constexpr SplitMix64(std::uint64_t seed) : state_(seed) {}
  [[nodiscard]] constexpr std::uint64_t next() { return splitmix64_next(state_); }

 private:
  std::uint64_t state_;
};

}  // namespace vmfrag
