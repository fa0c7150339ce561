#include "harness/files/fd_streambuf.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "harness/trace/input_error.h"

namespace vmfrag {

FdReadBuf::int_type FdReadBuf::underflow() {
  if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
  ssize_t n;
  do {
    n = ::read(fd_, buf_.data(), buf_.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) throw InputError(name_, 0, std::string("cannot read: ") + std::strerror(errno));
  if (n == 0) return traits_type::eof();
  setg(buf_.data(), buf_.data(), buf_.data() + n);
  return traits_type::to_int_type(*gptr());
}

FdWriteBuf::FdWriteBuf(int fd) : fd_(fd) { setp(buf_.data(), buf_.data() + buf_.size()); }

bool FdWriteBuf::write_all(const char* p, std::size_t n) {
  if (error_ != 0) return false;
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      error_ = errno;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool FdWriteBuf::flush_buffer() {
  const std::size_t n = static_cast<std::size_t>(pptr() - pbase());
  setp(buf_.data(), buf_.data() + buf_.size());
  return write_all(buf_.data(), n);
}

FdWriteBuf::int_type FdWriteBuf::overflow(int_type c) {
  if (!flush_buffer()) return traits_type::eof();
  if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
  *pptr() = traits_type::to_char_type(c);
  pbump(1);
  return c;
}

int FdWriteBuf::sync() { return flush_buffer() ? 0 : -1; }

std::streamsize FdWriteBuf::xsputn(const char* s, std::streamsize n) {
  if (n <= epptr() - pptr()) {
    std::memcpy(pptr(), s, static_cast<std::size_t>(n));
    pbump(static_cast<int>(n));
    return n;
  }
  if (!flush_buffer() || !write_all(s, static_cast<std::size_t>(n))) return 0;
  return n;
}

}  // namespace vmfrag
