// The Kafka source: every partition of a stream's topics, assigned
// manually (no group rebalancing), read from the offsets of the last
// checkpoint -- or from `start` without one. Offsets are the source's replay
// position in checkpoints (nothing is auto-committed); when a checkpoint
// completes they are also committed to the consumer group, so that lag tools
// see progress. Each message is one record; its partition is an input of
// the ingest with its own watermark.
#pragma once

#include <memory>

#include "common/status.h"
#include "io/source.h"

namespace cepheus::sources {

Result<std::unique_ptr<io::Source>> MakeKafkaSource(const io::SourceSpec& spec);

// Every kind of source this build knows: files (and stdin) and Kafka.
io::SourceProvider& AllSources();

}  // namespace cepheus::sources
