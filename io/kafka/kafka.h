// io/kafka: the one librdkafka wrapper, shared by the Kafka source
// (sources/) and the Kafka sink (sinks/). RAII handles, librdkafka settings
// passed through, its log routed to ours, its errors turned into Status. No
// librdkafka type appears in this header.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace cepheus::io::kafka {

// librdkafka settings (bootstrap.servers, security.protocol, sasl.*, ...),
// passed through as they are.
using Properties = std::map<std::string, std::string>;

// Whether a setting's value is a secret (passwords, keys, tokens): never logged.
bool IsSecretProperty(std::string_view name);
// The settings for a log line: secrets replaced by "***".
std::string DescribeProperties(const Properties& props);

// Special offsets (librdkafka's values).
constexpr int64_t kOffsetBeginning = -2;
constexpr int64_t kOffsetEnd = -1;

struct TopicPartition {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = kOffsetBeginning;  // or a timestamp for OffsetsForTimes
};

struct Header {
  std::string name, value;
};

// A consumed message. Views valid during the callback only.
struct Message {
  std::string_view topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string_view key;
  std::string_view payload;
  int64_t timestamp_ms = -1;                     // -1: none
  const std::vector<Header>* headers = nullptr;  // only after Consumer::ReadHeaders(true)
};

// A consumer with manual assignment (no group rebalancing): the caller
// decides what it reads and from where. Offsets are committed to `group`
// only when asked. Single-threaded.
class Consumer {
 public:
  // `group` may be empty: nothing can be committed then.
  static Result<std::unique_ptr<Consumer>> Create(const Properties& props,
                                                  const std::string& group);
  virtual ~Consumer() = default;

  // The partition numbers of `topic` (an unknown topic is an error).
  virtual Result<std::vector<int32_t>> Partitions(const std::string& topic, int timeout_ms) = 0;
  // Low and high watermark offsets of a partition (the high one is the
  // offset the next message will get).
  virtual Result<std::pair<int64_t, int64_t>> Watermarks(const std::string& topic,
                                                         int32_t partition, int timeout_ms) = 0;
  // The high watermark offset last seen in a fetch response for the
  // partition, without asking the brokers (-1: none seen yet).
  virtual int64_t CachedHighWatermark(const std::string& topic, int32_t partition) = 0;
  // In: `offset` holds a timestamp (ms). Out: the earliest offset whose
  // message timestamp is >= it, or -1 if the broker has none (no such
  // message -- or no answer: librdkafka's mock cluster never has one).
  virtual Status OffsetsForTimes(std::vector<TopicPartition>* tps, int timeout_ms) = 0;
  // Reads these partitions from these offsets from now on (replaces any
  // earlier assignment).
  virtual Status Assign(const std::vector<TopicPartition>& tps) = 0;
  // Hands up to `max` messages to `fn`, waiting at most `timeout_ms` for the
  // first; returns how many. Transient errors are logged and retried by
  // librdkafka; a fatal one is returned.
  virtual Result<size_t> Poll(size_t max, int timeout_ms,
                              const std::function<void(const Message&)>& fn) = 0;
  // A descriptor that becomes readable when messages arrive after a Poll
  // that found none (for poll(2); -1 if unavailable).
  virtual int WakeFd() = 0;
  // Whether Poll hands out the messages' headers (off: cheaper).
  virtual void ReadHeaders(bool on) = 0;
  // Commits `tps` (offset: the next message to read) to the group.
  virtual Status Commit(const std::vector<TopicPartition>& tps) = 0;
  // The group's committed offsets for `tps` (-1001: none).
  virtual Status Committed(std::vector<TopicPartition>* tps, int timeout_ms) = 0;
};

// The outcome of a transactional call, classified as librdkafka does: a
// retriable error may succeed when the same call is made again; an
// abortable one leaves the transaction unusable (abort it, then begin a new
// one); a fatal one leaves the producer unusable (e.g. fenced by a newer
// producer with the same transactional.id).
struct TxnResult {
  enum class Kind { kOk, kRetriable, kAbortable, kFatal };
  Kind kind = Kind::kOk;
  std::string message;
  bool ok() const { return kind == Kind::kOk; }
  Status status() const { return ok() ? Status::Ok() : Status::IoError(message); }
};

// A producer. Messages are sent asynchronously; Flush waits for them and
// reports the first delivery failure since the last Flush. With
// `transactional.id` set, messages are produced inside transactions
// (librdkafka's transactional API; one open transaction at a time).
class Producer {
 public:
  static Result<std::unique_ptr<Producer>> Create(const Properties& props);
  virtual ~Producer() = default;
  // `partition` -1: chosen from the key by the partitioner.
  virtual Status Produce(const std::string& topic, int32_t partition, std::string_view key,
                         std::string_view payload, int64_t timestamp_ms,
                         const std::vector<Header>& headers = {}) = 0;
  virtual Status Flush(int timeout_ms) = 0;
  // The partition numbers of `topic` (an unknown topic is an error). Asking
  // before the first message spares it the wait for a metadata refresh.
  virtual Result<std::vector<int32_t>> Partitions(const std::string& topic, int timeout_ms) = 0;

  // Registers the transactional.id with the cluster: fences any earlier
  // producer with the same id and aborts its open transaction.
  virtual TxnResult InitTransactions(int timeout_ms) = 0;
  virtual TxnResult BeginTransaction() = 0;
  // Adds to the open transaction a commit of `offsets` for consumer group
  // `group`: the brokers apply it if and only if the transaction commits.
  virtual TxnResult SendOffsetsToTransaction(const std::string& group,
                                             const std::vector<TopicPartition>& offsets,
                                             int timeout_ms) = 0;
  // Flushes, then commits the open transaction.
  virtual TxnResult CommitTransaction(int timeout_ms) = 0;
  virtual TxnResult AbortTransaction(int timeout_ms) = 0;
};

}  // namespace cepheus::io::kafka
