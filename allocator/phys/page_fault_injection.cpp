#include "allocator/phys/page_fault_injection.h"

#include "allocator/core/assert.h"

namespace vmfrag {

const char* page_alloc_call_name(PageAllocCall call) {
  switch (call) {
    case PageAllocCall::kBlock: return "block";
    case PageAllocCall::kPages: return "pages";
    case PageAllocCall::kCount: break;
  }
  return "unknown";
}

PageAllocPoint PageAllocCounter::next_point(PageAllocCall call) {
  return PageAllocPoint{call, counts_[static_cast<std::size_t>(call)]++};
}

FailureKind RecordingPageAllocs::on_alloc(PageAllocCall call) {
  points_.push_back(next_point(call));
  return FailureKind::kNone;
}

FailingPageAllocs::FailingPageAllocs(PageAllocPoint point, FailureKind kind) : point_(point), kind_(kind) {
  VMF_CHECK(is_page_alloc_failure(kind),
            "a page allocation can only fail as no-physical-memory or physical-fragmentation");
}

FailureKind FailingPageAllocs::on_alloc(PageAllocCall call) {
  const PageAllocPoint p = next_point(call);
  if (p.call != point_.call || p.index != point_.index) return FailureKind::kNone;
  ++injected_;
  return kind_;
}

}  // namespace vmfrag
