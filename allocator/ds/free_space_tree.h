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
// Structure: one pool-allocated node per extent, member of two intrusive treaps and one list:
//   - by address, augmented with subtree max size (prunes fit searches, like the kernel's
//     subtree_max_size) and subtree byte sum (free_bytes_in);
//   - by (size, start), augmented with subtree byte sum (bytes_in_extents_smaller_than);
//   - a doubly linked list in address order (O(1) neighbour checks when coalescing).
// Treap priorities come from a splitmix64 stream with a fixed seed, so the same operation sequence
// always builds the same trees. No operation allocates except when a node is needed and the pool's
// free list is empty; node memory is the ordinary heap, kept until destruction.
//
// Not thread-safe; the caller serialises access.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "allocator/ds/augmented_treap.h"

namespace vmfrag {

struct Extent {
  uint64_t start = 0;
  uint64_t size = 0;
  // One past the last unit. Callers keep start + size representable (see FreeSpaceTree::insert).
  [[nodiscard]] uint64_t end() const { return start + size; }
  friend bool operator==(const Extent&, const Extent&) = default;
};

namespace detail {

// One free extent. Lives in a FreeSpaceTree node pool; only FreeSpaceTree touches it.
// Field order: what a by-address descent reads (keys, links, augmentations) comes first and
// together, the size index and the list after it.
struct FreeExtentNode {
  uint64_t start = 0;
  uint64_t size = 0;
  uint64_t priority = 0;  // shared by both treaps: it is independent of both keys
  TreapLinks<FreeExtentNode> by_address;
  uint64_t subtree_max_size = 0;          // max size in the by-address subtree
  uint64_t subtree_bytes_by_address = 0;  // sum of sizes in the by-address subtree

  TreapLinks<FreeExtentNode> by_size;
  uint64_t subtree_bytes_by_size = 0;  // sum of sizes in the by-size subtree
  FreeExtentNode* prev = nullptr;  // address-order neighbours; next also links the pool free list
  FreeExtentNode* next = nullptr;

  [[nodiscard]] uint64_t end() const { return start + size; }
};

struct FreeExtentByAddress {
  static TreapLinks<FreeExtentNode>& links(FreeExtentNode& n) { return n.by_address; }
  static const TreapLinks<FreeExtentNode>& links(const FreeExtentNode& n) { return n.by_address; }
  static uint64_t priority(const FreeExtentNode& n) { return n.priority; }
  static bool less(const FreeExtentNode& a, const FreeExtentNode& b) { return a.start < b.start; }
  static void recompute(FreeExtentNode& n) {
    uint64_t max_size = n.size;
    uint64_t bytes = n.size;
    if (const FreeExtentNode* l = n.by_address.left) {
      max_size = l->subtree_max_size > max_size ? l->subtree_max_size : max_size;
      bytes += l->subtree_bytes_by_address;
    }
    if (const FreeExtentNode* r = n.by_address.right) {
      max_size = r->subtree_max_size > max_size ? r->subtree_max_size : max_size;
      bytes += r->subtree_bytes_by_address;
    }
    n.subtree_max_size = max_size;
    n.subtree_bytes_by_address = bytes;
  }
};

struct FreeExtentBySize {
  static TreapLinks<FreeExtentNode>& links(FreeExtentNode& n) { return n.by_size; }
  static const TreapLinks<FreeExtentNode>& links(const FreeExtentNode& n) { return n.by_size; }
  static uint64_t priority(const FreeExtentNode& n) { return n.priority; }
  static bool less(const FreeExtentNode& a, const FreeExtentNode& b) {
    return a.size != b.size ? a.size < b.size : a.start < b.start;
  }
  static void recompute(FreeExtentNode& n) {
    uint64_t bytes = n.size;
    if (const FreeExtentNode* l = n.by_size.left) bytes += l->subtree_bytes_by_size;
    if (const FreeExtentNode* r = n.by_size.right) bytes += r->subtree_bytes_by_size;
    n.subtree_bytes_by_size = bytes;
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
  // Cost: O(log n) expected; allocates a node only when no merge happens and the pool is empty.
  void insert(uint64_t start, uint64_t size);

  // The lowest s such that s % align == 0, lo <= s, s + size <= hi, and [s, s+size) lies inside
  // one free extent; nullopt if there is none (also when lo >= hi or hi - lo < size).
  // Exact: never misses a fit and never returns a higher one than the lowest (unlike the kernel's
  // search for size+align-1, which can miss fits in extents of size in [size, size+align-1)).
  // Preconditions (VMF_CHECK): size > 0; align is a power of two >= 1.
  // Cost: O(log n) expected when no extent that the search must look at fails for alignment alone,
  // which holds whenever align divides every extent boundary (e.g. page-aligned requests in a
  // page-granular tree). In general O((k+1) log n), where k is the number of extents below the
  // answer (or anywhere, when there is none) that are large enough by size (>= size) but have no
  // aligned fit: those of size in [size, size+align-1), plus at most two clipped by lo and hi.
  // Does not modify the tree.
  [[nodiscard]] std::optional<uint64_t> find_lowest_fit(uint64_t size, uint64_t align, uint64_t lo,
                                                        uint64_t hi) const;

  // Removes [start, start+size), which must lie inside a single free extent. Handles the four fit
  // types: whole extent, left edge, right edge, middle (which splits the extent in two).
  // Preconditions (VMF_CHECK, always on): size > 0, no overflow, range inside one free extent.
  // Cost: O(log n) expected; allocates a node only for a middle split when the pool is empty.
  void remove(uint64_t start, uint64_t size);

  // The free extent containing addr, if any. O(log n) expected.
  [[nodiscard]] std::optional<Extent> extent_containing(uint64_t addr) const;

  // The free extent with the lowest start >= addr, if any. O(log n) expected.
  [[nodiscard]] std::optional<Extent> first_extent_at_or_after(uint64_t addr) const;

  // The free extent with the highest start <= addr, if any. O(log n) expected.
  [[nodiscard]] std::optional<Extent> last_extent_at_or_before(uint64_t addr) const;

  [[nodiscard]] uint64_t free_bytes() const { return free_bytes_; }  // O(1): sum of sizes
  [[nodiscard]] uint64_t largest() const;                            // O(1): 0 when empty
  [[nodiscard]] size_t extent_count() const { return extent_count_; }  // O(1)
  [[nodiscard]] bool empty() const { return extent_count_ == 0; }      // O(1)

  // Free units inside [lo, hi): every extent clipped to the range. 0 when lo >= hi.
  // O(log n) expected (two prefix-sum descents over the by-address subtree byte sums).
  [[nodiscard]] uint64_t free_bytes_in(uint64_t lo, uint64_t hi) const;

  // Sum of sizes of the extents whose size < size: the numerator of the kernel-style
  // unusable-free-space index for a request of `size`. O(log n) expected (by-size index).
  [[nodiscard]] uint64_t bytes_in_extents_smaller_than(uint64_t size) const;

  // Bucket i counts the extents with floor(log2(size)) == i and their total size. Maintained in
  // O(1) per change; the reference stays valid for the tree's lifetime.
  [[nodiscard]] const std::array<Bucket, 64>& histogram() const { return histogram_; }

  // Calls f(Extent) for every extent in ascending address order. f must not modify the tree. O(n).
  template <class F>
  void for_each(F&& f) const {
    for (const detail::FreeExtentNode* n = head_; n != nullptr; n = n->next) f(Extent{n->start, n->size});
  }

  // Recomputes everything from scratch and compares: BST order of both indexes, heap order of
  // priorities, parent links, every augmented value, no two extents overlapping or touching, the
  // address list matching the in-order walk, the two indexes holding the same nodes, and the
  // totals, count and histogram. Returns "" when all hold, else a message naming the first broken
  // invariant and the extent values involved. O(n log n); intended for tests and -Dchecks=full.
  [[nodiscard]] std::string validate() const;

  // Removes every extent. Node memory is kept for reuse (it is released only by the destructor);
  // the priority stream restarts, so a cleared tree behaves exactly like a new one. O(1).
  void clear();

 private:
  using Node = detail::FreeExtentNode;
  using AddressTreap = IntrusiveAugmentedTreap<Node, detail::FreeExtentByAddress>;
  using SizeTreap = IntrusiveAugmentedTreap<Node, detail::FreeExtentBySize>;
  friend class FreeSpaceTreeTestAccess;  // tests corrupt nodes to prove validate() notices

  [[nodiscard]] Node* allocate_node(uint64_t start, uint64_t size);
  void release_node(Node* n);
  [[nodiscard]] Node* first_starting_at_or_after(uint64_t addr) const;
  [[nodiscard]] Node* last_starting_at_or_before(uint64_t addr) const;
  [[nodiscard]] uint64_t bytes_below(uint64_t addr) const;
  void link_new_extent(Node* n, Node* prev, Node* next);
  void unlink_extent(Node* n);
  void resize_in_place(Node* n, uint64_t new_start, uint64_t new_size);
  void count_extent(uint64_t size);
  void uncount_extent(uint64_t size);
  void swap(FreeSpaceTree& other) noexcept;

  AddressTreap by_address_;
  SizeTreap by_size_;
  Node* head_ = nullptr;  // lowest extent
  Node* tail_ = nullptr;  // highest extent
  uint64_t free_bytes_ = 0;
  size_t extent_count_ = 0;
  std::array<Bucket, 64> histogram_{};

  // Node pool: fixed-size chunks handed out in order, recycled through a free list.
  std::vector<std::unique_ptr<Node[]>> pool_chunks_;
  size_t pool_chunks_used_ = 0;    // chunks [0, used) have been started
  size_t pool_used_in_chunk_ = 0;  // nodes handed out from chunk used-1
  Node* pool_free_list_ = nullptr;
  uint64_t priority_state_;
};

}  // namespace vmfrag
