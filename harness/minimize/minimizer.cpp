#include "harness/minimize/minimizer.h"

#include <optional>
#include <set>
#include <unordered_map>

#include "harness/hunt/frag_hunt.h"
#include "harness/hunt/phys_hunt.h"
#include "harness/replay/replay.h"

namespace vmfrag {
namespace {

struct Candidate {
  TraceHeader header;
  std::vector<Op> ops;
};

// Keeps the id rules after ops were removed: drops `f` of an id not allocated (its allocation was
// removed) and an allocation of an id still live (its `f` was removed).
std::vector<Op> repair_ids(const std::vector<Op>& ops) {
  std::set<std::uint64_t> live;
  std::vector<Op> out;
  out.reserve(ops.size());
  for (const Op& op : ops) {
    if (op.kind == OpKind::kFree) {
      if (live.erase(op.id) == 0) continue;
    } else if (op.kind != OpKind::kPurge) {
      if (!live.insert(op.id).second) continue;
    }
    out.push_back(op);
  }
  return out;
}

class Minimizer {
 public:
  explicit Minimizer(FailureKind kind) : kind_(kind) {}

  // Normalises `c` (see the header comment) and returns it if its first failure is of kind_.
  std::optional<Candidate> judge(Candidate c) {
    if (c.header.region_bytes < kMinRegionBytes) return std::nullopt;
    c.ops = repair_ids(c.ops);
    for (int round = 0; round < 4; ++round) {
      ++replays_;
      VectorOpSource source(c.header, c.ops);
      ReplayOptions options;
      options.maps_at_failures = 0;
      const ReplayResult r = replay(source, options);
      // Index of the first failure of the wanted kind, and the failed ops before it.
      std::optional<std::uint64_t> target;
      std::set<std::uint64_t> other_failures;
      for (const FailureRecord& f : r.failures) {
        if (f.kind == kind_) {
          target = f.op;
          break;
        }
        other_failures.insert(f.op);
      }
      if (!target) return std::nullopt;
      if (other_failures.empty()) {
        c.ops.resize(*target + 1);
        return c;
      }
      std::vector<Op> kept;
      for (std::uint64_t i = 0; i <= *target; ++i)
        if (other_failures.count(i) == 0) kept.push_back(c.ops[i]);
      c.ops = repair_ids(kept);
      // Dropping a failed allocation can change when a purge happens; replay again to confirm.
    }
    return std::nullopt;
  }

  std::uint64_t replays() const { return replays_; }

 private:
  FailureKind kind_;
  std::uint64_t replays_ = 0;
};

// The same steps judged by a caller's predicate.
class PredicateMinimizer {
 public:
  explicit PredicateMinimizer(const MinimizePredicate& p) : p_(p) {}
  std::optional<Candidate> judge(Candidate c) {
    if (c.header.region_bytes < kMinRegionBytes) return std::nullopt;
    c.ops = repair_ids(c.ops);
    ++replays_;
    const std::optional<std::size_t> keep = p_(c.header, c.ops);
    if (!keep) return std::nullopt;
    if (*keep < c.ops.size()) c.ops = repair_ids(std::vector<Op>(c.ops.begin(), c.ops.begin() + static_cast<std::ptrdiff_t>(*keep)));
    return c;
  }
  std::uint64_t replays() const { return replays_; }

 private:
  const MinimizePredicate& p_;
  std::uint64_t replays_ = 0;
};

// Region: halve while it holds, then try removing smaller fractions.
template <class M>
bool shrink_region(M& m, Candidate& best) {
  bool changed = false;
  for (std::uint64_t div = 2; div <= 64; div *= 2) {
    for (;;) {
      std::uint64_t cut = (best.header.region_bytes / div) & ~(kPageSize - 1);
      if (cut == 0) break;
      Candidate c = best;
      c.header.region_bytes -= cut;
      auto ok = m.judge(c);
      if (!ok) break;
      best = std::move(*ok);
      changed = true;
    }
  }
  return changed;
}

// Delta debugging, complement-only: remove chunks, halving the chunk size when a pass removes none.
template <class M>
bool remove_chunks(M& m, Candidate& best) {
  bool changed = false;
  std::size_t chunk = std::max<std::size_t>(1, best.ops.size() / 2);
  for (;;) {
    bool removed = false;
    // The last op is the failure itself; it can only go if another failure takes its place.
    for (std::size_t start = 0; start < best.ops.size();) {
      Candidate c = best;
      const std::size_t end = std::min(start + chunk, c.ops.size());
      c.ops.erase(c.ops.begin() + static_cast<std::ptrdiff_t>(start), c.ops.begin() + static_cast<std::ptrdiff_t>(end));
      if (auto ok = m.judge(std::move(c))) {
        best = std::move(*ok);
        removed = changed = true;
      } else {
        start += chunk;
      }
    }
    if (!removed) {
      if (chunk == 1) break;
      chunk /= 2;
    }
  }
  return changed;
}

// Sizes: halve each allocation (in whole pages) while the failure holds.
template <class M>
bool shrink_sizes(M& m, Candidate& best) {
  bool changed = false;
  for (std::size_t i = 0; i < best.ops.size(); ++i) {
    for (;;) {
      if (i >= best.ops.size() || best.ops[i].kind != OpKind::kAlloc || best.ops[i].size <= kPageSize) break;
      Candidate c = best;
      const std::uint64_t pages = (c.ops[i].size + kPageSize - 1) / kPageSize;
      c.ops[i].size = (pages / 2) * kPageSize;
      auto ok = m.judge(std::move(c));
      if (!ok) {
        // Also try rounding an odd size to its page multiple: easier to read.
        Candidate r = best;
        r.ops[i].size = pages * kPageSize;
        if (r.ops[i].size != best.ops[i].size)
          if (auto ok2 = m.judge(std::move(r))) {
            best = std::move(*ok2);
            changed = true;
          }
        break;
      }
      best = std::move(*ok);
      changed = true;
    }
  }
  return changed;
}

template <class M>
bool simplify_header(M& m, Candidate& best) {
  if (best.header.lazy_pages == 0) return false;
  Candidate c = best;
  c.header.lazy_pages = 0;
  auto ok = m.judge(std::move(c));
  if (!ok) return false;
  best = std::move(*ok);
  return true;
}

// Ids in order of first use: 0, 1, 2, ... The id rules are unaffected by a bijective renaming.
void renumber_ids(std::vector<Op>& ops) {
  std::unordered_map<std::uint64_t, std::uint64_t> names;
  for (Op& op : ops) {
    if (op.kind == OpKind::kPurge) continue;
    auto [it, inserted] = names.emplace(op.id, names.size());
    op.id = it->second;
    (void)inserted;
  }
}

template <class M>
Candidate shrink_all(M& m, Candidate best) {
  for (bool changed = true; changed;) {
    changed = false;
    changed |= shrink_region(m, best);
    changed |= remove_chunks(m, best);
    changed |= shrink_sizes(m, best);
    changed |= simplify_header(m, best);
  }
  renumber_ids(best.ops);
  return best;
}

}  // namespace

MinimizeResult minimize_trace(const TraceHeader& header, const std::vector<Op>& ops, const MinimizePredicate& interesting) {
  MinimizeResult out;
  out.header = header;
  out.ops = ops;
  out.original_ops = ops.size();
  PredicateMinimizer m(interesting);
  auto first = m.judge(Candidate{header, ops});
  out.replays = m.replays();
  if (!first) return out;
  Candidate best = shrink_all(m, std::move(*first));
  out.header = best.header;
  out.ops = std::move(best.ops);
  out.replays = m.replays();
  return out;
}

MinimizePredicate failure_with_severity(FailureKind kind, double max_severity) {
  return [kind, max_severity](const TraceHeader& h, const std::vector<Op>& ops) -> std::optional<std::size_t> {
    const std::optional<HuntRun> run = run_any_hunt(DecodedInput{h, ops, {}});
    if (!run || !run->finding || run->finding->kind != kind || run->finding->severity > max_severity) return std::nullopt;
    return run->finding->op + 1;
  };
}

MinimizePredicate same_bug(std::string prefix, Backing backing) {
  return [prefix = std::move(prefix), backing](const TraceHeader& h, const std::vector<Op>& ops) -> std::optional<std::size_t> {
    VectorOpSource source(h, ops);
    ReplayOptions options;
    options.differential = true;
    options.check_every = 1;
    options.maps_at_failures = 0;
    options.backing = backing;
    const ReplayResult r = replay(source, options);
    if (r.divergence && r.divergence->allocator.rfind(prefix, 0) == 0) return r.divergence->op + 1;
    if (!r.invariant_violation.empty() && r.invariant_violation.rfind(prefix, 0) == 0)
      return std::min<std::size_t>(ops.size(), r.invariant_op + 1);
    return std::nullopt;
  };
}

MinimizeResult minimize_trace(const TraceHeader& header, const std::vector<Op>& ops) {
  MinimizeResult out;
  out.header = header;
  out.ops = ops;
  out.original_ops = ops.size();
  {
    VectorOpSource source(header, ops);
    ReplayOptions options;
    options.maps_at_failures = 0;
    options.stop_at_first_failure = true;
    const ReplayResult r = replay(source, options);
    out.replays = 1;
    if (r.failures.empty()) return out;
    out.kind = r.failures.front().kind;
  }
  Minimizer m(out.kind);
  auto first = m.judge(Candidate{header, ops});
  // Cannot fail: the input itself has that first failure.
  Candidate best = shrink_all(m, first ? std::move(*first) : Candidate{header, ops});
  out.header = best.header;
  out.ops = std::move(best.ops);
  out.replays += m.replays();
  return out;
}

}  // namespace vmfrag
