// LineReader: reads newline-separated records from a file or standard input
// ("-"), remembering each record's line number and byte offset (for
// dead-letter reports and, later, replay positions). A regular file is a
// bounded input; a pipe or terminal is unbounded and read with a timeout so
// that the caller can keep time while it is quiet. Single-threaded.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace cepheus::sources {

class LineReader {
 public:
  enum class Result { kLine, kEnd, kTimeout, kError };

  // `buffer_bytes`: the initial read buffer (it grows for longer lines).
  static cepheus::Result<std::unique_ptr<LineReader>> Open(const std::string& path,
                                                           size_t buffer_bytes = 1 << 20);
  // The lines of an uncompressed regular file that start in [begin, end):
  // a line that straddles `end` is read whole, one that straddles `begin`
  // belongs to the range before. Line numbers are then unknown (0).
  static cepheus::Result<std::unique_ptr<LineReader>> OpenRange(const std::string& path,
                                                                uint64_t begin, uint64_t end);
  // CSV records (RFC 4180): a newline inside a quoted field belongs to the
  // field, so a record may span several lines (its number is that of its
  // first line). Set before the first read.
  void set_quoted_records(bool on) { quoted_records_ = on; }
  // The offsets in `path` where the first CSV record starting at or after
  // each of `targets` (ascending) begins, found by one pass over the file
  // that follows quotes (so no split lands inside a quoted field); the file
  // size where none does.
  static cepheus::Result<std::vector<uint64_t>> CsvRecordStarts(
      const std::string& path, const std::vector<uint64_t>& targets);
  // Size and compression of a file, for splitting work (false: compressed or
  // not a regular file, so it cannot be split).
  static bool Splittable(const std::string& path, uint64_t* size);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  struct Line {
    std::string_view text;  // without its terminator
    uint64_t number;        // 1-based
    uint64_t offset;        // byte offset in the input
  };
  // Up to `max_lines` records that are already complete in the buffer (reading
  // more only if there is none), appended to `*lines`. All views stay valid
  // until the next call to Next or NextLines; they are contiguous in memory and
  // readable_after() applies to the last one. Returns kLine if any was added.
  Result NextLines(size_t max_lines, int timeout_ms, std::vector<Line>* lines);

  // The next record, without its line terminator; valid until the next call.
  // Waits at most `timeout_ms` for data on an unbounded input (0: no wait).
  Result Next(std::string_view* line, int timeout_ms);
  uint64_t bytes_read() const { return consumed_; }
  // Where the next record starts (bytes of the decompressed input) and the
  // number of records returned so far: a replay position.
  uint64_t position() const { return consumed_ + begin_; }
  uint64_t line_number() const { return line_number_; }
  // Continues reading at `position`, a value position() returned for this
  // file (`line_number` records lie before it). Plain files seek; compressed
  // ones are decompressed up to there. An unbounded input cannot rewind.
  Status SkipTo(uint64_t position, uint64_t line_number);
  // Bytes read from the file itself (compressed bytes for a compressed file).
  uint64_t raw_bytes_read() const {
    return codec_ == Codec::kNone ? std::min(consumed_ + begin_, range_end_) - range_begin_
                                  : raw_read_;
  }
  // Bytes that may be read after the end of the record Next() returned last
  // (the buffer keeps slack at its end, so parsers can read ahead).
  size_t readable_after(std::string_view line) const {
    return static_cast<size_t>(buf_.data() + buf_.size() - (line.data() + line.size()));
  }
  static constexpr size_t kSlack = 64;
  bool bounded() const { return bounded_; }
  // For waiting on an unbounded input with poll(2): its descriptor, and
  // whether bytes are already buffered (then there is no need to wait).
  int fd() const { return fd_; }
  bool has_buffered() const { return end_ > begin_; }
  const std::string& name() const { return name_; }
  const Status& error() const { return error_; }

 private:
  LineReader() = default;
  bool Fill(int timeout_ms, bool* timed_out);
  // The newline that ends the record starting at `p`, or nullptr if it is
  // not in [p, end).
  const char* FindRecordEnd(const char* p, const char* end) const;
  // Takes the record [start, nl) (nl: its terminator, or the end of the data).
  std::string_view TakeRecord(const char* start, const char* nl, bool terminated);
  // Skips a UTF-8 byte order mark at the very start of the input.
  void SkipByteOrderMark();
  bool FillDecompressed();
  ssize_t ReadRaw(char* dst, size_t n);

  enum class Codec { kNone, kGzip, kZstd };
  Codec codec_ = Codec::kNone;
  struct Decoder;  // zlib / zstd state
  std::unique_ptr<Decoder> dec_;
  std::vector<char> in_;  // compressed bytes
  size_t in_pos_ = 0, in_len_ = 0;
  bool raw_eof_ = false;
  uint64_t raw_read_ = 0;
  uint64_t range_end_ = UINT64_MAX;  // stop after the line starting before this
  uint64_t range_begin_ = 0;
  bool numbered_ = true;
  bool quoted_records_ = false;
  bool bom_checked_ = false;

  std::string name_;
  int fd_ = -1;
  bool owns_fd_ = false;
  bool bounded_ = true;
  bool eof_ = false;
  std::vector<char> buf_;
  size_t begin_ = 0, end_ = 0;
  uint64_t consumed_ = 0;  // bytes before buf_[begin_]
  uint64_t line_number_ = 0;
  uint64_t line_offset_ = 0;
  uint64_t record_line_ = 0;  // the first line of the record returned last
  Status error_;
};

}  // namespace cepheus::sources
