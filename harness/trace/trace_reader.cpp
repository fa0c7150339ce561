#include "harness/trace/trace_reader.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "allocator/vspace/virtual_space.h"
#include "harness/trace/size_text.h"

namespace vmfrag {

namespace {

constexpr std::string_view kDirectiveNames[] = {"vmtrace", "region", "guard", "lazy", "phys", "backing"};
constexpr std::string_view kDirectiveUsage[] = {
    "vmtrace 1", "region <bytes>", "guard <pages>", "lazy <pages>", "phys <bytes>",
    "backing none|anon|memfd"};

// Error messages quote the user's text; binary garbage must not reach the terminal raw, and a
// 4096-character token would drown the message, so quote() escapes and shortens.
std::string quote(std::string_view text) {
  constexpr std::size_t kMaxQuoted = 40;
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < kMaxQuoted; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  if (text.size() > kMaxQuoted) out += "...";
  out += "'";
  return out;
}

bool is_op_letter(char c) {
  switch (static_cast<OpKind>(c)) {
    case OpKind::kAlloc:
    case OpKind::kFree:
    case OpKind::kKmalloc:
    case OpKind::kMapRam:
    case OpKind::kHuge:
    case OpKind::kPurge: return true;
  }
  return false;
}

bool allocates(OpKind kind) {
  return kind == OpKind::kAlloc || kind == OpKind::kKmalloc || kind == OpKind::kMapRam ||
         kind == OpKind::kHuge;
}

// The usage line of each op, quoted in field-count errors.
std::string_view op_usage(OpKind kind) {
  switch (kind) {
    case OpKind::kAlloc: return "a <id> <size> [<align>]";
    case OpKind::kFree: return "f <id>";
    case OpKind::kKmalloc: return "k <id> <size>";
    case OpKind::kMapRam: return "m <id> <pages>";
    case OpKind::kHuge: return "h <id> <size>";
    case OpKind::kPurge: return "p";
  }
  return "";
}

std::string region_error(std::uint64_t bytes) {
  if (bytes % kPageSize != 0 || bytes < kMinRegionBytes || bytes > kMaxRegionBytes)
    return "region must be a multiple of 4096 bytes from 64K to 16T, got " + std::to_string(bytes);
  return "";
}

std::string phys_error(std::uint64_t bytes) {
  if (bytes % kPageSize != 0)
    return "phys must be a multiple of 4096 bytes, got " + std::to_string(bytes);
  return "";
}

std::string plural(std::size_t n, std::string_view word) {
  return std::to_string(n) + " " + std::string(word) + (n == 1 ? "" : "s");
}

}  // namespace

std::string header_error(const TraceHeader& header) {
  if (header.version != 1)
    return "unsupported vmtrace version " + std::to_string(header.version) +
           " (this reader reads version 1)";
  if (std::string e = region_error(header.region_bytes); !e.empty()) return e;
  if (std::string e = phys_error(header.phys_bytes); !e.empty()) return e;
  switch (header.backing) {
    case Backing::kNone:
    case Backing::kAnon:
    case Backing::kMemfd: return "";
  }
  return "unknown backing " + std::to_string(static_cast<int>(header.backing));
}

std::string op_fields_error(const Op& op) {
  if (!is_op_letter(static_cast<char>(op.kind)))
    return "unknown op kind " + std::to_string(static_cast<int>(op.kind));
  if (op.kind == OpKind::kAlloc && (op.align < kPageSize || (op.align & (op.align - 1)) != 0))
    return "align must be a power of two >= 4096, got " + format_size(op.align);
  return "";
}

std::string TraceIdTracker::accept(const Op& op, std::uint64_t line) {
  if (allocates(op.kind)) {
    auto [it, inserted] = ids_.try_emplace(op.id);
    if (!inserted && it->second.live)
      return "id " + std::to_string(op.id) + " is already live (allocated at line " +
             std::to_string(it->second.line) + ")";
    it->second = {line, true};
    ++live_count_;
    return "";
  }
  if (op.kind == OpKind::kFree) {
    auto it = ids_.find(op.id);
    if (it == ids_.end()) return "id " + std::to_string(op.id) + " was never allocated";
    if (!it->second.live)
      return "id " + std::to_string(op.id) + " was already freed at line " +
             std::to_string(it->second.line);
    it->second = {line, false};
    --live_count_;
  }
  return "";
}

TraceReader::TraceReader(std::istream& in, std::string display_name)
    : buf_(in.rdbuf()), name_(std::move(display_name)) {
  read_header();
}

TraceReader::TraceReader(std::unique_ptr<InputFile> owned, std::string display_name)
    : owned_(std::move(owned)), buf_(owned_->buffer()), name_(std::move(display_name)) {
  read_header();
}

TraceReader TraceReader::open(const std::string& path) {
  return TraceReader(std::make_unique<InputFile>(path, "trace"), path);
}

void TraceReader::fail(std::uint64_t line, const std::string& message) const {
  throw InputError(name_, line, message);
}

/* Reads one line into text_, without its terminator, and returns false at end of input.
 * Guarantees, whatever the bytes: text_ never exceeds kMaxTraceLineLength (the reader stops at the
 * first byte beyond and fails, so an endless line costs neither memory nor time), and it holds no
 * control byte other than tab (NUL, ESC, a stray CR... fail at once with their column), so later
 * stages only ever see text. Bytes >= 0x80 pass: they are harmless in comments (UTF-8) and
 * produce an ordinary "unknown op"/"bad size" error elsewhere. "\r\n" counts as "\n" so a trace
 * edited on Windows still reads. A last line without terminator is a line like any other. */
bool TraceReader::read_line() {
  using Traits = std::streambuf::traits_type;
  if (at_eof_ || buf_ == nullptr) return false;
  text_.clear();
  Traits::int_type c = buf_->sbumpc();
  if (Traits::eq_int_type(c, Traits::eof())) {
    at_eof_ = true;
    return false;
  }
  ++line_no_;
  for (;; c = buf_->sbumpc()) {
    if (Traits::eq_int_type(c, Traits::eof())) {
      at_eof_ = true;
      break;
    }
    const auto byte = static_cast<unsigned char>(Traits::to_char_type(c));
    if (byte == '\n') break;
    if (byte == '\r') {
      const Traits::int_type after = buf_->sgetc();
      if (Traits::eq_int_type(after, Traits::eof())) continue;  // next sbumpc sees EOF
      if (Traits::to_char_type(after) == '\n') {
        buf_->sbumpc();
        break;
      }
    }
    if ((byte < 0x20 && byte != '\t') || byte == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      const std::string hex = {'0', 'x', kHex[byte >> 4], kHex[byte & 15]};
      fail_here("non-text byte " + hex + " at column " + std::to_string(text_.size() + 1) +
                " (a vmtrace is a text file)");
    }
    if (text_.size() == kMaxTraceLineLength)
      fail_here("line is longer than " + std::to_string(kMaxTraceLineLength) + " characters");
    text_.push_back(static_cast<char>(byte));
  }
  return true;
}

void TraceReader::split_fields() {
  fields_.clear();
  std::string_view rest = text_;
  if (const std::size_t hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
  std::size_t i = 0;
  while (i < rest.size()) {
    while (i < rest.size() && (rest[i] == ' ' || rest[i] == '\t')) ++i;
    const std::size_t start = i;
    while (i < rest.size() && rest[i] != ' ' && rest[i] != '\t') ++i;
    if (i > start) fields_.push_back(rest.substr(start, i - start));
  }
}

std::uint64_t TraceReader::parse_id(std::string_view text) const {
  const ParsedNumber parsed = parse_count_checked(text);
  if (parsed.status == NumberTextStatus::kMalformed)
    fail_here("bad id " + quote(text) + ": expected a non-negative decimal integer");
  if (parsed.status == NumberTextStatus::kOverflow)
    fail_here("id " + quote(text) + " does not fit in 64 bits");
  return parsed.value;
}

std::uint64_t TraceReader::parse_size_field(std::string_view what, std::string_view text) const {
  const ParsedNumber parsed = parse_size_checked(text);
  if (parsed.status == NumberTextStatus::kMalformed)
    fail_here("bad " + std::string(what) + " " + quote(text) +
              ": expected digits with an optional K, M, G or T suffix");
  if (parsed.status == NumberTextStatus::kOverflow)
    fail_here(std::string(what) + " " + quote(text) + " does not fit in 64 bits");
  return parsed.value;
}

std::uint64_t TraceReader::parse_count_field(std::string_view what, std::string_view text) const {
  const ParsedNumber parsed = parse_count_checked(text);
  if (parsed.status == NumberTextStatus::kMalformed)
    fail_here("bad " + std::string(what) + " " + quote(text) +
              ": expected a non-negative decimal integer");
  if (parsed.status == NumberTextStatus::kOverflow)
    fail_here(std::string(what) + " " + quote(text) + " does not fit in 64 bits");
  return parsed.value;
}

void TraceReader::apply_directive(Directive directive) {
  const auto index = static_cast<std::size_t>(directive);
  const std::string name(kDirectiveNames[index]);
  if (directive_line_[index] != 0)
    fail_here("duplicate directive '" + name + "' (first at line " +
              std::to_string(directive_line_[index]) + ")");
  if (fields_.size() != 2)
    fail_here("'" + name + "' takes 1 value (" + std::string(kDirectiveUsage[index]) + "), got " +
              std::to_string(fields_.size() - 1));
  directive_line_[index] = line_no_;
  const std::string_view value = fields_[1];
  switch (directive) {
    case Directive::kVmtrace: {
      const ParsedNumber version = parse_count_checked(value);
      if (version.status != NumberTextStatus::kOk || version.value != 1)
        fail_here("unsupported vmtrace version " + quote(value) + " (this reader reads version 1)");
      header_.version = 1;
      break;
    }
    case Directive::kRegion:
      header_.region_bytes = parse_size_field("region", value);
      if (std::string e = region_error(header_.region_bytes); !e.empty()) fail_here(e);
      break;
    case Directive::kGuard: {
      const std::uint64_t pages = parse_count_field("guard", value);
      if (pages > std::numeric_limits<std::uint32_t>::max())
        fail_here("guard " + quote(value) + " does not fit in 32 bits");
      header_.guard_pages = static_cast<std::uint32_t>(pages);
      break;
    }
    case Directive::kLazy: header_.lazy_pages = parse_count_field("lazy", value); break;
    case Directive::kPhys:
      header_.phys_bytes = parse_size_field("phys", value);
      if (std::string e = phys_error(header_.phys_bytes); !e.empty()) fail_here(e);
      break;
    case Directive::kBacking:
      if (value == backing_name(Backing::kNone)) header_.backing = Backing::kNone;
      else if (value == backing_name(Backing::kAnon)) header_.backing = Backing::kAnon;
      else if (value == backing_name(Backing::kMemfd)) header_.backing = Backing::kMemfd;
      else fail_here("unknown backing " + quote(value) + " (expected none, anon or memfd)");
      break;
    case Directive::kCount: break;
  }
}

/* The header is everything before the first op. The first non-blank line must be the magic (so a
 * file that is not a vmtrace fails on its first line, not somewhere later), then any directives in
 * any order, each at most once; `region` is the only required one because no default region size
 * would be right for every trace. The first op ends the header and is kept for next(). */
void TraceReader::read_header() {
  const auto directive_of = [](std::string_view word) -> std::optional<Directive> {
    for (std::size_t i = 0; i < std::size(kDirectiveNames); ++i)
      if (word == kDirectiveNames[i]) return static_cast<Directive>(i);
    return std::nullopt;
  };
  const auto region_index = static_cast<std::size_t>(Directive::kRegion);
  bool have_magic = false;
  while (read_line()) {
    split_fields();
    if (fields_.empty()) continue;
    if (!have_magic) {
      if (fields_[0] != "vmtrace")
        fail_here("missing 'vmtrace 1' header: the first line starts with " + quote(fields_[0]));
      apply_directive(Directive::kVmtrace);
      have_magic = true;
      continue;
    }
    if (const std::optional<Directive> directive = directive_of(fields_[0])) {
      apply_directive(*directive);
      continue;
    }
    if (fields_[0].size() != 1 || !is_op_letter(fields_[0][0]))
      fail_here("unknown directive or op " + quote(fields_[0]));
    if (directive_line_[region_index] == 0) fail_here("missing 'region' directive before the first op");
    first_op_ = parse_op();
    first_op_line_ = line_no_;
    return;
  }
  const std::uint64_t last_line = std::max<std::uint64_t>(line_no_, 1);
  if (!have_magic) fail(last_line, "missing 'vmtrace 1' header");
  if (directive_line_[region_index] == 0) fail(last_line, "missing 'region' directive");
}

Op TraceReader::parse_op() {
  const std::string_view word = fields_[0];
  if (word.size() != 1 || !is_op_letter(word[0])) fail_here("unknown op " + quote(word));
  Op op;
  op.kind = static_cast<OpKind>(word[0]);
  const std::size_t args = fields_.size() - 1;
  std::size_t min_args = 2, max_args = 2;
  switch (op.kind) {
    case OpKind::kAlloc: max_args = 3; break;
    case OpKind::kFree: min_args = max_args = 1; break;
    case OpKind::kPurge: min_args = max_args = 0; break;
    default: break;
  }
  if (args < min_args || args > max_args) {
    const std::string expected = min_args == max_args
                                     ? plural(min_args, "argument")
                                     : std::to_string(min_args) + " or " + plural(max_args, "argument");
    fail_here("'" + std::string(word) + "' takes " + expected + " (" +
              std::string(op_usage(op.kind)) + "), got " + std::to_string(args));
  }
  if (op.kind != OpKind::kPurge) op.id = parse_id(fields_[1]);
  switch (op.kind) {
    case OpKind::kAlloc:
    case OpKind::kKmalloc:
    case OpKind::kHuge: op.size = parse_size_field("size", fields_[2]); break;
    case OpKind::kMapRam: op.size = parse_count_field("page count", fields_[2]); break;
    default: break;
  }
  if (op.kind == OpKind::kAlloc && args == 3) op.align = parse_size_field("align", fields_[3]);
  if (std::string e = op_fields_error(op); !e.empty()) fail_here(e);
  if (std::string e = ids_.accept(op, line_no_); !e.empty()) fail_here(e);
  return op;
}

bool TraceReader::next(Op& op) {
  if (first_op_) {
    op = *first_op_;
    op_line_ = first_op_line_;
    first_op_.reset();
    ++ops_read_;
    return true;
  }
  while (read_line()) {
    split_fields();
    if (fields_.empty()) continue;
    for (std::string_view name : kDirectiveNames)
      if (fields_[0] == name)
        fail_here("directive '" + std::string(name) +
                  "' after the first op (line " + std::to_string(first_op_line_) +
                  "); directives must come before all ops");
    const Op parsed = parse_op();
    op = parsed;
    op_line_ = line_no_;
    ++ops_read_;
    return true;
  }
  return false;
}

ParsedTrace read_whole_trace(std::istream& in, std::string display_name) {
  TraceReader reader(in, std::move(display_name));
  ParsedTrace trace;
  trace.header = reader.header();
  Op op;
  while (reader.next(op)) {
    trace.ops.push_back(op);
    trace.op_lines.push_back(reader.line());
  }
  return trace;
}

}  // namespace vmfrag
