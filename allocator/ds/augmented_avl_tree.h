// An intrusive, augmented AVL tree with parent links: the balancing core of FreeSpaceTree.
//
// Why AVL: a search costs one dependent memory access per level, and at a million extents most
// levels below the top dozen miss the cache. An AVL tree's height is below 1.44 log2(n + 2) and a
// node's average depth is about log2 n; a treap's average depth is about 2 ln n = 1.39 log2 n
// (measured in bench/README.md, "Issue 12, an AVL tree": 1M random frees spent most of their tree
// time in the descent to a random address). The shape is a pure function of the operation
// sequence: no priorities, nothing that depends on heap addresses or a random device.
//
// Intrusive: the tree never allocates. A node type embeds one AvlLinks; a Traits class tells the
// tree where they are, how to order nodes, where the node's height byte is and how to recompute
// the node's augmented values from its own fields and its children's.
//
// Traits requirements (all static):
//   AvlLinks<Node>& links(Node&);  const AvlLinks<Node>& links(const Node&);
//   uint8_t& height(Node&);  uint8_t height(const Node&);  // 1 for a leaf; the tree maintains it
//   bool less(const Node&, const Node&);      // strict order; keys in one tree are unique
//   void recompute(Node&);                    // augmented values from the node and its children;
//                                             // children's augmented values are already correct
//
// Invariants after every public mutation: BST order; every node's height is 1 + the larger of its
// children's (0 for none) and the two differ by at most 1; every augmented value is recomputed.
// A node's summary depends on its own key/payload and on its children's summaries. Therefore
// (a) after a rotation, the two rotated nodes, lower one first; (b) after a node is linked or
// unlinked, every ancestor of the changed position; (c) after a node's payload changes in place
// without changing its order among its neighbours, the node and every ancestor (refresh_path).
// insert() and erase() take care of (a) and (b): both end with one walk from the changed position
// to the root that restores balance with at most one single or double rotation per node and
// recomputes every node it passes (the byte sums change all the way up, so the walk cannot stop
// early as a plain AVL tree's would).
#pragma once

#include <cstdint>

namespace vmfrag {

template <class Node>
struct AvlLinks {
  Node* left = nullptr;
  Node* right = nullptr;
  Node* parent = nullptr;
};

template <class Node, class Traits>
class IntrusiveAugmentedAvlTree {
 public:
  IntrusiveAugmentedAvlTree() = default;
  IntrusiveAugmentedAvlTree(const IntrusiveAugmentedAvlTree&) = delete;
  IntrusiveAugmentedAvlTree& operator=(const IntrusiveAugmentedAvlTree&) = delete;

  // The root, or nullptr when empty. Cost O(1).
  [[nodiscard]] Node* root() const { return root_; }

  // Forgets every node without touching them (the owner recycles node memory itself). O(1).
  void reset() { root_ = nullptr; }

  void swap(IntrusiveAugmentedAvlTree& other) {
    Node* r = root_;
    root_ = other.root_;
    other.root_ = r;
  }

  // The height of n's subtree, 0 for nullptr. O(1).
  [[nodiscard]] static unsigned height_of(const Node* n) { return n != nullptr ? Traits::height(*n) : 0u; }

  // Links n into the tree. Preconditions: n is not in this tree; no node in the tree compares equal
  // to n. Guarantees: the invariants above. Cost: O(log n).
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
  // Preconditions: as insert(); prev and next are n's neighbours. Cost: O(log n).
  void insert_between(Node* n, Node* prev, Node* next) {
    if (prev != nullptr && Traits::links(*prev).right == nullptr) {
      link_leaf(n, prev, false);
    } else if (next != nullptr) {
      link_leaf(n, next, true);
    } else {
      link_leaf(n, nullptr, false);  // the tree is empty
    }
  }

  // Unlinks n. Precondition: n is in this tree. Guarantees as for insert(); n's links are cleared.
  // A node with two children is replaced, in its place and with its height, by its in-order
  // successor (the leftmost node of its right subtree, which has no left child); no other node
  // moves, so pointers the caller holds to other nodes stay valid. Cost: O(log n).
  void erase(Node* n) {
    AvlLinks<Node>& nl = Traits::links(*n);
    Node* fix_from;  // the lowest node whose subtree changed
    if (nl.left != nullptr && nl.right != nullptr) {
      Node* s = nl.right;
      while (Traits::links(*s).left != nullptr) s = Traits::links(*s).left;
      AvlLinks<Node>& sl = Traits::links(*s);
      if (sl.parent == n) {
        fix_from = s;  // s keeps its right subtree and takes n's left one
      } else {
        // Detach s from its parent (s has no left child), then give it n's right subtree.
        Node* sp = sl.parent;
        Traits::links(*sp).left = sl.right;
        if (sl.right != nullptr) Traits::links(*sl.right).parent = sp;
        sl.right = nl.right;
        Traits::links(*nl.right).parent = s;
        fix_from = sp;
      }
      sl.left = nl.left;
      Traits::links(*nl.left).parent = s;
      sl.parent = nl.parent;
      replace_child(nl.parent, n, s);
      Traits::height(*s) = Traits::height(*n);
    } else {
      Node* child = nl.left != nullptr ? nl.left : nl.right;
      fix_from = nl.parent;
      replace_child(nl.parent, n, child);
      if (child != nullptr) Traits::links(*child).parent = nl.parent;
    }
    nl.left = nl.right = nl.parent = nullptr;
    rebalance_to_root(fix_from);
  }

  // The in-order neighbours of n (nullptr at either end). Precondition: n is in the tree.
  // Cost: O(log n) worst case, O(1) amortised over an in-order walk.
  [[nodiscard]] static Node* next_in_order(Node* n) {
    const AvlLinks<Node>* nl = &Traits::links(*n);
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
    const AvlLinks<Node>* nl = &Traits::links(*n);
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
  // every other node is unchanged by whatever was modified (heights are then unchanged too).
  // Cost: O(log n).
  void refresh_path(Node* n) {
    for (; n != nullptr; n = Traits::links(*n).parent) Traits::recompute(*n);
  }

 private:
  // Links n as the given child of parent (as the root when parent is nullptr), which must be an
  // empty slot at n's in-order position, then restores balance and the summaries above it.
  void link_leaf(Node* n, Node* parent, bool as_left) {
    AvlLinks<Node>& nl = Traits::links(*n);
    nl.left = nl.right = nullptr;
    nl.parent = parent;
    Traits::height(*n) = 1;
    Traits::recompute(*n);
    if (parent == nullptr) {
      root_ = n;
      return;
    }
    (as_left ? Traits::links(*parent).left : Traits::links(*parent).right) = n;
    rebalance_to_root(parent);
  }

  // Height and summaries of x from its children, which are already correct.
  static void update(Node* x) {
    const AvlLinks<Node>& xl = Traits::links(*x);
    const unsigned hl = height_of(xl.left);
    const unsigned hr = height_of(xl.right);
    Traits::height(*x) = static_cast<uint8_t>(1 + (hl > hr ? hl : hr));
    Traits::recompute(*x);
  }

  /*
   * Walks from x to the root. Below x every subtree is balanced and up to date; at each node on
   * the way the children's heights differ by at most 2 (one insertion or removal changed one
   * subtree's height by at most 1). Where they differ by 2, the taller child c is lifted (single
   * rotation), after first lifting c's inner grandchild when that is the taller side of c (double
   * rotation): the standard AVL cases, which leave the subtree balanced. Every node passed, and
   * both nodes of every rotation, gets its height and summaries recomputed.
   */
  void rebalance_to_root(Node* x) {
    while (x != nullptr) {
      AvlLinks<Node>& xl = Traits::links(*x);
      const unsigned hl = height_of(xl.left);
      const unsigned hr = height_of(xl.right);
      if (hl > hr + 1) {
        const AvlLinks<Node>& cl = Traits::links(*xl.left);
        if (height_of(cl.left) < height_of(cl.right)) rotate_up(cl.right);
        rotate_up(xl.left);
        x = xl.parent;  // the subtree's new root; rotate_up has recomputed it
      } else if (hr > hl + 1) {
        const AvlLinks<Node>& cl = Traits::links(*xl.right);
        if (height_of(cl.right) < height_of(cl.left)) rotate_up(cl.left);
        rotate_up(xl.right);
        x = xl.parent;
      } else {
        update(x);
      }
      x = Traits::links(*x).parent;
    }
  }

  void replace_child(Node* parent, Node* old_child, Node* new_child) {
    if (parent == nullptr) {
      root_ = new_child;
      return;
    }
    AvlLinks<Node>& pl = Traits::links(*parent);
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
   * Only p's and x's subtrees change, so only they are updated (p first: it is now below x).
   */
  void rotate_up(Node* x) {
    AvlLinks<Node>& xl = Traits::links(*x);
    Node* p = xl.parent;
    AvlLinks<Node>& pl = Traits::links(*p);
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
    update(p);
    update(x);
  }

  Node* root_ = nullptr;
};

}  // namespace vmfrag
