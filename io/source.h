// io: the source contract. A source delivers raw records (bytes, not yet
// decoded) of one stream from one or more partitions: a file source has one
// partition (its files read one after another), a Kafka source one per topic
// partition. Everything after the bytes -- decoding, event time, watermarks
// per partition, lateness, dead letters -- is the engine's ingest stage, the
// same for every source. Implementations live in sources/ and depend on this
// header only; the app hands the engine a SourceProvider that opens them.
// A source is used by one thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace cepheus::io {

// The kinds of source a pipeline can name (streams.<name>.source.type).
enum class SourceKind { kFile, kKafka };

// "file" (a path, a list of paths, or "-" for standard input), "kafka".
std::string_view SourceKindName(SourceKind kind);
std::optional<SourceKind> ParseSourceKind(std::string_view name);

// How records are cut out of a byte stream.
enum class Framing {
  kLines,  // one record per line (JSONL)
  kCsv,    // RFC 4180 records: a quoted field may hold newlines; the first
           // record of every file is its header
};

// Where a Kafka source starts when no checkpoint says otherwise.
struct KafkaStart {
  enum class Kind { kEarliest, kLatest, kTime } kind = Kind::kEarliest;
  int64_t time_ms = 0;  // kTime: the first message with a timestamp >= this
};

// A Kafka stream: every partition of its topics, assigned by the source
// itself (no group rebalancing); offsets are positions in checkpoints and
// are committed to `group` (if any) when a checkpoint completes.
struct KafkaSourceSpec {
  std::map<std::string, std::string> properties;  // librdkafka settings, bootstrap.servers included
  std::vector<std::string> topics;
  std::string group;
  KafkaStart start;
  // Stop at the end offsets found when the source opens (a finite run over
  // what the topic held then: catch-up jobs, tests). Default: never end.
  bool stop_at_end = false;
  // A batch job (backtest): read from the first message at or after
  // `from_ms` (-1: the earliest) up to the first at or after `until_ms` (-1:
  // the end offsets found when the source opens), and that is the end of the
  // data. The offsets come from the brokers' offset-for-time lookup, with
  // message timestamps; where a broker has no answer the whole partition is
  // read (the reader's event-time range filter applies either way).
  bool batch = false;
  int64_t from_ms = -1, until_ms = -1;
  // Message metadata added to each record as JSON fields (empty: not added):
  // the message key (a string), its timestamp (epoch ms), topic, partition
  // and offset. A field of the same name in the payload is overridden.
  struct MetadataFields {
    std::string key, timestamp, topic, partition, offset;
    bool any() const {
      return !key.empty() || !timestamp.empty() || !topic.empty() || !partition.empty() ||
             !offset.empty();
    }
  } metadata;
};

// What to open for one stream.
struct SourceSpec {
  std::string stream;  // for messages
  SourceKind kind = SourceKind::kFile;
  std::vector<std::string> paths;  // kFile: read in this order; "-" is stdin
  KafkaSourceSpec kafka;           // kKafka
  Framing framing = Framing::kLines;
  size_t read_buffer_bytes = 1 << 20;
};

// One raw record.
struct SourceRecord {
  std::string_view payload;  // without its terminator
  uint64_t line = 0;         // 1-based line number in its input; 0: unknown
  uint64_t offset = 0;       // byte offset (files) or message offset (Kafka)
  // Only when Source::positioned(): the record's place in a total order of
  // the source's records that does not depend on how the source was split
  // into shares (see SourceProvider::OpenShares).
  uint64_t position = 0;
  // A header record (CSV): it describes the records after it in the same
  // input and is not an event. A source repeats the header after a restore
  // and at the start of a share that begins inside a file.
  bool header = false;
};

// What one Poll delivered: records of one partition, in order. The payloads
// stay valid until the next Poll; they lie in one buffer, and
// `readable_after` bytes after the last payload may be read (for parsers that
// read ahead).
struct SourceBatch {
  int partition = 0;
  std::vector<SourceRecord> records;
  size_t readable_after = 0;
  void Clear() {
    partition = 0;
    records.clear();
    readable_after = 0;
  }
};

// A partition that started or stopped being this source's to read. The
// ingest keeps one watermark per assigned partition.
struct AssignmentChange {
  int partition = 0;
  bool added = true;
  bool bounded = true;  // for an added partition: it ends (a file, not a pipe or topic)
};

// How far a reader is behind the end of one partition (Kafka: the
// partition's high watermark offset minus the next offset to read).
struct PartitionLag {
  std::string topic;
  int32_t partition = 0;
  int64_t messages = 0;
};

class Source {
 public:
  enum class Polled {
    kMore,     // progress: records in the batch, or an input finished and the next began
    kNothing,  // an unbounded partition had nothing now
    kEnd,      // partition `batch->partition` ended; with no partition left, the source ended
  };

  virtual ~Source() = default;

  // Opens the first input, so that a missing file fails before anything
  // runs, and reports the initial assignment.
  virtual Status Open() = 0;
  // Up to `max_records` records of one partition. Does not wait.
  virtual Result<Polled> Poll(size_t max_records, SourceBatch* batch) = 0;
  // Drains the assignment changes since the last call (after Open: the
  // initial assignment).
  virtual void TakeAssignmentChanges(std::vector<AssignmentChange>* out) = 0;
  // True once every partition ended (bounded sources only).
  virtual bool ended() const = 0;
  // Whether the source's end is not the end of its data but a point where
  // it stops reading an unbounded input (a Kafka source with stop_at_end):
  // a run then stops as at a stop request -- with a checkpoint the next run
  // continues from, partial matches kept -- instead of ending every partial
  // match, and the partitions' watermarks do not jump to the end.
  virtual bool stops_early() const { return false; }

  // For reports (dead letters, late events): the input that `partition`'s
  // last batch came from, e.g. the file's path.
  virtual std::string_view origin(int partition) const = 0;
  // Whether records carry positions (SourceRecord::position).
  virtual bool positioned() const { return false; }

  // Waiting while quiet: a descriptor to poll(2) for the next data (-1:
  // none; the caller sleeps), and whether data is already buffered.
  virtual int wait_fd() const { return -1; }
  virtual bool has_buffered() const { return false; }

  // The replay position between two polls, appended to `out` (binary). A
  // restore consumes exactly what SavePosition appended from the front of
  // `*in`. Call RestorePosition after Open(); a source that cannot rewind
  // (stdin) continues with what arrives next and says so in the log.
  virtual void SavePosition(std::string* out) const = 0;
  virtual Status RestorePosition(std::string_view* in) = 0;
  // The checkpoint whose position was saved last is complete (a Kafka source
  // commits its offsets to the consumer group here). Default: nothing.
  virtual Status OnCheckpointComplete(uint64_t /*checkpoint_id*/) { return Status::Ok(); }

  // Appends the lag of each partition it reads, as far as known without
  // asking the brokers (for metrics; once per second). Default: none.
  virtual void Lags(std::vector<PartitionLag>* /*out*/) const {}
  // Progress: bytes read so far, and the total of the bounded inputs (0: unknown).
  virtual uint64_t bytes_read() const = 0;
  virtual uint64_t total_bytes() const { return 0; }
};

// Opens concrete sources; the app provides one (sources/), so the engine
// never names a concrete source.
class SourceProvider {
 public:
  virtual ~SourceProvider() = default;
  virtual Result<std::unique_ptr<Source>> Open(const SourceSpec& spec) = 0;
  // For parallel batch reading: `shares` sources that together read every
  // record of `spec` once, each with positioned() records (so results do not
  // depend on the split). Inputs of at least `split_above` bytes may be cut
  // into byte ranges; a share may be null (nothing to read).
  virtual Result<std::vector<std::unique_ptr<Source>>> OpenShares(const SourceSpec& spec,
                                                                  int shares,
                                                                  uint64_t split_above) = 0;
};

inline std::string_view SourceKindName(SourceKind kind) {
  switch (kind) {
    case SourceKind::kFile:
      return "file";
    case SourceKind::kKafka:
      return "kafka";
  }
  return "?";
}

inline std::optional<SourceKind> ParseSourceKind(std::string_view name) {
  if (name == "file") return SourceKind::kFile;
  if (name == "kafka") return SourceKind::kKafka;
  return std::nullopt;
}

}  // namespace cepheus::io
