// EventReader: the ingest stage at the front of every pipeline, shared by
// `run` and `backtest`. It polls one io::Source per stream (files, stdin;
// whatever the app's SourceProvider opened), decodes records, keeps one
// watermark per source partition, drops records outside an optional
// event-time range, and (unless told not to) judges lateness against the
// combined watermark exactly as a live run does. Dead letters and late events
// are rendered here. It never names a concrete source. Single-threaded: one
// reader owns it.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "engine/ingest/decoder.h"
#include "engine/plan/pipeline.h"
#include "io/record.h"
#include "io/source.h"
#include "time/watermark.h"

namespace cepheus::engine {

struct ReaderOptions {
  const Clock* clock = nullptr;  // default: the system clock
  // False for the batch "complete" mode: no watermark, no late events.
  bool judge_lateness = true;
  // Records read from each input per turn (smaller: finer interleaving of
  // inputs, more turns; results do not depend on it).
  size_t lines_per_turn = 512;
  // Keep only events with from <= event time < to.
  std::optional<EventTime> from, to;
};

// What stream `stream`'s source is to open: its configured input, or the
// files of `files` instead when that is not empty.
io::SourceSpec StreamSourceSpec(const StreamConfig& stream,
                                const std::vector<std::string>& files = {},
                                size_t read_buffer_bytes = 1 << 20);
// Opens one source per stream through `provider`; files[s] (when present and
// not empty) replaces stream s's configured input.
Result<std::vector<std::unique_ptr<io::Source>>> OpenStreamSources(
    io::SourceProvider& provider, const PipelineConfig& config,
    const std::vector<std::vector<std::string>>& files = {}, size_t read_buffer_bytes = 1 << 20);

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
  // After Turn::kEnd: whether a source stopped early (io::Source::stops_early):
  // the run should stop as at a stop request, not end its input.
  bool stopped_early() const;

  // `sources`: one per stream, indexed like the pipeline's streams; a null
  // source has nothing to read (a share of a batch job without that stream).
  EventReader(const CompiledPipeline& pipeline, ReaderOptions options,
              std::vector<std::unique_ptr<io::Source>> sources);
  ~EventReader();
  EventReader(const EventReader&) = delete;
  EventReader& operator=(const EventReader&) = delete;

  // Opens every source, so that a missing file fails before anything runs.
  Status Open();
  // Waits up to `ms` for data on an unbounded input (after a kIdle turn),
  // returning early as soon as any has some: a live event is read at once,
  // not after a fixed sleep.
  void WaitForInput(int ms);
  // Per stream (indexed like the pipeline's streams).
  const std::vector<StreamCounts>& stream_counts() const { return stream_counts_; }
  // Reads up to one turn of records from each stream. Accepted events are
  // appended to `events` (arrival order), dead letters and late events to
  // `dead` and `late` as records (engine/format/format.h). kIdle: only unbounded inputs remain and
  // none had data; kEnd: every input ended.
  Result<Turn> ReadTurn(std::vector<ReadEvent>* events, io::RecordBatch* dead,
                        io::RecordBatch* late);
  // The combined watermark after taking the wall clock into account (idle
  // unbounded inputs). Max() once every input ended.
  Watermark UpdateWatermark();
  const ReaderCounts& counts() const { return counts_; }

  // The replay position between two turns: per stream its source's position
  // and the watermark of each of its partitions; the combined watermark, the
  // arrival counter and the counts. Binary (varints); positions of format 2
  // (before sources had partitions) restore too.
  std::string SavePosition() const;
  // Call after Open(): continues exactly where SavePosition was taken (each
  // source restores its own position; see io::Source).
  Status RestorePosition(std::string_view saved);
  // Bytes consumed so far and the total size of the bounded inputs (0 if unknown).
  uint64_t bytes_read() const;
  uint64_t total_bytes() const;
  // Per stream: the watermark of its partitions (the least; Min: none yet,
  // Max: every partition ended), at the wall clock's `now_ms`.
  std::vector<Watermark> StreamWatermarks(int64_t now_ms) const;
  // Per stream: its source's partition lags (io::Source::Lags).
  std::vector<std::vector<io::PartitionLag>> SourceLags() const;
  // Tells every source that the checkpoint whose position was saved last is complete.
  Status OnCheckpointComplete(uint64_t checkpoint_id);

 private:
  struct Input;
  struct Part;
  // Takes the source's assignment changes: one watermark input per partition.
  void TakeAssignment(Input& in);
  Part& PartOf(Input& in, int partition);
  // Handles one polled batch of records of `in`.
  Status ReadBatch(Input& in, int64_t now, std::vector<ReadEvent>* events, io::RecordBatch* dead,
                   io::RecordBatch* late);
  void AppendDeadLetter(const Input& in, const Part& part, const io::SourceRecord& rec,
                        const std::string& reason, io::RecordBatch* dead);
  // A punctuation record read between events (see StreamConfig).
  struct Punctuation {
    size_t before = 0;  // applies before texts_[before]
    const io::SourceRecord* rec = nullptr;
    Result<EventTime> watermark = EventTime();  // what it says, or why it is unusable
  };
  void ApplyPunctuation(Input& in, Part& part, const Punctuation& pu, int64_t now,
                        io::RecordBatch* dead);

  const CompiledPipeline& pipeline_;
  ReaderOptions options_;
  SystemClock system_clock_;
  const Clock* clock_;
  std::vector<std::unique_ptr<Input>> inputs_;
  timing::WatermarkCombiner watermarks_;
  std::vector<StreamCounts> stream_counts_;
  ReaderCounts counts_;
  uint64_t seq_ = 0;
  io::SourceBatch batch_;
  std::vector<io::AssignmentChange> changes_;
  std::vector<std::string_view> texts_;
  std::vector<const io::SourceRecord*> metas_;
  std::vector<DecodedRecord> decoded_;
  std::vector<uint64_t> positions_;
  std::vector<Punctuation> punctuations_;
};

}  // namespace cepheus::engine
