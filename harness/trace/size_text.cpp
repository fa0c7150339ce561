#include "harness/trace/size_text.h"

#include <limits>

namespace vmfrag {

namespace {

// Shift for a suffix letter, or -1 if the character is not a suffix.
int suffix_shift(char c) {
  switch (c) {
    case 'K': return 10;
    case 'M': return 20;
    case 'G': return 30;
    case 'T': return 40;
    default: return -1;
  }
}

ParsedNumber parse_digits(std::string_view digits) {
  if (digits.empty()) return {NumberTextStatus::kMalformed, 0};
  for (char c : digits)
    if (c < '0' || c > '9') return {NumberTextStatus::kMalformed, 0};
  // Malformed input is reported before overflow (the loop above), so "99999999999999999999x" is a
  // typo, not an overflow: the user must fix the text first.
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t value = 0;
  for (char c : digits) {
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (kMax - digit) / 10) return {NumberTextStatus::kOverflow, 0};
    value = value * 10 + digit;
  }
  return {NumberTextStatus::kOk, value};
}

}  // namespace

ParsedNumber parse_size_checked(std::string_view text) {
  int shift = 0;
  if (!text.empty()) {
    const int s = suffix_shift(text.back());
    if (s >= 0) {
      shift = s;
      text.remove_suffix(1);
    }
  }
  ParsedNumber parsed = parse_digits(text);
  if (parsed.status != NumberTextStatus::kOk || shift == 0) return parsed;
  if (parsed.value > (std::numeric_limits<std::uint64_t>::max() >> shift))
    return {NumberTextStatus::kOverflow, 0};
  return {NumberTextStatus::kOk, parsed.value << shift};
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  const ParsedNumber parsed = parse_size_checked(text);
  if (parsed.status != NumberTextStatus::kOk) return std::nullopt;
  return parsed.value;
}

ParsedNumber parse_count_checked(std::string_view text) { return parse_digits(text); }

std::string format_size(std::uint64_t bytes) {
  // Largest suffix first, so the first exact divisor gives the shortest spelling.
  static constexpr struct {
    int shift;
    char letter;
  } kSuffixes[] = {{40, 'T'}, {30, 'G'}, {20, 'M'}, {10, 'K'}};
  if (bytes != 0) {
    for (const auto& suffix : kSuffixes) {
      const std::uint64_t unit = std::uint64_t{1} << suffix.shift;
      if (bytes % unit == 0) return std::to_string(bytes >> suffix.shift) + suffix.letter;
    }
  }
  return std::to_string(bytes);
}

}  // namespace vmfrag
