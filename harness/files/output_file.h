// The one way every command writes an output file (-o, --timeline, findings).
//
// What a user can rely on, whatever the target is:
//  * Absent or regular file: the new content appears whole at commit() or not at all. Bytes go to an
//    unnamed file in the target's directory (O_TMPFILE), which the kernel discards if the process
//    dies in any way, SIGKILL included; commit() links it under a temporary name and renames it
//    over the target. Where the filesystem has no O_TMPFILE, a named `.NAME.vmfrag-XXXXXX` beside
//    the target is used instead and removed on every error path, at destruction and on SIGINT,
//    SIGTERM, SIGHUP, SIGPIPE, SIGXFSZ or SIGABRT. (VMFRAG_NO_O_TMPFILE in the environment forces this path, for its tests.)
//  * Symlink: stays a symlink; the file it finally resolves to is the one replaced as above.
//  * Anything else (FIFO, character device such as /dev/null or /dev/full, socket), and any path
//    under /dev or /proc (/dev/stdout, /dev/fd/N lead wherever the descriptor does): opened and
//    written through, never replaced by a regular file.
//  * The same file as an input (same device and inode, through any name, link or /dev/fd alias) is
//    refused at construction, before anything is created or written.
//  * "" or "-" is standard output.
// Errors are InputError(path, 0, ...) — printed `PATH: error: ...`, exit 2 — at construction
// (cannot create, same file as an input, a directory) or at commit() (a failed write such as ENOSPC,
// a failed rename). After an error nothing of this output is left behind and the target is as it was.
#pragma once

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "harness/files/fd_streambuf.h"
#include "harness/files/file_identity.h"

namespace vmfrag {

// An input an output must not overwrite: its identity and the name to quote.
struct InputRef {
  std::string name;
  std::optional<FileIdentity> identity;
};

class OutputFile {
 public:
  OutputFile(std::string path, const std::vector<InputRef>& inputs);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  [[nodiscard]] std::ostream& stream() { return stream_; }
  // Flushes and makes the content visible at the target. Call once; throws InputError on failure.
  void commit();

 private:
  void discard() noexcept;

  std::string path_;         // as the user gave it, for messages
  std::string target_;       // where the file lands (symlinks resolved)
  std::string named_tmp_;    // non-empty while a named temporary exists
  int fd_ = -1;
  bool to_stdout_ = false;
  bool write_through_ = false;  // special file: no rename
  bool anonymous_ = false;      // O_TMPFILE: no name until commit
  bool committed_ = false;
  std::unique_ptr<FdWriteBuf> buf_;
  std::ostream stream_{nullptr};
};

}  // namespace vmfrag
