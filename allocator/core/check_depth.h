// How much a check() verifies: the levels shared by VirtualSpace, PhysicalMemory and Vmalloc.
//
//   kStructure  every structural invariant, recomputed from the layer's own bookkeeping: trees,
//               tiling, ownership, counters. No system call, no write through a mapping, no
//               repeated search: cheap enough to run after every operation of a fuzz input.
//   kFull       kStructure plus the probes: fit searches compared with a linear scan, and writes
//               through the mappings read back through a second view (memfd aliasing).
// What each layer verifies at each level is stated beside its check().
#pragma once

#include <cstdint>

namespace vmfrag {

enum class CheckDepth : std::uint8_t { kStructure, kFull };

}  // namespace vmfrag
