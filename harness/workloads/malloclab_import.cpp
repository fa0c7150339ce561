// CS:APP malloc-lab trace import; the format and scaling rule are documented in the header.
#include "harness/trace/text_fields.h"
#include "harness/workloads/malloclab_import.h"

#include <charconv>
#include <algorithm>
#include <string_view>
#include <vector>

#include "allocator/vspace/virtual_space.h"
#include "harness/trace/trace_reader.h"
#include "harness/workloads/emitter.h"

namespace vmfrag {
namespace {

bool to_u64(std::string_view text, std::uint64_t& out) {
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out, 10);
  return !text.empty() && ec == std::errc() && ptr == end;
}

}  // namespace

TraceHeader import_malloclab(std::istream& in, const std::string& file, OpSink& sink,
                             const MalloclabImportOptions& options) {
  if (options.unit_bytes == 0) throw InputError("<args>", 0, "malloc-lab unit must be > 0 bytes");
  if (options.region_bytes != 0) {
    TraceHeader h;
    h.region_bytes = options.region_bytes;
    if (const std::string e = header_error(h); !e.empty()) throw InputError("<args>", 0, "--region: " + e);
  }
  const auto pages_for = [&](std::uint64_t bytes) {
    const std::uint64_t units = bytes / options.unit_bytes + (bytes % options.unit_bytes != 0);
    return units == 0 ? std::uint64_t{1} : units;
  };
  // A malloc-lab size as vmtrace bytes; one whose pages do not fit in 64 bits is an input error,
  // never a wrapped (and so wrong) size.
  constexpr std::uint64_t kMaxPages = UINT64_MAX / kPageSize;
  const auto scaled_bytes = [&](std::uint64_t bytes, std::uint64_t line, const char* what) {
    const std::uint64_t pages = pages_for(bytes);
    if (pages > kMaxPages)
      throw InputError(file, line, std::string(what) + " " + std::to_string(bytes) + " scales to " +
                                       std::to_string(pages) + " pages, more than 64-bit byte sizes can hold");
    return pages * kPageSize;
  };
  std::string text;
  std::uint64_t line = 0;
  static constexpr const char* kHeaderNames[] = {"suggested heap size", "number of ids", "number of ops", "weight"};
  std::uint64_t header_values[4] = {};
  for (int h = 0; h < 4;) {
    if (!std::getline(in, text)) throw InputError(file, line, std::string("missing header line: ") + kHeaderNames[h]);
    ++line;
    const auto w = split_fields(text);
    if (w.empty()) continue;
    if (w.size() != 1 || !to_u64(w[0], header_values[h]))
      throw InputError(file, line, std::string("expected one non-negative integer (") + kHeaderNames[h] + ")");
    ++h;
  }
  const std::uint64_t heap = header_values[0], num_ids = header_values[1], num_ops = header_values[2];
  if (num_ids > (std::uint64_t{1} << 32)) throw InputError(file, 2, "number of ids is implausibly large");
  TraceHeader header;
  if (options.region_bytes != 0) {
    header.region_bytes = options.region_bytes;
  } else {
    // The heap under the scaling rule, raised to the smallest region the allocator accepts (a lab
    // trace's small heap line, e.g. 100 bytes, would otherwise give a region replay refuses).
    if (heap == 0) throw InputError(file, 1, "suggested heap size must be > 0");
    const std::uint64_t pages = pages_for(heap);
    if (pages > kMaxRegionBytes / kPageSize)
      throw InputError(file, 1, "suggested heap size " + std::to_string(heap) + " scales to " + std::to_string(pages) +
                                    " pages, beyond the largest region (16T); give --region");
    header.region_bytes = std::max(pages * kPageSize, kMinRegionBytes);
  }

  struct Block {
    bool live = false;
    std::uint64_t vm_id = 0;
    std::uint64_t pages = 0;
  };
  std::vector<Block> blocks(num_ids);
  workload_detail::Emitter e(sink, header);
  std::uint64_t ops_seen = 0;
  while (std::getline(in, text)) {
    ++line;
    const auto w = split_fields(text);
    if (w.empty()) continue;
    const auto fail = [&](const std::string& message) { return InputError(file, line, message); };
    if (++ops_seen > num_ops) throw fail("more ops than the header's " + std::to_string(num_ops));
    if (w[0].size() != 1 || (w[0][0] != 'a' && w[0][0] != 'r' && w[0][0] != 'f'))
      throw fail("unknown op '" + std::string(w[0]) + "' (expected a, r or f)");
    const char op = w[0][0];
    if (w.size() != (op == 'f' ? 2u : 3u))
      throw fail(op == 'f' ? "expected 'f <id>'" : std::string("expected '") + op + " <id> <bytes>'");
    std::uint64_t id = 0, bytes = 0;
    if (!to_u64(w[1], id)) throw fail("bad id '" + std::string(w[1]) + "'");
    if (id >= num_ids) throw fail("id " + std::to_string(id) + " is not below the number of ids " + std::to_string(num_ids));
    if (op != 'f' && !to_u64(w[2], bytes)) throw fail("bad size '" + std::string(w[2]) + "'");
    Block& b = blocks[id];
    switch (op) {
      case 'a':
        if (b.live) throw fail("id " + std::to_string(id) + " allocated while still live");
        b = Block{true, e.alloc(scaled_bytes(bytes, line, "size")), pages_for(bytes)};
        break;
      case 'r': {
        if (!b.live) throw fail("realloc of id " + std::to_string(id) + ", which is not allocated");
        const std::uint64_t pages = pages_for(bytes);
        if (pages > b.pages) {
          const std::uint64_t moved = e.alloc(scaled_bytes(bytes, line, "size"));
          e.free(b.vm_id);
          b.vm_id = moved;
          b.pages = pages;
        }
        break;
      }
      default:
        if (!b.live) throw fail("free of id " + std::to_string(id) + ", which is not allocated");
        e.free(b.vm_id);
        b.live = false;
        break;
    }
  }
  if (in.bad()) throw InputError(file, line, "read error");
  if (ops_seen != num_ops)
    throw InputError(file, line, "the header announces " + std::to_string(num_ops) + " ops, found " + std::to_string(ops_seen));
  return header;
}

}  // namespace vmfrag
