#include "allocator/phys/page_fault_injection.h"

#include "allocator/core/assert.h"
#include "allocator/core/splitmix64.h"
#include "allocator/os/fault_injection.h"

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

FailingPageAllocs::FailingPageAllocs(Which which, FailureKind kind) : which_(which), kind_(kind) {
  VMF_CHECK(is_page_alloc_failure(kind),
            "a page allocation can only fail as no-physical-memory or physical-fragmentation");
  if (const Rate* rate = std::get_if<Rate>(&which_)) {
    VMF_CHECK(rate->numerator > 0 && rate->numerator <= rate->denominator, "a failure rate is P/Q with 0 < P <= Q");
    state_ = rate->seed;
  }
}

FailureKind FailingPageAllocs::on_alloc(PageAllocCall call) {
  const PageAllocPoint p = next_point(call);
  bool fail = false;
  if (const auto* point = std::get_if<PageAllocPoint>(&which_)) {
    fail = p.call == point->call && p.index == point->index;
  } else {
    // One draw per allocation, so the failed allocations depend only on seed and sequence.
    const Rate& rate = std::get<Rate>(which_);
    fail = splitmix64_next(state_) % rate.denominator < rate.numerator;
  }
  if (!fail) return FailureKind::kNone;
  ++injected_;
  return kind_;
}

std::optional<FailPhysSpec> parse_fail_phys_spec(std::string_view spec, std::string* why) {
  const std::optional<FaultSpecFields> f = parse_fault_spec_fields(spec, "FAILURE", why);
  if (!f) return std::nullopt;
  FailPhysSpec out;
  if (!f->how.empty()) {
    const std::optional<FailureKind> kind = failure_from_name(f->how);
    if (!kind || !is_page_alloc_failure(*kind)) {
      *why = "unknown failure '" + std::string(f->how) + "' (one of no-physical-memory, physical-fragmentation)";
      return std::nullopt;
    }
    out.kind = *kind;
  }
  if (f->rate) {
    out.which = FailingPageAllocs::Rate{f->numerator, f->denominator, f->seed};
    return out;
  }
  for (int i = 0; i < static_cast<int>(PageAllocCall::kCount); ++i) {
    const auto call = static_cast<PageAllocCall>(i);
    if (f->kind == page_alloc_call_name(call)) {
      out.which = PageAllocPoint{call, f->index};
      return out;
    }
  }
  *why = "unknown page allocation '" + std::string(f->kind) + "' (one of block, pages)";
  return std::nullopt;
}

}  // namespace vmfrag
