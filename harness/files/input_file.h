// An input file of any command: a trace, a snapshot, a malloc-lab file, a profile.
//
// Guarantees: a path that cannot be opened or names a directory is InputError(path, 0, "cannot
// open: <reason>") at construction; a read that fails later (EIO, /proc/self/mem) is
// InputError(path, 0, "cannot read: <reason>") from the read that hit it (also through stream(),
// whose exceptions() include badbit so an istream cannot turn it into a silent end of file). FIFOs,
// pipes and character devices are read like files. "-" is standard input.
#pragma once

#include <istream>
#include <memory>
#include <optional>
#include <string>

#include "harness/files/fd_streambuf.h"
#include "harness/files/file_identity.h"

namespace vmfrag {

class InputFile {
 public:
  // `what` names the file's role in the open error ("trace" gives "cannot open trace: ...").
  explicit InputFile(std::string path, const std::string& what = "");
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  [[nodiscard]] std::istream& stream() { return stream_; }
  [[nodiscard]] std::streambuf* buffer() { return &buf_; }
  [[nodiscard]] const std::string& path() const { return path_; }
  // The file that was opened (for the same-file check of outputs); nullopt if fstat failed.
  [[nodiscard]] std::optional<FileIdentity> identity() const { return identity_of_fd(fd_); }

 private:
  std::string path_;
  int fd_ = -1;
  bool owned_ = false;
  FdReadBuf buf_;
  std::istream stream_;
};

}  // namespace vmfrag
