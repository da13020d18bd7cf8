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
// Exactly once (transactions) is the next step.
#pragma once

#include <memory>

#include "common/status.h"
#include "io/sink.h"

namespace cepheus::sinks {

Result<std::unique_ptr<io::Sink>> MakeKafkaSink(const io::KafkaSinkSpec& spec);

}  // namespace cepheus::sinks
