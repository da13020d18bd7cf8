// A spool: the records of one checkpoint period in a local file, so that an
// output can send them again after a crash (the exactly-once Kafka output,
// docs/architecture.md "Kafka output: delivery guarantees"). The writer
// appends records; Seal() syncs the file, ends it with a trailer (so a
// truncated file is told apart from a complete one) and renames it into
// place. ReadSpool hands the records of a sealed file, or of a prefix of
// the one being written, back.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

#include "common/status.h"
#include "io/record.h"

namespace cepheus::sinks {

class SpoolWriter {
 public:
  ~SpoolWriter();
  // Creates (truncates) the file at `path`.
  static Result<std::unique_ptr<SpoolWriter>> Create(const std::string& path);
  Status Append(const io::Record& r);
  // Hands what was appended to the operating system (for ReadSpool).
  Status Flush();
  // Bytes appended so far (the end offset for ReadSpool).
  uint64_t size() const { return size_; }
  uint64_t count() const { return count_; }
  // Ends the file: trailer, fsync, rename to `to`, fsync of the directory.
  // The writer is done afterwards.
  Status Seal(const std::string& to);
  const std::string& path() const { return path_; }

 private:
  SpoolWriter(std::string path, std::FILE* f) : path_(std::move(path)), f_(f) {}
  std::string path_;
  std::FILE* f_;
  std::string buf_;
  uint64_t size_ = 0, count_ = 0;
};

// Calls `fn` for every record of `path` between byte offsets `from` and
// `to` (to == UINT64_MAX: a sealed file, read whole, whose trailer must be
// there and agree). A damaged or truncated file is Corruption.
Status ReadSpool(const std::string& path, uint64_t from, uint64_t to,
                 const std::function<Status(const io::Record&)>& fn);

}  // namespace cepheus::sinks
