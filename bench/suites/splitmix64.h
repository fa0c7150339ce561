// splitmix64: the suites' one pseudo-random stream. Fixed and portable (integer arithmetic only),
// so every implementation and every machine sees the same sizes, victims and chains.
#pragma once

#include <cstdint>

namespace vmfrag::bench {

inline std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace vmfrag::bench
