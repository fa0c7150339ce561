// Seeds for randomised tests: a fixed sweep by default, one seed when VMFRAG_SEED=N is set, so a
// failure printed with its seed replays alone.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace vmfrag {

// `count` seeds from `first`, or only VMFRAG_SEED when it is set.
inline std::vector<std::uint64_t> seeds_to_run(std::uint64_t first, int count) {
  if (const char* s = std::getenv("VMFRAG_SEED")) return {std::strtoull(s, nullptr, 10)};
  std::vector<std::uint64_t> seeds;
  for (int i = 0; i < count; ++i) seeds.push_back(first + static_cast<std::uint64_t>(i));
  return seeds;
}

// How much work a stress test does: `smoke` (the test suite's short form) unless the environment
// variable `name` sets another count (the nightly job's long form, e.g. VMFRAG_STRESS_OPS=200000).
inline std::uint64_t stress_count(const char* name, std::uint64_t smoke) {
  const char* s = std::getenv(name);
  const std::uint64_t n = s ? std::strtoull(s, nullptr, 10) : 0;
  return n ? n : smoke;
}

// For SCOPED_TRACE: "seed N (replay with VMFRAG_SEED=N)".
inline std::string seed_note(std::uint64_t seed) {
  return "seed " + std::to_string(seed) + " (replay with VMFRAG_SEED=" + std::to_string(seed) + ")";
}

}  // namespace vmfrag
