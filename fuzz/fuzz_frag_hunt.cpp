// libFuzzer target: the fragmentation hunt (harness/hunt/frag_hunt.h). Decodes the input with the
// hunt's fixed config (region 1 MiB, guard 1, lazy 0, page alignment, 1-15 pages, backing none),
// runs it on the address space, and steers libFuzzer toward fragmentation with state features in
// the extra-counters section. Environment:
//   VMFRAG_HUNT_FEATURES=0  no state features (coverage only: the evaluation's second arm)
//   VMFRAG_FINDINGS_DIR=D   write findings (the severity ladder) as vmtrace files into D
//   VMFRAG_HUNT_PROGRESS=1  print a line on stderr at each new best severity
// An allocator failure below the Robson/Knuth floor aborts (an allocator bug).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "harness/hunt/frag_hunt.h"
#include "harness/hunt/hunt_mutator.h"

// libFuzzer reads this section as extra coverage. `used` keeps it when nothing else refers to it
// (clang drops it silently otherwise; a test checks __start___libfuzzer_extra_counters exists).
// Internal linkage: g++ ignores `used` (with a warning) on an external array.
__attribute__((used, section("__libfuzzer_extra_counters"))) static std::uint8_t
    vmfrag_hunt_counters[vmfrag::kHuntCounterCount];

namespace {
vmfrag::HuntReporting g_reporting;
vmfrag::HuntSpace g_space;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_reporting = vmfrag::HuntReporting::from_environment();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const vmfrag::DecodeConfig config = vmfrag::hunt_decode_config();
  static vmfrag::DecodedInput input;  // reused: no allocation per input once warmed up
  static std::vector<std::uint64_t> live;
  vmfrag::decode_input_into({data, size}, config, input, live);
  const std::span<std::uint8_t> counters =
      g_reporting.features() ? std::span<std::uint8_t>(vmfrag_hunt_counters) : std::span<std::uint8_t>{};
  g_reporting.record(input, vmfrag::run_hunt(input, counters, &g_space));
  return 0;
}

#ifdef VMFRAG_FUZZING
extern "C" std::size_t LLVMFuzzerMutate(std::uint8_t* data, std::size_t size, std::size_t max_size);
extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size, std::size_t max_size,
                                               unsigned int seed) {
  static const vmfrag::DecodeConfig config = vmfrag::hunt_decode_config();
  static vmfrag::RobsonScratch scratch;  // the Robson step runs inputs to learn placements
  return vmfrag::mutate_hunt_input(data, size, max_size, seed, config, LLVMFuzzerMutate, scratch);
}
#endif
