// ExtentAvlTree: free extents [start, start + size) of the baseline, in an AVL tree ordered by
// start, each node augmented with the largest extent size in its subtree (max_size).
//
// Invariants: extents are disjoint; |height(left) - height(right)| <= 1 at every node; max_size of
// a node = max(size, max_size(left), max_size(right)). max_size must be recomputed on every node
// whose subtree changed: on the way back up from insert/erase (with the rotations), and along the
// root-to-node path after update(), which changes one node in place without changing the order.
// Nodes are 40 bytes in one vector, linked by 32-bit indices (index 0 is a null sentinel whose
// max_size is 0), recycled through a free list: after warm-up nothing allocates.
//
// lowest_fit(need, align) returns the extent holding the lowest offset o with o % align == 0 and
// [o, o + need) inside the extent: it descends left first and prunes every subtree whose max_size
// is below need, so at page alignment (every extent of size >= need fits at its start) it is
// O(log n); at larger alignment it may visit k extents that are long enough but misaligned.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vmfrag::bench {

struct FreeExtent {
  std::uint64_t start = 0;
  std::uint64_t size = 0;
};

class ExtentAvlTree {
 public:
  ExtentAvlTree();

  void insert(std::uint64_t start, std::uint64_t size);  // disjoint from every extent; O(log n)
  void erase(std::uint64_t start);                       // start must be an extent's; O(log n)
  // Moves the extent at old_start to [new_start, new_start + new_size), which must stay between
  // its neighbours (so the order is unchanged). O(log n), no rebalancing.
  void update(std::uint64_t old_start, std::uint64_t new_start, std::uint64_t new_size);

  // The extent with the largest start < key, or nullopt. O(log n).
  [[nodiscard]] std::optional<FreeExtent> below(std::uint64_t key) const;
  // The extent with the smallest start >= key, or nullopt. O(log n).
  [[nodiscard]] std::optional<FreeExtent> at_or_above(std::uint64_t key) const;
  // The extent holding the lowest aligned fit (see the block comment), and the fit's offset.
  struct Fit {
    FreeExtent extent;
    std::uint64_t offset = 0;
  };
  [[nodiscard]] std::optional<Fit> lowest_fit(std::uint64_t need, std::uint64_t align) const;

  [[nodiscard]] std::size_t size() const { return count_; }
  // Every extent in address order. O(n).
  [[nodiscard]] std::vector<FreeExtent> extents() const;
  // Recomputes heights, balance, max_size and order from scratch: "" or the first broken invariant.
  [[nodiscard]] std::string validate() const;

 private:
  struct Node {
    std::uint64_t start;
    std::uint64_t size;
    std::uint64_t max_size;
    std::uint32_t left;
    std::uint32_t right;
    std::int32_t height;  // 0 for the null sentinel, 1 for a leaf
  };
  std::uint32_t new_node(std::uint64_t start, std::uint64_t size);
  void pull(std::uint32_t n);  // recompute height and max_size from the children
  std::uint32_t rotate_left(std::uint32_t n);
  std::uint32_t rotate_right(std::uint32_t n);
  std::uint32_t rebalance(std::uint32_t n);
  std::uint32_t insert_at(std::uint32_t n, std::uint32_t fresh);
  std::uint32_t erase_at(std::uint32_t n, std::uint64_t start);
  std::uint32_t detach_min(std::uint32_t n, std::uint32_t* min);
  [[nodiscard]] std::optional<Fit> fit_at(std::uint32_t n, std::uint64_t need, std::uint64_t align) const;

  std::vector<Node> nodes_;
  std::vector<std::uint32_t> free_nodes_;
  std::uint32_t root_ = 0;
  std::size_t count_ = 0;
};

}  // namespace vmfrag::bench
