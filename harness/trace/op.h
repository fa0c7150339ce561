// One operation of a vmtrace (see harness/TRACE_FORMAT.md) and the directives that precede the ops.
// Both the trace reader/writer and the workload generators speak this; replay and the fuzz decoder
// consume it.
#pragma once

#include <cstdint>
#include <string_view>

namespace vmfrag {

inline constexpr std::uint64_t kPageSize = 4096;

enum class OpKind : char {
  kAlloc = 'a',    // a <id> <size> [<align>]  vmalloc
  kFree = 'f',     // f <id>                   free whatever <id> holds
  kKmalloc = 'k',  // k <id> <size>            physically contiguous (physical layer)
  kMapRam = 'm',   // m <id> <pages>           vm_map_ram (physical layer)
  kHuge = 'h',     // h <id> <size>            vmalloc_huge (physical layer)
  kPurge = 'p',    // p                        purge lazily freed areas now
};

struct Op {
  OpKind kind = OpKind::kPurge;
  std::uint64_t id = 0;       // unused for kPurge
  std::uint64_t size = 0;     // bytes for a/k/h; page count for m; unused for f/p
  std::uint64_t align = kPageSize;  // only meaningful for a
  friend bool operator==(const Op&, const Op&) = default;
};

enum class Backing : std::uint8_t { kNone, kAnon, kMemfd };

[[nodiscard]] constexpr std::string_view backing_name(Backing b) {
  switch (b) {
    case Backing::kNone: return "none";
    case Backing::kAnon: return "anon";
    case Backing::kMemfd: return "memfd";
  }
  return "none";
}

// Directives; the defaults are the format's defaults and never change with the machine, so a
// trace replays identically everywhere.
struct TraceHeader {
  std::uint32_t version = 1;
  std::uint64_t region_bytes = 0;          // required: `region`
  std::uint32_t guard_pages = 1;           // `guard`
  std::uint64_t lazy_pages = 8192;         // `lazy` (kernel's lazy_max_pages() on one CPU)
  std::uint64_t phys_bytes = 256ull << 20; // `phys`
  Backing backing = Backing::kNone;        // `backing`
  friend bool operator==(const TraceHeader&, const TraceHeader&) = default;
};

}  // namespace vmfrag
