// Structure-aware mutation for the decoder's inputs (op_decoder.h): works on whole records, so a
// mutation changes ops, not the framing of every op after it. Used by the fuzz targets'
// LLVMFuzzerCustomMutator beside libFuzzer's byte-level LLVMFuzzerMutate.
//
// One mutation per call, chosen by `seed`:
//   insert    a record (random, or a copy of an existing one) at a record boundary
//   delete    a record
//   swap      two records
//   repeat    a run of 1..8 records 1..4 more times right after itself (allocation bursts)
//   resize    an allocation's size to an interesting value: 1 page, the largest, powers of two,
//             page - 31 and page - 3937 bytes (subpage configs), size 0, the alignment extremes;
//             a kmalloc's (tables with k but no a) to 2^j or 2^j + 1 pages
//   kind      a record's op kind to another entry of the table
//   phase     (tables with a, or else k, and f) a burst of 2-32 allocations of one size, then every other or
//             every third of them freed: the holes address-ordered first fit leaves behind and
//             cannot reuse for the next, larger phase (Robson's adversary is a sequence of these)
//   thin out  (tables with a or k, and f) frees every other or third live area from a point of the
//             allocation order on, widening old holes just short of a later request
//   Phases and thin-outs go at the end half the time (earlier, they shift the meaning of the frees
//   after them: a free names a live id by its place in the decoder's list); their frees are
//   computed by replaying the decoder's id rules up to the insertion point.
// The header bytes (header_from_bytes) are left alone except by `kind` on an empty input.
// Deterministic in (input, seed). Never writes beyond max_size; returns the new size.
#pragma once

#include <cstddef>
#include <cstdint>

#include "harness/decode/op_decoder.h"

namespace vmfrag {

[[nodiscard]] std::size_t mutate_records(std::uint8_t* data, std::size_t size, std::size_t max_size, unsigned seed,
                                         const DecodeConfig& config);

// The targets' LLVMFuzzerCustomMutator: half the mutations at op granularity (mutate_records, odd
// seeds), half libFuzzer's own byte-level ones (`byte_mutate` = LLVMFuzzerMutate, which also
// applies the dictionary; even seeds).
using ByteMutator = std::size_t (*)(std::uint8_t* data, std::size_t size, std::size_t max_size);
[[nodiscard]] inline std::size_t mutate_half_by_records(std::uint8_t* data, std::size_t size, std::size_t max_size,
                                                        unsigned seed, const DecodeConfig& config,
                                                        ByteMutator byte_mutate) {
  if (seed % 2 == 0) return byte_mutate(data, size, max_size);
  return mutate_records(data, size, max_size, seed / 2, config);
}

}  // namespace vmfrag
