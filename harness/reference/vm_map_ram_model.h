// VmMapRamModel: the reference side of the trace op `m` (vm_map_ram of fresh pages), written
// independently of allocator/vmalloc/vmap_block: a plain list of blocks with three counters each,
// on top of the two other reference models (address space and physical pages).
//
// The contract it follows (harness/TRACE_FORMAT.md, "Physical memory"): n fresh order-0 pages
// (lowest first); n <= 64 pages take 2^ceil(log2 n) pages of the first block, in creation order,
// with that many never-used pages, at page offset block_pages - free; otherwise a new block-sized,
// block-aligned area is reserved and serves it at offset 0. More than 64 pages get their own
// area. Freeing only counts pages dirty; a block whose pages are all dirty is freed (lazily, like
// any area); `p` first frees the blocks with no live mapping left (free + dirty == block_pages,
// dirty < block_pages), then purges.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "harness/reference/physical_model.h"
#include "harness/reference/reference_model.h"

namespace vmfrag::reference {

class VmMapRamModel {
 public:
  VmMapRamModel(ReferenceModel& space, PhysicalModel& phys, std::uint64_t block_pages = 1024,
                std::uint64_t max_alloc_pages = 64)
      : space_(space), phys_(phys), block_pages_(block_pages), max_alloc_(max_alloc_pages) {}

  struct Mapping {
    FailureKind failure = FailureKind::kNone;
    std::uint64_t offset = 0;          // in the region
    std::vector<std::uint64_t> pfns;   // the fresh pages, in mapping order
  };

  // `m <id> <pages>`. Failure (nothing kept): invalid-argument for 0 pages, no-physical-memory,
  // or the address space's failure kinds. O(blocks + the models' costs).
  [[nodiscard]] Mapping map(std::uint64_t pages);
  // `f` of an `m`: false if `offset` is not a live mapping here (a divergence for the caller).
  [[nodiscard]] bool unmap(std::uint64_t offset);
  // Before the space's purge at `p`.
  void purge_fragmented();

 private:
  struct Block {
    std::uint64_t start, free, dirty;
    std::uint64_t serial;  // creation order: the kernel's list order
  };
  struct Live {
    bool in_block;
    std::uint64_t block_start, pages;  // pages: 2^order taken from the block
    std::vector<std::uint64_t> pfns;
  };
  void drop_block(std::map<std::uint64_t, Block>::iterator it);

  ReferenceModel& space_;
  PhysicalModel& phys_;
  std::uint64_t block_pages_, max_alloc_;
  std::uint64_t next_serial_ = 0;
  std::map<std::uint64_t, Block> blocks_;  // start -> block
  std::map<std::uint64_t, Live> live_;     // mapping offset -> mapping
};

}  // namespace vmfrag::reference
