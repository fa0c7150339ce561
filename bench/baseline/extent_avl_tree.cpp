#include "bench/baseline/extent_avl_tree.h"

#include <algorithm>
#include <functional>

#include "allocator/core/assert.h"

namespace vmfrag::bench {

ExtentAvlTree::ExtentAvlTree() { nodes_.push_back(Node{0, 0, 0, 0, 0, 0}); }

std::uint32_t ExtentAvlTree::new_node(std::uint64_t start, std::uint64_t size) {
  const Node fresh{start, size, size, 0, 0, 1};
  if (!free_nodes_.empty()) {
    const std::uint32_t n = free_nodes_.back();
    free_nodes_.pop_back();
    nodes_[n] = fresh;
    return n;
  }
  nodes_.push_back(fresh);
  return static_cast<std::uint32_t>(nodes_.size() - 1);
}

void ExtentAvlTree::pull(std::uint32_t n) {
  Node& x = nodes_[n];
  const Node& l = nodes_[x.left];
  const Node& r = nodes_[x.right];
  x.height = 1 + std::max(l.height, r.height);
  x.max_size = std::max({x.size, l.max_size, r.max_size});
}

std::uint32_t ExtentAvlTree::rotate_left(std::uint32_t n) {
  const std::uint32_t r = nodes_[n].right;
  nodes_[n].right = nodes_[r].left;
  nodes_[r].left = n;
  pull(n);
  pull(r);
  return r;
}

std::uint32_t ExtentAvlTree::rotate_right(std::uint32_t n) {
  const std::uint32_t l = nodes_[n].left;
  nodes_[n].left = nodes_[l].right;
  nodes_[l].right = n;
  pull(n);
  pull(l);
  return l;
}

std::uint32_t ExtentAvlTree::rebalance(std::uint32_t n) {
  pull(n);
  const auto balance = [&](std::uint32_t x) { return nodes_[nodes_[x].left].height - nodes_[nodes_[x].right].height; };
  if (balance(n) > 1) {
    if (balance(nodes_[n].left) < 0) nodes_[n].left = rotate_left(nodes_[n].left);
    return rotate_right(n);
  }
  if (balance(n) < -1) {
    if (balance(nodes_[n].right) > 0) nodes_[n].right = rotate_right(nodes_[n].right);
    return rotate_left(n);
  }
  return n;
}

std::uint32_t ExtentAvlTree::insert_at(std::uint32_t n, std::uint32_t fresh) {
  if (n == 0) return fresh;
  if (nodes_[fresh].start < nodes_[n].start) {
    const std::uint32_t l = insert_at(nodes_[n].left, fresh);
    nodes_[n].left = l;
  } else {
    const std::uint32_t r = insert_at(nodes_[n].right, fresh);
    nodes_[n].right = r;
  }
  return rebalance(n);
}

void ExtentAvlTree::insert(std::uint64_t start, std::uint64_t size) {
  const std::uint32_t fresh = new_node(start, size);
  root_ = insert_at(root_, fresh);
  ++count_;
}

std::uint32_t ExtentAvlTree::detach_min(std::uint32_t n, std::uint32_t* min) {
  if (nodes_[n].left == 0) {
    *min = n;
    return nodes_[n].right;
  }
  const std::uint32_t l = detach_min(nodes_[n].left, min);
  nodes_[n].left = l;
  return rebalance(n);
}

std::uint32_t ExtentAvlTree::erase_at(std::uint32_t n, std::uint64_t start) {
  VMF_CHECK(n != 0, "baseline tree: erase of absent extent %#llx", static_cast<unsigned long long>(start));
  if (start < nodes_[n].start) {
    const std::uint32_t l = erase_at(nodes_[n].left, start);
    nodes_[n].left = l;
  } else if (start > nodes_[n].start) {
    const std::uint32_t r = erase_at(nodes_[n].right, start);
    nodes_[n].right = r;
  } else {
    const std::uint32_t left = nodes_[n].left, right = nodes_[n].right;
    free_nodes_.push_back(n);
    if (right == 0) return left;
    std::uint32_t successor = 0;
    const std::uint32_t rest = detach_min(right, &successor);
    nodes_[successor].left = left;
    nodes_[successor].right = rest;
    return rebalance(successor);
  }
  return rebalance(n);
}

void ExtentAvlTree::erase(std::uint64_t start) {
  root_ = erase_at(root_, start);
  --count_;
}

void ExtentAvlTree::update(std::uint64_t old_start, std::uint64_t new_start, std::uint64_t new_size) {
  std::uint32_t path[96];  // an AVL tree of 2^32 nodes is < 64 high
  int depth = 0;
  std::uint32_t n = root_;
  while (n != 0 && nodes_[n].start != old_start) {
    path[depth++] = n;
    n = old_start < nodes_[n].start ? nodes_[n].left : nodes_[n].right;
  }
  VMF_CHECK(n != 0, "baseline tree: update of absent extent %#llx", static_cast<unsigned long long>(old_start));
  nodes_[n].start = new_start;
  nodes_[n].size = new_size;
  pull(n);
  while (depth > 0) pull(path[--depth]);
}

std::optional<FreeExtent> ExtentAvlTree::below(std::uint64_t key) const {
  std::optional<FreeExtent> best;
  for (std::uint32_t n = root_; n != 0;) {
    if (nodes_[n].start < key) {
      best = FreeExtent{nodes_[n].start, nodes_[n].size};
      n = nodes_[n].right;
    } else {
      n = nodes_[n].left;
    }
  }
  return best;
}

std::optional<FreeExtent> ExtentAvlTree::at_or_above(std::uint64_t key) const {
  std::optional<FreeExtent> best;
  for (std::uint32_t n = root_; n != 0;) {
    if (nodes_[n].start >= key) {
      best = FreeExtent{nodes_[n].start, nodes_[n].size};
      n = nodes_[n].left;
    } else {
      n = nodes_[n].right;
    }
  }
  return best;
}

std::optional<ExtentAvlTree::Fit> ExtentAvlTree::fit_at(std::uint32_t n, std::uint64_t need, std::uint64_t align) const {
  if (n == 0 || nodes_[n].max_size < need) return std::nullopt;
  if (auto fit = fit_at(nodes_[n].left, need, align)) return fit;
  const Node& x = nodes_[n];
  if (x.size >= need) {
    const std::uint64_t offset = (x.start + align - 1) & ~(align - 1);
    if (offset - x.start <= x.size - need) return Fit{FreeExtent{x.start, x.size}, offset};
  }
  return fit_at(x.right, need, align);
}

std::optional<ExtentAvlTree::Fit> ExtentAvlTree::lowest_fit(std::uint64_t need, std::uint64_t align) const {
  return fit_at(root_, need, align);
}

std::vector<FreeExtent> ExtentAvlTree::extents() const {
  std::vector<FreeExtent> out;
  out.reserve(count_);
  const std::function<void(std::uint32_t)> walk = [&](std::uint32_t n) {
    if (n == 0) return;
    walk(nodes_[n].left);
    out.push_back(FreeExtent{nodes_[n].start, nodes_[n].size});
    walk(nodes_[n].right);
  };
  walk(root_);
  return out;
}

std::string ExtentAvlTree::validate() const {
  std::string problem;
  std::size_t seen = 0;
  // Returns {height, max_size}; checks order bounds (lo, hi) on starts.
  const std::function<std::pair<int, std::uint64_t>(std::uint32_t, std::uint64_t, std::uint64_t)> check =
      [&](std::uint32_t n, std::uint64_t lo, std::uint64_t hi) -> std::pair<int, std::uint64_t> {
    if (n == 0) return {0, 0};
    ++seen;
    const Node& x = nodes_[n];
    if (x.start < lo || x.start >= hi) problem = "order broken at " + std::to_string(x.start);
    const auto [lh, lm] = check(x.left, lo, x.start);
    const auto [rh, rm] = check(x.right, x.start + 1, hi);
    const int h = 1 + std::max(lh, rh);
    const std::uint64_t m = std::max({x.size, lm, rm});
    if (h != x.height) problem = "height wrong at " + std::to_string(x.start);
    if (lh - rh > 1 || rh - lh > 1) problem = "unbalanced at " + std::to_string(x.start);
    if (m != x.max_size) problem = "max_size wrong at " + std::to_string(x.start);
    return {h, m};
  };
  check(root_, 0, ~std::uint64_t{0});
  if (problem.empty() && seen != count_) problem = "count " + std::to_string(count_) + " but " + std::to_string(seen) + " nodes";
  if (problem.empty()) {
    const std::vector<FreeExtent> all = extents();
    for (std::size_t i = 1; i < all.size(); ++i) {
      if (all[i - 1].start + all[i - 1].size > all[i].start) problem = "extents overlap at " + std::to_string(all[i].start);
    }
  }
  return problem;
}

}  // namespace vmfrag::bench
