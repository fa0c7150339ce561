// FreeSpaceTree: the set of free extents of an address range, indexed for exact lowest-fit search.
//
// This is the vmalloc "free vmap area" tree without any vmalloc policy: no OS calls, no guard
// pages, no lazy purging (those live in allocator/vspace/). It keeps disjoint, never-touching
// half-open extents [start, start+size) and answers:
//   - find_lowest_fit: the lowest aligned address where a block fits, inside a sub-range; exact;
//   - fragmentation statistics: total/largest free, free bytes in a range, bytes in extents smaller
//     than a size (the numerator of the unusable-free-space index), a log2 size histogram.
//
// Units are the caller's (the lead passes bytes); nothing assumes page multiples.
//
// Structure: one pool-allocated, cache-line-sized node (64 bytes) per extent, in one intrusive
// AVL tree by address (augmented_avl_tree.h), augmented per subtree with
//   - the largest extent size (prunes fit searches, like the kernel's subtree_max_size),
//   - the byte sum (free_bytes_in),
//   - a 32-bit mask of the size classes present: bit c is set when some extent in the subtree has
//     floor(log2(size)) == 2c or 2c + 1 (bytes_in_extents_smaller_than walks only the subtrees
//     that hold extents of the one log2 bucket the histogram cannot answer for).
// Address-order neighbours are in-order neighbours in the tree (insert finds both in the one
// descent it makes anyway), so there is no separate list and no second index to update.
// The tree's height is below 1.44 log2(n + 2) (a node's depth is about log2 n on average, where
// the treap this replaced averaged 2 ln n = 1.39 log2 n: at a million extents the levels below the
// top dozen miss the cache, and those were what a random free paid for). Its shape depends only on
// the operation sequence, so the same sequence always builds the same tree; placements never
// depend on the shape at all (the lowest fit is a property of the extents, not of the tree).
// No operation allocates except when a node is needed and the pool's free list is empty; node
// memory is the ordinary heap, kept until destruction.
//
// Not thread-safe; the caller serialises access.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "allocator/ds/augmented_avl_tree.h"

namespace vmfrag {

struct Extent {
  uint64_t start = 0;
  uint64_t size = 0;
  // One past the last unit. Callers keep start + size representable (see FreeSpaceTree::insert).
  [[nodiscard]] uint64_t end() const { return start + size; }
  friend bool operator==(const Extent&, const Extent&) = default;
};

namespace detail {

// One free extent. Lives in a FreeSpaceTree node pool; only FreeSpaceTree touches it. One cache
// line: a descent reads one line per level, and everything a fit search or a refresh needs of a
// node (keys, links, summaries) is in it.
struct alignas(64) FreeExtentNode {
  uint64_t start = 0;
  uint64_t size = 0;
  AvlLinks<FreeExtentNode> by_address;  // by_address.right also links the pool's free list
  uint64_t subtree_max_size = 0;        // max size in the subtree
  uint64_t subtree_bytes = 0;           // sum of sizes in the subtree
  uint32_t subtree_size_classes = 0;  // bit floor(log2(size)) / 2 of every extent in the subtree
  uint8_t height = 0;                 // of the subtree: 1 for a leaf (the AVL tree keeps it)

  [[nodiscard]] uint64_t end() const { return start + size; }
};
static_assert(sizeof(FreeExtentNode) == 64, "a free-extent node is one cache line");

// The bit of subtree_size_classes that an extent of `size` (> 0) sets.
inline uint32_t size_class_bit(uint64_t size) {
  return uint32_t{1} << ((63u - static_cast<unsigned>(std::countl_zero(size))) >> 1);
}

struct FreeExtentByAddress {
  static AvlLinks<FreeExtentNode>& links(FreeExtentNode& n) { return n.by_address; }
  static const AvlLinks<FreeExtentNode>& links(const FreeExtentNode& n) { return n.by_address; }
  static uint8_t& height(FreeExtentNode& n) { return n.height; }
  static uint8_t height(const FreeExtentNode& n) { return n.height; }
  static bool less(const FreeExtentNode& a, const FreeExtentNode& b) { return a.start < b.start; }
  static void recompute(FreeExtentNode& n) {
    uint64_t max_size = n.size;
    uint64_t bytes = n.size;
    uint32_t classes = size_class_bit(n.size);
    if (const FreeExtentNode* l = n.by_address.left) {
      max_size = l->subtree_max_size > max_size ? l->subtree_max_size : max_size;
      bytes += l->subtree_bytes;
      classes |= l->subtree_size_classes;
    }
    if (const FreeExtentNode* r = n.by_address.right) {
      max_size = r->subtree_max_size > max_size ? r->subtree_max_size : max_size;
      bytes += r->subtree_bytes;
      classes |= r->subtree_size_classes;
    }
    n.subtree_max_size = max_size;
    n.subtree_bytes = bytes;
    n.subtree_size_classes = classes;
  }
};

}  // namespace detail

class FreeSpaceTree {
 public:
  struct Bucket {
    uint64_t extents = 0;
    uint64_t bytes = 0;
    friend bool operator==(const Bucket&, const Bucket&) = default;
  };

  FreeSpaceTree();
  ~FreeSpaceTree();
  FreeSpaceTree(const FreeSpaceTree&) = delete;
  FreeSpaceTree& operator=(const FreeSpaceTree&) = delete;
  // Moving transfers the extents and the node pool; the moved-from tree is empty and usable.
  FreeSpaceTree(FreeSpaceTree&& other) noexcept;
  FreeSpaceTree& operator=(FreeSpaceTree&& other) noexcept;

  // Grows the node pool so that up to `extents` extents can exist at once without allocating:
  // a caller that keeps this ahead of its worst case makes insert/remove allocation-free (the
  // vmalloc free path must work when the process can get no more memory mappings).
  // Failure: throws std::bad_alloc, extents unchanged. Cost: O(extents / 1024) allocations.
  void reserve_nodes(size_t extents);

  // Adds [start, start+size) as free, merging with a free extent that ends at `start` and/or one
  // that begins at start+size, so no two extents ever touch.
  // Preconditions (VMF_CHECK, always on: a violation means a double free in the caller, which
  // must not pass silently): size > 0; start + size does not overflow uint64_t; the range
  // overlaps no free extent.
  // Cost: O(log n); allocates a node only when no merge happens and the pool is empty.
  void insert(uint64_t start, uint64_t size);

  // The lowest s such that s % align == 0, lo <= s, s + size <= hi, and [s, s+size) lies inside
  // one free extent; nullopt if there is none (also when lo >= hi or hi - lo < size).
  // Exact: never misses a fit and never returns a higher one than the lowest (unlike the kernel's
  // search for size+align-1, which can miss fits in extents of size in [size, size+align-1)).
  // Preconditions (VMF_CHECK): size > 0; align is a power of two >= 1.
  // Cost: O(log n) when no extent that the search must look at fails for alignment alone,
  // which holds whenever align divides every extent boundary (e.g. page-aligned requests in a
  // page-granular tree). In general O((k+1) log n), where k is the number of extents below the
  // answer (or anywhere, when there is none) that are large enough by size (>= size) but have no
  // aligned fit: those of size in [size, size+align-1), plus at most two clipped by lo and hi.
  // Does not modify the tree.
  [[nodiscard]] std::optional<uint64_t> find_lowest_fit(uint64_t size, uint64_t align, uint64_t lo,
                                                        uint64_t hi) const;

  // find_lowest_fit, then remove of the answer, in one search: the extent the search found is cut
  // without a second descent to it. nullopt (nothing changed) when find_lowest_fit finds nothing.
  // Same preconditions and cost as the two calls; allocates only as remove does.
  [[nodiscard]] std::optional<uint64_t> take_lowest_fit(uint64_t size, uint64_t align, uint64_t lo, uint64_t hi);

  // Removes [start, start+size), which must lie inside a single free extent. Handles the four fit
  // types: whole extent, left edge, right edge, middle (which splits the extent in two).
  // Preconditions (VMF_CHECK, always on): size > 0, no overflow, range inside one free extent.
  // Cost: O(log n); allocates a node only for a middle split when the pool is empty.
  void remove(uint64_t start, uint64_t size);

  // The free extent containing addr, if any. O(log n).
  [[nodiscard]] std::optional<Extent> extent_containing(uint64_t addr) const;

  // The free extent with the lowest start >= addr, if any. O(log n).
  [[nodiscard]] std::optional<Extent> first_extent_at_or_after(uint64_t addr) const;

  // The free extent with the highest start <= addr, if any. O(log n).
  [[nodiscard]] std::optional<Extent> last_extent_at_or_before(uint64_t addr) const;

  [[nodiscard]] uint64_t free_bytes() const { return free_bytes_; }  // O(1): sum of sizes
  [[nodiscard]] uint64_t largest() const;                            // O(1): 0 when empty
  [[nodiscard]] size_t extent_count() const { return extent_count_; }  // O(1)
  [[nodiscard]] bool empty() const { return extent_count_ == 0; }      // O(1)

  // Free units inside [lo, hi): every extent clipped to the range. 0 when lo >= hi.
  // O(log n) (two prefix-sum descents over the by-address subtree byte sums).
  [[nodiscard]] uint64_t free_bytes_in(uint64_t lo, uint64_t hi) const;

  // Sum of sizes of the extents whose size < size: the numerator of the kernel-style
  // unusable-free-space index for a request of `size`. Exact. Whole log2 buckets below size come
  // from the histogram; only size's own bucket, when size is not a power of two, is walked, through
  // the subtrees whose size-class mask says they hold such extents. Cost O(1) when size is a power
  // of two or its bucket is empty, else O((k + 1) log n), k = extents in size's bucket
  // and its size-class pair (floor(log2) differing only in the lowest bit).
  [[nodiscard]] uint64_t bytes_in_extents_smaller_than(uint64_t size) const;

  // Bucket i counts the extents with floor(log2(size)) == i and their total size. Maintained in
  // O(1) per change; the reference stays valid for the tree's lifetime.
  [[nodiscard]] const std::array<Bucket, 64>& histogram() const { return histogram_; }

  // Calls f(Extent) for every extent in ascending address order. f must not modify the tree. O(n).
  template <class F>
  void for_each(F&& f) const {
    for (detail::FreeExtentNode* n = lowest(); n != nullptr; n = AddressTree::next_in_order(n)) {
      f(Extent{n->start, n->size});
    }
  }

  // Recomputes everything from scratch and compares: BST order, AVL balance and stored heights,
  // parent links, every augmented value (max size, byte sum, size-class mask), no two extents overlapping
  // or touching, and the totals, count and histogram. Returns "" when all hold, else a message naming the first broken
  // invariant and the extent values involved. O(n log n); intended for tests and -Dchecks=full.
  [[nodiscard]] std::string validate() const;

  // Removes every extent. Node memory is kept for reuse (it is released only by the destructor);
  // a cleared tree behaves exactly like a new one. O(1).
  void clear();

 private:
  using Node = detail::FreeExtentNode;
  using AddressTree = IntrusiveAugmentedAvlTree<Node, detail::FreeExtentByAddress>;
  friend class FreeSpaceTreeTestAccess;  // tests corrupt nodes to prove validate() notices

  [[nodiscard]] Node* allocate_node(uint64_t start, uint64_t size);
  void release_node(Node* n);
  struct Split {
    Node* before = nullptr;       // highest extent starting below the address
    Node* at_or_after = nullptr;  // lowest extent starting at or after it
  };
  [[nodiscard]] Split split_at(uint64_t addr) const;
  struct Fit {
    Node* extent = nullptr;  // the extent holding the fit; null when there is none
    uint64_t start = 0;
  };
  [[nodiscard]] Fit lowest_fit(uint64_t size, uint64_t align, uint64_t lo, uint64_t hi) const;
  void carve(Node* n, uint64_t start, uint64_t size);
  [[nodiscard]] Node* first_starting_at_or_after(uint64_t addr) const;
  [[nodiscard]] Node* last_starting_at_or_before(uint64_t addr) const;
  [[nodiscard]] Node* lowest() const;
  [[nodiscard]] uint64_t bytes_below(uint64_t addr) const;
  void link_new_extent(Node* n, Node* prev, Node* next);
  void unlink_extent(Node* n);
  void resize_in_place(Node* n, uint64_t new_start, uint64_t new_size);
  void count_extent(uint64_t size);
  void uncount_extent(uint64_t size);
  void swap(FreeSpaceTree& other) noexcept;

  AddressTree by_address_;
  uint64_t free_bytes_ = 0;
  size_t extent_count_ = 0;
  std::array<Bucket, 64> histogram_{};

  // Node pool: fixed-size chunks handed out in order, recycled through a free list.
  std::vector<std::unique_ptr<Node[]>> pool_chunks_;
  size_t pool_chunks_used_ = 0;    // chunks [0, used) have been started
  size_t pool_used_in_chunk_ = 0;  // nodes handed out from chunk used-1
  Node* pool_free_list_ = nullptr;
};

}  // namespace vmfrag
