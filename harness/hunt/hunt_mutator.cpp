#include "harness/hunt/hunt_mutator.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "harness/workloads/prng.h"

namespace vmfrag {
namespace {

std::uint64_t pages_of(std::uint64_t bytes) { return (bytes + kPageSize - 1) / kPageSize; }

}  // namespace

std::size_t robson_step(std::uint8_t* data, std::size_t size, std::size_t max_size, unsigned seed,
                        const DecodeConfig& c, RobsonScratch& scratch) {
  if (c.header_from_bytes || c.kinds.find('a') == std::string::npos || c.kinds.find('f') == std::string::npos)
    return size;
  Prng rng(seed);
  DecodedInput& in = scratch.in;
  decode_input_into({data, size}, c, in, scratch.decoder_live);
  const std::uint64_t guard = in.header.guard_pages, region_pages = in.header.region_bytes / kPageSize;

  // Where to step: just before the input's worst failure (the state that failure met), else the end.
  std::vector<LiveArea>& live = scratch.live;
  const HuntRun whole = run_hunt(in, {}, &scratch.space, &live);
  const std::size_t at = whole.finding ? static_cast<std::size_t>(whole.finding->op) : in.ops.size();

  // Needs (pages, guard included) by id, and the largest so far. Decoded ids are dense: 0, 1, 2...
  std::vector<std::uint64_t>& need_of = scratch.need_of;
  need_of.clear();
  std::uint64_t largest = 0;
  for (std::size_t i = 0; i < at; ++i)
    if (const Op& op = in.ops[i]; op.kind == OpKind::kAlloc) {
      if (need_of.size() <= op.id) need_of.resize(op.id + 1, 0);
      need_of[op.id] = pages_of(op.size) + guard;
      largest = std::max(largest, need_of[op.id]);
    }
  const std::uint64_t lo = c.min_pages + guard, hi = c.max_pages + guard;
  std::uint64_t next = 0;
  if (largest < lo || largest >= hi) {
    next = lo + rng.below(std::min<std::uint64_t>(hi - lo + 1, 8));
  } else if (rng.chance(1, 2)) {
    next = std::min(hi, 2 * largest);
  } else {
    next = largest + 1 + rng.below(hi - largest);
  }

  // Greedy in address order: free an area when the extent its release makes stays below `next`.
  std::sort(live.begin(), live.end(), [](const LiveArea& a, const LiveArea& b) { return a.offset_pages < b.offset_pages; });
  std::vector<Op>& ops = scratch.ops;
  ops.assign(in.ops.begin(), in.ops.begin() + static_cast<std::ptrdiff_t>(at));
  std::vector<bool>& gone = scratch.gone;
  gone.assign(need_of.size() + 1, false);
  std::uint64_t freed_pages = 0, left_free = live.empty() ? 0 : live[0].offset_pages;
  for (std::size_t i = 0; i < live.size(); ++i) {
    const std::uint64_t end = live[i].offset_pages + need_of[live[i].id];
    const std::uint64_t right_free = (i + 1 < live.size() ? live[i + 1].offset_pages : region_pages) - end;
    const std::uint64_t merged = left_free + need_of[live[i].id] + right_free;
    if (merged < next) {
      ops.push_back(Op{OpKind::kFree, live[i].id, 0, kPageSize});
      gone[live[i].id] = true;
      freed_pages += need_of[live[i].id];
      left_free = merged;
    } else {
      left_free = right_free;
    }
  }
  std::uint64_t count = freed_pages / next;
  count = count == 0 ? 1 + rng.below(32) : count + rng.below(3) - std::min<std::uint64_t>(count, 1);

  // The phase, then the rest of the input without frees of what was freed. Ids: the phase takes
  // the next fresh ones, the rest's allocations move past them; renumbered_ids makes them dense.
  std::uint64_t next_id = need_of.size();
  for (std::uint64_t k = 0; k < count; ++k) ops.push_back(Op{OpKind::kAlloc, next_id++, (next - guard) * kPageSize, kPageSize});
  for (std::size_t i = at; i < in.ops.size(); ++i) {
    const Op& op = in.ops[i];
    if (op.kind == OpKind::kFree && op.id < gone.size() && gone[op.id]) continue;
    Op moved = op;
    if (op.kind == OpKind::kAlloc || (op.kind == OpKind::kFree && op.id >= need_of.size())) moved.id += next_id;
    ops.push_back(moved);
  }
  DecodedInput renumbered = renumbered_ids(DecodedInput{in.header, ops, {}});
  // renumbered_ids marks frees of ids never allocated; drop them (and any second free of an id).
  std::vector<bool>& is_live = scratch.is_live;
  is_live.assign(renumbered.ops.size() + 1, false);
  std::size_t kept = 0;
  for (const Op& op : renumbered.ops) {
    if (op.kind == OpKind::kAlloc) {
      if (op.id >= is_live.size()) is_live.resize(op.id + 1, false);
      is_live[op.id] = true;
    } else if (op.kind == OpKind::kFree) {
      if (op.id >= is_live.size() || !is_live[op.id]) continue;
      is_live[op.id] = false;
    }
    renumbered.ops[kept++] = op;
  }
  renumbered.ops.resize(std::min<std::size_t>(kept, c.max_ops));
  const auto bytes = encode_input(in.header, renumbered.ops, c);
  if (!bytes) return size;
  const std::size_t n = std::min(bytes->size(), max_size / kRecordBytes * kRecordBytes);
  std::memcpy(data, bytes->data(), n);
  return n;
}

std::size_t mutate_hunt_input(std::uint8_t* data, std::size_t size, std::size_t max_size, unsigned seed,
                              const DecodeConfig& config, ByteMutator byte_mutate, RobsonScratch& scratch) {
  if (seed % 4 == 3) return robson_step(data, size, max_size, seed / 4, config, scratch);
  return mutate_half_by_records(data, size, max_size, seed, config, byte_mutate);
}

}  // namespace vmfrag
