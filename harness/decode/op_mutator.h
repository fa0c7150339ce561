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
//             page - 31 and page - 3937 bytes (subpage configs), size 0, the alignment extremes
//   kind      a record's op kind to another entry of the table
// The header bytes (header_from_bytes) are left alone except by `kind` on an empty input.
// Deterministic in (input, seed). Never writes beyond max_size; returns the new size.
#pragma once

#include <cstddef>
#include <cstdint>

#include "harness/decode/op_decoder.h"

namespace vmfrag {

[[nodiscard]] std::size_t mutate_records(std::uint8_t* data, std::size_t size, std::size_t max_size, unsigned seed,
                                         const DecodeConfig& config);

}  // namespace vmfrag
