#include "harness/trace/trace_writer.h"

#include "allocator/core/assert.h"
#include "harness/trace/size_text.h"

namespace vmfrag {

std::string format_op(const Op& op) {
  std::string line(1, static_cast<char>(op.kind));
  if (op.kind == OpKind::kPurge) return line;
  line += ' ';
  line += std::to_string(op.id);
  switch (op.kind) {
    case OpKind::kAlloc:
      line += ' ';
      line += format_size(op.size);
      if (op.align != kPageSize) {
        line += ' ';
        line += format_size(op.align);
      }
      break;
    case OpKind::kKmalloc:
    case OpKind::kHuge:
      line += ' ';
      line += format_size(op.size);
      break;
    case OpKind::kMapRam:
      // A page count, not bytes: a suffix would multiply it by 1024^n pages, which is not what
      // the reader's plain-count syntax for `m` accepts.
      line += ' ';
      line += std::to_string(op.size);
      break;
    case OpKind::kFree:
    case OpKind::kPurge: break;
  }
  return line;
}

void TraceWriter::write_comment(std::string_view text) {
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    VMF_CHECK((byte >= 0x20 || byte == '\t') && byte != 0x7f,
              "TraceWriter: comment holds control byte 0x%02x", byte);
  }
  out_ << "# " << text << '\n';
  ++lines_written_;
}

void TraceWriter::write_header(const TraceHeader& header) {
  VMF_CHECK(!header_written_, "TraceWriter: header written twice");
  const std::string error = header_error(header);
  VMF_CHECK(error.empty(), "TraceWriter: invalid header: %s", error.c_str());
  out_ << "vmtrace 1\n"
       << "region " << format_size(header.region_bytes) << '\n'
       << "guard " << header.guard_pages << '\n'
       << "lazy " << header.lazy_pages << '\n'
       << "phys " << format_size(header.phys_bytes) << '\n'
       << "backing " << backing_name(header.backing) << '\n';
  lines_written_ += 6;
  header_written_ = true;
}

void TraceWriter::write(const Op& op) {
  VMF_CHECK(header_written_, "TraceWriter: op written before the header");
  const std::uint64_t line = lines_written_ + 1;
  std::string error = op_fields_error(op);
  if (error.empty()) error = ids_.accept(op, line);
  VMF_CHECK(error.empty(), "TraceWriter: invalid op at output line %llu: %s",
            static_cast<unsigned long long>(line), error.c_str());
  out_ << format_op(op) << '\n';
  ++lines_written_;
  ++ops_written_;
}

}  // namespace vmfrag
