// libFuzzer target: the physical-fragmentation hunt (harness/hunt/phys_hunt.h). Decodes the input
// with its fixed config (phys 1 MiB = 256 pages, kmalloc of 1-32 pages and frees, backing none),
// runs it on the buddy allocator through Vmalloc::kmalloc/kfree, and steers libFuzzer toward
// physical fragmentation with state features in the extra-counters section. Severity, signature
// and features: phys_hunt.h/.cpp. Environment as fuzz_frag_hunt's:
//   VMFRAG_HUNT_FEATURES=0  no state features (coverage only)
//   VMFRAG_FINDINGS_DIR=D   write findings (the severity ladder) as vmtrace files into D
//   VMFRAG_HUNT_PROGRESS=1  print a line on stderr at each new best severity
#include <cstddef>
#include <cstdint>
#include <vector>

#include "harness/decode/op_mutator.h"
#include "harness/hunt/phys_hunt.h"

// `used`: clang drops an unreferenced extra-counters array silently (a test checks with nm).
__attribute__((used, section("__libfuzzer_extra_counters"))) static std::uint8_t
    vmfrag_phys_hunt_counters[vmfrag::kHuntCounterCount];

namespace {
vmfrag::HuntReporting g_reporting;
vmfrag::PhysHuntSpace g_space;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_reporting = vmfrag::HuntReporting::from_environment();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const vmfrag::DecodeConfig config = vmfrag::phys_hunt_decode_config();
  static vmfrag::DecodedInput input;  // reused: no allocation per input once warmed up
  static std::vector<std::uint64_t> live;
  vmfrag::decode_input_into({data, size}, config, input, live);
  const std::span<std::uint8_t> counters =
      g_reporting.features() ? std::span<std::uint8_t>(vmfrag_phys_hunt_counters) : std::span<std::uint8_t>{};
  g_reporting.record(input, vmfrag::run_phys_hunt(input, counters, &g_space));
  return 0;
}

#ifdef VMFRAG_FUZZING
extern "C" std::size_t LLVMFuzzerMutate(std::uint8_t* data, std::size_t size, std::size_t max_size);
extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size, std::size_t max_size,
                                               unsigned int seed) {
  static const vmfrag::DecodeConfig config = vmfrag::phys_hunt_decode_config();
  return vmfrag::mutate_half_by_records(data, size, max_size, seed, config, LLVMFuzzerMutate);
}
#endif
