// The Kafka output: one message per record, to one topic. Value: the JSON
// payload; key: the record's partition key (so one key's alerts stay in
// order in one partition); timestamp: the record's event time; headers:
// "cepheus.kind" (match, timeout, late, dead_letter, watermark),
// "cepheus.name" (pattern or stream) and, for matches, "cepheus.id" (the
// match id, as in the payload).
//
// Delivery `at_least_once`: an idempotent producer (no duplicates from its
// own retries); at every checkpoint everything sent before it is flushed
// and acknowledged by the brokers before the checkpoint may complete, so a
// restart from it loses nothing and repeats at most what came after it.
//
// Delivery `exactly_once` (in a checkpointed run): one transaction per
// checkpoint period, committed when the checkpoint completes, the period's
// records spooled under the state directory so that a crash between the
// checkpoint and the commit is repaired at the next start
// (docs/architecture.md "Kafka output: delivery guarantees").
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "io/sink.h"

namespace cepheus::io::kafka {
class Producer;
struct Header;
}  // namespace cepheus::io::kafka

namespace cepheus::sinks {

// What the output needs from the pipeline beyond its own settings.
struct KafkaOutputContext {
  std::string name;       // the output (matches, late, dead_letter, watermarks)
  std::string spool_dir;  // empty: no checkpoints, so no transactions either
  // Used unless the properties name one (then "<theirs>.<name>").
  std::string transactional_id;
  // Testing: record committed transactions in this file and tag messages
  // with their transaction (librdkafka's mock cluster does not filter
  // aborted ones). Empty in production.
  std::string test_ledger;
};

Result<std::unique_ptr<io::Sink>> MakeKafkaSink(const io::KafkaSinkSpec& spec,
                                                const KafkaOutputContext& ctx);

// The headers of a record's message: cepheus.kind, cepheus.name and, for
// matches, cepheus.id.
void RecordHeaders(const io::Record& r, std::vector<io::kafka::Header>* out);

// Asks for the topic's partitions before the first message, which would
// otherwise wait for a metadata refresh (about a second); a failure is only
// logged (the cluster may be down for now: sends are retried).
void WarmUp(io::kafka::Producer& producer, const std::string& topic);

// The exactly-once output (kafka_txn_sink.cc); MakeKafkaSink picks it.
Result<std::unique_ptr<io::Sink>> MakeTransactionalKafkaSink(const io::KafkaSinkSpec& spec,
                                                             const KafkaOutputContext& ctx);

}  // namespace cepheus::sinks
