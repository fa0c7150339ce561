#include "allocator/ds/flat_offset_table.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <vector>

#include "allocator/core/splitmix64.h"

namespace vmfrag {
namespace {

struct Payload {
  std::uint64_t a;
  std::uint32_t b;
};

std::map<std::uint64_t, std::uint64_t> contents(const FlatOffsetTable<Payload>& t) {
  std::map<std::uint64_t, std::uint64_t> out;
  t.for_each([&](std::uint64_t key, const Payload& v) { EXPECT_TRUE(out.emplace(key, v.a).second) << key; });
  return out;
}

TEST(FlatOffsetTable, InsertFindEraseAndGrowth) {
  FlatOffsetTable<Payload> t;
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.capacity(), 64u);
  EXPECT_EQ(t.find(0), nullptr);
  t.insert(0, Payload{7, 1});
  ASSERT_NE(t.find(0), nullptr);
  EXPECT_EQ(t.find(0)->a, 7u);
  t.insert(~std::uint64_t{0}, Payload{9, 2});  // every key is a key, the all-ones one too
  EXPECT_EQ(t.find(~std::uint64_t{0})->a, 9u);
  for (std::uint64_t i = 1; i <= 31; ++i) t.insert(i << 12, Payload{i, 0});
  EXPECT_EQ(t.size(), 33u);
  EXPECT_EQ(t.capacity(), 128u);  // 33 entries would pass half of 64 slots
  for (std::uint64_t i = 1; i <= 31; ++i) ASSERT_NE(t.find(i << 12), nullptr) << i;
  t.erase(t.find(4 << 12));
  EXPECT_EQ(t.find(4 << 12), nullptr);
  EXPECT_EQ(t.size(), 32u);
  EXPECT_EQ(t.find(5 << 12)->a, 5u);
  EXPECT_EQ(t.find(0)->a, 7u);
}

// Many keys with one home slot in a small table: probe runs that wrap around the end of the
// array, and erases in every position of such a run (the back shift must keep every survivor
// reachable from its home). Then a seeded random mix against std::map, keys page multiples as the
// address space uses them, with sizes that cross several growths.
TEST(FlatOffsetTable, AgreesWithStdMapUnderChurn) {
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    FlatOffsetTable<Payload> t;
    std::map<std::uint64_t, std::uint64_t> model;
    std::vector<std::uint64_t> keys;
    std::uint64_t state = seed;
    const std::uint64_t key_space = seed * 64;  // small spaces collide often, large ones grow
    for (int step = 0; step < 20000; ++step) {
      const std::uint64_t r = splitmix64_next(state);
      const std::uint64_t key = (r % key_space) << 12;
      if (model.count(key) == 0 && (r >> 40) % 3 != 0) {
        t.insert(key, Payload{r, 0});
        model[key] = r;
      } else if (model.count(key) != 0) {
        Payload* v = t.find(key);
        ASSERT_NE(v, nullptr) << key;
        ASSERT_EQ(v->a, model[key]);
        t.erase(v);
        model.erase(key);
      } else {
        ASSERT_EQ(t.find(key), nullptr) << key;
      }
      ASSERT_EQ(t.size(), model.size());
      ASSERT_LE(2 * t.size(), t.capacity());
    }
    EXPECT_EQ(contents(t), model);
    for (const auto& [key, value] : model) {
      const Payload* v = t.find(key);
      ASSERT_NE(v, nullptr) << key;
      EXPECT_EQ(v->a, value);
    }
  }
}

}  // namespace
}  // namespace vmfrag
