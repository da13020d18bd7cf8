// The file source: one stream's files read one after another (plain, gzip
// or zstd), or standard input ("-"), as one partition; or, for parallel
// batch reading, byte ranges of files whose records carry positions that do
// not depend on the split. Framing (lines, CSV records and headers) is done
// here; decoding is not. Single-threaded.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/source.h"

namespace cepheus::sources {

// A record's position when files are read in ranges: the file's index in
// the stream's list and the record's byte offset.
inline uint64_t InputPosition(uint32_t file_index, uint64_t offset) {
  return (uint64_t{file_index} << 44) | offset;
}

// Part of one file: the records that start in [begin, end).
struct FileRange {
  std::string path;
  uint32_t file_index = 0;               // in the stream's list of files
  uint64_t begin = 0, end = UINT64_MAX;  // UINT64_MAX: the whole (maybe compressed) file
};

// Reads `spec.paths` in order.
std::unique_ptr<io::Source> MakeFileSource(const io::SourceSpec& spec);
// Reads `ranges` in order; records are positioned. Cannot be restored.
std::unique_ptr<io::Source> MakeFileRangeSource(const io::SourceSpec& spec,
                                                std::vector<FileRange> ranges);

// Cuts the files of `spec` into `shares` lists of ranges: files of at least
// `split_above` bytes (uncompressed regular files) into byte ranges at record
// starts, the others whole, round robin.
Result<std::vector<std::vector<FileRange>>> SplitFiles(const io::SourceSpec& spec, int shares,
                                                       uint64_t split_above);

// The provider the app hands to the engine: files and stdin.
class FileSourceProvider : public io::SourceProvider {
 public:
  Result<std::unique_ptr<io::Source>> Open(const io::SourceSpec& spec) override;
  Result<std::vector<std::unique_ptr<io::Source>>> OpenShares(const io::SourceSpec& spec,
                                                              int shares,
                                                              uint64_t split_above) override;
};

// A process-wide FileSourceProvider (it has no state).
io::SourceProvider& FileSources();

}  // namespace cepheus::sources
