// The seed question in one run: why does vmalloc exist? Fill 1 MiB of simulated physical memory
// with one-page kmalloc blocks, free every other one, then ask both allocators for 16 KiB.
// kmalloc needs 4 physically contiguous pages and fails with physical-fragmentation although half
// the memory is free; vmalloc takes 4 scattered pages, maps them contiguously, and succeeds.
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <vector>

#include "allocator/vmalloc/vmalloc.h"

int main() {
  using namespace vmfrag;
  VmallocConfig config;
  config.space.region_bytes = 64ull << 20;
  config.phys_bytes = 1ull << 20;  // 256 pages
  config.backing = BackingMode::kMemfd;
  auto created = Vmalloc::create(config);
  if (created.vm == nullptr) {
    std::fprintf(stderr, "kmalloc_vs_vmalloc: cannot create the allocator: %s\n", created.message.c_str());
    return 77;  // skip: this machine lacks memfd or address space
  }
  Vmalloc& vm = *created.vm;

  std::vector<void*> blocks;
  for (VmallocResult r = vm.kmalloc(4096); r.ok(); r = vm.kmalloc(4096)) blocks.push_back(r.addr);
  for (std::size_t i = 0; i < blocks.size(); i += 2) (void)vm.kfree(blocks[i]);
  const VmallocStats s = vm.stats();
  std::printf("physical memory: %" PRIu64 " pages, %" PRIu64 " free, largest free block order %d\n",
              vm.phys().page_count(), s.phys.free_pages, s.phys.free_pages ? static_cast<int>(*vm.phys().stats().largest_free_order) : -1);

  const std::uint64_t size = 16 * 1024;
  const VmallocResult k = vm.kmalloc(size);
  std::printf("kmalloc(16 KiB): %s\n", k.ok() ? "ok" : std::string(failure_name(k.failure)).c_str());
  const VmallocResult v = vm.vmalloc(size);
  std::printf("vmalloc(16 KiB): %s", v.ok() ? "ok" : std::string(failure_name(v.failure)).c_str());
  if (v.ok()) {
    std::memset(v.addr, 0x2a, size);  // really mapped: writable through the area
    std::printf(", pfns");
    for (int page = 0; page < 4; ++page)
      std::printf(" %" PRIu64, *vm.vmalloc_to_pfn(static_cast<char*>(v.addr) + page * 4096));
    std::printf(" (scattered), visible through the direct map: %s\n",
                *static_cast<unsigned char*>(vm.phys().pfn_to_virt(*vm.vmalloc_to_pfn(v.addr))) == 0x2a ? "yes" : "no");
  } else {
    std::printf("\n");
  }
  const bool as_expected = k.failure == FailureKind::kPhysicalFragmentation && v.ok();
  return as_expected ? 0 : 1;
}
