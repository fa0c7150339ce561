#include "harness/decode/op_mutator.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "harness/workloads/prng.h"

namespace vmfrag {

std::size_t mutate_records(std::uint8_t* data, std::size_t size, std::size_t max_size, unsigned seed,
                           const DecodeConfig& c) {
  Prng rng(seed);
  const std::size_t head = c.header_from_bytes ? std::min(size, kHeaderBytes) : 0;
  if (head > max_size) return size;
  std::vector<std::uint8_t> header(data, data + head);
  std::vector<std::array<std::uint8_t, kRecordBytes>> recs;
  for (std::size_t p = head; p + kRecordBytes <= size; p += kRecordBytes) recs.push_back({data[p], data[p + 1], data[p + 2]});
  const std::size_t cap = (max_size - head) / kRecordBytes;
  auto random_record = [&] {
    return std::array<std::uint8_t, kRecordBytes>{static_cast<std::uint8_t>(rng.below(c.kinds.size())),
                                                  static_cast<std::uint8_t>(rng.below(256)),
                                                  static_cast<std::uint8_t>(rng.below(256))};
  };
  auto index = [&](std::size_t n) { return static_cast<std::size_t>(rng.below(n)); };
  switch (recs.empty() ? 0 : rng.below(6)) {
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
      std::vector<std::size_t> allocs;
      for (std::size_t i = 0; i < recs.size(); ++i)
        if (a != std::string::npos && c.kinds[recs[i][0] % c.kinds.size()] == 'a') allocs.push_back(i);
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
    default:  // kind
      recs[index(recs.size())][0] = static_cast<std::uint8_t>(rng.below(c.kinds.size()));
      break;
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
