#include "bench/tlb/tlb_model.h"

#include "allocator/core/assert.h"

namespace vmfrag::bench {

TlbConfig TlbConfig::zen3() {
  return TlbConfig{TlbLevelConfig{64, 64, 30}, TlbLevelConfig{2048, 16, 21}};
}

TlbModel::Level::Level(const TlbLevelConfig& config) : config_(config) {
  VMF_CHECK(config.entries > 0 && config.ways > 0 && config.entries % config.ways == 0,
            "TLB level: entries %u must be a non-zero multiple of ways %u", config.entries, config.ways);
  sets_ = config.entries / config.ways;
  entries_.resize(config.entries);
}

bool TlbModel::Level::lookup(std::uint64_t page_number, std::uint64_t tag, std::uint64_t now) {
  Entry* set = &entries_[(page_number % sets_) * config_.ways];
  for (std::uint32_t w = 0; w < config_.ways; ++w) {
    if (set[w].tag == tag) {
      set[w].last_use = now;
      return true;
    }
  }
  return false;
}

void TlbModel::Level::fill(std::uint64_t page_number, std::uint64_t tag, std::uint64_t now) {
  Entry* set = &entries_[(page_number % sets_) * config_.ways];
  Entry* victim = &set[0];
  for (std::uint32_t w = 0; w < config_.ways; ++w) {
    if (set[w].tag == 0) {  // an empty way before any eviction
      victim = &set[w];
      break;
    }
    if (set[w].last_use < victim->last_use) victim = &set[w];
  }
  victim->tag = tag;
  victim->last_use = now;
}

TlbModel::TlbModel(const TlbConfig& config) : l1_(config.l1), l2_(config.l2) {}

void TlbModel::access(std::uint64_t address, unsigned page_shift) {
  VMF_CHECK(page_shift >= 12 && page_shift < 64, "TLB model: page shift %u", page_shift);
  const std::uint64_t page_number = address >> page_shift;
  const std::uint64_t tag = (page_number << 6) | page_shift;
  const std::uint64_t now = ++clock_;
  ++counts_.accesses;
  if (l1_.holds(page_shift) && l1_.lookup(page_number, tag, now)) return;
  ++counts_.l1_misses;
  if (!(l2_.holds(page_shift) && l2_.lookup(page_number, tag, now))) {
    ++counts_.walks;
    if (l2_.holds(page_shift)) l2_.fill(page_number, tag, now);
  }
  if (l1_.holds(page_shift)) l1_.fill(page_number, tag, now);
}

}  // namespace vmfrag::bench
