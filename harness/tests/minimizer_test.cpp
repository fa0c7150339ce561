// Minimiser: a checkerboard failure of thousands of ops shrinks to a few dozen that still end in
// virtual-fragmentation; the output obeys the id rules (it goes through TraceWriter, which checks
// them) and reads back; a trace without failures is left alone; the result is deterministic. With a
// predicate: the result keeps a failure of the kind at or below the severity asked for, and a
// predicate the input does not satisfy leaves it alone.
#include <gtest/gtest.h>

#include <sstream>

#include "harness/hunt/frag_hunt.h"
#include "harness/minimize/minimizer.h"
#include "harness/replay/replay.h"
#include "harness/trace/trace_reader.h"
#include "harness/trace/trace_writer.h"

namespace vmfrag {
namespace {

// Fill 16 MiB with one-page areas (two pages with the guard), free every other one, ask for two.
std::vector<Op> checkerboard(TraceHeader& h) {
  h.region_bytes = 16ull << 20;
  h.guard_pages = 1;
  h.lazy_pages = 0;
  std::vector<Op> ops;
  const std::uint64_t n = h.region_bytes / (2 * kPageSize);
  for (std::uint64_t i = 0; i < n; ++i) ops.push_back(Op{OpKind::kAlloc, i, kPageSize, kPageSize});
  for (std::uint64_t i = 0; i < n; i += 2) ops.push_back(Op{OpKind::kFree, i, 0, kPageSize});
  ops.push_back(Op{OpKind::kAlloc, n, 2 * kPageSize, kPageSize});
  return ops;
}

FailureKind first_failure(const TraceHeader& h, const std::vector<Op>& ops, std::uint64_t* op_index) {
  VectorOpSource source(h, ops);
  ReplayOptions options;
  options.stop_at_first_failure = true;
  const ReplayResult r = replay(source, options);
  if (r.failures.empty()) return FailureKind::kNone;
  *op_index = r.failures.front().op;
  return r.failures.front().kind;
}

TEST(Minimizer, CheckerboardShrinksToAFewDozenOps) {
  TraceHeader h;
  const std::vector<Op> ops = checkerboard(h);
  ASSERT_GT(ops.size(), 3000u);
  const MinimizeResult m = minimize_trace(h, ops);
  EXPECT_EQ(m.kind, FailureKind::kVirtualFragmentation);
  EXPECT_LE(m.ops.size(), 36u);
  EXPECT_GE(m.ops.size(), 3u);
  std::uint64_t at = 0;
  EXPECT_EQ(first_failure(m.header, m.ops, &at), FailureKind::kVirtualFragmentation);
  EXPECT_EQ(at, m.ops.size() - 1);

  // Writes as a valid trace and reads back to the same ops.
  std::ostringstream text;
  TraceWriter writer(text);
  writer.write_header(m.header);
  for (const Op& op : m.ops) writer.write(op);
  std::istringstream in(text.str());
  TraceReader reader(in, "min.vmtrace");
  std::vector<Op> back;
  for (Op op; reader.next(op);) back.push_back(op);
  EXPECT_EQ(back, m.ops);
  EXPECT_EQ(reader.header(), m.header);

  const MinimizeResult again = minimize_trace(h, ops);
  EXPECT_EQ(again.ops, m.ops);
  EXPECT_EQ(again.header, m.header);
}

TEST(Minimizer, KeepsTheFirstFailureKindNotALaterOne) {
  // First failure: no-virtual-space (op 1); a fragmentation failure follows. The kind kept is the first.
  TraceHeader h;
  h.region_bytes = 64 << 10;
  h.lazy_pages = 0;
  const std::vector<Op> ops = {
      {OpKind::kAlloc, 0, 8 * kPageSize, kPageSize},  {OpKind::kAlloc, 1, 64 * kPageSize, kPageSize},
      {OpKind::kAlloc, 2, 2 * kPageSize, kPageSize},  {OpKind::kFree, 0, 0, kPageSize},
      {OpKind::kAlloc, 3, 12 * kPageSize, kPageSize},
  };
  const MinimizeResult m = minimize_trace(h, ops);
  EXPECT_EQ(m.kind, FailureKind::kNoVirtualSpace);
  std::uint64_t at = 0;
  EXPECT_EQ(first_failure(m.header, m.ops, &at), FailureKind::kNoVirtualSpace);
  EXPECT_LE(m.ops.size(), 2u);
}

TEST(Minimizer, NoFailureMeansNothingToDo) {
  TraceHeader h;
  h.region_bytes = 1 << 20;
  const std::vector<Op> ops = {{OpKind::kAlloc, 0, kPageSize, kPageSize}, {OpKind::kFree, 0, 0, kPageSize}};
  const MinimizeResult m = minimize_trace(h, ops);
  EXPECT_EQ(m.kind, FailureKind::kNone);
  EXPECT_EQ(m.ops, ops);
}

TEST(Minimizer, PredicateKeepsTheFailureAtOrBelowTheSeverity) {
  TraceHeader h;
  h.region_bytes = 1ull << 20;
  h.guard_pages = 1;
  h.lazy_pages = 0;
  // Fill with one-page areas, free every other one, then ask for 2..5 pages: the first request
  // fails at severity 1 (the region was full). Noise ops before it make the minimiser work.
  std::vector<Op> ops;
  for (std::uint64_t i = 0; i < 128; ++i) ops.push_back(Op{OpKind::kAlloc, i, kPageSize, kPageSize});
  for (std::uint64_t i = 0; i < 128; i += 2) ops.push_back(Op{OpKind::kFree, i, 0, kPageSize});
  ops.push_back(Op{OpKind::kAlloc, 500, 5 * kPageSize, kPageSize});
  const HuntRun before = run_hunt(DecodedInput{h, ops, {}}, {});
  ASSERT_TRUE(before.finding.has_value());
  const double s = before.finding->severity;
  const MinimizeResult r = minimize_trace(h, ops, failure_with_severity(FailureKind::kVirtualFragmentation, s));
  EXPECT_LT(r.ops.size(), ops.size());
  const HuntRun after = run_hunt(DecodedInput{r.header, r.ops, {}}, {});
  ASSERT_TRUE(after.finding.has_value());
  EXPECT_EQ(after.finding->kind, FailureKind::kVirtualFragmentation);
  EXPECT_LE(after.finding->severity, s);
  EXPECT_EQ(after.finding->op + 1, r.ops.size());  // the failure is the last op
  std::ostringstream text;
  TraceWriter w(text);  // aborts on an id-rule breach
  w.write_header(r.header);
  for (const Op& op : r.ops) w.write(op);
  // Unsatisfiable: nothing fails that early.
  const MinimizeResult none = minimize_trace(h, ops, failure_with_severity(FailureKind::kVirtualFragmentation, 0.1));
  EXPECT_EQ(none.ops, ops);
  EXPECT_EQ(none.replays, 1u);
}

}  // namespace
}  // namespace vmfrag
