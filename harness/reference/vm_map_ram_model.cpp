#include "harness/reference/vm_map_ram_model.h"

#include <algorithm>

namespace vmfrag::reference {
namespace {
constexpr std::uint64_t kPage = 4096;
}  // namespace

VmMapRamModel::Mapping VmMapRamModel::map(std::uint64_t pages) {
  Mapping m;
  if (pages == 0) {
    m.failure = FailureKind::kInvalidArgument;
    return m;
  }
  PhysPages got = phys_.allocate_pages(pages);
  if (!got.ok()) {
    m.failure = got.failure;
    return m;
  }
  m.pfns = std::move(got.pfns);
  auto give_back = [&] {
    (void)phys_.free_pages(m.pfns);
    m.pfns.clear();
  };
  if (pages > max_alloc_) {
    const Placement p = space_.alloc(pages * kPage, kPage);
    if (!p.ok()) {
      give_back();
      m.failure = p.failure;
      return m;
    }
    m.offset = p.offset;
    live_[p.offset] = Live{false, 0, pages, m.pfns};
    return m;
  }
  std::uint64_t take = 1;
  while (take < pages) take *= 2;
  // The first block, in creation order, with enough never-used pages.
  Block* chosen = nullptr;
  for (auto& [start, b] : blocks_)
    if (b.free >= take && (chosen == nullptr || b.serial < chosen->serial)) chosen = &b;
  if (chosen == nullptr) {
    const Placement p = space_.alloc(block_pages_ * kPage, block_pages_ * kPage);
    if (!p.ok()) {
      give_back();
      m.failure = p.failure;
      return m;
    }
    chosen = &blocks_.emplace(p.offset, Block{p.offset, block_pages_, 0, next_serial_++}).first->second;
  }
  m.offset = chosen->start + (block_pages_ - chosen->free) * kPage;
  chosen->free -= take;
  live_[m.offset] = Live{true, chosen->start, take, m.pfns};
  return m;
}

bool VmMapRamModel::unmap(std::uint64_t offset) {
  auto it = live_.find(offset);
  if (it == live_.end()) return false;
  const Live l = std::move(it->second);
  live_.erase(it);
  if (phys_.free_pages(l.pfns) != PhysFreeStatus::kOk) return false;
  if (!l.in_block) return space_.free(offset) == FreeStatus::kOk;
  auto b = blocks_.find(l.block_start);
  if (b == blocks_.end()) return false;
  b->second.dirty += l.pages;
  if (b->second.dirty == block_pages_) drop_block(b);
  return true;
}

// In creation order, like the kernel walking its per-CPU list.
void VmMapRamModel::purge_fragmented() {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> doomed;  // (serial, start)
  for (const auto& [start, b] : blocks_)
    if (b.free != 0 && b.free + b.dirty == block_pages_) doomed.emplace_back(b.serial, start);
  std::sort(doomed.begin(), doomed.end());
  for (const auto& [serial, start] : doomed) drop_block(blocks_.find(start));
}

void VmMapRamModel::drop_block(std::map<std::uint64_t, Block>::iterator it) {
  (void)space_.free(it->first);
  blocks_.erase(it);
}

}  // namespace vmfrag::reference
