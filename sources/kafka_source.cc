#include "sources/kafka_source.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <climits>

#include "common/json.h"
#include "common/varint.h"
#include "io/kafka/kafka.h"
#include "sources/file_source.h"

namespace cepheus::sources {
namespace {

using io::kafka::TopicPartition;

constexpr int kTimeoutMs = 10000;  // metadata and offset lookups
constexpr uint64_t kPositionVersion = 1;
// Zero bytes after a batch's last record: JSON parsers read ahead.
constexpr size_t kPadding = 64;

class KafkaSource final : public io::Source {
 public:
  explicit KafkaSource(io::SourceSpec spec) : spec_(std::move(spec)) {}

  Status Open() override {
    auto consumer = io::kafka::Consumer::Create(spec_.kafka.properties, spec_.kafka.group);
    if (!consumer.ok()) return consumer.status().WithPrefix("stream " + spec_.stream + ": ");
    consumer_ = std::move(consumer.value());
    wake_fd_ = consumer_->WakeFd();
    for (const std::string& topic : spec_.kafka.topics) {
      auto partitions = consumer_->Partitions(topic, kTimeoutMs);
      if (!partitions.ok()) return partitions.status().WithPrefix("stream " + spec_.stream + ": ");
      for (int32_t p : *partitions) {
        Part part;
        part.topic = topic;
        part.partition = p;
        part.origin = "kafka:" + topic + "/" + std::to_string(p);
        parts_.push_back(std::move(part));
      }
    }
    CEPHEUS_RETURN_IF_ERROR(FindStartOffsets());
    CEPHEUS_RETURN_IF_ERROR(FindEndOffsets());
    for (size_t i = 0; i < parts_.size(); ++i)
      // A topic partition is unbounded, also when this run stops at its end.
      changes_.push_back(
          io::AssignmentChange{static_cast<int>(i), true, !stops_early() && bounded()});
    spdlog::info("stream {}: kafka source over {} partitions of {} ({})", spec_.stream,
                 parts_.size(), fmt::join(spec_.kafka.topics, ", "),
                 io::kafka::DescribeProperties(spec_.kafka.properties));
    return Status::Ok();
  }

  Result<Polled> Poll(size_t max_records, io::SourceBatch* batch) override {
    batch->Clear();
    if (!assigned_) CEPHEUS_RETURN_IF_ERROR(AssignAll());
    // A partition that reached its end offset, with nothing left staged.
    for (size_t i = 0; i < parts_.size(); ++i) {
      Part& p = parts_[i];
      if (p.ended && !p.end_reported && p.staged.empty()) {
        p.end_reported = true;
        batch->partition = static_cast<int>(i);
        return Polled::kEnd;
      }
    }
    if (!AnyStaged()) CEPHEUS_RETURN_IF_ERROR(Fill(std::max<size_t>(1, max_records)));
    for (size_t n = 0; n < parts_.size(); ++n) {
      const size_t i = (next_part_ + n) % parts_.size();
      if (parts_[i].staged.empty()) continue;
      next_part_ = i + 1;
      Deliver(static_cast<int>(i), batch);
      return Polled::kMore;
    }
    return Polled::kNothing;
  }

  void TakeAssignmentChanges(std::vector<io::AssignmentChange>* out) override {
    out->insert(out->end(), changes_.begin(), changes_.end());
    changes_.clear();
  }
  bool stops_early() const override { return spec_.kafka.stop_at_end && !spec_.kafka.batch; }
  bool ended() const override {
    return bounded() &&
           std::all_of(parts_.begin(), parts_.end(), [](const Part& p) { return p.end_reported; });
  }
  std::string_view origin(int partition) const override {
    return parts_[static_cast<size_t>(partition)].origin;
  }
  bool has_buffered() const override { return AnyStaged(); }
  // A quiet reader wakes as soon as messages arrive (not after a sleep).
  int wait_fd() const override { return wake_fd_; }

  void SavePosition(std::string* out) const override {
    PutVarint(out, kPositionVersion);
    PutVarint(out, parts_.size());
    saved_.clear();
    for (const Part& p : parts_) {
      PutVarint(out, p.topic.size());
      out->append(p.topic);
      PutVarint(out, static_cast<uint64_t>(p.partition));
      PutSigned(out, p.next);
      saved_.push_back(TopicPartition{p.topic, p.partition, p.next});
    }
  }

  Status RestorePosition(std::string_view* in) override {
    uint64_t version, n;
    if (!GetVarint(in, &version) || version != kPositionVersion || !GetVarint(in, &n))
      return Status::Corruption("stream " + spec_.stream + ": damaged kafka position");
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t len, partition;
      int64_t next;
      if (!GetVarint(in, &len) || len > in->size())
        return Status::Corruption("stream " + spec_.stream + ": damaged kafka position");
      const std::string topic(in->substr(0, len));
      in->remove_prefix(len);
      if (!GetVarint(in, &partition) || !GetSigned(in, &next))
        return Status::Corruption("stream " + spec_.stream + ": damaged kafka position");
      auto it = std::find_if(parts_.begin(), parts_.end(), [&](const Part& p) {
        return p.topic == topic && p.partition == static_cast<int32_t>(partition);
      });
      if (it == parts_.end()) {
        spdlog::warn("stream {}: the checkpoint has a position in {}/{}, which is no longer read",
                     spec_.stream, topic, partition);
        continue;
      }
      it->next = next;
      it->ended = it->next >= it->end;
    }
    return Status::Ok();
  }

  Status OnCheckpointComplete(uint64_t id) override {
    if (spec_.kafka.group.empty() || saved_.empty()) return Status::Ok();
    // Only for lag tools: the checkpoint holds the positions that count.
    Status s = consumer_->Commit(saved_);
    if (!s.ok())
      spdlog::warn("stream {}: committing the offsets of checkpoint {} to group {} failed: {}",
                   spec_.stream, id, spec_.kafka.group, s.message());
    return Status::Ok();
  }

  uint64_t bytes_read() const override { return bytes_read_; }
  void Lags(std::vector<io::PartitionLag>* out) const override {
    for (const Part& p : parts_) {
      // The newest high watermark a fetch brought, else the one at opening.
      const int64_t high = std::max(p.high, consumer_->CachedHighWatermark(p.topic, p.partition));
      out->push_back(io::PartitionLag{p.topic, p.partition, std::max<int64_t>(0, high - p.next)});
    }
  }

 private:
  struct Staged {
    int64_t offset;
    size_t begin, size;  // in Part::buf
  };
  struct Part {
    std::string topic;
    int32_t partition = 0;
    std::string origin;
    int64_t next = 0;           // the next offset to deliver
    int64_t end = INT64_MAX;    // bounded: the offset where it ends
    int64_t low = 0, high = 0;  // the partition's offsets when the source opened
    bool ended = false, end_reported = false;
    std::string buf;  // staged payloads, each followed by '\n'
    std::vector<Staged> staged;
  };

  bool bounded() const { return spec_.kafka.stop_at_end || spec_.kafka.batch; }
  bool AnyStaged() const {
    return std::any_of(parts_.begin(), parts_.end(),
                       [](const Part& p) { return !p.staged.empty(); });
  }

  std::vector<TopicPartition> AllPartitions(int64_t offset) const {
    std::vector<TopicPartition> tps;
    for (const Part& p : parts_) tps.push_back(TopicPartition{p.topic, p.partition, offset});
    return tps;
  }

  // Offsets for a time per partition (-1 where the broker has none).
  Result<std::vector<int64_t>> OffsetsAt(int64_t time_ms) {
    std::vector<TopicPartition> tps = AllPartitions(time_ms);
    CEPHEUS_RETURN_IF_ERROR(consumer_->OffsetsForTimes(&tps, kTimeoutMs));
    std::vector<int64_t> out;
    for (const TopicPartition& tp : tps) out.push_back(tp.offset);
    return out;
  }

  // Without a checkpoint, reading starts at `start` (a batch job: at
  // `from_ms`): as concrete offsets, so that the first checkpoint's positions
  // mean the same on every restart.
  Status FindStartOffsets() {
    for (Part& p : parts_) {
      auto wm = consumer_->Watermarks(p.topic, p.partition, kTimeoutMs);
      if (!wm.ok()) return wm.status();
      p.low = wm->first;
      p.high = wm->second;
    }
    const io::KafkaSourceSpec& k = spec_.kafka;
    const bool by_time = k.batch ? k.from_ms >= 0 : k.start.kind == io::KafkaStart::Kind::kTime;
    std::vector<int64_t> at;
    if (by_time) {
      auto got = OffsetsAt(k.batch ? k.from_ms : k.start.time_ms);
      if (!got.ok()) return got.status();
      at = std::move(got.value());
    }
    for (size_t i = 0; i < parts_.size(); ++i) {
      Part& p = parts_[i];
      if (by_time)
        // No answer: a live start has nothing that late (the end); a batch
        // job reads the whole partition and filters by event time.
        p.next = at[i] >= 0 ? at[i] : (k.batch ? p.low : p.high);
      else
        p.next = k.batch || k.start.kind == io::KafkaStart::Kind::kEarliest ? p.low : p.high;
    }
    return Status::Ok();
  }

  Status FindEndOffsets() {
    if (!bounded()) return Status::Ok();
    const io::KafkaSourceSpec& k = spec_.kafka;
    std::vector<int64_t> at;
    if (k.batch && k.until_ms >= 0) {
      auto got = OffsetsAt(k.until_ms);
      if (!got.ok()) return got.status();
      at = std::move(got.value());
    }
    for (size_t i = 0; i < parts_.size(); ++i) {
      Part& p = parts_[i];
      p.end = p.high;
      if (!at.empty() && at[i] >= 0) p.end = std::min(p.end, at[i]);
      p.ended = p.next >= p.end;
    }
    return Status::Ok();
  }

  Status AssignAll() {
    std::vector<TopicPartition> tps;
    for (const Part& p : parts_)
      if (!p.ended) tps.push_back(TopicPartition{p.topic, p.partition, p.next});
    CEPHEUS_RETURN_IF_ERROR(consumer_->Assign(tps));
    assigned_ = true;
    return Status::Ok();
  }

  // Consumes up to `max` messages into the partitions' stages.
  Status Fill(size_t max) {
    auto got = consumer_->Poll(max, 0, [&](const io::kafka::Message& m) {
      Part* p = Find(m.topic, m.partition);
      if (!p || p->ended || m.offset < p->next) return;  // not ours, or already past it
      if (m.offset >= p->end) {
        p->ended = true;
        return;
      }
      const size_t begin = p->buf.size();
      p->buf.append(m.payload);
      if (spec_.kafka.metadata.any()) AddMetadata(m, &p->buf, begin);
      p->staged.push_back(Staged{m.offset, begin, p->buf.size() - begin});
      p->buf.push_back('\n');
      if (m.offset + 1 >= p->end) p->ended = true;
    });
    return got.status();
  }

  // Adds the configured metadata fields to the JSON object at buf[begin..):
  // before its closing brace, so that they come last and win over payload
  // fields of the same name. A payload that is not an object is left as it
  // is (it becomes a dead letter with its own reason).
  void AddMetadata(const io::kafka::Message& m, std::string* buf, size_t begin) const {
    size_t end = buf->size();
    while (end > begin && std::isspace(static_cast<unsigned char>((*buf)[end - 1]))) --end;
    size_t open = begin;
    while (open < end && std::isspace(static_cast<unsigned char>((*buf)[open]))) ++open;
    if (end - open < 2 || (*buf)[open] != '{' || (*buf)[end - 1] != '}') return;
    std::string fields;
    auto add = [&](const std::string& name, auto&& write) {
      if (name.empty()) return;
      fields.push_back(',');
      AppendJsonString(fields, name);
      fields.push_back(':');
      write();
    };
    const io::KafkaSourceSpec::MetadataFields& f = spec_.kafka.metadata;
    add(f.key, [&] { AppendJsonString(fields, m.key); });
    add(f.timestamp, [&] {
      if (m.timestamp_ms >= 0)
        fields += std::to_string(m.timestamp_ms);
      else
        fields += "null";
    });
    add(f.topic, [&] { AppendJsonString(fields, m.topic); });
    add(f.partition, [&] { fields += std::to_string(m.partition); });
    add(f.offset, [&] { fields += std::to_string(m.offset); });
    // An empty object gets no leading comma.
    size_t inner = open + 1;
    while (inner < end - 1 && std::isspace(static_cast<unsigned char>((*buf)[inner]))) ++inner;
    if (inner == end - 1) fields.erase(0, 1);
    buf->insert(end - 1, fields);
    buf->resize(end + fields.size());  // trailing whitespace after the object dropped
  }

  Part* Find(std::string_view topic, int32_t partition) {
    for (Part& p : parts_)
      if (p.partition == partition && p.topic == topic) return &p;
    return nullptr;
  }

  // Hands out everything staged for partition `i`, in one buffer.
  void Deliver(int i, io::SourceBatch* batch) {
    Part& p = parts_[static_cast<size_t>(i)];
    out_.swap(p.buf);
    p.buf.clear();
    out_.append(kPadding, '\0');
    batch->partition = i;
    for (const Staged& s : p.staged) {
      io::SourceRecord r;
      r.payload = std::string_view(out_.data() + s.begin, s.size);
      r.offset = static_cast<uint64_t>(s.offset);
      batch->records.push_back(r);
      bytes_read_ += s.size;
    }
    p.next = p.staged.back().offset + 1;
    p.staged.clear();
    batch->readable_after = kPadding + 1;  // the newline, then the padding
  }

  const io::SourceSpec spec_;
  std::unique_ptr<io::kafka::Consumer> consumer_;
  std::vector<Part> parts_;
  std::vector<io::AssignmentChange> changes_;
  bool assigned_ = false;
  int wake_fd_ = -1;
  size_t next_part_ = 0;
  std::string out_;  // the delivered batch (valid until the next Poll)
  uint64_t bytes_read_ = 0;
  mutable std::vector<TopicPartition> saved_;  // positions of the last SavePosition
};

class AllSourceProvider final : public io::SourceProvider {
 public:
  Result<std::unique_ptr<io::Source>> Open(const io::SourceSpec& spec) override {
    if (spec.kind == io::SourceKind::kKafka) return MakeKafkaSource(spec);
    return FileSources().Open(spec);
  }
  Result<std::vector<std::unique_ptr<io::Source>>> OpenShares(const io::SourceSpec& spec,
                                                              int shares,
                                                              uint64_t split_above) override {
    if (spec.kind == io::SourceKind::kKafka) {
      // One reader: positions of Kafka records are not split-independent yet.
      std::vector<std::unique_ptr<io::Source>> out;
      auto source = MakeKafkaSource(spec);
      if (!source.ok()) return source.status();
      out.push_back(std::move(source.value()));
      return out;
    }
    return FileSources().OpenShares(spec, shares, split_above);
  }
};

}  // namespace

Result<std::unique_ptr<io::Source>> MakeKafkaSource(const io::SourceSpec& spec) {
  if (spec.kind != io::SourceKind::kKafka)
    return Status::InvalidArgument("not a kafka source: stream " + spec.stream);
  if (spec.kafka.topics.empty())
    return Status::InvalidArgument("stream " + spec.stream + ": a kafka source needs a topic");
  if (spec.framing != io::Framing::kLines)
    return Status::InvalidArgument("stream " + spec.stream +
                                   ": a kafka source reads one JSON record per message (format: "
                                   "jsonl)");
  return std::unique_ptr<io::Source>(new KafkaSource(spec));
}

io::SourceProvider& AllSources() {
  static AllSourceProvider provider;
  return provider;
}

}  // namespace cepheus::sources
