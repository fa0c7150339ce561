// The fuzz input decoder: arbitrary bytes -> a trace header and an op sequence that is valid by
// construction (ids obey the vmtrace id rules, sizes are clamped small so every input is cheap to
// run). Every fuzz target decodes with this, and write_decoded_trace() turns any input — a corpus
// entry, a crash, a finding — into a readable vmtrace that `vmfrag replay` runs.
//
// Input layout (all targets):
//
//   [header: kHeaderBytes, only when DecodeConfig::header_from_bytes] [record][record]...
//   record = kRecordBytes bytes: sel, x, y
//
// `sel % kinds.size()` picks the op kind from the config's table; x and y are its arguments:
//
//   a  pages = min_pages + x % (max_pages - min_pages + 1); size = pages * 4096, or (when
//      subpage_sizes) 4096 * pages - (y & 0x7f) * 31 if y & 0x80; align 4096, or (when aligns)
//      4096 << {0,0,0,0,0,1,4,9}[y & 7]; x == 255 and zero_sizes: size 0 (invalid-argument)
//   f  frees live id number (x | y << 8) % live in the decoder's live list (swap-remove order);
//      dropped when nothing is live
//   k  size = 4096 * (1 + x % kmalloc_max_pages) - y * 8 (kmalloc_max_pages 128 unless the config says)
//   m  pages = 1 + x % 96 (both sides of vm_map_ram's 64-page block limit)
//   h  size = (1 + x % 6) * 512 KiB - y * 16
//   p  purge
//   !  misuse (not a trace op): kind y % 4, target selector x, recorded in `misuse` with the
//      number of ops decoded before it
//
// Allocating ops take fresh ids 0, 1, 2, ... in order (never reused). A trailing partial record is
// ignored; at most max_ops ops are decoded (the rest of the input is ignored).
//
// Header bytes (header_from_bytes): region = (1 + b0 % 32) * 512 KiB, guard = b1 % 3,
// lazy = {0, 1, 8, 64, 512, 8192}[b2 % 6], phys = (1 + b3 % 16) * 256 KiB; backing from the config.
//
// Determinism: the output depends on the bytes and the config only. Cost O(size of the input).
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "harness/trace/op.h"

namespace vmfrag {

inline constexpr std::size_t kHeaderBytes = 4;
inline constexpr std::size_t kRecordBytes = 3;
// The table entry standing for a misuse action (not an OpKind the trace format knows).
inline constexpr char kMisuseSelector = '!';

struct DecodeConfig {
  bool header_from_bytes = false;
  TraceHeader header;  // the fixed header, or the source of `backing` when decoded from bytes
  std::string kinds = "af";  // op table, letters of OpKind plus kMisuseSelector
  std::uint64_t min_pages = 1, max_pages = 15;  // `a` sizes in pages
  std::uint64_t kmalloc_max_pages = 128;        // `k` sizes: 1..kmalloc_max_pages pages (<= 256)
  bool subpage_sizes = false;
  bool aligns = false;
  bool zero_sizes = false;
  std::size_t max_ops = 4096;
};

// fuzz_frag_hunt's config: region 1 MiB, guard 1, lazy 0, phys 256M, backing none; only `a` of
// 1..15 whole pages at page alignment and `f` (so the Robson/Knuth bound's conditions hold).
[[nodiscard]] DecodeConfig hunt_decode_config();
// fuzz_phys_hunt's config: region 1 MiB, guard 1, lazy 0, phys 1 MiB (256 pages), backing none;
// only `k` of 1..32 pages (orders 0-5) and `f`: the buddy allocator's fragmentation, alone.
[[nodiscard]] DecodeConfig phys_hunt_decode_config();
// fuzz_ops's config: header from bytes, backing memfd, every op kind and misuse.
[[nodiscard]] DecodeConfig ops_decode_config();
// The config of the target named "frag_hunt", "phys_hunt" or "ops" (the names `vmfrag decode
// --target` and vmfrag-fuzz-input take); nullopt for any other name.
[[nodiscard]] std::optional<DecodeConfig> decode_config_for(std::string_view target);
// Those names, for messages: "frag_hunt, phys_hunt or ops".
inline constexpr const char* kDecodeTargetNames = "frag_hunt, phys_hunt or ops";

enum class MisuseKind : std::uint8_t {
  kDoubleFree,  // free again an area that was just freed (the latest freed address)
  kInterior,    // free an address inside a live area, not its start
  kForeign,     // free an address that is not the allocator's at all
  kCrossApi,    // release a live object with the wrong function (kfree of vmalloc memory, ...)
};
[[nodiscard]] std::string_view misuse_kind_name(MisuseKind k);

struct MisuseAction {
  std::uint64_t before_op = 0;  // happens after ops[0, before_op) and before ops[before_op]
  MisuseKind kind = MisuseKind::kDoubleFree;
  std::uint64_t selector = 0;   // which target; the target resolves it modulo its candidates
  friend bool operator==(const MisuseAction&, const MisuseAction&) = default;
};

struct DecodedInput {
  TraceHeader header;
  std::vector<Op> ops;
  std::vector<MisuseAction> misuse;
};

// Never fails: every byte string decodes (the empty one to the header and no ops).
[[nodiscard]] DecodedInput decode_input(std::span<const std::uint8_t> bytes, const DecodeConfig& config);
// The same into `out`, reusing its vectors' capacity and `live_scratch` (the decoder's live list):
// the fuzz targets decode every input this way, without a heap allocation once warmed up.
void decode_input_into(std::span<const std::uint8_t> bytes, const DecodeConfig& config, DecodedInput& out,
                       std::vector<std::uint64_t>& live_scratch);

// The inverse for what the config can express: bytes that decode_input turns back into exactly
// `ops` (misuse is not encoded), or nullopt when an op is not expressible (a kind outside the
// table, a size no record produces, an id other than the next fresh one, a header that the config
// cannot produce). Used to turn workload traces into seed corpora. Cost O(ops × live).
[[nodiscard]] std::optional<std::vector<std::uint8_t>> encode_input(const TraceHeader& header,
                                                                    const std::vector<Op>& ops,
                                                                    const DecodeConfig& config);

// Makes any trace expressible in `config` (for seeds from workloads): the header becomes `header`
// (which must be one the config can produce), `a` sizes are clamped to [min_pages, max_pages]
// whole pages at page alignment, ops of kinds outside the table are dropped with their frees, ids
// are renumbered in order of allocation, and at most max_ops ops are kept (then frees of ids
// allocated beyond the cut are dropped too). The result always encodes. Cost O(ops log ops).
[[nodiscard]] DecodedInput clamp_to_config(const TraceHeader& header, const std::vector<Op>& ops,
                                           const DecodeConfig& config);

// Writes the decoded input as a canonical vmtrace: `# comment` lines first (one per line of
// `comment`, when not empty), misuse actions as `# misuse: ...` comments at their place.
// Preconditions: as TraceWriter's (always true for decode_input's output). Returns the stream's state.
bool write_decoded_trace(std::ostream& out, const DecodedInput& input, std::string_view comment = {});

}  // namespace vmfrag
