// Import of CS:APP malloc-lab traces (.rep, as read by the lab's mdriver.c).
//
// Format: four header lines, each one non-negative integer: suggested heap size (bytes), number of
// ids, number of ops, weight. Then one op per line: `a <id> <bytes>` (malloc), `r <id> <bytes>`
// (realloc), `f <id>` (free). Ids are < the number of ids; blank lines are ignored.
//
// Scaling rule: one malloc-lab ALIGNMENT unit (8 bytes, mm.h) becomes one 4 KiB page, i.e.
// pages = max(1, ceil(bytes / unit_bytes)). The allocators of the lab round every request to 8
// bytes, so this loses nothing a lab allocator can see, and it keeps the trace's size ratios
// (a 16-byte and a 24-byte block stay 2 and 3 pages). The vmalloc guard page then plays the role
// of the lab's 8-byte boundary tag (4-byte header + 4-byte footer of the CS:APP implicit list).
// The region is the suggested heap size under the same rule (ceil(heap / unit) pages), raised to
// 64K when smaller (the allocator's least region); a heap beyond 16T needs --region.
//
// `r`: a realloc that does not grow beyond the pages the id holds stays in place (no op, as
// vrealloc shrinks in place); a growing one allocates a new vmtrace id and then frees the old one
// (alloc-copy-free, the worst case a lab allocator may take). Each malloc-lab id maps to the
// vmtrace id of its current block; vmtrace ids are fresh (0, 1, 2, ...).
#pragma once

#include <cstdint>
#include <istream>
#include <string>

#include "harness/trace/input_error.h"
#include "harness/trace/op.h"
#include "harness/workloads/workload.h"

namespace vmfrag {

struct MalloclabImportOptions {
  std::uint64_t unit_bytes = 8;    // malloc-lab bytes per vmtrace page
  std::uint64_t region_bytes = 0;  // 0 = from the suggested heap size; else a multiple of 4096
};

// Streams the trace to `sink` (begin, then ops) and returns the header. Memory O(number of ids).
// Throws InputError(file, line, ...) for a malformed header or op, an id out of range, `a` of a
// live id, `r`/`f` of an id that is not live, or an op count that differs from the header's
// (reported at the first extra op, or at the last line), a size whose scaled bytes overflow 64
// bits. Throws InputError("<args>", 0, ...) for a bad option (unit 0, a region the format refuses).
TraceHeader import_malloclab(std::istream& in, const std::string& file, OpSink& sink,
                             const MalloclabImportOptions& options = {});

}  // namespace vmfrag
