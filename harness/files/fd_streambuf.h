// std::streambuf over a POSIX file descriptor, so the trace reader and writers (which speak
// iostreams) read and write files opened with open(2) flags std::fstream cannot express (O_TMPFILE,
// write-through to a FIFO without O_CREAT) and report the real errno of a failed read or write.
#pragma once

#include <array>
#include <streambuf>
#include <string>

namespace vmfrag {

// Reads from `fd` (not owned). A failed read(2) throws InputError(display_name, 0, "cannot read:
// <strerror>") out of the read call that needed the bytes: a directory, /proc/self/mem or an I/O
// error is an input error at the file, never a silent end of file. EINTR is retried.
class FdReadBuf final : public std::streambuf {
 public:
  FdReadBuf(int fd, std::string display_name) : fd_(fd), name_(std::move(display_name)) {}

 protected:
  int_type underflow() override;

 private:
  int fd_;
  std::string name_;
  std::array<char, 64 * 1024> buf_{};
};

// Writes to `fd` (not owned) through a 64 KiB buffer. A failed write(2) (ENOSPC on /dev/full, EPIPE,
// EIO) makes overflow/sync fail, so the stream's badbit is set, and error() keeps the errno; nothing
// is thrown here. EINTR and short writes are retried.
class FdWriteBuf final : public std::streambuf {
 public:
  explicit FdWriteBuf(int fd);
  // 0 while every write succeeded, else the errno of the first failure.
  [[nodiscard]] int error() const { return error_; }

 protected:
  int_type overflow(int_type c) override;
  int sync() override;
  std::streamsize xsputn(const char* s, std::streamsize n) override;

 private:
  bool flush_buffer();
  bool write_all(const char* p, std::size_t n);
  int fd_;
  int error_ = 0;
  std::array<char, 64 * 1024> buf_{};
};

}  // namespace vmfrag
