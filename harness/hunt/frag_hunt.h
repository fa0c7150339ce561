// The fragmentation hunt: runs a decoded input on the address space (VirtualSpace, backing none),
// scores each allocation failure by its severity, feeds libFuzzer state features (IJON-style
// annotations) and writes findings as vmtrace files. fuzz_frag_hunt is a thin shell around this.
//
// Severity of a failure at op i = P / region bytes, where P is the peak live need up to and
// including the failure: max over ops before i of the live need (page-rounded sizes plus guards of
// live areas), and the live need at i plus the failing request's need. Lower is worse
// fragmentation: the allocator gave up while that small a share of the region was ever needed.
// An input's finding is its failure of lowest severity (the first such on ties).
//
// The floor (Knuth, TAOCP 1 §2.5 ex. 43, after Robson): with eager free (lazy 0), page alignment,
// only vmalloc/vfree, every need <= m pages and live need never above M pages, address-ordered
// first fit never needs more than M·H_m/ln 2 pages. A failure means the region was not enough, so
// severity > ln 2 / H_m, with m the largest need (guard included) requested up to the failure. When
// the conditions do not hold (lazy free, larger alignment, other ops) the bound is not applied and
// the finding says why.
//
// Deduplication signature: "<kind>:need<n>:peak<P>" with n the failing need and P the peak live
// need, both in pages. A process writes a finding when its signature is new to it and its severity
// is no worse than the best it has written for that kind (a descending ladder: a few files per run,
// not one per signature).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "allocator/core/failure.h"
#include "harness/decode/op_decoder.h"
#include "harness/hunt/kept_instance.h"

namespace vmfrag {

class VirtualSpace;
struct HuntRun;

// A live area at the end of a run: its id and its first page from the region's start.
struct LiveArea {
  std::uint64_t id = 0;
  std::uint64_t offset_pages = 0;
};

struct HuntFinding {
  FailureKind kind = FailureKind::kNone;
  std::uint64_t op = 0;               // index of the failing op in the decoded ops
  std::uint64_t need_pages = 0;       // the failing request's need, guard included
  std::uint64_t peak_need_pages = 0;  // P above, in pages
  std::uint64_t region_pages = 0;
  double severity = 0;                // P / region
  std::uint64_t max_need_pages = 0;   // m: the largest need requested up to the failure
  bool bound_applies = false;
  double floor = 0;                   // ln 2 / H_m when bound_applies, else 0
  std::string bound_note;             // when !bound_applies: which condition fails
  // Physical findings (phys_hunt.h) only: the buddy allocator's free blocks per order at the
  // failure; need_pages is then the failing block's pages, region_pages the physical pages.
  std::vector<std::uint64_t> buddy_free_blocks;
  [[nodiscard]] std::string signature() const;
};

// The counters the hunt writes (the target owns the array, in libFuzzer's extra-counters section).
// Layout, all presence flags (set to 1), each marked as a frontier (see Features in frag_hunt.cpp):
//   [0, 512)    peak live need (16 buckets) × the smallest largest-free extent seen at that peak or
//               below (32 buckets: pages 0-15 exactly, then 15-page steps), all cells above it
//   [512, 640)  the failure ladder: 128 severity buckets, all from the lowest failure's up
//   [640, 704)  64 buckets of live need / region, after each op
//   [704, 960)  failing need in pages (16) × 16 severity buckets, the ladder per need
//   [1024, 1536) peak live need (16 buckets) × the highest end of an area placed at that peak or
//               below (32 buckets of region/32), all cells up to it
inline constexpr std::size_t kHuntCounterCount = 1536;

struct HuntRun {
  std::uint64_t ops = 0;
  std::uint64_t failures = 0;
  std::optional<HuntFinding> finding;  // the failure of lowest severity
};

// Shared by the hunts' state features: the bucket of a fraction of [0, 1] among `buckets` (the
// last one for 1 and above, 0 for 0 and below), and marking counters [from, to) with 1.
[[nodiscard]] std::size_t fraction_bucket(double fraction, std::size_t buckets);
void mark_counters(std::span<std::uint8_t> counters, std::size_t from, std::size_t to);

// A VirtualSpace kept between runs of the same header: creating one costs a reservation and a
// 1024-node pool (most of a short run under ASan). A run frees what it left live, so the space
// returns to one free extent covering the region; placements depend only on the free extents
// (exact lowest fit), so a reused space places exactly as a fresh one.
class HuntSpace {
 public:
  HuntSpace();
  ~HuntSpace();
  HuntSpace(const HuntSpace&) = delete;
  HuntSpace& operator=(const HuntSpace&) = delete;

 private:
  friend HuntRun run_hunt(const DecodedInput&, std::span<std::uint8_t>, HuntSpace*, std::vector<LiveArea>*);
  KeptInstance<VirtualSpace> space_;
  std::vector<std::uint64_t> offsets_;  // run_hunt's live id -> offset table, kept for its capacity
};

// Runs `input` (only a, f and p ops; others are a precondition violation, VMF_CHECK) on a fresh
// VirtualSpace of its header, or on `reuse`'s when it has one of the same header (see HuntSpace).
// counters: kHuntCounterCount bytes to mark, or empty for none.
// Aborts (VMF_CHECK) when a finding falls below the floor where the bound applies: that is an
// allocator bug (confirmed on a fresh space first). Deterministic. Cost: O(ops log n), plus
// creating the space when not reused. live_before: when given, receives the areas live just
// before the finding's op (a failed op changes nothing), or after the last op when there is no
// finding, in id order (the hunt's mutator plans frees with it).
[[nodiscard]] HuntRun run_hunt(const DecodedInput& input, std::span<std::uint8_t> counters, HuntSpace* reuse = nullptr,
                               std::vector<LiveArea>* live_before = nullptr);

// The input with its allocating ops' ids renumbered 0, 1, 2... in order and frees following (a
// free of an id never allocated gets an id no op allocates, which the hunts ignore as they ignore
// frees of ids not live). The hunts run a trace with sparse ids this way.
[[nodiscard]] DecodedInput renumbered_ids(const DecodedInput& input);

// ln 2 / H_m. m >= 1.
[[nodiscard]] double robson_floor(std::uint64_t m);

// Keeps the ladder of findings of one process and writes them to a directory.
class FindingWriter {
 public:
  explicit FindingWriter(std::filesystem::path dir) : dir_(std::move(dir)) {}
  // Writes `finding` of `input` (ops cut after the failing op, the finding in `#` comments) as
  // <dir>/finding-<kind>-<severity>-<hash>.vmtrace when it is new and not worse than the best
  // (see the file comment). Returns the path written, or "" when skipped or on an I/O error.
  std::filesystem::path offer(const DecodedInput& input, const HuntFinding& finding);

 private:
  std::filesystem::path dir_;
  std::set<std::string> seen_;
  std::map<FailureKind, double> best_;
};

// Progress of one hunting process: counts executions and decoded ops, and prints one line on
// stderr at each new lowest severity:
//   vmfrag-hunt: best 0.523438 kind virtual-fragmentation execs 1234 ops 56789 cpu 1.250
// (cpu: the process's CPU seconds, std::clock). hunt-eval reads these lines for the CPU time and
// the ops to reach a threshold, so arms compare at equal CPU time even on a shared machine.
class HuntProgress {
 public:
  void note(const HuntRun& run);
  [[nodiscard]] std::uint64_t execs() const { return execs_; }
  [[nodiscard]] std::optional<double> best() const { return best_; }

 private:
  std::uint64_t execs_ = 0, ops_ = 0;
  std::optional<double> best_;
};

// What the hunt targets (fuzz_frag_hunt, fuzz_phys_hunt) read from the environment at start-up and
// do with each run:
//   VMFRAG_HUNT_FEATURES=0  no state features (coverage only: the evaluation's second arm)
//   VMFRAG_FINDINGS_DIR=D   offer each run's finding to a FindingWriter on D (the severity ladder)
//   VMFRAG_HUNT_PROGRESS=1  a HuntProgress line on stderr at each new best severity
class HuntReporting {
 public:
  [[nodiscard]] static HuntReporting from_environment();
  [[nodiscard]] bool features() const { return features_; }
  void record(const DecodedInput& input, const HuntRun& run);

 private:
  bool features_ = true;
  std::unique_ptr<FindingWriter> writer_;
  std::unique_ptr<HuntProgress> progress_;
};

// A blind random trace in the hunt's config, as the evaluation's third arm: `ops` ops, each a free
// of a uniformly chosen live id with probability free_percent/100 (when something is live), else
// an allocation of 1..15 pages uniformly. Deterministic in `seed` (harness/workloads/prng.h).
[[nodiscard]] DecodedInput blind_trace(std::uint64_t seed, std::uint64_t ops, unsigned free_percent);

// The finding's `#` comment block (severity, floor or why not, signature, and for physical
// findings the buddy allocator's free blocks per order), one item per line. Physical findings say
// "peak live physical pages ... / physical memory N pages" where virtual ones say "peak live need
// ... / region N pages".
[[nodiscard]] std::string finding_comment(const HuntFinding& finding);

}  // namespace vmfrag
