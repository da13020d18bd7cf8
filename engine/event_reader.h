// EventReader: the front of every pipeline, shared by `run` and `backtest`.
// It reads each stream's inputs (several files in order, or one unbounded
// input), decodes records, drops records outside an optional event-time range,
// and (unless told not to) judges lateness against the combined watermark
// exactly as a live run does. Single-threaded: one reader owns it.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "engine/decoder.h"
#include "engine/line_reader.h"
#include "engine/pipeline.h"
#include "time/watermark.h"

namespace cepheus::engine {

struct ReaderOptions {
  const Clock* clock = nullptr;  // default: the system clock
  // False for the batch "complete" mode: no watermark, no late events.
  bool judge_lateness = true;
  // Records read from each input per turn (smaller: finer interleaving of
  // inputs, more turns; results do not depend on it).
  size_t lines_per_turn = 512;
  size_t read_buffer_bytes = 1 << 20;  // per input (tests use small ones)
  // Keep only events with from <= event time < to.
  std::optional<EventTime> from, to;
  // Per stream (by index): files read one after the other. Empty: the
  // stream's configured source.
  std::vector<std::vector<std::string>> files;
  // Instead of `files`: byte ranges of files (batch jobs split big files
  // across threads). Events then take their input position from the file's
  // index and the line's byte offset, so it does not depend on the split.
  struct Range {
    std::string path;
    uint32_t file_index = 0;
    uint64_t begin = 0, end = UINT64_MAX;  // UINT64_MAX: the whole (maybe compressed) file
  };
  std::vector<std::vector<Range>> ranges;
};

// Input position of the line at `offset` of file `file_index` (when reading ranges).
inline uint64_t InputPosition(uint32_t file_index, uint64_t offset) {
  return (uint64_t{file_index} << 44) | offset;
}

struct ReadEvent {
  RowPtr row;
  int stream = 0;
};

struct ReaderCounts {
  uint64_t records_read = 0;
  uint64_t events = 0;
  uint64_t dead_letters = 0;
  uint64_t late = 0;
  uint64_t out_of_range = 0;  // outside --from/--to
  uint64_t punctuations = 0;  // watermark punctuation records read
};

// What one stream's records came to (this process's reading only).
struct StreamCounts {
  uint64_t records = 0, dead_letters = 0, late = 0;
};

// Warnings for streams whose records are mostly dead letters or late events
// (more than `ratio` of at least 100 records): nearly always a configuration
// error. `counts` is indexed like the pipeline's streams.
std::vector<std::string> BadInputWarnings(const PipelineConfig& config,
                                          const std::vector<StreamCounts>& counts);

class EventReader {
 public:
  enum class Turn { kProgress, kIdle, kEnd };

  EventReader(const CompiledPipeline& pipeline, ReaderOptions options);
  ~EventReader();
  EventReader(const EventReader&) = delete;
  EventReader& operator=(const EventReader&) = delete;

  // Opens the first input of every stream, so that a missing file fails
  // before anything runs.
  Status Open();
  // Waits up to `ms` for data on an unbounded input (after a kIdle turn),
  // returning early as soon as any has some: a live event is read at once,
  // not after a fixed sleep.
  void WaitForInput(int ms);
  // Per stream (indexed like the pipeline's streams).
  const std::vector<StreamCounts>& stream_counts() const { return stream_counts_; }
  // Reads up to one turn of records from each stream. Accepted events are
  // appended to `events` (arrival order), dead letters and late events to
  // `dead` and `late` as JSON lines. kIdle: only unbounded inputs remain and
  // none had data; kEnd: every input ended.
  Result<Turn> ReadTurn(std::vector<ReadEvent>* events, std::string* dead, std::string* late);
  // The combined watermark after taking the wall clock into account (idle
  // unbounded inputs). Max() once every input ended.
  Watermark UpdateWatermark();
  const ReaderCounts& counts() const { return counts_; }

  // The replay position between two turns: per input the file being read,
  // the byte offset and line number of the next record, its watermark; the
  // combined watermark, the arrival counter and the counts. Binary (varints).
  std::string SavePosition() const;
  // Call after Open(): continues exactly where SavePosition was taken. Files
  // are reopened and sought to their offsets; an unbounded input (stdin)
  // cannot rewind and continues with what arrives next (logged).
  Status RestorePosition(std::string_view saved);
  // Bytes consumed so far and the total size of the bounded inputs (0 if unknown).
  uint64_t bytes_read() const;
  uint64_t total_bytes() const { return total_bytes_; }

 private:
  struct Input;
  Status OpenFile(Input& in);
  // Appends one dead-letter record for `record` (of `in`, at `meta`).
  void AppendDeadLetter(const Input& in, const LineReader::Line& meta, const std::string& reason,
                        std::string_view record, std::string* dead);
  size_t NumFiles(const Input& in) const;
  // A punctuation record read between events (see StreamConfig).
  struct Punctuation {
    size_t before = 0;  // applies before texts_[before]
    const LineReader::Line* meta = nullptr;
    Result<EventTime> watermark = EventTime();  // what it says, or why it is unusable
  };
  void ApplyPunctuation(Input& in, const Punctuation& pu, int64_t now, std::string* dead);

  const CompiledPipeline& pipeline_;
  ReaderOptions options_;
  SystemClock system_clock_;
  const Clock* clock_;
  std::vector<std::unique_ptr<Input>> inputs_;
  timing::WatermarkCombiner watermarks_;
  std::vector<StreamCounts> stream_counts_;
  ReaderCounts counts_;
  uint64_t seq_ = 0;
  uint64_t total_bytes_ = 0;
  uint64_t finished_bytes_ = 0;  // of inputs already closed
  std::vector<LineReader::Line> lines_;
  std::vector<std::string_view> texts_;
  std::vector<const LineReader::Line*> metas_;
  std::vector<DecodedRecord> decoded_;
  std::vector<uint64_t> positions_;
  std::vector<Punctuation> punctuations_;
};

}  // namespace cepheus::engine
