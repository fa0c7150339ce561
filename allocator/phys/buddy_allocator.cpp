// BuddyAllocator: see buddy_allocator.h for the policy and the structure.
#include "allocator/phys/buddy_allocator.h"

#include <algorithm>
#include <bit>
#include <utility>

#include "allocator/core/assert.h"

namespace vmfrag {

namespace {

constexpr std::uint64_t pages_of(unsigned order) { return std::uint64_t{1} << order; }

unsigned floor_log2(std::uint64_t v) { return static_cast<unsigned>(std::bit_width(v)) - 1; }

std::string block_text(std::uint64_t pfn, unsigned order) {
  return "[" + std::to_string(pfn) + ", " + std::to_string(pfn + pages_of(order)) + ") order " + std::to_string(order);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// LowestFirstBitmap
// ---------------------------------------------------------------------------------------------

namespace detail {

LowestFirstBitmap::LowestFirstBitmap(std::uint64_t n) : n_(n) {
  // Level sizes: ceil(n/64), ceil(that/64), ... down to one word (at least one level, even for n 0).
  std::uint64_t bits = n;
  do {
    const std::uint64_t words = std::max<std::uint64_t>(1, (bits + 63) / 64);
    levels_.emplace_back(words, 0);
    bits = words;
  } while (bits > 1);
}

void LowestFirstBitmap::insert(std::uint64_t i) {
  VMF_ASSERT(i < n_ && !contains(i), "bitmap insert %llu (n %llu)", static_cast<unsigned long long>(i),
             static_cast<unsigned long long>(n_));
  ++count_;
  // Set the bit; a word that was zero must now be announced one level up, and so on.
  for (auto& level : levels_) {
    std::uint64_t& word = level[i / 64];
    const bool was_empty = word == 0;
    word |= std::uint64_t{1} << (i % 64);
    if (!was_empty) return;
    i /= 64;
  }
}

void LowestFirstBitmap::erase(std::uint64_t i) {
  VMF_ASSERT(i < n_ && contains(i), "bitmap erase %llu (n %llu)", static_cast<unsigned long long>(i),
             static_cast<unsigned long long>(n_));
  --count_;
  // Clear the bit; only a word that becomes zero clears its summary bit one level up.
  for (auto& level : levels_) {
    std::uint64_t& word = level[i / 64];
    word &= ~(std::uint64_t{1} << (i % 64));
    if (word != 0) return;
    i /= 64;
  }
}

bool LowestFirstBitmap::contains(std::uint64_t i) const {
  return i < n_ && ((levels_[0][i / 64] >> (i % 64)) & 1) != 0;
}

std::optional<std::uint64_t> LowestFirstBitmap::lowest() const {
  if (count_ == 0) return std::nullopt;
  // From the top word down: the lowest set bit of each level's word names the word to read below.
  std::uint64_t index = 0;
  for (std::size_t k = levels_.size(); k-- > 0;) {
    const std::uint64_t word = levels_[k][index];
    VMF_ASSERT(word != 0, "bitmap summary level %zu word %llu empty", k, static_cast<unsigned long long>(index));
    index = index * 64 + static_cast<std::uint64_t>(std::countr_zero(word));
  }
  return index;
}

std::string LowestFirstBitmap::validate() const {
  std::uint64_t popcount = 0;
  for (std::uint64_t w = 0; w < levels_[0].size(); ++w) {
    popcount += static_cast<std::uint64_t>(std::popcount(levels_[0][w]));
    // No member at or beyond n.
    for (std::uint64_t b = 0; b < 64; ++b)
      if (((levels_[0][w] >> b) & 1) != 0 && w * 64 + b >= n_)
        return "bitmap member " + std::to_string(w * 64 + b) + " >= n " + std::to_string(n_);
  }
  if (popcount != count_)
    return "bitmap count " + std::to_string(count_) + " but " + std::to_string(popcount) + " members";
  for (std::size_t k = 0; k + 1 < levels_.size(); ++k) {
    for (std::uint64_t w = 0; w < levels_[k + 1].size() * 64; ++w) {
      const bool below = w < levels_[k].size() && levels_[k][w] != 0;
      const bool summary = ((levels_[k + 1][w / 64] >> (w % 64)) & 1) != 0;
      if (below != summary)
        return "bitmap level " + std::to_string(k + 1) + " bit " + std::to_string(w) + " is " +
               std::to_string(summary) + " but word " + std::to_string(w) + " of level " + std::to_string(k) +
               (below ? " is non-zero" : " is zero");
    }
  }
  return "";
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// BuddyAllocator
// ---------------------------------------------------------------------------------------------

BuddyAllocator::BuddyAllocator(std::uint64_t page_count) : page_count_(page_count), page_state_(page_count, kTail) {
  VMF_CHECK(page_count >= 1 && page_count <= kMaxBuddyPages, "page_count %llu outside [1, 2^28]",
            static_cast<unsigned long long>(page_count));
  free_heads_.reserve(kOrderCount);
  for (unsigned o = 0; o <= kMaxOrder; ++o) free_heads_.emplace_back(page_count >> o);
  // Initial tiling: from each pfn, the largest block that is aligned there, fits before N and is
  // at most kMaxOrder. Greedy from the left gives maximal blocks because an aligned block at pfn
  // never straddles a larger aligned boundary. E.g. N = 13: [0,8) o3, [8,12) o2, [12,13) o0.
  std::uint64_t pfn = 0;
  while (pfn < page_count_) {
    unsigned order = pfn == 0 ? kMaxOrder : std::min<unsigned>(kMaxOrder, static_cast<unsigned>(std::countr_zero(pfn)));
    while (pfn + pages_of(order) > page_count_) --order;
    push_free(pfn, order);
    pfn += pages_of(order);
  }
}

void BuddyAllocator::push_free(std::uint64_t pfn, unsigned order) {
  page_state_[pfn] = static_cast<std::uint8_t>(kFreeHead | order);
  free_heads_[order].insert(pfn >> order);
  ++free_blocks_[order];
  free_pages_ += pages_of(order);
}

void BuddyAllocator::pop_free(std::uint64_t pfn, unsigned order) {
  free_heads_[order].erase(pfn >> order);
  --free_blocks_[order];
  free_pages_ -= pages_of(order);
}

// Allocation, as __rmqueue_smallest + expand() in mm/page_alloc.c: scan the orders upwards from
// the request and take the first free block found (lowest pfn of that order). If it is larger than
// asked, halve it repeatedly, each time keeping the lower half and returning the upper half free at
// the order below. This guarantees
//   - the smallest block that can serve the request is used, so larger free blocks are only broken
//     when nothing smaller exists (keeps high orders available for as long as possible);
//   - the result is naturally aligned (halving an aligned block yields aligned halves);
//   - the halves returned cannot merge with anything: each one's buddy is the half being split
//     further, which is allocated, so the "no free buddy pair" invariant survives.
//
//   order 3 block at pfn 8, request order 1:
//     [8 ...................... 16)        take, split
//     [8 ........ 12)[12 ...... 16)        upper half 12 -> free order 2
//     [8 .. 10)[10 .. 12)                  upper half 10 -> free order 1
//     [8 .. 10)                            allocated, order 1
std::optional<std::uint64_t> BuddyAllocator::allocate(unsigned order) {
  const std::optional<std::uint64_t> pfn = allocate_block(order);
  VMF_ASSERT_FULL(validate().empty(), "after allocate(%u): %s", order, validate().c_str());
  return pfn;
}

std::optional<std::uint64_t> BuddyAllocator::allocate_block(unsigned order) {
  if (order > kMaxOrder) return std::nullopt;
  for (unsigned current = order; current <= kMaxOrder; ++current) {
    const std::optional<std::uint64_t> index = free_heads_[current].lowest();
    if (!index) continue;
    const std::uint64_t pfn = *index << current;
    pop_free(pfn, current);
    while (current > order) {
      --current;
      push_free(pfn + pages_of(current), current);  // its state byte was kTail; now a free head
    }
    page_state_[pfn] = static_cast<std::uint8_t>(kAllocatedHead | order);
    return pfn;
  }
  return std::nullopt;
}

BuddyAllocator::Block BuddyAllocator::block_containing(std::uint64_t pfn) const {
  VMF_CHECK(pfn < page_count_, "pfn %llu >= page count %llu", static_cast<unsigned long long>(pfn),
            static_cast<unsigned long long>(page_count_));
  // Every page belongs to exactly one block, whose head is pfn rounded down to the block's order.
  // So the head is the first of pfn, pfn & ~1, pfn & ~3, ... whose state is a head of that order.
  for (unsigned o = 0; o <= kMaxOrder; ++o) {
    const std::uint64_t head = pfn & ~(pages_of(o) - 1);
    const std::uint8_t s = page_state_[head];
    if (s != kTail && (s & kOrderMask) == o) return Block{head, o, (s & kKindMask) == kFreeHead};
  }
  VMF_CHECK(false, "pfn %llu belongs to no block: page states are corrupt", static_cast<unsigned long long>(pfn));
  return {};
}

// Freeing, as __free_one_page in mm/page_alloc.c: while the buddy (pfn ^ 2^order) is a free block
// of the same order, take it off its free list and merge: the pair becomes one block of order+1
// headed by the lower of the two pfns. Stop at kMaxOrder or at a buddy that is allocated, split
// into smaller blocks, merged into a larger one, or beyond N (a buddy pfn >= N; a buddy block that
// starts below N but runs past it cannot be a free block, as no block runs past N). This
// guarantees that no two free buddies of one order remain, so the free set stays the canonical
// tiling of the free pages into maximal aligned blocks.
//
//   free pfn 10 (order 1); 8 is free at order 1, 12 free at order 2:
//     [8 .. 10)[10 .. 12)[12 ...... 16)
//      free     freeing   free o2
//     [8 ........ 12)[12 ...... 16)        10 ^ 2 = 8: merge -> order 2 at 8
//     [8 ...................... 16)        8 ^ 4 = 12: merge -> order 3 at 8
//     stop: 8 ^ 8 = 0, is it a free order-3 head? (if so merge again, up to kMaxOrder)
void BuddyAllocator::free(std::uint64_t pfn, unsigned order) {
  free_block(pfn, order);
  VMF_ASSERT_FULL(validate().empty(), "after free: %s", validate().c_str());
}

void BuddyAllocator::free_block(std::uint64_t pfn, unsigned order) {
  VMF_CHECK(order <= kMaxOrder, "free: order %u > %u", order, kMaxOrder);
  VMF_CHECK(pfn < page_count_ && pages_of(order) <= page_count_ - pfn, "free: block %s outside [0, %llu)",
            block_text(pfn, order).c_str(), static_cast<unsigned long long>(page_count_));
  VMF_CHECK((pfn & (pages_of(order) - 1)) == 0, "free: pfn %llu not aligned to order %u",
            static_cast<unsigned long long>(pfn), order);
  if (page_state_[pfn] != (kAllocatedHead | order)) {
    const Block b = block_containing(pfn);
    VMF_CHECK(false, "free of %s: pfn %llu is %s %s (%s)", block_text(pfn, order).c_str(),
              static_cast<unsigned long long>(pfn), b.pfn == pfn ? "the head of" : "inside",
              (std::string(b.free ? "free block " : "allocated block ") + block_text(b.pfn, b.order)).c_str(),
              b.free ? "double free" : (b.pfn == pfn ? "wrong order" : "not a block start"));
  }
  while (order < kMaxOrder) {
    const std::uint64_t buddy = pfn ^ pages_of(order);
    if (buddy >= page_count_ || page_state_[buddy] != (kFreeHead | order)) break;
    pop_free(buddy, order);
    page_state_[std::max(pfn, buddy)] = kTail;  // the upper one is no longer a head
    pfn = std::min(pfn, buddy);
    ++order;
  }
  push_free(pfn, order);
}

// A whole free block for the bulk path, without the page-by-page splitting that would give the
// same pages. allocate_block(order) takes the lowest block of the smallest order `current` >=
// order that has one and splits it. When 2^current <= remaining, the bulk loop would go on to take
// every piece of that split before anything else, in ascending pfn order: order is then
// max_order (order = min(max_order, floor_log2(remaining)) < current <= floor_log2(remaining)),
// every later ask is again max_order while at least 2^max_order pages remain, which they do until
// the block is used up, and the only free blocks of orders [max_order, current) are its pieces
// (those orders were empty, or allocate_block would have stopped there). So taking the block
// whole yields exactly the same pfns in the same order, and the same final state (the state is
// canonical). Otherwise this is allocate_block(order). Returns {pfn, order taken}.
std::optional<std::pair<std::uint64_t, unsigned>> BuddyAllocator::allocate_run(unsigned order, std::uint64_t remaining) {
  for (unsigned current = order; current <= kMaxOrder; ++current) {
    if (free_blocks_[current] == 0) continue;
    if (current == order || pages_of(current) > remaining) break;
    const std::uint64_t pfn = *free_heads_[current].lowest() << current;
    pop_free(pfn, current);
    page_state_[pfn] = static_cast<std::uint8_t>(kAllocatedHead | current);
    return std::pair{pfn, current};
  }
  const std::optional<std::uint64_t> pfn = allocate_block(order);
  if (!pfn) return std::nullopt;
  return std::pair{*pfn, order};
}

// Bulk allocation: the rule and its relation to vm_area_alloc_pages are in the header. Blocks
// taken so far are kept as (pfn, order) so that a failure can give them back as whole blocks:
// freeing them re-merges exactly what allocate() split (the state is canonical, see the header),
// so a failed call leaves no trace. Only after every block is secured are they split into order-0
// allocated pages (one state byte each: every page becomes its own allocated head).
bool BuddyAllocator::allocate_pages(std::uint64_t count, std::vector<std::uint64_t>& pfns_out, unsigned max_order,
                                    unsigned min_order) {
  VMF_CHECK(min_order <= max_order && max_order <= kMaxOrder, "allocate_pages: orders min %u max %u", min_order,
            max_order);
  VMF_CHECK((count & (pages_of(min_order) - 1)) == 0, "allocate_pages: count %llu not a multiple of 2^%u",
            static_cast<unsigned long long>(count), min_order);
  if (count > free_pages_) return false;
  std::vector<std::pair<std::uint64_t, unsigned>> taken;
  std::uint64_t remaining = count;
  while (remaining > 0) {
    // remaining is a multiple of 2^min_order, so floor_log2(remaining) >= min_order.
    unsigned order = std::min(max_order, floor_log2(remaining));
    std::optional<std::pair<std::uint64_t, unsigned>> block = allocate_run(order, remaining);
    while (!block && order > min_order) block = allocate_run(--order, remaining);
    if (!block) {
      for (auto it = taken.rbegin(); it != taken.rend(); ++it) free_block(it->first, it->second);
      VMF_ASSERT_FULL(validate().empty(), "after a failed allocate_pages: %s", validate().c_str());
      return false;
    }
    taken.push_back(*block);
    remaining -= pages_of(block->second);
  }
  pfns_out.reserve(pfns_out.size() + count);
  for (const auto& [head, order] : taken) {
    for (std::uint64_t p = head; p < head + pages_of(order); ++p) {
      page_state_[p] = kAllocatedHead | 0;
      pfns_out.push_back(p);
    }
  }
  VMF_ASSERT_FULL(validate().empty(), "after allocate_pages: %s", validate().c_str());
  return true;
}

// free_block(pfn, 0) for each pfn, but a run of consecutive pfns that covers an aligned block of
// order k is freed as that one block: the free state depends only on which pages are free (it is
// the canonical tiling, see free_block), so freeing the block gives the state freeing its pages
// one by one would. The run is cut greedily into the largest aligned blocks (as the initial tiling
// is). Every page must be an allocated order-0 page, as free_block(pfn, 0) requires; if one is
// not, that block's pages go through free_block one by one, which aborts at the bad page with the
// message a page-by-page free would give, in the same state.
void BuddyAllocator::free_pages(std::span<const std::uint64_t> pfns) {
  const std::size_t n = pfns.size();
  std::size_t i = 0;
  while (i < n) {
    const std::uint64_t head = pfns[i];
    // Longest run of consecutive pfns starting at i, capped at one maximal block.
    std::size_t run = 1;
    while (i + run < n && run < pages_of(kMaxOrder) && pfns[i + run] == head + run) ++run;
    unsigned order = std::min<unsigned>(floor_log2(run), head == 0 ? kMaxOrder : static_cast<unsigned>(std::countr_zero(head)));
    order = std::min(order, kMaxOrder);
    bool whole = order > 0 && head < page_count_ && pages_of(order) <= page_count_ - head;
    for (std::uint64_t p = head; whole && p < head + pages_of(order); ++p) whole = page_state_[p] == (kAllocatedHead | 0);
    if (!whole) {
      free_block(head, 0);
      ++i;
      continue;
    }
    page_state_[head] = static_cast<std::uint8_t>(kAllocatedHead | order);
    for (std::uint64_t p = head + 1; p < head + pages_of(order); ++p) page_state_[p] = kTail;
    free_block(head, order);
    i += pages_of(order);
  }
  VMF_ASSERT_FULL(validate().empty(), "after free_pages: %s", validate().c_str());
}

std::optional<unsigned> BuddyAllocator::largest_free_order() const {
  for (unsigned o = kOrderCount; o-- > 0;)
    if (free_blocks_[o] != 0) return o;
  return std::nullopt;
}

std::optional<std::uint64_t> BuddyAllocator::lowest_free_block(unsigned order) const {
  if (order > kMaxOrder) return std::nullopt;
  const std::optional<std::uint64_t> index = free_heads_[order].lowest();
  if (!index) return std::nullopt;
  return *index << order;
}

// fill_contig_page_info's free_blocks_suitable: how many 2^order blocks the free blocks of order
// >= `order` could be split into.
std::uint64_t BuddyAllocator::suitable_blocks(unsigned order) const {
  std::uint64_t suitable = 0;
  for (unsigned o = order; o <= kMaxOrder; ++o) suitable += free_blocks_[o] << (o - order);
  return suitable;
}

std::uint64_t BuddyAllocator::free_blocks_total() const {
  std::uint64_t total = 0;
  for (std::uint64_t n : free_blocks_) total += n;
  return total;
}

// Transcribed from mm/vmstat.c __fragmentation_index, unsigned 64-bit arithmetic included; the
// last subtraction is signed, as the kernel's int return makes it.
int BuddyAllocator::fragmentation_index_milli(unsigned order) const {
  VMF_CHECK(order <= kMaxOrder, "fragmentation_index: order %u > %u", order, kMaxOrder);
  const std::uint64_t requested = pages_of(order);
  const std::uint64_t blocks_total = free_blocks_total();
  if (blocks_total == 0) return 0;
  if (suitable_blocks(order) != 0) return -1000;
  const std::uint64_t scaled = (1000 + free_pages_ * 1000 / requested) / blocks_total;
  return static_cast<int>(1000 - static_cast<std::int64_t>(scaled));
}

// Transcribed from mm/vmstat.c unusable_free_index.
int BuddyAllocator::unusable_free_index_milli(unsigned order) const {
  VMF_CHECK(order <= kMaxOrder, "unusable_free_index: order %u > %u", order, kMaxOrder);
  if (free_pages_ == 0) return 1000;
  return static_cast<int>((free_pages_ - (suitable_blocks(order) << order)) * 1000 / free_pages_);
}

FailureKind BuddyAllocator::block_failure(unsigned order) const {
  if (order > kMaxOrder) return FailureKind::kInvalidArgument;
  if (suitable_blocks(order) != 0) return FailureKind::kNone;
  return free_pages_ < pages_of(order) ? FailureKind::kNoPhysicalMemory : FailureKind::kPhysicalFragmentation;
}

BuddyStats BuddyAllocator::stats() const {
  BuddyStats s;
  s.total_pages = page_count_;
  s.free_pages = free_pages_;
  s.free_blocks = free_blocks_;
  s.largest_free_order = largest_free_order();
  for (unsigned o = 0; o <= kMaxOrder; ++o) {
    s.fragmentation_index_milli[o] = fragmentation_index_milli(o);
    s.unusable_free_index_milli[o] = unusable_free_index_milli(o);
  }
  return s;
}

std::string BuddyAllocator::validate() const {
  std::array<std::uint64_t, kOrderCount> blocks{};
  std::uint64_t free_pages = 0;
  std::uint64_t pfn = 0;
  // Walk the tiling: each block is a head followed by its tails; anything else is corrupt.
  while (pfn < page_count_) {
    const std::uint8_t s = page_state_[pfn];
    const std::uint8_t kind = s & kKindMask;
    const unsigned order = s & kOrderMask;
    if (kind != kFreeHead && kind != kAllocatedHead)
      return "pfn " + std::to_string(pfn) + " should start a block but has state " + std::to_string(s);
    if (order > kMaxOrder) return "block at pfn " + std::to_string(pfn) + " has order " + std::to_string(order);
    if ((pfn & (pages_of(order) - 1)) != 0) return "block " + block_text(pfn, order) + " is misaligned";
    if (pages_of(order) > page_count_ - pfn)
      return "block " + block_text(pfn, order) + " runs past N " + std::to_string(page_count_);
    for (std::uint64_t t = pfn + 1; t < pfn + pages_of(order); ++t)
      if (page_state_[t] != kTail)
        return "pfn " + std::to_string(t) + " inside block " + block_text(pfn, order) + " is not a tail (state " +
               std::to_string(page_state_[t]) + ")";
    const bool is_free = kind == kFreeHead;
    if (is_free != free_heads_[order].contains(pfn >> order))
      return std::string(is_free ? "free" : "allocated") + " block " + block_text(pfn, order) +
             (is_free ? " missing from" : " present in") + " the free bitmap";
    if (is_free) {
      ++blocks[order];
      free_pages += pages_of(order);
      const std::uint64_t buddy = pfn ^ pages_of(order);
      if (order < kMaxOrder && buddy < page_count_ && page_state_[buddy] == (kFreeHead | order))
        return "free block " + block_text(pfn, order) + " and its free buddy " + block_text(buddy, order) +
               " are not merged";
    }
    pfn += pages_of(order);
  }
  for (unsigned o = 0; o <= kMaxOrder; ++o) {
    if (blocks[o] != free_blocks_[o])
      return "order " + std::to_string(o) + " counts " + std::to_string(free_blocks_[o]) + " free blocks, the walk " +
             std::to_string(blocks[o]);
    // Heads found by the walk are members; equal counts then mean there are no other members.
    if (free_heads_[o].size() != blocks[o])
      return "order " + std::to_string(o) + " bitmap holds " + std::to_string(free_heads_[o].size()) +
             " blocks, the walk found " + std::to_string(blocks[o]);
    if (std::string m = free_heads_[o].validate(); !m.empty()) return "order " + std::to_string(o) + ": " + m;
  }
  if (free_pages != free_pages_)
    return "free page count " + std::to_string(free_pages_) + " but the blocks hold " + std::to_string(free_pages);
  return "";
}

}  // namespace vmfrag
