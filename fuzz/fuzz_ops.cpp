// libFuzzer target: decoded ops (every kind, header from the input, backing memfd) on the real
// Vmalloc beside ReferenceVmalloc, compared after every op, check(kStructure) after every op and
// check(kFull) at the end, and misuse issued on purpose (harness/replay/ops_check.h). Any
// disagreement aborts with the op index.
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "allocator/core/assert.h"
#include "harness/decode/op_mutator.h"
#include "harness/replay/ops_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const vmfrag::DecodeConfig config = vmfrag::ops_decode_config();
  static vmfrag::OpsInstances instances;  // allocators reused between inputs (see ops_check.h)
  static vmfrag::DecodedInput input;  // reused: no allocation per input once warmed up
  static std::vector<std::uint64_t> live;
  vmfrag::decode_input_into({data, size}, config, input, live);
  const vmfrag::OpsCheckResult r = vmfrag::run_ops_check(input, {}, &instances);
  VMF_CHECK(r.ok(), "fuzz_ops: op %" PRIu64 ": %s", r.op, r.problem.c_str());
  return 0;
}

#ifdef VMFRAG_FUZZING
extern "C" std::size_t LLVMFuzzerMutate(std::uint8_t* data, std::size_t size, std::size_t max_size);
extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size, std::size_t max_size,
                                               unsigned int seed) {
  static const vmfrag::DecodeConfig config = vmfrag::ops_decode_config();
  return vmfrag::mutate_half_by_records(data, size, max_size, seed, config, LLVMFuzzerMutate);
}
#endif
