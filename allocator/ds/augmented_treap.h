// An intrusive, augmented treap: the balancing core shared by both indexes of FreeSpaceTree.
//
// Why a treap: it needs only a priority per node and rotations, and rotations are where an
// augmented tree has to refresh its per-subtree summaries, so keeping them few and local keeps the
// augmentation simple to get right. Priorities are supplied by the caller (FreeSpaceTree draws
// them from a fixed-seed splitmix64 stream), so the shape of the tree is a pure function of the
// operation sequence: nothing here depends on heap addresses or on a random device.
//
// Intrusive: the tree never allocates. A node type embeds one TreapLinks per tree it is a member
// of; a Traits class tells the treap which links to use, how to order nodes, the node's priority
// and how to recompute the node's augmented values from its own fields and its children's.
//
// Traits requirements (all static):
//   TreapLinks<Node>& links(Node&);  const TreapLinks<Node>& links(const Node&);
//   uint64_t priority(const Node&);           // larger priorities sit nearer the root
//   bool less(const Node&, const Node&);      // strict order; keys in one tree are unique
//   void recompute(Node&);                    // augmented values from the node and its children;
//                                             // children's augmented values are already correct
//
// When augmented values must be recomputed: a node's summary depends on its own key/payload and on
// the summaries of its children. Therefore (a) after a rotation, the two rotated nodes, lower one
// first; (b) after a node is linked or unlinked, every ancestor of the changed position; (c) after a
// node's payload changes in place without changing its order among its neighbours, the node and
// every ancestor (refresh_path). insert() and erase() take care of (a) and (b) themselves.
#pragma once

#include <cstdint>

namespace vmfrag {

template <class Node>
struct TreapLinks {
  Node* left = nullptr;
  Node* right = nullptr;
  Node* parent = nullptr;
};

template <class Node, class Traits>
class IntrusiveAugmentedTreap {
 public:
  IntrusiveAugmentedTreap() = default;
  IntrusiveAugmentedTreap(const IntrusiveAugmentedTreap&) = delete;
  IntrusiveAugmentedTreap& operator=(const IntrusiveAugmentedTreap&) = delete;

  // The root, or nullptr when empty. Cost O(1).
  [[nodiscard]] Node* root() const { return root_; }

  // Forgets every node without touching them (the owner recycles node memory itself). O(1).
  void reset() { root_ = nullptr; }

  void swap(IntrusiveAugmentedTreap& other) {
    Node* r = root_;
    root_ = other.root_;
    other.root_ = r;
  }

  // Links n into the tree. Preconditions: n is not in this tree; no node in the tree compares equal
  // to n. Guarantees: BST order, heap order of priorities and every augmented value hold afterwards.
  // Cost: O(depth), expected O(log n).
  void insert(Node* n) {
    if (root_ == nullptr) {
      link_leaf(n, nullptr, false);
      return;
    }
    Node* parent = root_;
    for (;;) {
      const bool left = Traits::less(*n, *parent);
      Node* child = left ? Traits::links(*parent).left : Traits::links(*parent).right;
      if (child == nullptr) {
        link_leaf(n, parent, left);
        return;
      }
      parent = child;
    }
  }

  // insert(n) when the caller already knows n's in-order neighbours: prev (the greatest node less
  // than n) and next (the least greater), either nullptr at an end. Skips the descent: in a binary
  // search tree the empty slot between two in-order neighbours is prev's right child if that is
  // empty, else next's left child (next is then the leftmost node of prev's right subtree).
  // Preconditions: as insert(); prev and next are n's neighbours. Cost: O(rotations + depth).
  void insert_between(Node* n, Node* prev, Node* next) {
    if (prev != nullptr && Traits::links(*prev).right == nullptr) {
      link_leaf(n, prev, false);
    } else if (next != nullptr) {
      link_leaf(n, next, true);
    } else {
      link_leaf(n, nullptr, false);  // the tree is empty
    }
  }

 private:
  // Links n as the given child of parent (as the root when parent is nullptr), which must be an
  // empty slot at n's in-order position, then restores heap order and the summaries.
  void link_leaf(Node* n, Node* parent, bool as_left) {
    TreapLinks<Node>& nl = Traits::links(*n);
    nl.left = nl.right = nullptr;
    nl.parent = parent;
    Traits::recompute(*n);
    if (parent == nullptr) {
      root_ = n;
      return;
    }
    (as_left ? Traits::links(*parent).left : Traits::links(*parent).right) = n;
    // Restore heap order. Each rotation refreshes the two nodes it moved; both of their subtrees
    // other than n's are untouched, so their summaries stay valid.
    while (nl.parent != nullptr && Traits::priority(*n) > Traits::priority(*nl.parent)) {
      rotate_up(n, /*refresh=*/true);
    }
    // Ancestors above the final position now contain n but still hold their old summaries.
    refresh_from(nl.parent);
  }

 public:
  // Unlinks n. Precondition: n is in this tree. Guarantees as for insert(); n's links are cleared.
  // Cost: O(depth), expected O(log n).
  void erase(Node* n) {
    TreapLinks<Node>& nl = Traits::links(*n);
    // Rotate n down until it has at most one child, lifting the higher-priority child each time so
    // heap order holds everywhere except at n. No refresh here: every lifted node ends up an
    // ancestor of n's final position and is refreshed by the walk below.
    while (nl.left != nullptr && nl.right != nullptr) {
      Node* lifted = Traits::priority(*nl.left) > Traits::priority(*nl.right) ? nl.left : nl.right;
      rotate_up(lifted, /*refresh=*/false);
    }
    Node* child = nl.left != nullptr ? nl.left : nl.right;
    Node* parent = nl.parent;
    replace_child(parent, n, child);
    if (child != nullptr) Traits::links(*child).parent = parent;
    nl.left = nl.right = nl.parent = nullptr;
    refresh_from(parent);
  }

  // The in-order neighbours of n (nullptr at either end). Precondition: n is in the tree.
  // Cost: O(depth) worst case, O(1) amortised over an in-order walk.
  [[nodiscard]] static Node* next_in_order(Node* n) {
    const TreapLinks<Node>* nl = &Traits::links(*n);
    if (nl->right != nullptr) {
      n = nl->right;
      while (Traits::links(*n).left != nullptr) n = Traits::links(*n).left;
      return n;
    }
    Node* parent = nl->parent;
    while (parent != nullptr && Traits::links(*parent).right == n) {
      n = parent;
      parent = Traits::links(*n).parent;
    }
    return parent;
  }
  [[nodiscard]] static Node* prev_in_order(Node* n) {
    const TreapLinks<Node>* nl = &Traits::links(*n);
    if (nl->left != nullptr) {
      n = nl->left;
      while (Traits::links(*n).right != nullptr) n = Traits::links(*n).right;
      return n;
    }
    Node* parent = nl->parent;
    while (parent != nullptr && Traits::links(*parent).left == n) {
      n = parent;
      parent = Traits::links(*n).parent;
    }
    return parent;
  }

  // Recomputes n and every ancestor of n. Precondition: n is in the tree and its order relative to
  // every other node is unchanged by whatever was modified. Cost: O(depth).
  void refresh_path(Node* n) { refresh_from(n); }

 private:
  void refresh_from(Node* n) {
    for (; n != nullptr; n = Traits::links(*n).parent) Traits::recompute(*n);
  }

  void replace_child(Node* parent, Node* old_child, Node* new_child) {
    if (parent == nullptr) {
      root_ = new_child;
      return;
    }
    TreapLinks<Node>& pl = Traits::links(*parent);
    if (pl.left == old_child) {
      pl.left = new_child;
    } else {
      pl.right = new_child;
    }
  }

  /*
   * Rotates x above its parent p, keeping in-order sequence:
   *
   *        p                x              p                  x
   *       / \              / \            / \                / \
   *      x   C    ==>     A   p          A   x      ==>     p   C
   *     / \                  / \            / \            / \
   *    A   B                B   C          B   C          A   B
   *
   * Only p's and x's subtrees change, so only they need refreshing (p first: it is now below x).
   */
  void rotate_up(Node* x, bool refresh) {
    TreapLinks<Node>& xl = Traits::links(*x);
    Node* p = xl.parent;
    TreapLinks<Node>& pl = Traits::links(*p);
    Node* grandparent = pl.parent;
    if (pl.left == x) {
      pl.left = xl.right;
      if (xl.right != nullptr) Traits::links(*xl.right).parent = p;
      xl.right = p;
    } else {
      pl.right = xl.left;
      if (xl.left != nullptr) Traits::links(*xl.left).parent = p;
      xl.left = p;
    }
    pl.parent = x;
    xl.parent = grandparent;
    replace_child(grandparent, p, x);
    if (refresh) {
      Traits::recompute(*p);
      Traits::recompute(*x);
    }
  }

  Node* root_ = nullptr;
};

}  // namespace vmfrag
