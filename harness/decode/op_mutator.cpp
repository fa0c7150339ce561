#include "harness/decode/op_mutator.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "harness/workloads/prng.h"

namespace vmfrag {
namespace {

using Record = std::array<std::uint8_t, kRecordBytes>;

// The decoder's live list (ids in decode_input's swap-remove order) after `recs[0, n)`, and the
// next fresh id: mirrors decode_input's id rules (every kind but f, p and misuse allocates; a free
// of nothing live is dropped).
std::vector<std::uint64_t> live_after(const std::vector<Record>& recs, std::size_t n, const DecodeConfig& c,
                                      std::uint64_t& next_id) {
  std::vector<std::uint64_t> live;
  next_id = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const char kind = c.kinds[recs[i][0] % c.kinds.size()];
    if (kind == 'f') {
      if (live.empty()) continue;
      const std::size_t k = (std::size_t{recs[i][1]} | std::size_t{recs[i][2]} << 8) % live.size();
      live[k] = live.back();
      live.pop_back();
    } else if (kind != 'p' && kind != kMisuseSelector) {
      live.push_back(next_id++);
    }
  }
  return live;
}

// The record that frees `id` given the decoder's live list, which it updates the same way.
Record free_record(std::vector<std::uint64_t>& live, std::uint64_t id, std::uint8_t free_sel) {
  const std::size_t k = static_cast<std::size_t>(std::find(live.begin(), live.end(), id) - live.begin());
  live[k] = live.back();
  live.pop_back();
  return Record{free_sel, static_cast<std::uint8_t>(k & 0xff), static_cast<std::uint8_t>(k >> 8)};
}

}  // namespace

std::size_t mutate_records(std::uint8_t* data, std::size_t size, std::size_t max_size, unsigned seed,
                           const DecodeConfig& c) {
  Prng rng(seed);
  const std::size_t head = c.header_from_bytes ? std::min(size, kHeaderBytes) : 0;
  if (head > max_size) return size;
  std::vector<std::uint8_t> header(data, data + head);
  std::vector<Record> recs;
  for (std::size_t p = head; p + kRecordBytes <= size; p += kRecordBytes) recs.push_back({data[p], data[p + 1], data[p + 2]});
  const std::size_t cap = (max_size - head) / kRecordBytes;
  auto random_record = [&] {
    return std::array<std::uint8_t, kRecordBytes>{static_cast<std::uint8_t>(rng.below(c.kinds.size())),
                                                  static_cast<std::uint8_t>(rng.below(256)),
                                                  static_cast<std::uint8_t>(rng.below(256))};
  };
  auto index = [&](std::size_t n) { return static_cast<std::size_t>(rng.below(n)); };
  // The allocating kind the phases use: vmalloc, else kmalloc (the physical hunt's table), with the
  // number of sizes its x byte picks among.
  const bool vmalloc_phases = c.kinds.find('a') != std::string::npos;
  const std::size_t a_sel = vmalloc_phases ? c.kinds.find('a') : c.kinds.find('k'), f_sel = c.kinds.find('f');
  const bool phases = a_sel != std::string::npos && f_sel != std::string::npos;
  const std::uint64_t phase_sizes = vmalloc_phases ? c.max_pages - c.min_pages + 1 : c.kmalloc_max_pages;
  switch (recs.empty() ? (phases ? 6 : 0) : rng.below(phases ? 8 : 6)) {
    case 0:  // insert
      if (recs.size() < cap) {
        const auto r = !recs.empty() && rng.chance(1, 2) ? recs[index(recs.size())] : random_record();
        recs.insert(recs.begin() + static_cast<std::ptrdiff_t>(index(recs.size() + 1)), r);
      }
      break;
    case 1:  // delete
      recs.erase(recs.begin() + static_cast<std::ptrdiff_t>(index(recs.size())));
      break;
    case 2:  // swap
      std::swap(recs[index(recs.size())], recs[index(recs.size())]);
      break;
    case 3: {  // repeat a run
      const std::size_t start = index(recs.size());
      const std::size_t len = std::min<std::size_t>(1 + rng.below(8), recs.size() - start);
      const std::vector<std::array<std::uint8_t, kRecordBytes>> run(recs.begin() + static_cast<std::ptrdiff_t>(start),
                                                                     recs.begin() + static_cast<std::ptrdiff_t>(start + len));
      std::size_t at = start + len;
      for (std::uint64_t k = 1 + rng.below(4); k > 0 && recs.size() + len <= cap; --k) {
        recs.insert(recs.begin() + static_cast<std::ptrdiff_t>(at), run.begin(), run.end());
        at += len;
      }
      break;
    }
    case 4: {  // resize an allocation
      const std::size_t a = c.kinds.find('a');
      std::vector<std::size_t> allocs, kmallocs;
      for (std::size_t i = 0; i < recs.size(); ++i) {
        const char kind = c.kinds[recs[i][0] % c.kinds.size()];
        if (kind == 'a') allocs.push_back(i);
        if (kind == 'k') kmallocs.push_back(i);
      }
      if (a == std::string::npos && !kmallocs.empty()) {
        // kmalloc: 2^j pages (a whole block) or 2^j + 1 (the next order, half of it wasted).
        auto& r = recs[kmallocs[index(kmallocs.size())]];
        const std::uint64_t p = std::uint64_t{1} << rng.below(8);
        r[1] = static_cast<std::uint8_t>((p - 1 + rng.below(2)) % c.kmalloc_max_pages);
        r[2] = 0;
        break;
      }
      if (allocs.empty()) break;
      auto& r = recs[allocs[index(allocs.size())]];
      const std::uint64_t span = c.max_pages - c.min_pages + 1;
      // x: pages - min_pages for 1, 2, 4, 8, ... pages and the largest; 255: size 0 when allowed.
      std::vector<std::uint8_t> xs = {0, static_cast<std::uint8_t>(span - 1)};
      for (std::uint64_t p = 2; p <= c.max_pages; p *= 2)
        if (p >= c.min_pages) xs.push_back(static_cast<std::uint8_t>(p - c.min_pages));
      if (c.zero_sizes) xs.push_back(255);
      r[1] = xs[index(xs.size())];
      // y: whole pages, page - 31, page - 3937 (subpage), the smallest and the largest alignments.
      static constexpr std::array<std::uint8_t, 5> kYs = {0x00, 0x81, 0xff, 0x07, 0x06};
      if (c.subpage_sizes || c.aligns) r[2] = kYs[index(kYs.size())];
      break;
    }
    case 5:  // kind
      recs[index(recs.size())][0] = static_cast<std::uint8_t>(rng.below(c.kinds.size()));
      break;
    case 6: {  // a phase: a burst of same-size allocations, then every other (or third) of them freed
      const std::size_t at = rng.chance(1, 2) ? recs.size() : index(recs.size() + 1);
      std::uint64_t next_id = 0;
      std::vector<std::uint64_t> live = live_after(recs, at, c, next_id);
      const std::uint64_t count = 2 + rng.below(31), stride = 2 + rng.below(2), first = rng.below(stride);
      const auto x = static_cast<std::uint8_t>(rng.below(phase_sizes));
      std::vector<Record> phase;
      for (std::uint64_t i = 0; i < count; ++i) {
        phase.push_back(Record{static_cast<std::uint8_t>(a_sel), x, 0});
        live.push_back(next_id + i);
      }
      for (std::uint64_t i = first; i < count; i += stride)
        phase.push_back(free_record(live, next_id + i, static_cast<std::uint8_t>(f_sel)));
      if (recs.size() + phase.size() <= cap)
        recs.insert(recs.begin() + static_cast<std::ptrdiff_t>(at), phase.begin(), phase.end());
      break;
    }
    default: {  // thin out: free every other (or third) of a run of live areas, in allocation order
      const std::size_t at = rng.chance(1, 2) ? recs.size() : index(recs.size() + 1);
      std::uint64_t next_id = 0;
      std::vector<std::uint64_t> live = live_after(recs, at, c, next_id);
      if (live.empty()) break;
      std::vector<std::uint64_t> by_age = live;
      std::sort(by_age.begin(), by_age.end());
      const std::size_t from = index(by_age.size());
      const std::uint64_t stride = 2 + rng.below(2);
      std::vector<Record> frees;
      for (std::size_t i = from + rng.below(stride); i < by_age.size(); i += stride)
        frees.push_back(free_record(live, by_age[i], static_cast<std::uint8_t>(f_sel)));
      if (recs.size() + frees.size() <= cap)
        recs.insert(recs.begin() + static_cast<std::ptrdiff_t>(at), frees.begin(), frees.end());
      break;
    }
  }
  std::size_t n = 0;
  for (std::uint8_t b : header) data[n++] = b;
  for (const auto& r : recs) {
    if (n + kRecordBytes > max_size) break;
    std::memcpy(data + n, r.data(), kRecordBytes);
    n += kRecordBytes;
  }
  return n;
}

}  // namespace vmfrag
