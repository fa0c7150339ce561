#include "allocator/os/fault_injection.h"

#include <cerrno>
#include <charconv>
#include <utility>

#include "allocator/core/splitmix64.h"

namespace vmfrag {
namespace {

constexpr std::array<const char*, static_cast<std::size_t>(OsCall::kCount)> kNames = {
    "reserve",      "release",    "memfd_create",   "close_fd",      "map_shared",
    "unmap",        "protect-rw", "protect-none",   "drop_pages",    "populate_write",
    "reserve_fixed", "reserve_hole", "max_map_count", "advise_hugepage", "anon_huge_bytes"};

}  // namespace

const char* os_call_name(OsCall call) {
  const auto i = static_cast<std::size_t>(call);
  return i < kNames.size() ? kNames[i] : "unknown";
}

std::optional<OsCall> os_call_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kNames.size(); ++i)
    if (name == kNames[i]) return static_cast<OsCall>(i);
  return std::nullopt;
}

bool os_call_is_fallible(OsCall call) {
  switch (call) {
    case OsCall::kRelease:
    case OsCall::kCloseFd:
    case OsCall::kProtectNone:
    case OsCall::kDropPages:
    case OsCall::kReserveHole:
      return false;
    default:
      return true;
  }
}

template <typename Forward>
int InterceptingOs::intercept(OsCallRecord record, Forward forward) {
  if (paused_.load(std::memory_order_relaxed)) return forward();
  {
    std::lock_guard lock(mutex_);
    record.index = counts_[static_cast<std::size_t>(record.call)]++;
  }
  record.result = on_call(record.call, record.index);
  if (record.result == 0) record.result = forward();
  on_result(record);
  return record.result;
}

int InterceptingOs::reserve(std::size_t bytes, std::size_t align, void** base) {
  return intercept({.call = OsCall::kReserve, .bytes = bytes}, [&] { return inner_.reserve(bytes, align, base); });
}
int InterceptingOs::release(void* base, std::size_t bytes) {
  return intercept({.call = OsCall::kRelease, .addr = base, .bytes = bytes},
                   [&] { return inner_.release(base, bytes); });
}
int InterceptingOs::memfd_create(const char* name, std::size_t bytes, int* fd) {
  return intercept({.call = OsCall::kMemfdCreate, .bytes = bytes}, [&] { return inner_.memfd_create(name, bytes, fd); });
}
int InterceptingOs::close_fd(int fd) {
  return intercept({.call = OsCall::kCloseFd, .fd = fd}, [&] { return inner_.close_fd(fd); });
}
int InterceptingOs::map_shared(void* addr, std::size_t bytes, int fd, std::uint64_t offset, bool fixed, bool populate,
                               void** out) {
  return intercept({.call = OsCall::kMapShared, .addr = addr, .bytes = bytes, .fd = fd, .offset = offset,
                    .fixed = fixed, .populate = populate},
                   [&] { return inner_.map_shared(addr, bytes, fd, offset, fixed, populate, out); });
}
int InterceptingOs::unmap(void* addr, std::size_t bytes) {
  return intercept({.call = OsCall::kUnmap, .addr = addr, .bytes = bytes}, [&] { return inner_.unmap(addr, bytes); });
}
int InterceptingOs::protect(void* addr, std::size_t bytes, Protection protection) {
  const OsCall call = protection == Protection::kNone ? OsCall::kProtectNone : OsCall::kProtectReadWrite;
  return intercept({.call = call, .addr = addr, .bytes = bytes}, [&] { return inner_.protect(addr, bytes, protection); });
}
int InterceptingOs::drop_pages(void* addr, std::size_t bytes) {
  return intercept({.call = OsCall::kDropPages, .addr = addr, .bytes = bytes},
                   [&] { return inner_.drop_pages(addr, bytes); });
}
int InterceptingOs::populate_write(void* addr, std::size_t bytes) {
  return intercept({.call = OsCall::kPopulateWrite, .addr = addr, .bytes = bytes},
                   [&] { return inner_.populate_write(addr, bytes); });
}
int InterceptingOs::reserve_fixed(void* addr, std::size_t bytes, bool replace) {
  return intercept({.call = replace ? OsCall::kReserveFixed : OsCall::kReserveHole, .addr = addr, .bytes = bytes},
                   [&] { return inner_.reserve_fixed(addr, bytes, replace); });
}
int InterceptingOs::max_map_count(std::uint64_t* out) {
  return intercept({.call = OsCall::kMaxMapCount}, [&] { return inner_.max_map_count(out); });
}
int InterceptingOs::advise_hugepage(void* addr, std::size_t bytes) {
  return intercept({.call = OsCall::kAdviseHugepage, .addr = addr, .bytes = bytes},
                   [&] { return inner_.advise_hugepage(addr, bytes); });
}
int InterceptingOs::anon_huge_bytes(void* addr, std::size_t bytes, std::uint64_t* out) {
  return intercept({.call = OsCall::kAnonHugeBytes, .addr = addr, .bytes = bytes},
                   [&] { return inner_.anon_huge_bytes(addr, bytes, out); });
}

std::vector<OsCallRecord> RecordingOs::calls() const {
  std::lock_guard lock(mutex_);
  return calls_;
}

std::vector<OsCallRecord> RecordingOs::take_calls() {
  std::lock_guard lock(mutex_);
  return std::exchange(calls_, {});
}

int RecordingOs::on_call(OsCall, std::uint64_t) { return 0; }

void RecordingOs::on_result(const OsCallRecord& record) {
  std::lock_guard lock(mutex_);
  calls_.push_back(record);
}

std::uint64_t FailingOs::failures_injected() const {
  std::lock_guard lock(mutex_);
  return injected_;
}

int FailingOs::on_call(OsCall call, std::uint64_t index) {
  std::lock_guard lock(mutex_);
  if (nth_ && nth_->call == call && nth_->index == index) {
    ++injected_;
    return nth_->error;
  }
  if (rate_ && os_call_is_fallible(call)) {
    // One draw per fallible call, so the failed calls depend only on seed and sequence.
    if (splitmix64_next(state_) % rate_->denominator < rate_->numerator) {
      ++injected_;
      return rate_->error;
    }
  }
  return 0;
}

FailingOs::FailingOs(OsInterface& inner, const Which& which) : InterceptingOs(inner) {
  if (const Nth* nth = std::get_if<Nth>(&which)) {
    nth_ = *nth;
  } else {
    rate_ = std::get<Rate>(which);
    state_ = rate_->seed;
  }
}

namespace {

bool parse_whole_number(std::string_view digits, std::uint64_t* out) {
  const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), *out, 10);
  return !digits.empty() && ec == std::errc() && ptr == digits.data() + digits.size();
}

}  // namespace

std::optional<FaultSpecFields> parse_fault_spec_fields(std::string_view spec, std::string_view how_name, std::string* why) {
  std::vector<std::string_view> parts;
  for (std::string_view rest = spec;;) {
    const auto colon = rest.find(':');
    parts.push_back(rest.substr(0, colon));
    if (colon == std::string_view::npos) break;
    rest = rest.substr(colon + 1);
  }
  FaultSpecFields f;
  if (parts[0] == "rate") {
    f.rate = true;
    const std::string_view ratio = parts.size() > 1 ? parts[1] : std::string_view();
    const auto slash = ratio.find('/');
    if (parts.size() < 3 || parts.size() > 4 || slash == std::string_view::npos ||
        !parse_whole_number(ratio.substr(0, slash), &f.numerator) ||
        !parse_whole_number(ratio.substr(slash + 1), &f.denominator) || f.numerator == 0 ||
        f.numerator > f.denominator || !parse_whole_number(parts[2], &f.seed)) {
      *why = "expected rate:P/Q:SEED[:" + std::string(how_name) +
             "] with whole numbers 0 < P <= Q and a whole-number SEED, got '" + std::string(spec) + "'";
      return std::nullopt;
    }
    if (parts.size() == 4) f.how = parts[3];
  } else {
    if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || !parse_whole_number(parts[1], &f.index)) {
      const std::string how(how_name);
      *why = "expected KIND:N[:" + how + "] with N a whole number (the 0-based index among calls of KIND), or rate:P/Q:SEED[:" +
             how + "], got '" + std::string(spec) + "'";
      return std::nullopt;
    }
    f.kind = parts[0];
    if (parts.size() == 3) f.how = parts[2];
  }
  if (parts.size() == (f.rate ? 4u : 3u) && f.how.empty()) {
    *why = "empty last field in '" + std::string(spec) + "'";
    return std::nullopt;
  }
  return f;
}

std::optional<FailingOs::Which> parse_fail_os_spec(std::string_view spec, std::string* why) {
  const std::optional<FaultSpecFields> f = parse_fault_spec_fields(spec, "ERRNO", why);
  if (!f) return std::nullopt;
  int error = EIO;
  if (!f->how.empty()) {
    static constexpr std::pair<const char*, int> kErrnos[] = {
        {"EIO", EIO}, {"ENOMEM", ENOMEM}, {"EAGAIN", EAGAIN}, {"EPERM", EPERM}, {"EACCES", EACCES}};
    error = 0;
    for (const auto& [name, value] : kErrnos)
      if (f->how == name) error = value;
    if (error == 0) {
      *why = "unknown errno '" + std::string(f->how) + "' (one of EIO, ENOMEM, EAGAIN, EPERM, EACCES)";
      return std::nullopt;
    }
  }
  if (f->rate) return FailingOs::Which{FailingOs::Rate{f->numerator, f->denominator, f->seed, error}};
  const std::optional<OsCall> call = os_call_from_name(f->kind);
  if (!call) {
    std::string names;
    for (const char* n : kNames) names += std::string(names.empty() ? "" : ", ") + n;
    *why = "unknown OS call '" + std::string(f->kind) + "' (one of " + names + ")";
    return std::nullopt;
  }
  return FailingOs::Which{FailingOs::Nth{*call, f->index, error}};
}

}  // namespace vmfrag
