#include "io/kafka/kafka.h"

#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

namespace cepheus::io::kafka {
namespace {

// librdkafka's log and error events, in our log.
class LogEvents final : public RdKafka::EventCb {
 public:
  void event_cb(RdKafka::Event& e) override {
    switch (e.type()) {
      case RdKafka::Event::EVENT_LOG: {
        const int sev = e.severity();
        const auto level = sev <= RdKafka::Event::EVENT_SEVERITY_ERROR     ? spdlog::level::err
                           : sev <= RdKafka::Event::EVENT_SEVERITY_WARNING ? spdlog::level::warn
                           : sev <= RdKafka::Event::EVENT_SEVERITY_INFO    ? spdlog::level::info
                                                                           : spdlog::level::debug;
        spdlog::log(level, "kafka: {} {}", e.fac(), e.str());
        break;
      }
      case RdKafka::Event::EVENT_ERROR:
        // Connection problems are retried by librdkafka: a warning, unless fatal.
        if (e.fatal())
          spdlog::error("kafka: fatal error: {}", e.str());
        else
          spdlog::warn("kafka: {} ({})", e.str(), RdKafka::err2str(e.err()));
        break;
      default:
        break;
    }
  }
};

LogEvents& Logger() {
  static LogEvents logger;
  return logger;
}

Result<std::unique_ptr<RdKafka::Conf>> MakeConf(const Properties& props) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  for (const auto& [name, value] : props)
    if (conf->set(name, value, err) != RdKafka::Conf::CONF_OK)
      return Status::InvalidArgument("kafka property '" + name + "': " + err);
  if (conf->set("event_cb", static_cast<RdKafka::EventCb*>(&Logger()), err) !=
      RdKafka::Conf::CONF_OK)
    return Status::Internal("kafka: " + err);
  return conf;
}

Status Error(std::string_view what, RdKafka::ErrorCode code) {
  const std::string msg =
      std::string("kafka: ") + std::string(what) + ": " + RdKafka::err2str(code);
  switch (code) {
    case RdKafka::ERR__UNKNOWN_TOPIC:
    case RdKafka::ERR_UNKNOWN_TOPIC_OR_PART:
    case RdKafka::ERR__UNKNOWN_PARTITION:
      return Status::NotFound(msg);
    case RdKafka::ERR__INVALID_ARG:
      return Status::InvalidArgument(msg);
    default:
      return Status::IoError(msg);
  }
}

// Owns a list of librdkafka TopicPartition objects.
struct PartitionList {
  std::vector<RdKafka::TopicPartition*> v;
  explicit PartitionList(const std::vector<TopicPartition>& tps) {
    for (const auto& tp : tps)
      v.push_back(RdKafka::TopicPartition::create(tp.topic, tp.partition, tp.offset));
  }
  ~PartitionList() { RdKafka::TopicPartition::destroy(v); }
  PartitionList(const PartitionList&) = delete;
  PartitionList& operator=(const PartitionList&) = delete;
  // Copies the offsets back; the first partition error is returned.
  Status CopyOffsets(std::vector<TopicPartition>* tps, std::string_view what) const {
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i]->err() != RdKafka::ERR_NO_ERROR)
        return Error(
            std::string(what) + " " + v[i]->topic() + "[" + std::to_string(v[i]->partition()) + "]",
            v[i]->err());
      (*tps)[i].offset = v[i]->offset();
    }
    return Status::Ok();
  }
};

// The sorted partition numbers of `topic`, from a metadata request (which
// also leaves them in the handle's metadata cache).
Result<std::vector<int32_t>> TopicPartitions(RdKafka::Handle* h, const std::string& topic,
                                             int timeout_ms) {
  std::string err;
  std::unique_ptr<RdKafka::Topic> t(RdKafka::Topic::create(h, topic, nullptr, err));
  if (!t) return Status::InvalidArgument("kafka topic '" + topic + "': " + err);
  RdKafka::Metadata* md_raw = nullptr;
  const RdKafka::ErrorCode code = h->metadata(false, t.get(), &md_raw, timeout_ms);
  std::unique_ptr<RdKafka::Metadata> md(md_raw);
  if (code != RdKafka::ERR_NO_ERROR) return Error("metadata of topic '" + topic + "'", code);
  for (const RdKafka::TopicMetadata* tm : *md->topics()) {
    if (tm->topic() != topic) continue;
    if (tm->err() != RdKafka::ERR_NO_ERROR) return Error("topic '" + topic + "'", tm->err());
    std::vector<int32_t> out;
    for (const RdKafka::PartitionMetadata* pm : *tm->partitions()) out.push_back(pm->id());
    std::sort(out.begin(), out.end());
    if (out.empty()) return Status::NotFound("kafka: topic '" + topic + "' has no partitions");
    return out;
  }
  return Status::NotFound("kafka: topic '" + topic + "' does not exist");
}

class ConsumerImpl final : public Consumer {
 public:
  explicit ConsumerImpl(std::unique_ptr<RdKafka::KafkaConsumer> c) : c_(std::move(c)) {}
  ~ConsumerImpl() override {
    if (queue_) {
      rd_kafka_queue_io_event_enable(queue_, -1, nullptr, 0);
      rd_kafka_queue_destroy(queue_);
    }
    for (int fd : wake_)
      if (fd >= 0) ::close(fd);
    c_->close();
  }

  Result<std::vector<int32_t>> Partitions(const std::string& topic, int timeout_ms) override {
    return TopicPartitions(c_.get(), topic, timeout_ms);
  }

  Result<std::pair<int64_t, int64_t>> Watermarks(const std::string& topic, int32_t partition,
                                                 int timeout_ms) override {
    int64_t low = 0, high = 0;
    const RdKafka::ErrorCode code =
        c_->query_watermark_offsets(topic, partition, &low, &high, timeout_ms);
    if (code != RdKafka::ERR_NO_ERROR)
      return Error("offsets of " + topic + "[" + std::to_string(partition) + "]", code);
    return std::make_pair(low, high);
  }

  int64_t CachedHighWatermark(const std::string& topic, int32_t partition) override {
    int64_t low = -1, high = -1;
    if (c_->get_watermark_offsets(topic, partition, &low, &high) != RdKafka::ERR_NO_ERROR)
      return -1;
    return high;
  }

  Status OffsetsForTimes(std::vector<TopicPartition>* tps, int timeout_ms) override {
    PartitionList list(*tps);
    const RdKafka::ErrorCode code = c_->offsetsForTimes(list.v, timeout_ms);
    if (code != RdKafka::ERR_NO_ERROR) return Error("offsets for times", code);
    return list.CopyOffsets(tps, "offset for time of");
  }

  Status Assign(const std::vector<TopicPartition>& tps) override {
    PartitionList list(tps);
    const RdKafka::ErrorCode code = c_->assign(list.v);
    return code == RdKafka::ERR_NO_ERROR ? Status::Ok() : Error("assign", code);
  }

  // Messages come from the consumer queue in batches through librdkafka's C
  // API: one call per batch instead of one per message, and no C++ message
  // object per message.
  Result<size_t> Poll(size_t max, int timeout_ms,
                      const std::function<void(const Message&)>& fn) override {
    OpenQueue();
    // Emptied before consuming: a message that arrives after this consume
    // found the queue empty writes to it again.
    char drain[64];
    while (::read(wake_[0], drain, sizeof drain) > 0) {
    }
    batch_.resize(std::max<size_t>(1, std::min<size_t>(max, 4096)));
    const ssize_t got =
        rd_kafka_consume_batch_queue(queue_, timeout_ms, batch_.data(), batch_.size());
    if (got < 0) return Error("consume", static_cast<RdKafka::ErrorCode>(rd_kafka_last_error()));
    size_t n = 0;
    Status failure;
    for (ssize_t i = 0; i < got; ++i) {
      rd_kafka_message_t* m = batch_[static_cast<size_t>(i)];
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (failure.ok()) {
          Deliver(m, fn);
          ++n;
        }
      } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (m->err == RD_KAFKA_RESP_ERR__FATAL && failure.ok())
          failure = Error("consume", static_cast<RdKafka::ErrorCode>(m->err));
        else  // transient (a broker down, a leader moving): librdkafka retries
          spdlog::warn("kafka: consume: {}", rd_kafka_message_errstr(m));
      }
      rd_kafka_message_destroy(m);
    }
    if (!failure.ok()) return failure;
    return n;
  }

  void ReadHeaders(bool on) override { read_headers_ = on; }

  int WakeFd() override {
    OpenQueue();
    return wake_[0];
  }

  Status Commit(const std::vector<TopicPartition>& tps) override {
    PartitionList list(tps);
    const RdKafka::ErrorCode code = c_->commitSync(list.v);
    if (code != RdKafka::ERR_NO_ERROR) return Error("commit", code);
    std::vector<TopicPartition> copy = tps;
    return list.CopyOffsets(&copy, "commit of");
  }

  Status Committed(std::vector<TopicPartition>* tps, int timeout_ms) override {
    PartitionList list(*tps);
    const RdKafka::ErrorCode code = c_->committed(list.v, timeout_ms);
    if (code != RdKafka::ERR_NO_ERROR) return Error("committed offsets", code);
    return list.CopyOffsets(tps, "committed offset of");
  }

 private:
  void Deliver(const rd_kafka_message_t* m, const std::function<void(const Message&)>& fn) {
    Message out;
    out.topic = rd_kafka_topic_name(m->rkt);
    out.partition = m->partition;
    out.offset = m->offset;
    if (m->key) out.key = std::string_view(static_cast<const char*>(m->key), m->key_len);
    if (m->payload) out.payload = std::string_view(static_cast<const char*>(m->payload), m->len);
    rd_kafka_timestamp_type_t type;
    const int64_t ts = rd_kafka_message_timestamp(m, &type);
    out.timestamp_ms = type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts;
    if (read_headers_) {
      headers_.clear();
      rd_kafka_headers_t* hdrs = nullptr;
      if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name;
        const void* value;
        size_t size;
        for (size_t i = 0;
             rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
             ++i)
          headers_.push_back(Header{name, std::string(static_cast<const char*>(value), size)});
      }
      out.headers = &headers_;
    }
    fn(out);
  }

  std::unique_ptr<RdKafka::KafkaConsumer> c_;
  // The consumer queue, and a pipe librdkafka writes to when it turns
  // non-empty.
  void OpenQueue() {
    if (queue_) return;
    queue_ = rd_kafka_queue_get_consumer(c_->c_ptr());
    if (::pipe2(wake_, O_NONBLOCK | O_CLOEXEC) == 0) {
      static const char kByte = 1;
      rd_kafka_queue_io_event_enable(queue_, wake_[1], &kByte, 1);
    } else {
      wake_[0] = wake_[1] = -1;
    }
  }
  rd_kafka_queue_t* queue_ = nullptr;  // the consumer queue (C API)
  int wake_[2] = {-1, -1};
  std::vector<rd_kafka_message_t*> batch_;  // of the last Poll
  bool read_headers_ = false;
  std::vector<Header> headers_;  // of the message being handed out
};

// Records the first failed delivery since it was last taken.
class Deliveries final : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& m) override {
    if (m.err() == RdKafka::ERR_NO_ERROR) return;
    std::lock_guard<std::mutex> l(mu_);
    if (first_.ok())
      first_ = Error("delivery to " + m.topic_name() + "[" + std::to_string(m.partition()) + "]",
                     m.err());
  }
  Status Take() {
    std::lock_guard<std::mutex> l(mu_);
    Status s = first_;
    first_ = Status::Ok();
    return s;
  }

 private:
  std::mutex mu_;
  Status first_;
};

// Takes over `e` (null: success).
TxnResult Txn(std::string_view what, rd_kafka_error_t* e) {
  if (!e) return {};
  TxnResult r;
  r.kind = rd_kafka_error_is_fatal(e)             ? TxnResult::Kind::kFatal
           : rd_kafka_error_txn_requires_abort(e) ? TxnResult::Kind::kAbortable
           : rd_kafka_error_is_retriable(e)       ? TxnResult::Kind::kRetriable
                                            // Timeouts and state errors: try again
                                            // from a fresh transaction.
                                            : TxnResult::Kind::kAbortable;
  r.message = "kafka: " + std::string(what) + ": " + rd_kafka_error_string(e);
  rd_kafka_error_destroy(e);
  return r;
}

class ProducerImpl final : public Producer {
 public:
  ProducerImpl() = default;
  Status Init(const Properties& props) {
    transactional_ = props.count("transactional.id") > 0;
    auto conf = MakeConf(props);
    if (!conf.ok()) return conf.status();
    std::string err;
    if ((*conf)->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(&deliveries_), err) !=
        RdKafka::Conf::CONF_OK)
      return Status::Internal("kafka: " + err);
    p_.reset(RdKafka::Producer::create(conf->get(), err));
    if (!p_) return Status::InvalidArgument("kafka producer: " + err);
    return Status::Ok();
  }
  ~ProducerImpl() override {
    // Unflushed messages of a transactional producer belong to a transaction
    // that was not committed: waiting for them is pointless.
    if (p_ && !transactional_) p_->flush(5000);
  }

  Status Produce(const std::string& topic, int32_t partition, std::string_view key,
                 std::string_view payload, int64_t timestamp_ms,
                 const std::vector<Header>& headers) override {
    while (true) {
      RdKafka::Headers* h = nullptr;
      if (!headers.empty()) {
        h = RdKafka::Headers::create();
        for (const Header& hd : headers) h->add(hd.name, hd.value.data(), hd.value.size());
      }
      const RdKafka::ErrorCode code = p_->produce(
          topic, partition < 0 ? RdKafka::Topic::PARTITION_UA : partition,
          RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(payload.data()), payload.size(),
          key.data(), key.size(), timestamp_ms < 0 ? 0 : timestamp_ms, h, nullptr);
      if (code == RdKafka::ERR_NO_ERROR) {
        p_->poll(0);
        return Status::Ok();
      }
      delete h;  // not taken over on failure
      if (code != RdKafka::ERR__QUEUE_FULL) return Error("produce to " + topic, code);
      p_->poll(100);  // the local queue is full: wait for deliveries
    }
  }

  Result<std::vector<int32_t>> Partitions(const std::string& topic, int timeout_ms) override {
    return TopicPartitions(p_.get(), topic, timeout_ms);
  }

  Status Flush(int timeout_ms) override {
    const RdKafka::ErrorCode code = p_->flush(timeout_ms);
    if (code != RdKafka::ERR_NO_ERROR) return Error("flush", code);
    return deliveries_.Take();
  }

  TxnResult InitTransactions(int timeout_ms) override {
    return Txn("init_transactions", rd_kafka_init_transactions(p_->c_ptr(), timeout_ms));
  }
  TxnResult BeginTransaction() override {
    return Txn("begin_transaction", rd_kafka_begin_transaction(p_->c_ptr()));
  }
  TxnResult SendOffsetsToTransaction(const std::string& group,
                                     const std::vector<TopicPartition>& offsets,
                                     int timeout_ms) override {
    rd_kafka_topic_partition_list_t* list =
        rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size()));
    for (const TopicPartition& tp : offsets)
      rd_kafka_topic_partition_list_add(list, tp.topic.c_str(), tp.partition)->offset = tp.offset;
    rd_kafka_consumer_group_metadata_t* meta = rd_kafka_consumer_group_metadata_new(group.c_str());
    TxnResult r = Txn("send_offsets_to_transaction",
                      rd_kafka_send_offsets_to_transaction(p_->c_ptr(), list, meta, timeout_ms));
    rd_kafka_consumer_group_metadata_destroy(meta);
    rd_kafka_topic_partition_list_destroy(list);
    return r;
  }
  TxnResult CommitTransaction(int timeout_ms) override {
    TxnResult r = Txn("commit_transaction", rd_kafka_commit_transaction(p_->c_ptr(), timeout_ms));
    // A failed delivery makes the transaction abortable; its report is
    // part of this outcome, not of a later Flush.
    Status d = deliveries_.Take();
    if (r.ok() && !d.ok()) r = {TxnResult::Kind::kAbortable, d.message()};
    return r;
  }
  TxnResult AbortTransaction(int timeout_ms) override {
    TxnResult r = Txn("abort_transaction", rd_kafka_abort_transaction(p_->c_ptr(), timeout_ms));
    (void)deliveries_.Take();  // failures of aborted messages do not matter
    return r;
  }

 private:
  Deliveries deliveries_;
  bool transactional_ = false;
  std::unique_ptr<RdKafka::Producer> p_;
};

}  // namespace

bool IsSecretProperty(std::string_view name) {
  for (std::string_view marker : {"password", "secret", "token", "sasl.jaas", "oauthbearer.config",
                                  "ssl.key.pem", "ssl_key", "private"})
    if (name.find(marker) != std::string_view::npos) return true;
  return false;
}

std::string DescribeProperties(const Properties& props) {
  std::string out;
  for (const auto& [name, value] : props) {
    if (!out.empty()) out += ", ";
    out += name + "=" + (IsSecretProperty(name) ? std::string("***") : value);
  }
  return out;
}

Result<std::unique_ptr<Consumer>> Consumer::Create(const Properties& props,
                                                   const std::string& group) {
  Properties p = props;
  // Positions live in checkpoints: nothing is committed behind our back,
  // and a partition's end is not an error.
  p["enable.auto.commit"] = "false";
  p["enable.auto.offset.store"] = "false";
  p.emplace("enable.partition.eof", "false");
  p["group.id"] = group.empty() ? "cepheus-unused" : group;
  auto conf = MakeConf(p);
  if (!conf.ok()) return conf.status();
  std::string err;
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf->get(), err));
  if (!c) return Status::InvalidArgument("kafka consumer: " + err);
  return std::unique_ptr<Consumer>(new ConsumerImpl(std::move(c)));
}

Result<std::unique_ptr<Producer>> Producer::Create(const Properties& props) {
  auto p = std::make_unique<ProducerImpl>();
  CEPHEUS_RETURN_IF_ERROR(p->Init(props));
  return std::unique_ptr<Producer>(std::move(p));
}

}  // namespace cepheus::io::kafka
