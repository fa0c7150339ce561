// The libraries behind the fuzz targets: the input decoder (any bytes give a valid trace, encode is
// its inverse, clamping always encodes, headers stay small), the fragmentation hunt (severity,
// floor and its conditions computed by hand on small traces; the state features; the finding
// ladder written as readable vmtrace) and run_ops_check (the real allocator agrees with
// ReferenceVmalloc on random decoded inputs in every backing, with misuse issued on purpose).
// Randomised cases sweep seeds; VMFRAG_SEED=N replays one.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "allocator/tests/test_seeds.h"
#include "harness/decode/op_decoder.h"
#include "harness/decode/op_mutator.h"
#include "harness/hunt/frag_hunt.h"
#include "harness/hunt/phys_hunt.h"
#include "harness/replay/ops_check.h"
#include "harness/trace/trace_reader.h"

namespace vmfrag {
namespace {

std::vector<std::uint8_t> random_bytes(std::uint64_t seed, std::size_t n) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint8_t> b(n);
  for (auto& x : b) x = static_cast<std::uint8_t>(rng());
  return b;
}

DecodedInput read_back(const std::string& text) {
  std::istringstream in(text);
  TraceReader reader(in, "t.vmtrace");
  DecodedInput d;
  for (Op op; reader.next(op);) d.ops.push_back(op);
  d.header = reader.header();
  return d;
}

TEST(Decoder, AnyBytesDecodeToAReadableTraceAndEncodeBack) {
  for (const DecodeConfig& config : {hunt_decode_config(), ops_decode_config()}) {
    for (std::uint64_t seed : seeds_to_run(1, 200)) {
      SCOPED_TRACE(seed_note(seed));
      const auto bytes = random_bytes(seed, seed % 700);
      const DecodedInput d = decode_input(bytes, config);
      std::ostringstream text;
      ASSERT_TRUE(write_decoded_trace(text, d, "seed\nnote"));  // the writer aborts on an id-rule breach
      const DecodedInput back = read_back(text.str());
      EXPECT_EQ(back.header, d.header);
      EXPECT_EQ(back.ops, d.ops);
      EXPECT_LE(d.header.region_bytes, 16u << 20);
      if (config.header_from_bytes) {
        EXPECT_LE(d.header.phys_bytes, 4u << 20);  // the hunt keeps the format default
      }
      const auto encoded = encode_input(d.header, d.ops, config);
      ASSERT_TRUE(encoded.has_value());
      const DecodedInput again = decode_input(*encoded, config);
      EXPECT_EQ(again.header, d.header);
      EXPECT_EQ(again.ops, d.ops);
      EXPECT_EQ(decode_input(bytes, config).ops, d.ops);  // deterministic
    }
  }
}

TEST(Decoder, HuntRecordsAreAllocsOfOneTo15PagesAndFreesOfLiveIds) {
  const DecodeConfig c = hunt_decode_config();
  // a 15 pages (x = 14), a 1 page (x = 15 -> 1 + 15 % 15), f of live #1, f with nothing live is dropped.
  const std::vector<std::uint8_t> b = {0, 14, 0, 2, 15, 9, 1, 1, 0, 1, 0, 0, 1, 0, 0, 5};
  const DecodedInput d = decode_input(b, c);
  ASSERT_EQ(d.ops.size(), 4u);
  EXPECT_EQ(d.ops[0], (Op{OpKind::kAlloc, 0, 15 * 4096, 4096}));
  EXPECT_EQ(d.ops[1], (Op{OpKind::kAlloc, 1, 1 * 4096, 4096}));
  EXPECT_EQ(d.ops[2], (Op{OpKind::kFree, 1, 0, 4096}));
  EXPECT_EQ(d.ops[3], (Op{OpKind::kFree, 0, 0, 4096}));
  EXPECT_EQ(d.header.region_bytes, 1u << 20);
  EXPECT_EQ(d.header.lazy_pages, 0u);
  EXPECT_EQ(decode_input(std::vector<std::uint8_t>(3 * 5000, 0), c).ops.size(), c.max_ops);
}

TEST(Decoder, ClampedWorkloadsAlwaysEncode) {
  std::vector<Op> ops;
  for (std::uint64_t i = 0; i < 300; ++i) {
    ops.push_back(Op{static_cast<OpKind>("akmha"[i % 5]), 1000 + i, 1 + i * 12345 % (64 << 20), 4096u << (i % 3)});
    if (i % 3 == 2) ops.push_back(Op{OpKind::kFree, 1000 + i - 1, 0, 4096});
    if (i % 50 == 0) ops.push_back(Op{});
  }
  for (const DecodeConfig& c : {hunt_decode_config(), ops_decode_config()}) {
    TraceHeader h = c.header;
    if (c.header_from_bytes) h = decode_input(std::vector<std::uint8_t>{7, 1, 2, 15}, c).header;
    const DecodedInput clamped = clamp_to_config(h, ops, c);
    EXPECT_FALSE(clamped.ops.empty());
    const auto bytes = encode_input(clamped.header, clamped.ops, c);
    ASSERT_TRUE(bytes.has_value());
    EXPECT_EQ(decode_input(*bytes, c).ops, clamped.ops);
  }
}

TEST(Mutator, MutatesWholeRecordsWithinMaxSizeDeterministically) {
  for (const DecodeConfig& c : {hunt_decode_config(), ops_decode_config()}) {
    const std::size_t head = c.header_from_bytes ? kHeaderBytes : 0;
    for (std::uint64_t seed : seeds_to_run(1, 50)) {
      SCOPED_TRACE(seed_note(seed));
      std::vector<std::uint8_t> data = random_bytes(seed, head + kRecordBytes * (seed % 40));
      const std::size_t max_size = head + kRecordBytes * 48;
      bool changed = false;
      for (unsigned round = 0; round < 200; ++round) {
        std::vector<std::uint8_t> buf = data, again = data;
        buf.resize(max_size);
        again.resize(max_size);
        const std::size_t n = mutate_records(buf.data(), data.size(), max_size, round, c);
        EXPECT_EQ(mutate_records(again.data(), data.size(), max_size, round, c), n);
        buf.resize(n);
        again.resize(n);
        EXPECT_EQ(buf, again);
        ASSERT_LE(n, max_size);
        EXPECT_EQ((n - std::min(n, head)) % kRecordBytes, 0u);
        changed |= buf != data;
        data = buf;
      }
      EXPECT_TRUE(changed);
      std::ostringstream text;
      EXPECT_TRUE(write_decoded_trace(text, decode_input(data, c)));
    }
  }
}

// 16 pages, guard 1: eight 1-page areas fill it, freeing every other leaves 2-page holes, a 2-page
// request (need 3) fails with free 8 pages: severity = peak need 16 / 16 = 1.
DecodedInput checkerboard(std::uint64_t lazy) {
  DecodedInput d;
  d.header.region_bytes = 64 << 10;
  d.header.guard_pages = 1;
  d.header.lazy_pages = lazy;
  for (std::uint64_t i = 0; i < 8; ++i) d.ops.push_back(Op{OpKind::kAlloc, i, 4096, 4096});
  for (std::uint64_t i = 0; i < 8; i += 2) d.ops.push_back(Op{OpKind::kFree, i, 0, 4096});
  if (lazy != 0) d.ops.push_back(Op{});
  d.ops.push_back(Op{OpKind::kAlloc, 8, 2 * 4096, 4096});
  return d;
}

TEST(Hunt, SeverityAndFloorByHand) {
  std::vector<std::uint8_t> counters(kHuntCounterCount, 0);
  const HuntRun run = run_hunt(checkerboard(0), counters);
  ASSERT_TRUE(run.finding.has_value());
  const HuntFinding& f = *run.finding;
  EXPECT_EQ(f.kind, FailureKind::kVirtualFragmentation);
  EXPECT_EQ(f.op, 12u);
  EXPECT_EQ(f.need_pages, 3u);
  EXPECT_EQ(f.peak_need_pages, 16u);
  EXPECT_DOUBLE_EQ(f.severity, 1.0);
  EXPECT_EQ(f.max_need_pages, 3u);
  EXPECT_TRUE(f.bound_applies);
  EXPECT_NEAR(f.floor, std::log(2.0) / (1 + 1.0 / 2 + 1.0 / 3), 1e-12);
  EXPECT_EQ(f.signature(), "virtual-fragmentation:need3:peak16");
  EXPECT_EQ(counters[320 + 127], 1);  // the severity ladder's top bucket
  EXPECT_EQ(counters[256 + 63], 1);   // the region was full once
  EXPECT_NEAR(robson_floor(16), 0.205, 0.0005);
}

TEST(Hunt, TheFloorIsNotAppliedOutsideItsConditions) {
  const HuntRun run = run_hunt(checkerboard(64), {});
  ASSERT_TRUE(run.finding.has_value());
  EXPECT_FALSE(run.finding->bound_applies);
  EXPECT_EQ(run.finding->bound_note, "lazy free (lazy > 0)");
  EXPECT_NE(finding_comment(*run.finding).find("first-fit floor not applied: lazy free"), std::string::npos);
  DecodedInput aligned = checkerboard(0);
  aligned.ops.back().align = 8192;
  EXPECT_EQ(run_hunt(aligned, {}).finding->bound_note, "alignment above one page");
}

TEST(Hunt, FindingsAreALadderOfReadableTraces) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "vmfrag_findings";
  std::filesystem::remove_all(dir);
  FindingWriter writer(dir);
  const DecodedInput d = checkerboard(0);
  const HuntFinding f = *run_hunt(d, {}).finding;
  const std::filesystem::path p = writer.offer(d, f);
  ASSERT_FALSE(p.empty());
  EXPECT_TRUE(writer.offer(d, f).empty());  // same signature
  HuntFinding worse = f;
  worse.peak_need_pages = 17;
  worse.severity = 17.0 / 16;
  EXPECT_TRUE(writer.offer(d, worse).empty());  // not better than the best of its kind
  std::ifstream in(p);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("# severity 1.000000 = peak live need 16 pages"), std::string::npos) << text.str();
  const DecodedInput back = read_back(text.str());
  EXPECT_EQ(back.ops, d.ops);  // the failure is the last op
  std::filesystem::remove_all(dir);
}

TEST(Hunt, RandomInputsRespectTheFloorAndAReusedSpaceActsFresh) {
  std::uint64_t failures = 0;
  HuntSpace reused;
  for (std::uint64_t seed : seeds_to_run(1, 300)) {
    SCOPED_TRACE(seed_note(seed));
    const DecodedInput d = decode_input(random_bytes(seed, 900), hunt_decode_config());
    std::vector<std::uint8_t> c1(kHuntCounterCount, 0), c2(kHuntCounterCount, 0);
    const HuntRun run = run_hunt(d, c1);
    const HuntRun again = run_hunt(d, c2, &reused);
    EXPECT_EQ(again.failures, run.failures);
    EXPECT_EQ(again.finding.has_value(), run.finding.has_value());
    if (run.finding && again.finding) {
      EXPECT_EQ(again.finding->signature(), run.finding->signature());
      EXPECT_EQ(again.finding->op, run.finding->op);
    }
    EXPECT_EQ(c1, c2);
    failures += run.failures;
    if (run.finding) {
      EXPECT_GT(run.finding->severity, run.finding->floor);  // run_hunt aborts otherwise
    }
  }
  EXPECT_GT(failures, 0u);
}

// corpus/regressions/findings: minimised hunt findings. Each still fails with the kind and the
// severity its comment records, the failure is its last op, and it agrees with the reference.
TEST(Hunt, KeptFindingsStillFailAsRecorded) {
  const std::filesystem::path dir = std::filesystem::path(VMFRAG_SOURCE_ROOT) / "corpus" / "regressions" / "findings";
  std::size_t checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    SCOPED_TRACE(entry.path().string());
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    const std::string t = text.str();
    char kind[64] = {0};
    double severity = -1;
    const std::size_t k = t.find("# finding: "), v = t.find("# severity ");
    ASSERT_NE(k, std::string::npos);
    ASSERT_NE(v, std::string::npos);
    ASSERT_EQ(std::sscanf(t.c_str() + k, "# finding: %63s", kind), 1);
    ASSERT_EQ(std::sscanf(t.c_str() + v, "# severity %lf", &severity), 1);
    const DecodedInput d = read_back(t);
    const std::optional<HuntRun> scored = run_any_hunt(d);  // virtual (a/f/p) or physical (k/f/p) finding
    ASSERT_TRUE(scored.has_value());
    const HuntRun& run = *scored;
    ASSERT_TRUE(run.finding.has_value());
    EXPECT_EQ(failure_name(run.finding->kind), std::string(kind));
    EXPECT_NEAR(run.finding->severity, severity, 1e-6);
    EXPECT_EQ(run.finding->op + 1, d.ops.size());
    EXPECT_TRUE(run_ops_check(d).ok());
    ++checked;
  }
  EXPECT_GT(checked, 0u);
}

TEST(OpsCheck, RandomInputsAgreeInEveryBacking) {
  std::uint64_t misuse = 0, ops = 0;
  OpsInstances instances;
  for (Backing backing : {Backing::kMemfd, Backing::kAnon, Backing::kNone}) {
    DecodeConfig c = ops_decode_config();
    c.header.backing = backing;
    for (std::uint64_t seed : seeds_to_run(1, 60)) {
      SCOPED_TRACE(seed_note(seed));
      const DecodedInput d = decode_input(random_bytes(seed, 400), c);
      const OpsCheckResult r = run_ops_check(d);
      EXPECT_TRUE(r.ok()) << backing_name(backing) << " op " << r.op << ": " << r.problem;
      // A reused instance (two headers alternate, so some runs reuse) gives the same result.
      const OpsCheckResult again = run_ops_check(d, {}, &instances);
      EXPECT_TRUE(again.ok()) << again.problem;
      EXPECT_EQ(again.ops, r.ops);
      EXPECT_EQ(again.misuse_issued, r.misuse_issued);
      misuse += r.misuse_issued;
      ops += r.ops;
    }
  }
  EXPECT_GT(misuse, 100u);
  EXPECT_GT(ops, 10000u);
}

}  // namespace
}  // namespace vmfrag
