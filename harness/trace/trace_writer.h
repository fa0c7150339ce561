// Writes vmtrace v1 (harness/TRACE_FORMAT.md). The output is canonical: every directive is written
// explicitly, even at its default, so a written trace is self-describing and does not change
// meaning if a default ever did; sizes use the largest exact suffix; `a` omits align when it is
// 4096. Hence for every valid header and op sequence x, reading write(x) gives x back, and
// write(read(text)) is a fixed point after one normalisation.
//
// The writer enforces the same validity rules as the reader (header_error, op_fields_error and
// TraceIdTracker from trace_reader.h), as a caller contract checked with VMF_CHECK: a generator
// that would produce an unreadable trace is a bug and aborts at the op, not at a later replay.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include "harness/trace/op.h"
#include "harness/trace/trace_reader.h"

namespace vmfrag {

// The text of one op, without a line terminator: "a 7 16K", "a 8 64K 2M", "f 7", "m 3 16", "p".
// Fields the kind does not use (align of k, size of f, ...) are not written, so they read back as
// Op's defaults. Preconditions: op_fields_error(op) is "" (else the output is unspecified text).
// Cost O(1) plus the string. Never fails.
[[nodiscard]] std::string format_op(const Op& op);

class TraceWriter {
 public:
  // `out` must outlive the writer. Nothing is written until the first call.
  explicit TraceWriter(std::ostream& out) : out_(out) {}

  // A `# text` line. Allowed anywhere, also before the header.
  // Preconditions (VMF_CHECK): text holds no control byte other than tab (it must stay on one
  // line and remain text). Cost O(length).
  void write_comment(std::string_view text);

  // Writes `vmtrace 1` and all five directives.
  // Preconditions (VMF_CHECK): called once, before any op; header_error(header) is "".
  void write_header(const TraceHeader& header);

  // Writes one op line.
  // Preconditions (VMF_CHECK): the header was written; op_fields_error(op) is ""; the op obeys
  // the id rules given the ops written before (TraceIdTracker).
  // Cost: O(1) plus an expected O(1) id lookup; memory grows with the number of distinct ids.
  void write(const Op& op);

  // Whether every write so far reached the stream (the writer itself never throws; I/O failure is
  // the stream's state, reported here). Cost O(1).
  [[nodiscard]] bool ok() const { return out_.good(); }

  [[nodiscard]] std::uint64_t ops_written() const { return ops_written_; }

  // Number of lines written so far; the next line written is lines_written() + 1.
  [[nodiscard]] std::uint64_t lines_written() const { return lines_written_; }

 private:
  std::ostream& out_;
  TraceIdTracker ids_;
  bool header_written_ = false;
  std::uint64_t ops_written_ = 0;
  std::uint64_t lines_written_ = 0;
};

}  // namespace vmfrag
