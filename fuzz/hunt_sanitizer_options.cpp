// ASan's defaults for the hunts' targets (fuzz_frag_hunt, fuzz_phys_hunt; ASAN_OPTIONS in the
// environment still overrides each key). The hunts look for fragmentation, not memory bugs
// (fuzz_ops does that with ASan's defaults), and under the default 256 MiB quarantine every
// allocation the allocator's index makes lands on memory never touched before: its page faults and
// ASan's 0xbe fill of new blocks were 11-16 % of fuzz_frag_hunt's time (fuzz/README.md). With a
// 16 MiB quarantine a use of a freed block is still reported until 16 MiB more have been freed
// (the hunts' inputs free small tree nodes and index arrays); without the fill a read of
// uninitialised memory sees stale bytes instead of 0xbe, which ASan never reported either.
extern "C" __attribute__((used)) const char* __asan_default_options() {
  return "quarantine_size_mb=16:max_malloc_fill_size=0";
}
