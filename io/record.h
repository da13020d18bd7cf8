// io: output records. The engine hands sinks batches of records: each has a
// kind, the partition key it belongs to, the event time it is about, the
// name of the pattern or stream it comes from, and its payload (one JSON
// object today, rendered by the engine's format stage). A line-oriented sink
// writes lines() in one go; a message-oriented one (Kafka) sends one message
// per record with the key and time. Not thread-safe; a batch has one writer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cepheus::io {

enum class RecordKind : uint8_t {
  kMatch,       // a pattern match
  kTimeout,     // a partial match that timed out (TIMEOUT EMIT)
  kLate,        // an event behind the watermark
  kDeadLetter,  // an input record that could not be used, or a failed STRICT skip
  kWatermark,   // the watermark moved (outputs.watermarks)
};

std::string_view RecordKindName(RecordKind kind);

struct Record {
  RecordKind kind = RecordKind::kMatch;
  std::string_view key;      // the partition key ("" when none or unknown)
  std::string_view name;     // pattern (matches, timeouts) or stream (the others)
  int64_t time_ms = 0;       // event time: the match's last event, the late event, the watermark
  std::string_view payload;  // without a line terminator
  uint64_t id = 0;           // matches and timeouts: the match id (as in the payload); else 0
};

class RecordBatch {
 public:
  // Starts a record: append its payload to the returned string, then call
  // End(). `name` must stay valid while the batch is read (pattern and
  // stream names of the running pipeline are).
  std::string* Begin(RecordKind kind, std::string_view key, int64_t time_ms,
                     std::string_view name) {
    meta_.push_back(Meta{kind, static_cast<uint32_t>(keys_.size()),
                         static_cast<uint32_t>(key.size()), name, time_ms, text_.size(), 0, 0});
    keys_.append(key);
    return &text_;
  }
  // Ends the record; `id`: a match's id (0: none).
  void End(uint64_t id = 0) {
    Meta& m = meta_.back();
    m.size = text_.size() - m.begin;
    m.id = id;
    text_.push_back('\n');
  }
  size_t size() const { return meta_.size(); }
  bool empty() const { return meta_.empty(); }
  Record operator[](size_t i) const {
    const Meta& m = meta_[i];
    return Record{m.kind,    std::string_view(keys_).substr(m.key_begin, m.key_size), m.name,
                  m.time_ms, std::string_view(text_).substr(m.begin, m.size),         m.id};
  }
  // Every payload followed by '\n', in order (what a line sink writes).
  std::string_view lines() const { return text_; }
  void clear() {
    meta_.clear();
    text_.clear();
    keys_.clear();
  }

 private:
  struct Meta {
    RecordKind kind;
    uint32_t key_begin, key_size;
    std::string_view name;
    int64_t time_ms;
    size_t begin, size;
    uint64_t id;
  };
  std::vector<Meta> meta_;
  std::string text_;
  std::string keys_;
};

inline std::string_view RecordKindName(RecordKind kind) {
  switch (kind) {
    case RecordKind::kMatch:
      return "match";
    case RecordKind::kTimeout:
      return "timeout";
    case RecordKind::kLate:
      return "late";
    case RecordKind::kDeadLetter:
      return "dead_letter";
    case RecordKind::kWatermark:
      return "watermark";
  }
  return "?";
}

}  // namespace cepheus::io
