// fuzz_frag_hunt's custom mutator: the decoder's record mutations (op_mutator.h) plus one that
// knows where first fit put things, the *Robson step*.
//
// Robson's adversary against first fit (TAOCP 1 §2.5 ex. 43) is a sequence of phases of growing
// request sizes n1 < n2 < ...: before phase i+1 it frees every live area it can while leaving no
// free extent of n_{i+1} pages or more, then allocates n_{i+1}-page areas until the live need is
// back where it was. No hole below can take them, so each phase is placed above everything, and
// the live need stays flat while the address space is used up. Random record mutations rarely
// produce such a free pattern: which areas can go depends on where first fit placed them. So the
// Robson step runs the input once (on the hunt's space) to learn the live areas' offsets just
// before its worst failure, or at its end, picks a next need n (twice the largest need so far half the
// time, else any larger one up to the config's largest), frees greedily in address order every
// live area whose release keeps the merged free extent below n pages, and inserts those frees
// followed by about (freed pages / n) allocations of n pages (±1, or a random count when nothing
// was freed) at that point; later frees of the areas it freed are dropped and ids renumbered.
// A few steps in a row build a multi-phase adversary; the features (frag_hunt.cpp) keep each one
// that pushes placements higher at a low peak.
//
// Guarantees: the output is a valid input of the config (it decodes to the ops built, truncated
// at whole records to max_size); deterministic in (input, seed). Cost per Robson step: one run of
// the input plus O(ops × live) to encode the frees.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "harness/decode/op_mutator.h"
#include "harness/hunt/frag_hunt.h"

namespace vmfrag {

// What a Robson step reuses from one call to the next: the hunt's space and the buffers (no heap
// allocation per step once warmed up, bar renumbering and encoding the result).
struct RobsonScratch {
  HuntSpace space;
  DecodedInput in;
  std::vector<std::uint64_t> decoder_live, need_of;
  std::vector<LiveArea> live;
  std::vector<Op> ops;
  std::vector<bool> gone, is_live;
};

// One Robson step on `data` (the hunt's decode config `config`), in place; returns the new size
// (the old one when the input cannot take a step, e.g. the config has no `a` and `f`).
[[nodiscard]] std::size_t robson_step(std::uint8_t* data, std::size_t size, std::size_t max_size, unsigned seed,
                                      const DecodeConfig& config, RobsonScratch& scratch);

// The target's LLVMFuzzerCustomMutator: a Robson step for one seed in four (seed % 4 == 3), else
// mutate_half_by_records (libFuzzer's byte mutations for even seeds, half the calls; the record
// mutations for the other quarter).
[[nodiscard]] std::size_t mutate_hunt_input(std::uint8_t* data, std::size_t size, std::size_t max_size, unsigned seed,
                                            const DecodeConfig& config, ByteMutator byte_mutate,
                                            RobsonScratch& scratch);

}  // namespace vmfrag
