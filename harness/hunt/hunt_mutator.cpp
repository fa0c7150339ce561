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
                        const DecodeConfig& c, HuntSpace& space) {
  if (c.header_from_bytes || c.kinds.find('a') == std::string::npos || c.kinds.find('f') == std::string::npos)
    return size;
  Prng rng(seed);
  const DecodedInput in = decode_input({data, size}, c);
  const std::uint64_t guard = in.header.guard_pages, region_pages = in.header.region_bytes / kPageSize;

  // Where to step: just before the input's worst failure (the state that failure met), else the end.
  static std::vector<LiveArea> live;  // capacity kept between calls
  const HuntRun whole = run_hunt(in, {}, &space, &live);
  const std::size_t at = whole.finding ? static_cast<std::size_t>(whole.finding->op) : in.ops.size();
  const DecodedInput prefix{in.header, {in.ops.begin(), in.ops.begin() + static_cast<std::ptrdiff_t>(at)}, {}};

  // Needs (pages, guard included) by id, and the largest so far.
  std::vector<std::uint64_t> need_of;
  std::uint64_t largest = 0;
  for (const Op& op : prefix.ops)
    if (op.kind == OpKind::kAlloc) {
      need_of.resize(std::max<std::size_t>(need_of.size(), op.id + 1), 0);
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
  std::vector<std::uint64_t> freed;
  std::uint64_t freed_pages = 0, left_free = live.empty() ? 0 : live[0].offset_pages;
  for (std::size_t i = 0; i < live.size(); ++i) {
    const std::uint64_t end = live[i].offset_pages + need_of[live[i].id];
    const std::uint64_t right_free = (i + 1 < live.size() ? live[i + 1].offset_pages : region_pages) - end;
    const std::uint64_t merged = left_free + need_of[live[i].id] + right_free;
    if (merged < next) {
      freed.push_back(live[i].id);
      freed_pages += need_of[live[i].id];
      left_free = merged;
    } else {
      left_free = right_free;
    }
  }
  std::uint64_t count = freed_pages / next;
  count = count == 0 ? 1 + rng.below(32) : count + rng.below(3) - std::min<std::uint64_t>(count, 1);

  // The new op list: prefix, the frees, the phase, then the rest without frees of what was freed.
  std::vector<Op> ops = prefix.ops;
  std::vector<bool> gone(need_of.size() + 1, false);
  for (const std::uint64_t id : freed) {
    ops.push_back(Op{OpKind::kFree, id, 0, kPageSize});
    gone[id] = true;
  }
  std::uint64_t next_id = need_of.size();
  for (std::uint64_t k = 0; k < count; ++k) ops.push_back(Op{OpKind::kAlloc, next_id++, (next - guard) * kPageSize, kPageSize});
  for (std::size_t i = at; i < in.ops.size(); ++i) {
    const Op& op = in.ops[i];
    if (op.kind == OpKind::kFree && op.id < gone.size() && gone[op.id]) continue;
    Op moved = op;
    if (op.kind == OpKind::kAlloc || (op.kind == OpKind::kFree && op.id >= need_of.size())) moved.id += next_id;  // fresh ids
    ops.push_back(moved);
  }
  const DecodedInput renumbered = renumbered_ids(DecodedInput{in.header, ops, {}});
  std::vector<Op> valid;  // renumbered_ids marks frees of ids never allocated; drop them
  valid.reserve(renumbered.ops.size());
  std::vector<bool> is_live;
  for (const Op& op : renumbered.ops) {
    if (op.kind == OpKind::kAlloc) {
      is_live.resize(std::max<std::size_t>(is_live.size(), op.id + 1), false);
      is_live[op.id] = true;
    } else if (op.kind == OpKind::kFree) {
      if (op.id >= is_live.size() || !is_live[op.id]) continue;
      is_live[op.id] = false;
    }
    valid.push_back(op);
  }
  if (valid.size() > c.max_ops) valid.resize(c.max_ops);
  const auto bytes = encode_input(in.header, valid, c);
  if (!bytes) return size;
  const std::size_t n = std::min(bytes->size(), max_size / kRecordBytes * kRecordBytes);
  std::memcpy(data, bytes->data(), n);
  return n;
}

std::size_t mutate_hunt_input(std::uint8_t* data, std::size_t size, std::size_t max_size, unsigned seed,
                              const DecodeConfig& config, ByteMutator byte_mutate, HuntSpace& space) {
  if (seed % 4 == 3) return robson_step(data, size, max_size, seed / 4, config, space);
  return mutate_half_by_records(data, size, max_size, seed, config, byte_mutate);
}

}  // namespace vmfrag
