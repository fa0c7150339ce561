// PhysicalMemory: creation and destruction (every OS resource given back, checked through a
// recording OsInterface), EINVAL for bad sizes with no OS call made, errno propagation with the
// memfd closed again when the direct map fails, the point of the memfd (a write through the direct
// map is seen through a separate MAP_SHARED mapping of the same file offset and vice versa, also
// with MAP_FIXED into a reserved range and MAP_POPULATE), pfn <-> address translation at the edges,
// failure classification, check() reporting a broken alias and an OS failure (so it can fail), and
// 4 threads allocating and freeing concurrently while each stamps its pages and verifies nobody else
// got them (run under TSan too). The concurrency test prints its seed; VMFRAG_SEED=N sets it.
#include "allocator/phys/physical_memory.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>
#include <utility>
#include <vector>

namespace vmfrag {
namespace {

constexpr std::uint64_t P = kPhysPageSize;

// Forwards to the real OS, records what was asked, fails a call on request and can shift an alias
// (a broken direct map for check() to find): the scripted cases below need more than
// allocator/os/fault_injection.h offers.
class ScriptedOs final : public ForwardingOs {
 public:
  ScriptedOs() : ForwardingOs(linux_os()) {}
  int fail_memfd = 0;          // errno for the next memfd_create calls, 0 = forward
  int fail_map = 0;            // errno for the next map_shared calls, 0 = forward
  bool shift_alias = false;    // map one page further into the file than asked (a broken alias)
  int created_fd = -1;
  int map_calls = 0;
  std::vector<int> closed;
  std::vector<std::pair<void*, std::size_t>> unmapped;

  int memfd_create(const char* name, std::size_t bytes, int* fd) override {
    if (fail_memfd != 0) return fail_memfd;
    const int err = linux_os().memfd_create(name, bytes, fd);
    if (err == 0) created_fd = *fd;
    return err;
  }
  int close_fd(int fd) override {
    closed.push_back(fd);
    return linux_os().close_fd(fd);
  }
  int map_shared(void* addr, std::size_t bytes, int fd, std::uint64_t offset, bool fixed, bool populate,
                 void** out) override {
    ++map_calls;
    if (fail_map != 0) return fail_map;
    if (shift_alias) offset += P;
    return linux_os().map_shared(addr, bytes, fd, offset, fixed, populate, out);
  }
  int unmap(void* addr, std::size_t bytes) override {
    unmapped.emplace_back(addr, bytes);
    return linux_os().unmap(addr, bytes);
  }
};

bool fd_is_open(int fd) { return fcntl(fd, F_GETFD) != -1; }

std::unique_ptr<PhysicalMemory> make(std::uint64_t bytes, OsInterface* os = nullptr) {
  PhysicalMemoryConfig c;
  c.bytes = bytes;
  c.os = os;
  auto r = PhysicalMemory::create(c);
  EXPECT_NE(r.memory, nullptr) << r.message;
  EXPECT_EQ(r.error, 0);
  return std::move(r.memory);
}

TEST(PhysicalMemory, CreateAndDestroyReleaseEverything) {
  ScriptedOs os;
  auto pm = make(PhysicalMemoryConfig{}.bytes, &os);  // the 256 MiB default
  ASSERT_NE(pm, nullptr);
  EXPECT_EQ(pm->bytes(), 256ull << 20);
  EXPECT_EQ(pm->page_count(), 65536u);
  EXPECT_EQ(pm->fd(), os.created_fd);
  EXPECT_TRUE(fd_is_open(pm->fd()));
  const BuddyStats s = pm->stats();
  EXPECT_EQ(s.total_pages, 65536u);
  EXPECT_EQ(s.free_pages, 65536u);
  EXPECT_EQ(s.free_blocks[kMaxOrder], 64u);
  EXPECT_EQ(pm->check(), "");
  const int fd = pm->fd();
  void* const base = pm->direct_map();
  const std::size_t unmaps_before = os.unmapped.size();  // check() unmapped its probes
  pm.reset();
  ASSERT_EQ(os.unmapped.size(), unmaps_before + 1);
  EXPECT_EQ(os.unmapped.back(), (std::pair<void*, std::size_t>{base, 256ull << 20}));
  EXPECT_EQ(os.closed, std::vector<int>{fd});
  EXPECT_FALSE(fd_is_open(fd));
}

TEST(PhysicalMemory, BadSizesAreInvalidWithoutTouchingTheOs) {
  ScriptedOs os;
  for (std::uint64_t bytes : {std::uint64_t{0}, std::uint64_t{1}, P - 1, P + 1, 3 * P + 17, kMaxPhysicalBytes + P}) {
    PhysicalMemoryConfig c;
    c.bytes = bytes;
    c.os = &os;
    auto r = PhysicalMemory::create(c);
    EXPECT_EQ(r.memory, nullptr) << bytes;
    EXPECT_EQ(r.error, EINVAL) << bytes;
    EXPECT_NE(r.message.find("bytes="), std::string::npos) << r.message;
  }
  EXPECT_EQ(os.created_fd, -1);
  EXPECT_EQ(os.map_calls, 0);
  // The smallest size is fine.
  auto one = make(P, &os);
  ASSERT_NE(one, nullptr);
  EXPECT_EQ(one->page_count(), 1u);
  EXPECT_EQ(one->check(), "");
}

TEST(PhysicalMemory, MemfdFailurePropagatesErrno) {
  ScriptedOs os;
  os.fail_memfd = EMFILE;
  PhysicalMemoryConfig c;
  c.bytes = 1 << 20;
  c.os = &os;
  auto r = PhysicalMemory::create(c);
  EXPECT_EQ(r.memory, nullptr);
  EXPECT_EQ(r.error, EMFILE);
  EXPECT_NE(r.message.find("memfd"), std::string::npos) << r.message;
  EXPECT_EQ(os.map_calls, 0);
  EXPECT_TRUE(os.closed.empty());
}

TEST(PhysicalMemory, DirectMapFailureClosesTheMemfd) {
  ScriptedOs os;
  os.fail_map = ENOMEM;
  PhysicalMemoryConfig c;
  c.bytes = 1 << 20;
  c.os = &os;
  auto r = PhysicalMemory::create(c);
  EXPECT_EQ(r.memory, nullptr);
  EXPECT_EQ(r.error, ENOMEM);
  EXPECT_NE(r.message.find("direct map"), std::string::npos) << r.message;
  ASSERT_NE(os.created_fd, -1);
  EXPECT_EQ(os.closed, std::vector<int>{os.created_fd});
  EXPECT_FALSE(fd_is_open(os.created_fd));
}

// LinuxOs refuses a size off_t cannot hold (ftruncate would see a negative length) with EFBIG,
// before any system call, and leaves *fd untouched.
TEST(PhysicalMemory, OsMemfdRejectsASizeOffTCannotHold) {
  int fd = -1;
  EXPECT_EQ(linux_os().memfd_create("vmfrag-test", (std::size_t{1} << 63), &fd), EFBIG);
  EXPECT_EQ(fd, -1);
}

// The reason for a memfd: the direct map and any other MAP_SHARED mapping of the same file offset
// are the same memory.
TEST(PhysicalMemory, DirectMapAliasesASecondMapping) {
  auto pm = make(1 << 20);
  ASSERT_NE(pm, nullptr);
  const BlockAllocation b = pm->alloc_block(2);
  ASSERT_TRUE(b.ok());
  char* direct = static_cast<char*>(pm->pfn_to_virt(b.pfn));
  std::strcpy(direct + 3 * P + 100, "written through the direct map");

  void* alias = nullptr;
  ASSERT_EQ(linux_os().map_shared(nullptr, 4 * P, pm->fd(), b.pfn * P, false, false, &alias), 0);
  ASSERT_NE(alias, static_cast<void*>(direct));
  char* a = static_cast<char*>(alias);
  EXPECT_STREQ(a + 3 * P + 100, "written through the direct map");
  std::strcpy(a + 5, "written through the alias");
  EXPECT_STREQ(direct + 5, "written through the alias");
  ASSERT_EQ(linux_os().unmap(alias, 4 * P), 0);

  // As the vmalloc backing will do it: MAP_FIXED into a reserved range, pre-faulted.
  void* reserved = nullptr;
  ASSERT_EQ(linux_os().reserve(16 * P, P, &reserved), 0);
  void* fixed = nullptr;
  char* target = static_cast<char*>(reserved) + 4 * P;
  ASSERT_EQ(linux_os().map_shared(target, 4 * P, pm->fd(), b.pfn * P, true, true, &fixed), 0);
  EXPECT_EQ(fixed, static_cast<void*>(target));
  EXPECT_STREQ(target + 3 * P + 100, "written through the direct map");
  target[0] = 'X';
  EXPECT_EQ(direct[0], 'X');
  ASSERT_EQ(linux_os().release(reserved, 16 * P), 0);  // unmaps the fixed mapping with the rest

  // The OS refuses a bad descriptor and its errno comes back, with *out untouched.
  void* bad = nullptr;
  EXPECT_EQ(linux_os().map_shared(nullptr, P, -1, 0, false, false, &bad), EBADF);
  EXPECT_EQ(bad, nullptr);
  pm->free_block(b.pfn, 2);
  EXPECT_EQ(pm->check(), "");
}

TEST(PhysicalMemory, PfnAddressRoundTrip) {
  auto pm = make(1 << 20);  // 256 pages
  ASSERT_NE(pm, nullptr);
  const auto base = reinterpret_cast<std::uintptr_t>(pm->direct_map());
  for (std::uint64_t pfn : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{128}, std::uint64_t{255}}) {
    char* v = static_cast<char*>(pm->pfn_to_virt(pfn));
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(v), base + pfn * P);
    EXPECT_EQ(pm->virt_to_pfn(v), pfn);
    EXPECT_EQ(pm->virt_to_pfn(v + P - 1), pfn);  // any byte of the page
  }
  EXPECT_EQ(pm->virt_to_pfn(reinterpret_cast<void*>(base - 1)), std::nullopt);
  EXPECT_EQ(pm->virt_to_pfn(reinterpret_cast<void*>(base + (1 << 20))), std::nullopt);
  EXPECT_EQ(pm->virt_to_pfn(nullptr), std::nullopt);
}

TEST(PhysicalMemoryDeathTest, PfnBeyondTheMemoryAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto pm = make(1 << 20);
  ASSERT_NE(pm, nullptr);
  EXPECT_DEATH((void)pm->pfn_to_virt(256), "pfn 256 >= page count 256");
  const BlockAllocation b = pm->alloc_block(0);
  pm->free_block(b.pfn, 0);
  EXPECT_DEATH(pm->free_block(b.pfn, 0), "double free");
}

TEST(PhysicalMemory, FailureKinds) {
  auto pm = make(16 * P);
  ASSERT_NE(pm, nullptr);
  EXPECT_EQ(pm->alloc_block(kMaxOrder + 1).failure, FailureKind::kInvalidArgument);
  EXPECT_EQ(pm->alloc_block(5).failure, FailureKind::kNoPhysicalMemory);  // 32 pages > 16
  std::vector<std::uint64_t> pages;
  ASSERT_EQ(pm->alloc_pages(16, pages, 0), FailureKind::kNone);
  std::vector<std::uint64_t> evens;
  for (std::uint64_t p = 0; p < 16; p += 2) evens.push_back(p);
  pm->free_pages(evens);
  const BlockAllocation one = pm->alloc_block(1);
  EXPECT_FALSE(one.ok());
  EXPECT_EQ(one.failure, FailureKind::kPhysicalFragmentation);
  EXPECT_EQ(one.pfn, 0u);
  std::vector<std::uint64_t> v;
  EXPECT_EQ(pm->alloc_pages(2, v, 1, 1), FailureKind::kPhysicalFragmentation);
  EXPECT_EQ(pm->alloc_pages(9, v, 0), FailureKind::kNoPhysicalMemory);
  EXPECT_TRUE(v.empty());
  EXPECT_EQ(pm->alloc_pages(8, v, 3), FailureKind::kNone);  // falls back to the lone pages
  EXPECT_EQ(v, evens);
  const BuddyStats s = pm->stats();
  EXPECT_EQ(s.free_pages, 0u);
  EXPECT_EQ(s.fragmentation_index_milli[0], 0);
  EXPECT_EQ(pm->check(), "");
}

// check() must be able to fail: a "second mapping" that is really of another page, and an OS that
// refuses the second mapping, are both reported.
TEST(PhysicalMemory, CheckReportsBrokenAliasAndOsFailure) {
  ScriptedOs os;
  auto pm = make(1 << 20, &os);
  ASSERT_NE(pm, nullptr);
  os.shift_alias = true;
  const std::string broken = pm->check();
  EXPECT_NE(broken.find("pfn 0: a write through the direct map is not seen"), std::string::npos) << broken;
  os.shift_alias = false;
  EXPECT_EQ(pm->check(), "");
  // The probe restored what it overwrote, even on the failing path.
  EXPECT_EQ(static_cast<std::uint64_t*>(pm->pfn_to_virt(0))[0], 0u);
  EXPECT_EQ(static_cast<std::uint64_t*>(pm->pfn_to_virt(1))[0], 0u);
  os.fail_map = ENOMEM;
  const std::string refused = pm->check();
  EXPECT_NE(refused.find("a second time failed: errno " + std::to_string(ENOMEM)), std::string::npos) << refused;
  os.fail_map = 0;
}

std::uint64_t base_seed() {
  if (const char* s = std::getenv("VMFRAG_SEED")) return std::strtoull(s, nullptr, 10);
  return 1;
}

// 4 threads, each 2000 random block and bulk allocations and frees on one 16 MiB memory. Each thread
// stamps every page it gets with its id and a sequence number through the direct map and verifies
// the stamp before freeing: two owners of one page would overwrite each other's stamps. A fifth
// thread reads stats() and runs check() meanwhile. Afterwards everything is free and merged again.
// Interleavings vary run to run; the seed fixes each thread's operation sequence.
TEST(PhysicalMemory, ConcurrentAllocFreeKeepsOwnershipAndInvariants) {
  const std::uint64_t seed = base_seed();
  std::printf("[ seed ] PhysicalMemory.ConcurrentAllocFreeKeepsOwnershipAndInvariants seed %llu\n",
              static_cast<unsigned long long>(seed));
  SCOPED_TRACE("seed " + std::to_string(seed) + " (replay with VMFRAG_SEED=" + std::to_string(seed) + ")");
  auto pm = make(16 << 20);  // 4096 pages
  ASSERT_NE(pm, nullptr);
  std::atomic<int> stamp_errors{0};
  std::atomic<bool> done{false};
  auto stamp = [&](std::uint64_t pfn, std::uint64_t value) {
    static_cast<std::uint64_t*>(pm->pfn_to_virt(pfn))[0] = value;
  };
  auto verify = [&](std::uint64_t pfn, std::uint64_t value) {
    if (static_cast<std::uint64_t*>(pm->pfn_to_virt(pfn))[0] != value) stamp_errors.fetch_add(1);
  };
  auto worker = [&](unsigned id) {
    std::mt19937_64 rng(seed * 1000 + id);
    struct Held {
      std::vector<std::uint64_t> pfns;  // one block head (order >= 0) or a bulk set of pages
      unsigned order;                   // block order; kOrderCount for a bulk set
      std::uint64_t tag;
    };
    std::vector<Held> held;
    for (std::uint64_t op = 0; op < 2000; ++op) {
      const std::uint64_t tag = (std::uint64_t{id} << 48) | op;
      if (held.empty() || rng() % 2 == 0) {
        if (rng() % 2 == 0) {
          const unsigned order = static_cast<unsigned>(rng() % 4);
          const BlockAllocation b = pm->alloc_block(order);
          if (!b.ok()) continue;
          for (std::uint64_t p = b.pfn; p < b.pfn + (std::uint64_t{1} << order); ++p) stamp(p, tag);
          held.push_back({{b.pfn}, order, tag});
        } else {
          std::vector<std::uint64_t> pfns;
          if (pm->alloc_pages(1 + rng() % 24, pfns, static_cast<unsigned>(rng() % 3)) != FailureKind::kNone) continue;
          for (std::uint64_t p : pfns) stamp(p, tag);
          held.push_back({std::move(pfns), kOrderCount, tag});
        }
      } else {
        const std::size_t i = rng() % held.size();
        Held h = std::move(held[i]);
        held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
        if (h.order == kOrderCount) {
          for (std::uint64_t p : h.pfns) verify(p, h.tag);
          pm->free_pages(h.pfns);
        } else {
          for (std::uint64_t p = h.pfns[0]; p < h.pfns[0] + (std::uint64_t{1} << h.order); ++p) verify(p, h.tag);
          pm->free_block(h.pfns[0], h.order);
        }
      }
    }
    for (const Held& h : held) {
      if (h.order == kOrderCount) {
        for (std::uint64_t p : h.pfns) verify(p, h.tag);
        pm->free_pages(h.pfns);
      } else {
        verify(h.pfns[0], h.tag);
        pm->free_block(h.pfns[0], h.order);
      }
    }
  };
  std::atomic<int> check_errors{0};
  std::thread observer([&] {
    while (!done.load()) {
      const BuddyStats s = pm->stats();
      std::uint64_t in_blocks = 0;
      for (unsigned o = 0; o <= kMaxOrder; ++o) in_blocks += s.free_blocks[o] << o;
      if (in_blocks != s.free_pages) check_errors.fetch_add(1);
      if (!pm->check().empty()) check_errors.fetch_add(1);
    }
  });
  std::vector<std::thread> threads;
  for (unsigned id = 0; id < 4; ++id) threads.emplace_back(worker, id);
  for (auto& t : threads) t.join();
  done.store(true);
  observer.join();
  EXPECT_EQ(stamp_errors.load(), 0);
  EXPECT_EQ(check_errors.load(), 0);
  EXPECT_EQ(pm->check(), "");
  const BuddyStats s = pm->stats();
  EXPECT_EQ(s.free_pages, 4096u);
  EXPECT_EQ(s.free_blocks[kMaxOrder], 4u);
}

}  // namespace
}  // namespace vmfrag
