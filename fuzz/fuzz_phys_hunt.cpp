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
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "harness/decode/op_mutator.h"
#include "harness/hunt/phys_hunt.h"

// `used`: clang drops an unreferenced extra-counters array silently (a test checks with nm).
__attribute__((used, section("__libfuzzer_extra_counters"))) static std::uint8_t
    vmfrag_phys_hunt_counters[vmfrag::kHuntCounterCount];

namespace {
bool g_features = true;
std::unique_ptr<vmfrag::FindingWriter> g_writer;
std::unique_ptr<vmfrag::HuntProgress> g_progress;
vmfrag::PhysHuntSpace g_space;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* features = std::getenv("VMFRAG_HUNT_FEATURES");
  g_features = features == nullptr || std::strcmp(features, "0") != 0;
  if (const char* dir = std::getenv("VMFRAG_FINDINGS_DIR"); dir != nullptr && *dir != '\0')
    g_writer = std::make_unique<vmfrag::FindingWriter>(dir);
  if (const char* p = std::getenv("VMFRAG_HUNT_PROGRESS"); p != nullptr && std::strcmp(p, "1") == 0)
    g_progress = std::make_unique<vmfrag::HuntProgress>();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const vmfrag::DecodeConfig config = vmfrag::phys_hunt_decode_config();
  static vmfrag::DecodedInput input;  // reused: no allocation per input once warmed up
  static std::vector<std::uint64_t> live;
  vmfrag::decode_input_into({data, size}, config, input, live);
  const vmfrag::HuntRun run = vmfrag::run_phys_hunt(
      input, g_features ? std::span<std::uint8_t>(vmfrag_phys_hunt_counters) : std::span<std::uint8_t>{}, &g_space);
  if (g_progress) g_progress->note(run);
  if (run.finding && g_writer) (void)g_writer->offer(input, *run.finding);
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
