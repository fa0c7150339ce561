#include "harness/decode/op_decoder.h"

#include <array>
#include <ostream>
#include <algorithm>
#include <string>
#include <unordered_map>

#include "allocator/core/assert.h"
#include "harness/trace/trace_writer.h"

namespace vmfrag {
namespace {

constexpr std::array<std::uint64_t, 6> kLazyChoices = {0, 1, 8, 64, 512, 8192};
constexpr std::array<unsigned, 8> kAlignShift = {0, 0, 0, 0, 0, 1, 4, 9};
constexpr std::uint64_t kKiB = 1024;

TraceHeader decode_header(const std::uint8_t* b, Backing backing) {
  TraceHeader h;
  h.region_bytes = (1 + b[0] % 32) * 512 * kKiB;
  h.guard_pages = b[1] % 3;
  h.lazy_pages = kLazyChoices[b[2] % kLazyChoices.size()];
  h.phys_bytes = (1 + b[3] % 16) * 256 * kKiB;
  h.backing = backing;
  return h;
}

std::uint64_t alloc_size(std::uint8_t x, std::uint8_t y, const DecodeConfig& c) {
  if (c.zero_sizes && x == 255) return 0;
  const std::uint64_t pages = c.min_pages + x % (c.max_pages - c.min_pages + 1);
  std::uint64_t size = pages * kPageSize;
  if (c.subpage_sizes && (y & 0x80) != 0) size -= std::uint64_t{y & 0x7fu} * 31;
  return size;
}

std::uint64_t kmalloc_size(std::uint8_t x, std::uint8_t y, const DecodeConfig& c) {
  return kPageSize * (1 + x % c.kmalloc_max_pages) - std::uint64_t{y} * 8;
}

std::uint64_t alloc_align(std::uint8_t y, const DecodeConfig& c) {
  return c.aligns ? kPageSize << kAlignShift[y & 7] : kPageSize;
}

}  // namespace

DecodeConfig hunt_decode_config() {
  DecodeConfig c;
  c.header.region_bytes = 1ull << 20;
  c.header.guard_pages = 1;
  c.header.lazy_pages = 0;
  c.header.backing = Backing::kNone;
  c.kinds = "af";
  c.min_pages = 1;
  c.max_pages = 15;
  return c;
}

DecodeConfig phys_hunt_decode_config() {
  DecodeConfig c = hunt_decode_config();
  c.header.phys_bytes = 1ull << 20;
  c.kinds = "kf";
  c.kmalloc_max_pages = 32;
  return c;
}

std::optional<DecodeConfig> decode_config_for(std::string_view target) {
  if (target == "frag_hunt") return hunt_decode_config();
  if (target == "phys_hunt") return phys_hunt_decode_config();
  if (target == "ops") return ops_decode_config();
  return std::nullopt;
}

DecodeConfig ops_decode_config() {
  DecodeConfig c;
  c.header_from_bytes = true;
  c.header.backing = Backing::kMemfd;
  c.kinds = "aaffkmhp!";
  c.min_pages = 1;
  c.max_pages = 32;
  c.subpage_sizes = true;
  c.aligns = true;
  c.zero_sizes = true;
  c.max_ops = 512;
  return c;
}

std::string_view misuse_kind_name(MisuseKind k) {
  switch (k) {
    case MisuseKind::kDoubleFree: return "double-free";
    case MisuseKind::kInterior: return "interior-free";
    case MisuseKind::kForeign: return "foreign-free";
    case MisuseKind::kCrossApi: return "cross-api-free";
  }
  return "double-free";
}

DecodedInput decode_input(std::span<const std::uint8_t> bytes, const DecodeConfig& c) {
  DecodedInput in;
  std::vector<std::uint64_t> live;
  decode_input_into(bytes, c, in, live);
  return in;
}

void decode_input_into(std::span<const std::uint8_t> bytes, const DecodeConfig& c, DecodedInput& in,
                       std::vector<std::uint64_t>& live) {
  VMF_CHECK(!c.kinds.empty() && c.min_pages >= 1 && c.min_pages <= c.max_pages && c.kmalloc_max_pages >= 1 &&
                c.kmalloc_max_pages <= 256,
            "bad DecodeConfig");
  in.ops.clear();
  in.misuse.clear();
  live.clear();  // ids live in the decoded text
  std::size_t pos = 0;
  if (c.header_from_bytes) {
    std::array<std::uint8_t, kHeaderBytes> h{};
    for (std::size_t i = 0; i < kHeaderBytes && i < bytes.size(); ++i) h[i] = bytes[i];
    in.header = decode_header(h.data(), c.header.backing);
    pos = kHeaderBytes;
  } else {
    in.header = c.header;
  }
  std::uint64_t next_id = 0;
  for (; pos + kRecordBytes <= bytes.size() && in.ops.size() < c.max_ops; pos += kRecordBytes) {
    const std::uint8_t sel = bytes[pos], x = bytes[pos + 1], y = bytes[pos + 2];
    const char kind = c.kinds[sel % c.kinds.size()];
    Op op;
    switch (kind) {
      case 'a':
        op = Op{OpKind::kAlloc, next_id, alloc_size(x, y, c), alloc_align(y, c)};
        break;
      case 'k':
        op = Op{OpKind::kKmalloc, next_id, kmalloc_size(x, y, c), kPageSize};
        break;
      case 'm':
        op = Op{OpKind::kMapRam, next_id, 1 + x % 96u, kPageSize};
        break;
      case 'h':
        op = Op{OpKind::kHuge, next_id, (1 + x % 6u) * 512 * kKiB - std::uint64_t{y} * 16, kPageSize};
        break;
      case 'p':
        op = Op{OpKind::kPurge, 0, 0, kPageSize};
        break;
      case 'f': {
        if (live.empty()) continue;
        const std::size_t i = (std::size_t{x} | std::size_t{y} << 8) % live.size();
        op = Op{OpKind::kFree, live[i], 0, kPageSize};
        live[i] = live.back();
        live.pop_back();
        break;
      }
      case kMisuseSelector:
        in.misuse.push_back(MisuseAction{in.ops.size(), static_cast<MisuseKind>(y % 4), x});
        continue;
      default:
        continue;  // a letter the config should not hold; ignored rather than trusted
    }
    if (op.kind != OpKind::kFree && op.kind != OpKind::kPurge) {
      live.push_back(next_id);
      ++next_id;
    }
    in.ops.push_back(op);
  }
}

std::optional<std::vector<std::uint8_t>> encode_input(const TraceHeader& header, const std::vector<Op>& ops,
                                                      const DecodeConfig& c) {
  std::vector<std::uint8_t> out;
  if (c.header_from_bytes) {
    std::optional<std::array<std::uint8_t, kHeaderBytes>> found;
    for (unsigned b0 = 0; b0 < 32 && !found; ++b0)
      for (unsigned b1 = 0; b1 < 3 && !found; ++b1)
        for (unsigned b2 = 0; b2 < kLazyChoices.size() && !found; ++b2)
          for (unsigned b3 = 0; b3 < 16 && !found; ++b3) {
            const std::array<std::uint8_t, kHeaderBytes> b = {static_cast<std::uint8_t>(b0), static_cast<std::uint8_t>(b1),
                                                              static_cast<std::uint8_t>(b2), static_cast<std::uint8_t>(b3)};
            if (decode_header(b.data(), c.header.backing) == header) found = b;
          }
    if (!found) return std::nullopt;
    out.assign(found->begin(), found->end());
  } else if (!(header == c.header)) {
    return std::nullopt;
  }
  if (ops.size() > c.max_ops) return std::nullopt;
  auto selector = [&](char kind) -> std::optional<std::uint8_t> {
    const std::size_t i = c.kinds.find(kind);
    if (i == std::string::npos) return std::nullopt;
    return static_cast<std::uint8_t>(i);
  };
  std::vector<std::uint64_t> live;
  std::uint64_t next_id = 0;
  for (const Op& op : ops) {
    const std::optional<std::uint8_t> sel = selector(static_cast<char>(op.kind));
    if (!sel) return std::nullopt;
    std::optional<std::array<std::uint8_t, 2>> xy;
    auto search = [&](auto&& produces) {
      for (unsigned x = 0; x < 256 && !xy; ++x)
        for (unsigned y = 0; y < 256 && !xy; ++y)
          if (produces(static_cast<std::uint8_t>(x), static_cast<std::uint8_t>(y)))
            xy = std::array<std::uint8_t, 2>{static_cast<std::uint8_t>(x), static_cast<std::uint8_t>(y)};
    };
    switch (op.kind) {
      case OpKind::kAlloc: {
        // The usual record first (x = pages - min_pages, y = 0), then the exhaustive search.
        const std::uint64_t x = op.size / kPageSize - std::min(op.size / kPageSize, c.min_pages);
        if (x < 256 && alloc_size(static_cast<std::uint8_t>(x), 0, c) == op.size && alloc_align(0, c) == op.align)
          xy = std::array<std::uint8_t, 2>{static_cast<std::uint8_t>(x), 0};
        search([&](std::uint8_t x, std::uint8_t y) { return alloc_size(x, y, c) == op.size && alloc_align(y, c) == op.align; });
        break;
      }
      case OpKind::kKmalloc:
        search([&](std::uint8_t x, std::uint8_t y) { return kmalloc_size(x, y, c) == op.size; });
        break;
      case OpKind::kMapRam:
        search([&](std::uint8_t x, std::uint8_t) { return 1 + x % 96u == op.size; });
        break;
      case OpKind::kHuge:
        search([&](std::uint8_t x, std::uint8_t y) { return (1 + x % 6u) * 512 * kKiB - std::uint64_t{y} * 16 == op.size; });
        break;
      case OpKind::kPurge:
        xy = std::array<std::uint8_t, 2>{0, 0};
        break;
      case OpKind::kFree: {
        std::size_t i = 0;
        while (i < live.size() && live[i] != op.id) ++i;
        if (i == live.size() || i > 0xffff) return std::nullopt;
        xy = std::array<std::uint8_t, 2>{static_cast<std::uint8_t>(i & 0xff), static_cast<std::uint8_t>(i >> 8)};
        live[i] = live.back();
        live.pop_back();
        break;
      }
    }
    if (!xy) return std::nullopt;
    if (op.kind != OpKind::kFree && op.kind != OpKind::kPurge) {
      if (op.id != next_id) return std::nullopt;
      live.push_back(next_id++);
    }
    out.push_back(*sel);
    out.push_back((*xy)[0]);
    out.push_back((*xy)[1]);
  }
  return out;
}

DecodedInput clamp_to_config(const TraceHeader& header, const std::vector<Op>& ops, const DecodeConfig& c) {
  DecodedInput out;
  out.header = header;
  std::unordered_map<std::uint64_t, std::uint64_t> renamed;  // live id in `ops` -> id in the output
  std::uint64_t next_id = 0;
  for (const Op& op : ops) {
    if (out.ops.size() == c.max_ops) break;
    if (op.kind == OpKind::kFree) {
      auto it = renamed.find(op.id);
      if (it == renamed.end()) continue;
      out.ops.push_back(Op{OpKind::kFree, it->second, 0, kPageSize});
      renamed.erase(it);
      continue;
    }
    if (c.kinds.find(static_cast<char>(op.kind)) == std::string::npos) continue;
    if (op.kind == OpKind::kPurge) {
      out.ops.push_back(Op{});
      continue;
    }
    Op o = op;
    o.align = kPageSize;
    if (o.kind == OpKind::kAlloc) {
      const std::uint64_t pages = std::clamp<std::uint64_t>(op.size / kPageSize + (op.size % kPageSize != 0), c.min_pages, c.max_pages);
      o.size = pages * kPageSize;
    } else if (o.kind == OpKind::kKmalloc) {
      o.size = kPageSize * std::clamp<std::uint64_t>(op.size / kPageSize + (op.size % kPageSize != 0), 1, c.kmalloc_max_pages);
    } else if (o.kind == OpKind::kMapRam) {
      o.size = std::clamp<std::uint64_t>(op.size, 1, 96);
    } else if (o.kind == OpKind::kHuge) {
      o.size = std::clamp<std::uint64_t>(op.size / (512 * kKiB), 1, 6) * 512 * kKiB;
    }
    o.id = next_id++;
    renamed[op.id] = o.id;
    out.ops.push_back(o);
  }
  return out;
}

bool write_decoded_trace(std::ostream& out, const DecodedInput& input, std::string_view comment) {
  TraceWriter w(out);
  while (!comment.empty()) {
    const std::size_t nl = comment.find('\n');
    w.write_comment(comment.substr(0, nl));
    comment = nl == std::string_view::npos ? std::string_view{} : comment.substr(nl + 1);
  }
  w.write_header(input.header);
  std::size_t m = 0;
  for (std::size_t i = 0; i <= input.ops.size(); ++i) {
    for (; m < input.misuse.size() && input.misuse[m].before_op == i; ++m)
      w.write_comment("misuse: " + std::string(misuse_kind_name(input.misuse[m].kind)) + " selector " +
                      std::to_string(input.misuse[m].selector));
    if (i < input.ops.size()) w.write(input.ops[i]);
  }
  return w.ok();
}

}  // namespace vmfrag
