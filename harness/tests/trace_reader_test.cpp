// Covers the vmtrace v1 reader (harness/trace/trace_reader.h) and size parsing (size_text.h):
// hand-written traces parse to exactly the expected header, ops and line numbers; every kind of
// malformed input gives exactly `FILE:LINE: error: MESSAGE` at the right line, because users fix
// traces from these messages and the CLI prints them verbatim; the reader streams (returns ops long
// before the input ends) and survives arbitrary bytes with nothing but InputError.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "allocator/tests/reliability_figures.h"
#include "harness/trace/size_text.h"
#include "harness/trace/trace_reader.h"

namespace vmfrag {
namespace {

// Fixed seeds keep CI deterministic; VMFRAG_SEED=N replays one failing seed alone.
std::vector<std::uint64_t> test_seeds() {
  if (const char* env = std::getenv("VMFRAG_SEED")) return {std::strtoull(env, nullptr, 10)};
  return {1, 2, 3, 42, 1234, 99991, 20240601, 7777777};
}

ParsedTrace parse(const std::string& text) {
  std::istringstream in(text);
  return read_whole_trace(in, "t.vmt");
}

// The exact what() of the error reading `text`, or "no error".
std::string error_of(const std::string& text) {
  try {
    (void)parse(text);
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

Op alloc(std::uint64_t id, std::uint64_t size, std::uint64_t align = kPageSize) {
  return Op{OpKind::kAlloc, id, size, align};
}
Op op_of(OpKind kind, std::uint64_t id, std::uint64_t size = 0) { return Op{kind, id, size, kPageSize}; }

// ---------------------------------------------------------------------------------------------
// Sizes

TEST(ParseSize, AcceptsDigitsWithBinarySuffixes) {
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("5000"), 5000u);
  EXPECT_EQ(parse_size("007"), 7u);
  EXPECT_EQ(parse_size("4K"), 4096u);
  EXPECT_EQ(parse_size("64M"), 64ull << 20);
  EXPECT_EQ(parse_size("3G"), 3ull << 30);
  EXPECT_EQ(parse_size("2T"), 2ull << 40);
  EXPECT_EQ(parse_size("0T"), 0u);
  EXPECT_EQ(parse_size("18446744073709551615"), UINT64_MAX);
  EXPECT_EQ(parse_size("16777215T"), 16777215ull << 40);  // largest T value that fits
}

TEST(ParseSize, RejectsMalformedText) {
  for (const char* bad : {"", "K", "4k", "4KB", "4 K", " 4", "-4", "+4", "4.5M", "0x10", "4KK", "M4", "4\n"})
    EXPECT_EQ(parse_size_checked(bad).status, NumberTextStatus::kMalformed) << "'" << bad << "'";
}

TEST(ParseSize, ReportsOverflowSeparately) {
  for (const char* big : {"18446744073709551616", "99999999999999999999", "17179869184T", "16777216T",
                          "17592186044416G", "18014398509481984M", "18014398509481984K"})
    EXPECT_EQ(parse_size_checked(big).status, NumberTextStatus::kOverflow) << big;
  EXPECT_EQ(parse_count_checked("4K").status, NumberTextStatus::kMalformed);
  EXPECT_EQ(parse_count_checked("18446744073709551616").status, NumberTextStatus::kOverflow);
  EXPECT_EQ(parse_count_checked("18446744073709551615").value, UINT64_MAX);
}

// ---------------------------------------------------------------------------------------------
// Well-formed traces

TEST(TraceReader, ParsesEveryDirectiveAndOp) {
  const std::string text =
      "# a hand-written trace\n"
      "\n"
      "vmtrace 1   # magic\n"
      "region\t64M\n"
      "guard 0\n"
      "lazy 0\n"
      "phys 1G\n"
      "backing memfd\n"
      "a 1 16K\n"
      "  a\t2 5000 2M   # aligned\n"
      "k 3 8K\n"
      "m 4 16\n"
      "h 5 4M\n"
      "# interlude\n"
      "f 1\n"
      "p\n"
      "a 1 0\n"
      "a 6 1T 4K";  // last line without newline
  const ParsedTrace trace = parse(text);
  TraceHeader expected_header;
  expected_header.region_bytes = 64ull << 20;
  expected_header.guard_pages = 0;
  expected_header.lazy_pages = 0;
  expected_header.phys_bytes = 1ull << 30;
  expected_header.backing = Backing::kMemfd;
  EXPECT_EQ(trace.header, expected_header);
  const std::vector<Op> expected_ops = {
      alloc(1, 16384),          alloc(2, 5000, 2ull << 20), op_of(OpKind::kKmalloc, 3, 8192),
      op_of(OpKind::kMapRam, 4, 16), op_of(OpKind::kHuge, 5, 4ull << 20), op_of(OpKind::kFree, 1),
      op_of(OpKind::kPurge, 0), alloc(1, 0),           alloc(6, 1ull << 40)};
  EXPECT_EQ(trace.ops, expected_ops);
  EXPECT_EQ(trace.op_lines, (std::vector<std::uint64_t>{9, 10, 11, 12, 13, 15, 16, 17, 18}));
}

TEST(TraceReader, AppliesDefaultsForAbsentDirectives) {
  const ParsedTrace trace = parse("vmtrace 1\nregion 64K\n");
  TraceHeader expected;
  expected.region_bytes = 65536;
  EXPECT_EQ(trace.header, expected);
  EXPECT_EQ(expected.guard_pages, 1u);
  EXPECT_EQ(expected.lazy_pages, 8192u);
  EXPECT_EQ(expected.phys_bytes, 256ull << 20);
  EXPECT_EQ(expected.backing, Backing::kNone);
  EXPECT_TRUE(trace.ops.empty());
}

TEST(TraceReader, AcceptsSizesTheAllocatorWillReject) {
  // Size 0 and sizes beyond the region are allocation failures a trace must be able to record.
  const ParsedTrace trace = parse("vmtrace 1\nregion 64K\na 1 0\na 2 1T\nk 3 0\nm 4 0\nh 5 18446744073709551615\n");
  ASSERT_EQ(trace.ops.size(), 5u);
  EXPECT_EQ(trace.ops[0].size, 0u);
  EXPECT_EQ(trace.ops[1].size, 1ull << 40);
  EXPECT_EQ(trace.ops[4].size, UINT64_MAX);
}

TEST(TraceReader, IdBecomesReusableAfterFreeAndFreeAfterAnyAllocatingOp) {
  const ParsedTrace trace =
      parse("vmtrace 1\nregion 64M\na 7 4K\nf 7\nk 7 4K\nf 7\nm 7 1\nf 7\nh 7 2M\nf 7\n"
            "a 18446744073709551615 4K\nf 18446744073709551615\n");
  EXPECT_EQ(trace.ops.size(), 10u);
  EXPECT_EQ(trace.ops[8].id, UINT64_MAX);
}

TEST(TraceReader, AcceptsCrLfLineEndings) {
  const ParsedTrace trace = parse("vmtrace 1\r\nregion 64K\r\na 1 4K\r\nf 1\r\n");
  EXPECT_EQ(trace.header.region_bytes, 65536u);
  EXPECT_EQ(trace.ops, (std::vector<Op>{alloc(1, 4096), op_of(OpKind::kFree, 1)}));
  EXPECT_EQ(trace.op_lines, (std::vector<std::uint64_t>{3, 4}));
}

TEST(TraceReader, AcceptsLineOfExactlyTheMaximumLengthAndUtf8InComments) {
  std::string comment = "# \xc3\xa9t\xc3\xa9 ";
  comment.resize(kMaxTraceLineLength, 'x');
  const ParsedTrace trace = parse("vmtrace 1\nregion 64K\n" + comment + "\na 1 4K\n");
  EXPECT_EQ(trace.op_lines, (std::vector<std::uint64_t>{4}));
}

TEST(TraceReader, ReportsLinesAndCountsWhileStreamingAndStaysAtEof) {
  std::istringstream in("vmtrace 1\nregion 64M\n\na 1 4K\n# c\nf 1\n");
  TraceReader reader(in, "s.vmt");
  EXPECT_EQ(reader.header().region_bytes, 64ull << 20);
  EXPECT_EQ(reader.line(), 0u);
  Op op;
  ASSERT_TRUE(reader.next(op));
  EXPECT_EQ(op, alloc(1, 4096));
  EXPECT_EQ(reader.line(), 4u);
  ASSERT_TRUE(reader.next(op));
  EXPECT_EQ(reader.line(), 6u);
  EXPECT_EQ(reader.ops_read(), 2u);
  const Op before = op;
  EXPECT_FALSE(reader.next(op));
  EXPECT_FALSE(reader.next(op));
  EXPECT_EQ(op, before);  // untouched at EOF
}

// A stream buffer that produces an endless, valid trace on demand and counts the bytes it has
// handed out: a reader that slurped its input would never return from the first next().
class EndlessTraceBuf : public std::streambuf {
 public:
  std::uint64_t bytes_produced() const { return produced_; }

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    chunk_.clear();
    if (!header_done_) {
      chunk_ = "vmtrace 1\nregion 1T\n";
      header_done_ = true;
    }
    // Small chunks so that "how much was pulled" measures the reader, not the buffer.
    for (int i = 0; i < 4; ++i, ++next_id_)
      chunk_ += "a " + std::to_string(next_id_) + " 4K\nf " + std::to_string(next_id_) + "\n";
    produced_ += chunk_.size();
    setg(chunk_.data(), chunk_.data(), chunk_.data() + chunk_.size());
    return traits_type::to_int_type(*gptr());
  }

 private:
  std::string chunk_;
  bool header_done_ = false;
  std::uint64_t next_id_ = 0;
  std::uint64_t produced_ = 0;
};

TEST(TraceReader, StreamsWithoutReadingAhead) {
  EndlessTraceBuf buf;
  std::istream in(&buf);
  TraceReader reader(in, "endless");
  Op op;
  for (int i = 0; i < 200000; ++i) ASSERT_TRUE(reader.next(op));
  EXPECT_EQ(op, op_of(OpKind::kFree, 99999));
  EXPECT_EQ(reader.line(), 200002u);
  // At most the chunk being read beyond what the ops consumed.
  EXPECT_LT(buf.bytes_produced(), 2'500'000u);
}

TEST(TraceReader, OpenReadsAFileAndReportsUnopenableOnes) {
  const std::string path = ::testing::TempDir() + "vmfrag_reader_open_test.vmt";
  {
    std::ofstream out(path);
    out << "vmtrace 1\nregion 1M\na 0 12K 8K\n";
  }
  TraceReader reader = TraceReader::open(path);
  EXPECT_EQ(reader.display_name(), path);
  Op op;
  ASSERT_TRUE(reader.next(op));
  EXPECT_EQ(op, alloc(0, 12288, 8192));
  EXPECT_FALSE(reader.next(op));
  std::remove(path.c_str());

  try {
    (void)TraceReader::open("/nonexistent/dir/x.vmt");
    FAIL() << "opened a nonexistent file";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/dir/x.vmt:0: error: cannot open trace: No such file or directory");
  }
}

// ---------------------------------------------------------------------------------------------
// Malformed traces: exact messages at exact lines

struct Malformed {
  const char* what;
  std::string text;
  std::string error;
};

const std::string kHead = "vmtrace 1\nregion 64M\n";  // ops start at line 3

std::vector<Malformed> malformed_cases() {
  return {
      {"empty file", "", "t.vmt:1: error: missing 'vmtrace 1' header"},
      {"only comments and blanks", "# one\n\n# three\n", "t.vmt:3: error: missing 'vmtrace 1' header"},
      {"wrong magic", "# c\nvmtrac 1\nregion 64M\n",
       "t.vmt:2: error: missing 'vmtrace 1' header: the first line starts with 'vmtrac'"},
      {"directive before magic", "region 64M\nvmtrace 1\n",
       "t.vmt:1: error: missing 'vmtrace 1' header: the first line starts with 'region'"},
      {"wrong version", "vmtrace 2\nregion 64M\n",
       "t.vmt:1: error: unsupported vmtrace version '2' (this reader reads version 1)"},
      {"non-numeric version", "vmtrace one\n",
       "t.vmt:1: error: unsupported vmtrace version 'one' (this reader reads version 1)"},
      {"magic without version", "vmtrace\n", "t.vmt:1: error: 'vmtrace' takes 1 value (vmtrace 1), got 0"},
      {"duplicate magic", "vmtrace 1\nregion 64M\nvmtrace 1\n",
       "t.vmt:3: error: duplicate directive 'vmtrace' (first at line 1)"},
      {"missing region at eof", "vmtrace 1\nguard 0\n", "t.vmt:2: error: missing 'region' directive"},
      {"missing region before op", "vmtrace 1\nguard 0\n\na 1 4K\n",
       "t.vmt:4: error: missing 'region' directive before the first op"},
      {"region not page multiple", "vmtrace 1\nregion 5000\n",
       "t.vmt:2: error: region must be a multiple of 4096 bytes from 64K to 16T, got 5000"},
      {"region zero", "vmtrace 1\nregion 0\n",
       "t.vmt:2: error: region must be a multiple of 4096 bytes from 64K to 16T, got 0"},
      {"region below the allocator's minimum", "vmtrace 1\nregion 60K\n",
       "t.vmt:2: error: region must be a multiple of 4096 bytes from 64K to 16T, got 61440"},
      {"region above the allocator's maximum", "vmtrace 1\nregion 17T\n",
       "t.vmt:2: error: region must be a multiple of 4096 bytes from 64K to 16T, got 18691697672192"},
      {"region overflow", "vmtrace 1\nregion 17179869184T\n",
       "t.vmt:2: error: region '17179869184T' does not fit in 64 bits"},
      {"region without value", "vmtrace 1\nregion\n",
       "t.vmt:2: error: 'region' takes 1 value (region <bytes>), got 0"},
      {"region bad suffix", "vmtrace 1\nregion 64Mb\n",
       "t.vmt:2: error: bad region '64Mb': expected digits with an optional K, M, G or T suffix"},
      {"duplicate directive", "vmtrace 1\nregion 64M\nguard 1\nlazy 0\nguard 2\n",
       "t.vmt:5: error: duplicate directive 'guard' (first at line 3)"},
      {"guard beyond 32 bits", "vmtrace 1\nregion 64M\nguard 4294967296\n",
       "t.vmt:3: error: guard '4294967296' does not fit in 32 bits"},
      {"guard with suffix", "vmtrace 1\nregion 64M\nguard 1K\n",
       "t.vmt:3: error: bad guard '1K': expected a non-negative decimal integer"},
      {"lazy overflow", "vmtrace 1\nregion 64M\nlazy 99999999999999999999\n",
       "t.vmt:3: error: lazy '99999999999999999999' does not fit in 64 bits"},
      {"phys not page multiple", "vmtrace 1\nregion 64M\nphys 1000\n",
       "t.vmt:3: error: phys must be a multiple of 4096 bytes, got 1000"},
      {"unknown backing", "vmtrace 1\nregion 64M\nbacking shm\n",
       "t.vmt:3: error: unknown backing 'shm' (expected none, anon or memfd)"},
      {"unknown directive", "vmtrace 1\nregoin 64M\n", "t.vmt:2: error: unknown directive or op 'regoin'"},
      {"directive after op", kHead + "a 1 4K\n# c\nguard 0\n",
       "t.vmt:5: error: directive 'guard' after the first op (line 3); directives must come before all ops"},
      {"unknown op", kHead + "a 1 4K\nx 1\n", "t.vmt:4: error: unknown op 'x'"},
      {"op word too long", kHead + "a 1 4K\nalloc 2 4K\n", "t.vmt:4: error: unknown op 'alloc'"},
      {"truncated line", kHead + "a 1 4K\na 2", "t.vmt:4: error: 'a' takes 2 or 3 arguments (a <id> <size> [<align>]), got 1"},
      {"extra field on a", kHead + "a 1 4K 4K 4K\n",
       "t.vmt:3: error: 'a' takes 2 or 3 arguments (a <id> <size> [<align>]), got 4"},
      {"extra field on f", kHead + "a 1 4K\nf 1 4K\n", "t.vmt:4: error: 'f' takes 1 argument (f <id>), got 2"},
      {"argument on p", kHead + "p 1\n", "t.vmt:3: error: 'p' takes 0 arguments (p), got 1"},
      {"missing field on k", kHead + "k 1\n", "t.vmt:3: error: 'k' takes 2 arguments (k <id> <size>), got 1"},
      {"bad suffix", kHead + "a 1 4Q\n",
       "t.vmt:3: error: bad size '4Q': expected digits with an optional K, M, G or T suffix"},
      {"lowercase suffix", kHead + "h 1 2m\n",
       "t.vmt:3: error: bad size '2m': expected digits with an optional K, M, G or T suffix"},
      {"negative size", kHead + "a 1 -4096\n",
       "t.vmt:3: error: bad size '-4096': expected digits with an optional K, M, G or T suffix"},
      {"huge size", kHead + "a 1 99999999999999999999\n",
       "t.vmt:3: error: size '99999999999999999999' does not fit in 64 bits"},
      {"huge size with suffix", kHead + "k 1 17179869184T\n",
       "t.vmt:3: error: size '17179869184T' does not fit in 64 bits"},
      {"huge id", kHead + "a 18446744073709551616 4K\n",
       "t.vmt:3: error: id '18446744073709551616' does not fit in 64 bits"},
      {"negative id", kHead + "a -1 4K\n", "t.vmt:3: error: bad id '-1': expected a non-negative decimal integer"},
      {"id with suffix", kHead + "a 1K 4K\n", "t.vmt:3: error: bad id '1K': expected a non-negative decimal integer"},
      {"page count with suffix", kHead + "m 1 4K\n",
       "t.vmt:3: error: bad page count '4K': expected a non-negative decimal integer"},
      {"align below a page", kHead + "a 1 4K 2K\n", "t.vmt:3: error: align must be a power of two >= 4096, got 2K"},
      {"align not a power of two", kHead + "a 1 4K 12K\n",
       "t.vmt:3: error: align must be a power of two >= 4096, got 12K"},
      {"align zero", kHead + "a 1 4K 0\n", "t.vmt:3: error: align must be a power of two >= 4096, got 0"},
      {"align overflow", kHead + "a 1 4K 16777216T\n", "t.vmt:3: error: align '16777216T' does not fit in 64 bits"},
      {"duplicate live id", kHead + "a 1 4K\n\nk 1 8K\n", "t.vmt:5: error: id 1 is already live (allocated at line 3)"},
      {"live id reused by m", kHead + "m 9 1\nf 9\nh 9 2M\nm 9 2\n",
       "t.vmt:6: error: id 9 is already live (allocated at line 5)"},
      {"free of unknown id", kHead + "a 1 4K\nf 2\n", "t.vmt:4: error: id 2 was never allocated"},
      {"double free", kHead + "a 1 4K\nf 1\np\nf 1\n", "t.vmt:6: error: id 1 was already freed at line 4"},
      {"NUL byte", kHead + std::string("a 1\0 4K\n", 8), "t.vmt:3: error: non-text byte 0x00 at column 4 (a vmtrace is a text file)"},
      {"NUL in comment", std::string("# \0\n", 4),
       "t.vmt:1: error: non-text byte 0x00 at column 3 (a vmtrace is a text file)"},
      {"stray carriage return", kHead + "a 1\r4K\n",
       "t.vmt:3: error: non-text byte 0x0d at column 4 (a vmtrace is a text file)"},
      {"escape sequence", kHead + "p\x1b[2J\n",
       "t.vmt:3: error: non-text byte 0x1b at column 2 (a vmtrace is a text file)"},
      {"binary garbage first", std::string("\x7f" "ELF\x02\x01\x01\0\0\0", 10),
       "t.vmt:1: error: non-text byte 0x7f at column 1 (a vmtrace is a text file)"},
      {"high bytes", "\xff\xfe\x80garbage\n",
       "t.vmt:1: error: missing 'vmtrace 1' header: the first line starts with '\\xff\\xfe\\x80garbage'"},
      {"high byte op", kHead + "p\n\xc3\xa9 1\n", "t.vmt:4: error: unknown op '\\xc3\\xa9'"},
      {"quote escaping", kHead + "a 1 'x\\\n", "t.vmt:3: error: bad size '\\x27x\\x5c': expected digits with an optional K, M, G or T suffix"},
      {"too-long line", kHead + "# " + std::string(kMaxTraceLineLength - 1, 'x') + "\np\n",
       "t.vmt:3: error: line is longer than 4096 characters"},
      {"endless line", kHead + "a 1 " + std::string(100000, '9'), "t.vmt:3: error: line is longer than 4096 characters"},
      {"long token is shortened", kHead + "a 1 " + std::string(50, 'Z') + "\n",
       "t.vmt:3: error: bad size '" + std::string(40, 'Z') + "...': expected digits with an optional K, M, G or T suffix"},
  };
}

TEST(TraceReader, MalformedInputGivesExactMessageAtTheRightLine) {
  CaseTally tally;  // the reliability figures: malformed inputs tried / rejected with the exact message
  for (const Malformed& c : malformed_cases()) {
    tally.begin();
    EXPECT_EQ(error_of(c.text), c.error) << c.what;
    tally.end();
  }
  tally.record();
}

TEST(TraceReader, ErrorCarriesItsParts) {
  try {
    (void)parse(kHead + "f 3\n");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), "t.vmt");
    EXPECT_EQ(e.line(), 3u);
    EXPECT_EQ(e.message(), "id 3 was never allocated");
  }
}

// Random bytes and randomly damaged valid traces: the only acceptable outcomes are a parse or an
// InputError naming the file and a line within the input; anything else (crash, sanitizer report,
// another exception type) fails the test.
TEST(TraceReader, ArbitraryBytesGiveOnlyInputErrors) {
  CaseTally tally;
  std::size_t all_rejected = 0;
  const std::string valid = kHead + "guard 0\na 1 16K 2M\nk 2 8K\nm 3 4\nf 1\nh 4 2M\np\nf 2\n";
  for (std::uint64_t seed : test_seeds()) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::printf("ArbitraryBytesGiveOnlyInputErrors seed %llu\n", static_cast<unsigned long long>(seed));
    std::mt19937_64 rng(seed);
    int parsed = 0, rejected = 0;
    for (int round = 0; round < 400; ++round) {
      tally.begin();
      std::string text;
      if (round % 2 == 0) {
        text.resize(rng() % 300);
        for (char& c : text) c = static_cast<char>(rng() % 256);
        if (round % 4 == 0) text = kHead + text;
      } else {
        text = valid;
        const int damage = 1 + static_cast<int>(rng() % 3);
        for (int d = 0; d < damage; ++d) {
          const std::size_t at = rng() % text.size();
          switch (rng() % 3) {
            case 0: text[at] = static_cast<char>(rng() % 256); break;
            case 1: text.erase(at, 1 + rng() % 4); break;
            default: text.insert(at, 1, "0123456789 KMGT#\nafkmhp\t"[rng() % 24]); break;
          }
          if (text.empty()) text = "x";
        }
      }
      const auto newlines = static_cast<std::uint64_t>(std::count(text.begin(), text.end(), '\n'));
      try {
        (void)parse(text);
        ++parsed;
      } catch (const InputError& e) {
        ++rejected;
        EXPECT_EQ(e.file(), "t.vmt");
        EXPECT_GE(e.line(), 1u);
        EXPECT_LE(e.line(), newlines + 1);
        EXPECT_EQ(std::string(e.what()).rfind("t.vmt:" + std::to_string(e.line()) + ": error: ", 0), 0u);
        for (char c : e.message()) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "raw byte in message";
      }
      tally.end();
    }
    EXPECT_GT(rejected, 0);
    all_rejected += static_cast<std::size_t>(rejected);
  }
  tally.record();  // tried: inputs; passed: parsed or rejected cleanly
  RecordProperty("rejected", static_cast<int>(all_rejected));
}

// The trace parser's fuzzing corpus (corpus/trace_parser: inputs libFuzzer kept for new coverage,
// most of them malformed): each file parses or is rejected with `FILE:LINE: error: MESSAGE` at a
// line inside the file, never anything else. The count rejected is a reliability figure.
TEST(TraceReader, ParserCorpusGivesOnlyInputErrors) {
  const std::filesystem::path dir = std::filesystem::path(VMFRAG_SOURCE_ROOT) / "corpus" / "trace_parser";
  CaseTally tally;
  std::size_t rejected = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    SCOPED_TRACE(entry.path().filename().string());
    tally.begin();
    std::ifstream file(entry.path(), std::ios::binary);
    std::stringstream bytes;
    bytes << file.rdbuf();
    const std::string text = bytes.str();
    const auto newlines = static_cast<std::uint64_t>(std::count(text.begin(), text.end(), '\n'));
    try {
      (void)parse(text);
    } catch (const InputError& e) {
      ++rejected;
      EXPECT_GE(e.line(), 1u);
      EXPECT_LE(e.line(), newlines + 1);
      EXPECT_EQ(std::string(e.what()).rfind("t.vmt:" + std::to_string(e.line()) + ": error: ", 0), 0u) << e.what();
    }
    tally.end();
  }
  EXPECT_GE(tally.tried(), 100u) << "the corpus is smaller than expected: " << dir;
  tally.record();
  RecordProperty("rejected", static_cast<int>(rejected));
}

}  // namespace
}  // namespace vmfrag
