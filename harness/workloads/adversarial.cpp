// Adversarial patterns that defeat an exact lowest-address-first-fit allocator with guard pages:
// each leaves at least half of the region free in holes too small for the next request, so the
// request fails with free >= need (virtual fragmentation). The generators reason about first fit
// analytically (they never see allocation results); harness/tests/workloads_test.cpp checks the
// failures with an independent first-fit model. A round is the unit of the pattern; rounds repeat
// with seeded sizes until the op budget is spent (the first round always completes, later rounds
// stop at the budget).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "harness/workloads/emitter.h"
#include "harness/workloads/prng.h"

namespace vmfrag::workload_detail {
namespace {

constexpr std::uint64_t kPage = kPageSize;

// Emits through the emitter while the budget lasts; in the first round it never refuses.
class Budget {
 public:
  Budget(const Resolved& r, Emitter& e) : ops_(r.ops), e_(e) {}
  [[nodiscard]] bool more() const { return first_round_ || e_.emitted() < ops_; }
  void end_round() { first_round_ = false; }
  [[nodiscard]] bool exhausted() const { return !first_round_ && e_.emitted() >= ops_; }

 private:
  std::uint64_t ops_;
  Emitter& e_;
  bool first_round_ = true;
};

}  // namespace

// Fill the region with n equal areas (s pages + guard each), free every other one except the last
// (so no hole touches the unused tail), purge, then ask four times for 2s pages: every hole is
// s + 1 pages and the tail is shorter than s + 1, but half the region is free.
void gen_checkerboard(const Resolved& r, Emitter& e) {
  Prng rng(r.seed);
  Budget budget(r, e);
  const std::uint64_t region_pages = r.region_bytes / kPage;
  std::vector<std::uint64_t> ids;
  while (!budget.exhausted()) {
    const std::uint64_t s = 1 + rng.below(8);
    const std::uint64_t n = region_pages / (s + 1);
    ids.clear();
    for (std::uint64_t i = 0; i < n && budget.more(); ++i) ids.push_back(e.alloc(s * kPage));
    std::vector<bool> live(ids.size(), true);
    for (std::uint64_t i = 1; i + 1 < ids.size() && budget.more(); i += 2) {
      e.free(ids[i]);
      live[i] = false;
    }
    if (budget.more()) e.purge();
    std::vector<std::uint64_t> requests;
    for (int k = 0; k < 4 && budget.more(); ++k) requests.push_back(e.alloc(2 * s * kPage));
    for (std::uint64_t id : requests)
      if (budget.more()) e.free(id);
    for (std::uint64_t i = 0; i < ids.size() && budget.more(); ++i)
      if (live[i]) e.free(ids[i]);
    if (budget.more()) e.purge();
    budget.end_round();
  }
}

// Step k allocates a short-lived area of size_k pages, then a long-lived one of the same size,
// then frees the previous short one. Sizes grow by one page a step, so every hole (a freed short
// area, fenced by long-lived neighbours) is one page too small for the next request; the used span
// grows by 2 (size_k + 1) pages a step while live memory is only half of it. Steps continue two past
// the point where the top of the region is exhausted.
void gen_sawtooth(const Resolved& r, Emitter& e) {
  Prng rng(r.seed);
  Budget budget(r, e);
  const std::uint64_t region_pages = r.region_bytes / kPage;
  std::vector<std::uint64_t> longs;
  while (!budget.exhausted()) {
    const std::uint64_t first = 1 + rng.below(4);
    std::uint64_t steps = 0;
    for (std::uint64_t used = 0; used <= region_pages; ++steps) used += 2 * (first + steps + 1);
    steps += 2;
    longs.clear();
    std::uint64_t previous_short = 0;
    bool have_previous = false;
    for (std::uint64_t k = 0; k < steps && budget.more(); ++k) {
      const std::uint64_t bytes = (first + k) * kPage;
      const std::uint64_t short_lived = e.alloc(bytes);
      if (!budget.more()) break;
      longs.push_back(e.alloc(bytes));
      if (have_previous && budget.more()) e.free(previous_short);
      previous_short = short_lived;
      have_previous = true;
    }
    if (have_previous && budget.more()) e.free(previous_short);
    for (std::uint64_t id : longs)
      if (budget.more()) e.free(id);
    if (budget.more()) e.purge();
    budget.end_round();
  }
}

// Robson-style doubling (J. M. Robson, "Worst case fragmentation of first fit and best fit storage
// allocation strategies", Computer Journal 20(3), 1977; Knuth, TAOCP vol. 1, 2.5): phase j
// allocates areas of s = s0 * 2^j pages (s0 seeded in 1..4) filling half of the untouched top, then frees all but every
// 2nd (keeping the last, so the top stays separate). A hole is s + 1 pages, the next phase needs
// 2s + 1, so no phase can reuse an earlier phase's holes. With guard pages k = 2 is the only
// spacing that keeps holes unusable: (k - 1)(s + 1) < 2s + 1 forces k < 3. When a phase can no
// longer place two areas, three requests larger than the remaining top fail while about half of
// the region is free in holes.
void gen_size_doubling(const Resolved& r, Emitter& e) {
  Prng rng(r.seed);
  Budget budget(r, e);
  const std::uint64_t region_pages = r.region_bytes / kPage;
  std::vector<std::uint64_t> survivors;
  while (!budget.exhausted()) {
    std::uint64_t s = 1 + rng.below(4);
    std::uint64_t top = region_pages;
    survivors.clear();
    std::vector<std::uint64_t> phase;
    for (;;) {
      const std::uint64_t count = top / (s + 1) / 2;
      if (count < 2 || !budget.more()) break;
      phase.clear();
      for (std::uint64_t i = 0; i < count && budget.more(); ++i) phase.push_back(e.alloc(s * kPage));
      top -= count * (s + 1);
      for (std::uint64_t i = 0; i < phase.size(); ++i) {
        if (i % 2 == 1 && i + 1 < phase.size()) {
          if (budget.more()) e.free(phase[i]);
        } else {
          survivors.push_back(phase[i]);
        }
      }
      if (budget.more()) e.purge();
      s *= 2;
    }
    const std::uint64_t request_pages = std::max(s, top);
    std::vector<std::uint64_t> requests;
    for (int k = 0; k < 3 && budget.more(); ++k) requests.push_back(e.alloc(request_pages * kPage));
    for (std::uint64_t id : requests)
      if (budget.more()) e.free(id);
    for (std::uint64_t id : survivors)
      if (budget.more()) e.free(id);
    if (budget.more()) e.purge();
    budget.end_round();
  }
}

}  // namespace vmfrag::workload_detail
