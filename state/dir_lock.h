// DirLock: one process owns a state directory. Acquire() creates the
// directory if needed and takes an exclusive, non-blocking flock(2) on
// `<dir>/cepheus.lock`, writing the owner's pid into it; a second process
// gets a clear error naming that pid instead of waiting. The lock is released
// when the DirLock is destroyed or the process dies (the kernel drops flocks
// of a dead process, so a crash never leaves a stale lock). Creating the file
// also proves the directory is writable before any work is done.
// Not thread-safe; one per process and directory.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"

namespace cepheus::state {

class DirLock {
 public:
  static Result<std::unique_ptr<DirLock>> Acquire(const std::string& dir);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace cepheus::state
