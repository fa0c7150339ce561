// Covers the two importers: /proc/vmallocinfo snapshots (profile histograms with the guard page
// subtracted exactly where the kernel adds one, and the address-order replay with gap fillers) and
// CS:APP malloc-lab .rep traces (the page-per-8-bytes scaling and realloc mapping). The sample
// inputs in harness/tests/data were written for these tests; corpus/profiles/vmallocinfo-sample.txt
// is a real (hashed-address) snapshot. Malformed input must name the offending FILE:LINE, because
// that is what a user fixing a snapshot or trace sees.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "allocator/vspace/virtual_space.h"
#include "harness/trace/input_error.h"
#include "harness/workloads/malloclab_import.h"
#include "harness/workloads/vmallocinfo_import.h"

namespace vmfrag {
namespace {

std::filesystem::path source_root() {
  if (const char* dir = std::getenv("VMFRAG_SOURCE_DIR")) return dir;
  return VMFRAG_SOURCE_ROOT;  // set by harness/meson.build
}

std::ifstream open_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  EXPECT_TRUE(in.good()) << p;
  return in;
}

class CollectingSink : public OpSink {
 public:
  void begin(const TraceHeader& h) override { header = h; }
  void emit(const Op& op) override { ops.push_back(op); }
  TraceHeader header;
  std::vector<Op> ops;
};

Op a(std::uint64_t id, std::uint64_t size) { return Op{OpKind::kAlloc, id, size, kPageSize}; }
Op f(std::uint64_t id) { return Op{OpKind::kFree, id, 0, kPageSize}; }

// Runs `body` and returns the InputError it throws (failing the test if it throws nothing).
template <typename Body>
InputError expect_input_error(Body body) {
  try {
    body();
  } catch (const InputError& e) {
    return e;
  }
  ADD_FAILURE() << "no InputError";
  return InputError("", 0, "");
}

TEST(Vmallocinfo, ProfileOfTheSmallSample) {
  auto in = open_file(source_root() / "harness/tests/data/vmallocinfo-small.txt");
  const VmallocinfoProfile p = load_vmallocinfo_profile(in, "small");
  using K = VmallocinfoKind;
  const std::map<K, std::map<std::uint64_t, std::uint64_t>> expected = {
      {K::kVmap, {{16384, 1}}},                                  // 20480 - guard
      {K::kIoremap, {{4096, 1}}},                                // 8192 - guard
      {K::kVmalloc, {{4096, 1}, {16384, 1}, {2097152, 1}}},     // pcpu_get_vm_areas: no guard
      {K::kVmMapRam, {{262144, 1}}},                             // no guard
      {K::kUnpurged, {{16384, 1}}},
  };
  EXPECT_EQ(p.usable_histogram, expected);
  EXPECT_EQ(p.live_areas, 6u);
  EXPECT_EQ(p.live_span_bytes, 20480u + 8192 + 20480 + 8192 + 2097152 + 262144);
  EXPECT_EQ(p.unpurged_areas, 1u);
  EXPECT_EQ(p.unpurged_span_bytes, 20480u);
  EXPECT_TRUE(p.addresses_real);
}

TEST(Vmallocinfo, CallerAndGuardPerLine) {
  auto in = open_file(source_root() / "harness/tests/data/vmallocinfo-small.txt");
  std::vector<VmallocinfoArea> areas;
  parse_vmallocinfo(in, "small", [&](const VmallocinfoArea& x) { areas.push_back(x); });
  ASSERT_EQ(areas.size(), 7u);
  EXPECT_EQ(areas[0].caller, "irq_init_percpu_irqstack");
  EXPECT_EQ(areas[3].caller, "bpf_prog_alloc_no_stats");
  EXPECT_EQ(areas[3].line, 5u);  // line 4 is blank
  EXPECT_FALSE(areas[4].has_guard);
  EXPECT_EQ(areas[4].caller, "pcpu_get_vm_areas");
  EXPECT_EQ(areas[5].kind, VmallocinfoKind::kVmMapRam);
  EXPECT_EQ(areas[6].kind, VmallocinfoKind::kUnpurged);
}

TEST(Vmallocinfo, ReplayRebuildsTheLayoutWithFillers) {
  auto in = open_file(source_root() / "harness/tests/data/vmallocinfo-small.txt");
  CollectingSink sink;
  const TraceHeader h = import_vmallocinfo(in, "small", sink);
  EXPECT_EQ(h.region_bytes, 5u << 20);  // span 0x445000 rounded up to 1 MiB
  EXPECT_EQ(sink.header, h);
  const std::vector<Op> expected = {
      a(0, 16384),              // vmap, 20480 span
      a(1, 8192),               // ioremap 8192 span + the 1-page gap after it folded in
      a(2, 20480),              // vmalloc 20480 span + folded 1-page gap
      a(3, 4096),               // vmalloc 8192 span
      a(4, 0x1f0000 - 4096),    // filler for the gap 0x10000..0x200000
      a(5, 2097152 - 4096),     // pcpu area: footprint = its span
      a(6, 262144 - 4096),      // vm_map_ram
      a(7, 16384),              // unpurged: allocated in place ...
      f(4),                     // fillers freed
      Op{OpKind::kPurge, 0, 0, kPageSize},  // and purged: a gap is free space, not lazily held
      f(7),                     // ... and freed again (lazily, like the snapshot)
  };
  EXPECT_EQ(sink.ops, expected);
  EXPECT_EQ(h.lazy_pages, 8192u);  // 5 unpurged pages: the format's default holds them
}

TEST(Vmallocinfo, LazyThresholdHoldsEveryUnpurgedPage) {
  // 40 MiB of unpurged areas (10240 pages, guards included: a printed span holds its guard) exceed
  // the default 8192: the threshold rises to their footprint so that replay purges nothing the
  // kernel had not.
  std::ostringstream text;
  for (int i = 0; i < 4; ++i) {
    const std::uint64_t start = 0xffffc90000000000ull + static_cast<std::uint64_t>(i) * (10ull << 20);
    char line[160];
    std::snprintf(line, sizeof line, "0x%llx-0x%llx %llu unpurged vm_area\n", static_cast<unsigned long long>(start),
                  static_cast<unsigned long long>(start + (10ull << 20)), 10ull << 20);
    text << line;
  }
  std::istringstream in(text.str());
  CollectingSink sink;
  const TraceHeader h = import_vmallocinfo(in, "big-unpurged", sink);
  EXPECT_EQ(h.lazy_pages, 4u * 2560u);  // each area: 10 MiB - 4 KiB allocated, plus its guard page
}

TEST(Vmallocinfo, HashedSnapshotIsPackedInFileOrder) {
  auto in = open_file(source_root() / "corpus/profiles/vmallocinfo-sample.txt");
  std::uint64_t lines = 0, unpurged = 0;
  parse_vmallocinfo(in, "sample", [&](const VmallocinfoArea& x) {
    ++lines;
    unpurged += x.kind == VmallocinfoKind::kUnpurged;
  });
  ASSERT_GT(lines, 100u);
  auto again = open_file(source_root() / "corpus/profiles/vmallocinfo-sample.txt");
  EXPECT_FALSE(load_vmallocinfo_profile(again, "sample").addresses_real);
  auto third = open_file(source_root() / "corpus/profiles/vmallocinfo-sample.txt");
  CollectingSink sink;
  import_vmallocinfo(third, "sample", sink);
  std::uint64_t allocs = 0, frees = 0;
  for (const Op& op : sink.ops) (op.kind == OpKind::kAlloc ? allocs : frees) += 1;
  EXPECT_EQ(allocs, lines);  // no fillers without real addresses
  EXPECT_EQ(frees, unpurged);
}

TEST(Vmallocinfo, RegionOptionMustCoverTheSnapshot) {
  auto in = open_file(source_root() / "harness/tests/data/vmallocinfo-small.txt");
  CollectingSink sink;
  const InputError e = expect_input_error([&] { import_vmallocinfo(in, "small", sink, {1 << 20}); });
  EXPECT_EQ(e.file(), "<args>");
  EXPECT_NE(e.message().find("smaller than the snapshot's span"), std::string::npos);
}

TEST(Vmallocinfo, MalformedLinesNameTheirLine) {
  const std::string good = "0xffffc90000000000-0xffffc90000005000   20480 foo+0x1/0x2 pages=4 vmalloc\n";
  const std::vector<std::string> bad_lines = {
      "0xffffc90000000000 20480 foo vmalloc",                        // no range
      "0xzz-0xffffc90000005000 20480 foo vmalloc",                    // bad hex
      "0xffffc90000000000-0xffffc90000005000 20481 foo vmalloc",      // not a page multiple
      "0xffffc90000000000-0xffffc90000005000 0 foo vmalloc",          // zero
      "0xffffc90000000000-0xffffc90000005000 abc foo vmalloc",        // not a number
      "0xffffc90000000000-0xffffc90000005000 20480",                  // no description
      "0xffffc90000000000-0xffffc90000005000 20480 foo pages=x vmalloc",  // bad field value
      "0xffffc90000000000-0xffffc90000005000 20480 foo color=3 vmalloc",  // unknown field
  };
  for (const std::string& bad : bad_lines) {
    SCOPED_TRACE(bad);
    std::istringstream in(good + "\n" + bad + "\n" + good);
    const InputError e = expect_input_error([&] { (void)load_vmallocinfo_profile(in, "snap.txt"); });
    EXPECT_EQ(e.file(), "snap.txt");
    EXPECT_EQ(e.line(), 3u);
    EXPECT_EQ(std::string(e.what()).rfind("snap.txt:3: error: ", 0), 0u) << e.what();
  }
  std::istringstream empty("\n\n");
  CollectingSink sink;
  EXPECT_THROW(import_vmallocinfo(empty, "empty", sink), InputError);
}

TEST(Malloclab, SampleMapsToPages) {
  auto in = open_file(source_root() / "harness/tests/data/tiny.rep");
  CollectingSink sink;
  const TraceHeader h = import_malloclab(in, "tiny.rep", sink);
  EXPECT_EQ(h.region_bytes, 2500u * 4096);  // 20000 bytes / 8 = 2500 pages
  const std::vector<Op> expected = {
      a(0, 13 * 4096),   // a 0 100: ceil(100 / 8) = 13 pages
      a(1, 3 * 4096),    // a 1 24
      a(2, 25 * 4096),   // r 0 200: grows, new area ...
      f(0),              // ... then the old one is freed
      a(3, 1 * 4096),    // a 2 8
      f(1),              // f 1
                         // r 2 4: shrinks in place, no op
      a(4, 512 * 4096),  // a 3 4096
      f(2),              // f 0: its current block
      f(3),              // f 2
  };
  EXPECT_EQ(sink.ops, expected);
}

TEST(Malloclab, UnitAndRegionOptions) {
  std::istringstream in("8192\n1\n2\n1\na 0 4096\nf 0\n");
  CollectingSink sink;
  MalloclabImportOptions options;
  options.unit_bytes = 4096;
  options.region_bytes = 1 << 20;
  EXPECT_EQ(import_malloclab(in, "x", sink, options).region_bytes, 1u << 20);
  EXPECT_EQ(sink.ops, (std::vector<Op>{a(0, 4096), f(0)}));
  std::istringstream in2("8192\n1\n0\n1\n");
  options.unit_bytes = 0;
  EXPECT_EQ(expect_input_error([&] { import_malloclab(in2, "x", sink, options); }).file(), "<args>");
  for (std::uint64_t region : {1ull, 4095ull, 5000ull, 4096ull, 32ull << 10, 32ull << 40}) {
    SCOPED_TRACE(region);
    std::istringstream in3("8192\n1\n0\n1\n");
    options.unit_bytes = 8;
    options.region_bytes = region;
    EXPECT_EQ(expect_input_error([&] { import_malloclab(in3, "x", sink, options); }).file(), "<args>");
  }
}

TEST(Malloclab, SmallHeapGetsTheLeastRegionTheAllocatorTakes) {
  // realloc-bal.rep's heap line is 100 bytes: 13 pages under the scaling rule, raised to 64K.
  std::istringstream in("100\n1\n2\n1\na 0 10\nf 0\n");
  CollectingSink sink;
  EXPECT_EQ(import_malloclab(in, "x", sink).region_bytes, kMinRegionBytes);
}

TEST(Malloclab, SizesThatCannotBeScaledAreErrorsNotWrappedSizes) {
  for (const char* text : {"18446744073709551615\n1\n0\n1\n",                   // heap 2^64-1
                           "1000\n1\n1\n1\na 0 18446744073709551615\n",         // size 2^64-1
                           "1000\n1\n1\n1\na 0 2305843009213693952\n",          // size 2^61
                           "1000\n1\n2\n1\na 0 8\nr 0 2305843009213693952\n"}) {  // realloc 2^61
    SCOPED_TRACE(text);
    std::istringstream in(text);
    CollectingSink sink;
    const InputError e = expect_input_error([&] { import_malloclab(in, "t.rep", sink); });
    EXPECT_EQ(e.file(), "t.rep");
    EXPECT_GE(e.line(), 1u);
  }
}

TEST(Malloclab, MalformedInputNamesTheLine) {
  struct Case {
    std::string text;
    std::uint64_t line;
  };
  const std::vector<Case> cases = {
      {"100\n2\n", 2},                           // header cut short
      {"100\nx\n1\n1\n", 2},                     // non-numeric header
      {"100\n2\n1\n1\nq 0 5\n", 5},              // unknown op
      {"100\n2\n2\n1\na 0 5\na 2 5\n", 6},       // id out of range
      {"100\n2\n2\n1\na 0 5\na 0 5\n", 6},       // allocated twice
      {"100\n2\n1\n1\nf 1\n", 5},                // free of a non-live id
      {"100\n2\n1\n1\nr 1 10\n", 5},             // realloc of a non-live id
      {"100\n2\n1\n1\na 0\n", 5},                // missing size
      {"100\n2\n1\n1\na 0 -3\n", 5},             // negative size
      {"100\n2\n1\n1\na 0 5\nf 0\n", 6},         // more ops than announced
      {"100\n2\n3\n1\na 0 5\nf 0\n", 6},         // fewer ops than announced: at the last line
      {"0\n2\n1\n1\na 0 5\n", 1},                // no heap size and no region option
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    std::istringstream in(c.text);
    CollectingSink sink;
    const InputError e = expect_input_error([&] { import_malloclab(in, "t.rep", sink); });
    EXPECT_EQ(e.file(), "t.rep");
    EXPECT_EQ(e.line(), c.line);
  }
}

}  // namespace
}  // namespace vmfrag
