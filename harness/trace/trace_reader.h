// Streaming reader for vmtrace v1 (harness/TRACE_FORMAT.md is the contract). It holds one line at a
// time, never the whole file, so a trace of 1e6 ops or one larger than memory replays in constant
// memory apart from the set of ids (which the id checks below cannot avoid).
//
// Every problem in the input is reported as an InputError whose what() is exactly
// `FILE:LINE: error: MESSAGE`, FILE being the display name the caller gave. No other exception
// escapes for any input, however garbled (binary data, NUL bytes, endless lines): the reader checks
// bytes as it reads them and caps a line at kMaxTraceLineLength characters.
#pragma once

#include <array>
#include <cstdint>
#include <istream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "harness/files/input_file.h"
#include "harness/trace/input_error.h"
#include "harness/trace/op.h"

namespace vmfrag {

// Longest accepted line, in characters, not counting the line terminator ("\n" or "\r\n").
inline constexpr std::size_t kMaxTraceLineLength = 4096;

// The part of a valid trace that can be checked on the header alone: region a non-zero page
// multiple, phys a page multiple, version 1, backing one of the enumerators.
// Returns "" when valid, else the message the reader would give. Cost O(1). Never throws.
[[nodiscard]] std::string header_error(const TraceHeader& header);

// The part of an op's validity that depends on the op alone: kind is one of the six op letters and,
// for `a`, align is a power of two >= 4096. Sizes are not checked: 0 or larger than the region is a
// valid trace (the allocator answers invalid-argument or no-virtual-space).
// Returns "" when valid, else the reader's message. Cost O(1). Never throws.
[[nodiscard]] std::string op_fields_error(const Op& op);

// The id rules of the format, the part of validity that depends on earlier ops: an allocating op
// (a, k, m, h) needs an id that is not live; `f` needs an id that is live. An id is live from its
// allocating line (whether or not the allocation will succeed at replay: the text cannot know)
// until its `f`, after which it may be allocated again. Used by the reader and, identically, by
// the writer so that everything written can be read back.
class TraceIdTracker {
 public:
  // Preconditions: op_fields_error(op) is "" (kinds outside the six are treated like `p`).
  // Guarantees: returns "" and records the op when it is allowed after those accepted so far;
  // otherwise returns the message and changes nothing. `line` is only quoted in later messages.
  // Cost: expected O(1) (hash map). Failure: may throw std::bad_alloc.
  [[nodiscard]] std::string accept(const Op& op, std::uint64_t line);

  // Ids currently live. Cost O(1).
  [[nodiscard]] std::size_t live_ids() const { return live_count_; }

 private:
  struct IdState {
    std::uint64_t line = 0;  // of the allocating op when live, of the `f` otherwise
    bool live = false;
  };
  std::unordered_map<std::uint64_t, IdState> ids_;
  std::size_t live_count_ = 0;
};

class TraceReader {
 public:
  // Reads the header (everything up to and including the first op's line) from `in`, which must
  // outlive the reader. `display_name` is FILE in error messages.
  // Failure: throws InputError for any malformed header (missing or wrong magic, unknown or
  // duplicate directive, bad value, missing region) at the offending line; for a file that ends
  // before a complete header, at its last line (line 1 when empty).
  TraceReader(std::istream& in, std::string display_name);

  // Opens `path` and reads its header as above; the display name is `path`.
  // Failure: InputError(path, 0, "cannot open trace: <reason>") when the file cannot be opened or
  // is a directory, InputError(path, 0, "cannot read: <reason>") when a read fails (at any later
  // call too), otherwise as the constructor. "-" is standard input.
  [[nodiscard]] static TraceReader open(const std::string& path);

  TraceReader(TraceReader&&) noexcept = default;
  TraceReader& operator=(TraceReader&&) noexcept = default;
  TraceReader(const TraceReader&) = delete;
  TraceReader& operator=(const TraceReader&) = delete;

  // The directives, with the format's defaults for those absent. Cost O(1).
  [[nodiscard]] const TraceHeader& header() const { return header_; }

  // Reads the next op into `op`. Returns false at the end of the trace (and on every later call),
  // leaving `op` untouched.
  // Failure: throws InputError at the offending line for a malformed op, an id-rule violation, a
  // directive after the first op, an overlong line or a control byte. After a throw the reader
  // must not be used again.
  // Cost: O(length of the line) plus an expected O(1) id lookup.
  [[nodiscard]] bool next(Op& op);

  // 1-based line of the op last returned by next(); 0 before the first. Cost O(1).
  [[nodiscard]] std::uint64_t line() const { return op_line_; }

  // Number of ops returned by next() so far. Cost O(1).
  [[nodiscard]] std::uint64_t ops_read() const { return ops_read_; }

  [[nodiscard]] const std::string& display_name() const { return name_; }

 private:
  enum class Directive : std::uint8_t { kVmtrace, kRegion, kGuard, kLazy, kPhys, kBacking, kCount };

  TraceReader(std::unique_ptr<InputFile> owned, std::string display_name);
  void read_header();
  [[nodiscard]] bool read_line();
  void split_fields();
  void apply_directive(Directive directive);
  [[nodiscard]] Op parse_op();
  [[noreturn]] void fail(std::uint64_t line, const std::string& message) const;
  [[noreturn]] void fail_here(const std::string& message) const { fail(line_no_, message); }
  [[nodiscard]] std::uint64_t parse_id(std::string_view text) const;
  [[nodiscard]] std::uint64_t parse_size_field(std::string_view what, std::string_view text) const;
  [[nodiscard]] std::uint64_t parse_count_field(std::string_view what, std::string_view text) const;

  std::unique_ptr<InputFile> owned_;    // set when the reader opened the file itself
  std::streambuf* buf_ = nullptr;
  std::string name_;
  TraceHeader header_;
  TraceIdTracker ids_;

  std::string text_;                     // current line, terminator stripped
  std::vector<std::string_view> fields_;  // into text_, comment removed
  std::uint64_t line_no_ = 0;            // lines read so far = number of the current line
  bool at_eof_ = false;

  std::optional<Op> first_op_;  // read while looking for the end of the header
  std::uint64_t first_op_line_ = 0;
  std::uint64_t op_line_ = 0;
  std::uint64_t ops_read_ = 0;
  std::array<std::uint64_t, static_cast<std::size_t>(Directive::kCount)> directive_line_{};
};

// A whole trace in memory, for tests, the fuzz decoder and small traces; replay of large traces
// should stream with TraceReader instead.
struct ParsedTrace {
  TraceHeader header;
  std::vector<Op> ops;
  std::vector<std::uint64_t> op_lines;  // op_lines[i] is the 1-based line of ops[i]
};

// Reads all of `in` with TraceReader. Cost O(size of input); memory O(number of ops).
// Failure: the InputError TraceReader throws.
[[nodiscard]] ParsedTrace read_whole_trace(std::istream& in, std::string display_name);

}  // namespace vmfrag
