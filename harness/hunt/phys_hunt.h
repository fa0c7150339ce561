// The physical-fragmentation hunt: runs a decoded input of kmalloc (`k`), free (`f`) and purge ops
// on a Vmalloc (backing none: the buddy allocator's bookkeeping, nothing mapped), scores each
// kmalloc failure, feeds libFuzzer state features and shares frag_hunt.h's findings, ladder and
// progress lines. fuzz_phys_hunt is a thin shell around this.
//
// Severity of a physical failure at op i = P / physical pages, where P is the peak live physical
// pages up to and including the failure: max over ops before i of the pages held by live kmalloc
// blocks (2^order each: the buddy allocator's rounding is part of the cost), and the pages live at
// i plus the failing request's block. Lower is worse fragmentation: the buddy allocator could not
// find a block of the order while that small a share of memory was ever in use. An input's
// finding is its failure of lowest severity (the first such on ties). The kinds are
// physical-fragmentation (enough free pages, no free block of the order) and no-physical-memory
// (too few free pages: no fragmentation finding, as no-virtual-space is not).
//
// No floor is applied: first fit's Robson bound says nothing about a binary buddy allocator, and
// the finding says so. Signature: frag_hunt.h's "<kind>:need<n>:peak<P>", n the failing block's
// pages (2^order), P as above in pages. The finding's comment also records the buddy allocator's
// free blocks per order at the failure (like /proc/buddyinfo), for the report's physical map.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "harness/decode/op_decoder.h"
#include "harness/hunt/frag_hunt.h"
#include "harness/hunt/kept_instance.h"

namespace vmfrag {

class Vmalloc;

// A Vmalloc kept between runs of the same header (creating one maps the region and the physical
// memory: most of a short run). A run frees what it left live; the buddy allocator then holds the
// unique tiling of free maximal blocks a fresh one starts with, and it allocates the lowest block
// of the smallest order that fits, so a reused instance places exactly as a fresh one.
class PhysHuntSpace {
 public:
  PhysHuntSpace();
  ~PhysHuntSpace();
  PhysHuntSpace(const PhysHuntSpace&) = delete;
  PhysHuntSpace& operator=(const PhysHuntSpace&) = delete;

 private:
  friend HuntRun run_phys_hunt(const DecodedInput&, std::span<std::uint8_t>, PhysHuntSpace*);
  KeptInstance<Vmalloc> vm_;
  struct Block {
    void* addr = nullptr;
    std::uint64_t pages = 0;
  };
  std::vector<Block> blocks_;  // run_phys_hunt's live id -> block table, kept for its capacity
};

// Runs `input` (only k, f and p ops; others are a precondition violation, VMF_CHECK) on a fresh
// Vmalloc of its header in backing none, or on `reuse`'s when it has one of the same header.
// counters: kHuntCounterCount bytes to mark (layout in phys_hunt.cpp), or empty for none. The
// finding's buddy_free_blocks holds the free blocks per order at the failure. Deterministic.
// Cost: O(ops × kMaxOrder) plus creating the instance when not reused.
[[nodiscard]] HuntRun run_phys_hunt(const DecodedInput& input, std::span<std::uint8_t> counters,
                                    PhysHuntSpace* reuse = nullptr);

// The hunt a trace belongs to, run once: run_hunt for a, f and p ops only, run_phys_hunt for k, f
// and p only; nullopt for any other mix (the minimiser's predicate and `minimize` use this).
[[nodiscard]] std::optional<HuntRun> run_any_hunt(const DecodedInput& input);

}  // namespace vmfrag
