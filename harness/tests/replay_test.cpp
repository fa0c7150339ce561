// Replay: hand-written traces give the placements and failure kinds computed by hand; `f` of a
// failed id is a no-op; ops of the physical layer are refused with the trace line, never ignored;
// differential mode agrees with the reference model in every backing; the JSON result carries the documented keys
// and is byte-identical between runs; check-every catches nothing on a correct allocator.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "harness/replay/replay.h"
#include "harness/trace/input_error.h"
#include "harness/trace/trace_reader.h"

namespace vmfrag {
namespace {

class StringSource final : public OpSource {
 public:
  explicit StringSource(const std::string& text) : in_(text), reader_(in_, "t.vmtrace") {}
  const TraceHeader& header() const override { return reader_.header(); }
  bool next(Op& op) override { return reader_.next(op); }
  std::uint64_t line() const override { return reader_.line(); }
  const std::string& name() const override { return reader_.display_name(); }

 private:
  std::istringstream in_;
  TraceReader reader_;
};

ReplayResult run(const std::string& text, bool differential = false) {
  StringSource source(text);
  ReplayOptions options;
  options.differential = differential;
  options.check_every = 1;
  return replay(source, options);
}

TEST(Replay, HandComputedPlacements) {
  const auto r = run(R"(vmtrace 1
region 64K
guard 1
lazy 0
a 0 4K        # [0, 8K)
a 1 5000      # 2 pages + guard: [8K, 20K)
a 2 4K 16K    # next 16K-aligned start: 32K
f 1           # [8K, 20K) free again (eager)
a 3 8K        # 8K + guard = 12K fits at 8K
a 4 28K       # 32K needed; 36K free in [20K,32K) and [40K,64K), no hole fits: fragmentation
a 5 100K      # more than the region: no-virtual-space
f 4           # its allocation failed: a no-op
)",
                      true);
  EXPECT_FALSE(r.divergence) << r.divergence->allocator << " vs " << r.divergence->reference;
  EXPECT_EQ(r.invariant_violation, "");
  EXPECT_EQ(r.placements.at(0), 0u);
  EXPECT_EQ(r.placements.at(1), 8u * 1024);
  EXPECT_EQ(r.placements.at(2), 32u * 1024);
  EXPECT_EQ(r.placements.at(3), 8u * 1024);
  ASSERT_EQ(r.failures.size(), 2u);
  EXPECT_EQ(r.failures[0].kind, FailureKind::kVirtualFragmentation);
  EXPECT_EQ(r.failures[0].op, 5u);
  EXPECT_EQ(r.failures[0].line, 10u);
  EXPECT_EQ(r.failures[0].free_bytes, 36u * 1024);           // [20K,32K) + [40K,64K)
  EXPECT_EQ(r.failures[0].largest_free_bytes, 24u * 1024);
  EXPECT_EQ(r.failures[1].kind, FailureKind::kNoVirtualSpace);
  EXPECT_EQ(r.frees, 1u);
  EXPECT_EQ(r.frees_of_failed, 1u);
  EXPECT_EQ(r.ops, 8u);
  EXPECT_EQ(r.peak_live_bytes, (1 + 2 + 1) * 4096u);
  EXPECT_EQ(r.final_stats.free_extents, 2u);
  // The map at the failure tiles the region.
  std::uint64_t end = 0;
  for (const MapEntry& e : r.failures[0].map) {
    EXPECT_EQ(e.offset, end);
    end = e.offset + e.bytes;
  }
  EXPECT_EQ(end, 64u * 1024);
}

// --thread-cache: a freed area stays in the cache (live to the address space) and serves the next
// request of its page count; another page count misses and is placed past it, where the plain
// replay reuses the hole at once. The result says what the cache did, the same every run.
TEST(Replay, ThroughAThreadCacheFreedAreasStayLiveAndServeTheirSize) {
  const std::string trace = R"(vmtrace 1
region 64K
guard 1
lazy 0
a 0 12K       # [0, 16K)
a 1 4K        # [16K, 24K)
f 0           # plain: [0, 16K) free again; cached: still live
a 2 4K        # plain: 0; cached: a miss (1 page), placed at 24K
a 3 12K       # plain: 16K with its guard, first free at 24K; cached: a hit, 0
k 4 4K
f 4
k 5 4K        # cached: the same block again
)";
  const ReplayResult plain = run(trace);
  StringSource source(trace);
  ReplayOptions options;
  options.check_every = 1;
  options.thread_cache = ThreadCacheConfig{};
  const ReplayResult cached = replay(source, options);
  EXPECT_EQ(cached.invariant_violation, "");
  EXPECT_EQ(plain.placements.at(2), 0u);
  EXPECT_EQ(plain.placements.at(3), 24u * 1024);
  EXPECT_EQ(cached.placements.at(2), 24u * 1024);
  EXPECT_EQ(cached.placements.at(3), 0u);
  EXPECT_FALSE(plain.thread_cache);
  ASSERT_TRUE(cached.thread_cache);
  EXPECT_EQ(cached.thread_cache->hits, 2u);    // a 3, k 5
  EXPECT_EQ(cached.thread_cache->misses, 4u);  // a 0, a 1, a 2, k 4
  EXPECT_EQ(cached.thread_cache->cached_areas, 0u);
  const nlohmann::json j = nlohmann::json::parse(replay_result_json(cached));
  EXPECT_EQ(j["thread_cache"]["hits"], 2);
  EXPECT_FALSE(nlohmann::json::parse(replay_result_json(plain)).contains("thread_cache"));
  StringSource again(trace);
  EXPECT_EQ(replay_result_json(replay(again, options)), replay_result_json(cached));
  // Differential mode compares with exact lowest fit: refused, at line 0.
  StringSource diff(trace);
  options.differential = true;
  EXPECT_THROW((void)replay(diff, options), InputError);
}

TEST(Replay, LazyTraceDefaultHoldsFreedSpace) {
  // No `lazy` directive: the format's default (8192 pages) holds the freed area back.
  const auto r = run("vmtrace 1\nregion 1M\na 0 4K\nf 0\na 1 4K\np\na 2 4K\n", true);
  EXPECT_FALSE(r.divergence);
  EXPECT_EQ(r.placements.at(1), 8u * 1024);
  EXPECT_EQ(r.placements.at(2), 0u);  // after the explicit purge
}

// k, m, h drive the physical-memory layer: with 1 MiB of physical memory held one page each by
// kmalloc and every other page freed, a two-page kmalloc fails with physical-fragmentation while
// vm_map_ram and vmalloc_huge (falling back to pages) still succeed. Every backing.
TEST(Replay, PhysicalOpsReplayInEveryBacking) {
  std::string text = "vmtrace 1\nregion 64M\nphys 1M\nlazy 0\n";
  for (int i = 0; i < 256; ++i) text += "k " + std::to_string(i) + " 4K\n";
  for (int i = 0; i < 256; i += 2) text += "f " + std::to_string(i) + "\n";
  text += "k 1000 8K\nm 1001 2\nh 1002 2M\nf 1001\nf 1002\na 1003 4K\np\n";
  for (const char* backing : {"none", "anon", "memfd"}) {
    SCOPED_TRACE(backing);
    std::string t = text;
    t.insert(t.find("lazy 0\n") + 7, std::string("backing ") + backing + "\n");
    StringSource source(t);
    ReplayOptions options;
    options.check_every = 64;
    const ReplayResult r = replay(source, options);
    EXPECT_EQ(r.invariant_violation, "");
    // none: no pages behind vmalloc, so vmalloc_huge succeeds; anon and memfd: it falls back to
    // 512 pages and only about 126 are free.
    ASSERT_EQ(r.failures.size(), std::string(backing) == "none" ? 1u : 2u);
    EXPECT_EQ(r.failures[0].kind, FailureKind::kPhysicalFragmentation);
    EXPECT_EQ(r.failures[0].line, 390u);  // the `k 1000 8K` line
    if (std::string(backing) != "none") {
      EXPECT_EQ(r.failures[1].kind, FailureKind::kNoPhysicalMemory);
    }
    EXPECT_EQ(r.frees, 128u + (std::string(backing) == "none" ? 2u : 1u));
  }
}

// k and h under --differential: the buddy model and the address-space model follow them.
TEST(Replay, DifferentialFollowsKmallocAndHuge) {
  std::string text = "vmtrace 1\nregion 64M\nphys 1M\nlazy 0\n";
  for (int i = 0; i < 256; ++i) text += "k " + std::to_string(i) + " " + std::to_string(4096 * (1 + i % 3)) + "\n";
  for (int i = 0; i < 256; i += 3) text += "f " + std::to_string(i) + "\n";
  text += "k 1000 16K\nh 1001 3M\na 1002 4K 2M\nh 1003 1M\nf 1001\nh 1004 60M\nf 1003\np\n";
  const ReplayResult r = run(text, /*differential=*/true);
  EXPECT_FALSE(r.divergence) << r.divergence->allocator << " vs " << r.divergence->reference;
  EXPECT_EQ(r.invariant_violation, "");
  EXPECT_FALSE(r.failures.empty());  // the physical memory ran out along the way
}

// m under --differential: blocks filled bump-style, a block freed when all of it is dirty, the
// fragmented ones purged at `p`, large requests in areas of their own: the models follow all of it.
TEST(Replay, DifferentialFollowsVmMapRamBlocks) {
  std::string text = "vmtrace 1\nregion 64M\nphys 8M\nlazy 0\nm 0 1\n";
  for (int i = 1; i < 1200; ++i) text += "m " + std::to_string(i) + " " + std::to_string(1 + i % 5) + "\nf " + std::to_string(i) + "\n";
  text += "m 5000 100\np\nf 0\nf 5000\np\nm 5001 3\n";
  const ReplayResult r = run(text, /*differential=*/true);
  EXPECT_FALSE(r.divergence) << r.divergence->allocator << " vs " << r.divergence->reference;
  EXPECT_EQ(r.invariant_violation, "");
  EXPECT_EQ(r.allocs, 1202u);
}

// --differential in every backing: in anon and memfd `a` and `h` own pages (compared pfn by pfn),
// a request that gets its area but not its pages fails with no-physical-memory and gives the area
// straight back, huge areas fall back to pages, and frees give pages back at once.
TEST(Replay, DifferentialFollowsEveryBacking) {
  std::string text = "vmtrace 1\nregion 16M\nphys 4M\nlazy 4\n";
  std::uint64_t id = 0, ops = 0;
  auto add = [&](const std::string& line) {
    text += line + "\n";
    ++ops;
  };
  for (int round = 0; round < 40; ++round) {
    add("a " + std::to_string(id++) + " " + std::to_string(4096 * (1 + round % 7) - round));
    add("k " + std::to_string(id++) + " " + std::to_string(4096 << (round % 4)));
    add("m " + std::to_string(id++) + " " + std::to_string(1 + round % 70));
    if (round % 9 == 0) add("h " + std::to_string(id++) + " 2M");
    if (round % 3 == 0) add("f " + std::to_string(id - 2));
    if (round % 5 == 0) add("f " + std::to_string(id - 3)), add("p");
  }
  add("a " + std::to_string(id++) + " 3M");  // more pages than are left: no-physical-memory in anon/memfd
  for (Backing backing : {Backing::kNone, Backing::kAnon, Backing::kMemfd}) {
    StringSource source(text);
    ReplayOptions options;
    options.differential = true;
    options.check_every = 1;
    options.backing = backing;
    const ReplayResult r = replay(source, options);
    EXPECT_FALSE(r.divergence) << backing_name(backing) << ": op " << r.divergence->op << ": "
                               << r.divergence->allocator << " vs " << r.divergence->reference;
    EXPECT_EQ(r.invariant_violation, "") << backing_name(backing);
    EXPECT_EQ(r.ops, ops) << backing_name(backing);
    if (backing != Backing::kNone) {
      EXPECT_GT(r.failures_by_kind.count("no-physical-memory"), 0u) << backing_name(backing);
    }
  }
}

TEST(Replay, JsonHasTheDocumentedKeysAndIsDeterministic) {
  const std::string text = "vmtrace 1\nregion 64K\nlazy 0\na 0 16K\na 1 16K\nf 0\na 2 32K\n";
  const std::string a = replay_result_json(run(text, true));
  const std::string b = replay_result_json(run(text, true));
  EXPECT_EQ(a, b);
  const auto j = nlohmann::json::parse(a);
  for (const char* key : {"ops", "allocs", "frees", "failures", "placements", "peak_live_bytes", "final"})
    EXPECT_TRUE(j.contains(key)) << key;
  for (const char* key : {"free_bytes", "largest_free_bytes", "free_extents", "lazy_bytes", "external_fragmentation"})
    EXPECT_TRUE(j["final"].contains(key)) << key;
  ASSERT_EQ(j["failures"].size(), 1u);
  const auto& f = j["failures"][0];
  for (const char* key : {"op", "id", "size", "kind", "free_bytes", "largest_free_bytes"})
    EXPECT_TRUE(f.contains(key)) << key;
  EXPECT_EQ(f["kind"], "virtual-fragmentation");
  EXPECT_EQ(j["placements"]["1"], 20 * 1024);
  EXPECT_TRUE(j["divergence"].is_null());
}

TEST(Replay, TimelineHasOneLinePerOp) {
  StringSource source("vmtrace 1\nregion 64K\na 0 4K\nf 0\np\n");
  std::ostringstream tl;
  ReplayOptions options;
  options.on_op = [&](std::uint64_t i, const Op& op, const VirtualSpace& vs, bool ok, FailureKind f,
                      std::uint64_t off) { tl << timeline_line(i, op, vs, ok, f, off) << '\n'; };
  (void)replay(source, options);
  std::istringstream lines(tl.str());
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["op"], n);
    ++n;
  }
  EXPECT_EQ(n, 3);
}

}  // namespace
}  // namespace vmfrag
