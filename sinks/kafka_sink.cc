#include "sinks/kafka_sink.h"

#include <spdlog/spdlog.h>

#include <mutex>
#include <vector>

#include "common/text.h"
#include "io/kafka/kafka.h"

namespace cepheus::sinks {
namespace {

// How long a flush waits for acknowledgements before it reports a failure.
// librdkafka retries sends meanwhile (a broker down, a leader moving); a
// message it gives up on (message.timeout.ms) fails the flush.
constexpr int kFlushTimeoutMs = 5 * 60 * 1000;

class KafkaSink final : public io::Sink {
 public:
  KafkaSink(io::KafkaSinkSpec spec, std::unique_ptr<io::kafka::Producer> producer)
      : spec_(std::move(spec)), producer_(std::move(producer)) {}

  Status Write(const io::RecordBatch& batch) override {
    std::lock_guard<std::mutex> l(mu_);
    for (size_t i = 0; i < batch.size(); ++i) {
      const io::Record r = batch[i];
      RecordHeaders(r, &headers_);
      CEPHEUS_RETURN_IF_ERROR(
          producer_->Produce(spec_.topic, -1, r.key, r.payload, r.time_ms, headers_));
    }
    return Status::Ok();
  }

  Status Flush() override {
    std::lock_guard<std::mutex> l(mu_);
    return producer_->Flush(kFlushTimeoutMs).WithPrefix("kafka output " + spec_.topic + ": ");
  }

  // Everything written before the barrier must be acknowledged before the
  // checkpoint completes (at least once): nothing before it is lost when a
  // restart resumes from it.
  Result<std::string> PrepareCommit(uint64_t) override {
    CEPHEUS_RETURN_IF_ERROR(Flush());
    return std::string();
  }

 private:
  const io::KafkaSinkSpec spec_;
  std::mutex mu_;
  std::unique_ptr<io::kafka::Producer> producer_;  // guarded by mu_
  std::vector<io::kafka::Header> headers_;         // guarded by mu_
};

}  // namespace

void RecordHeaders(const io::Record& r, std::vector<io::kafka::Header>* out) {
  out->clear();
  out->push_back({"cepheus.kind", std::string(io::RecordKindName(r.kind))});
  out->push_back({"cepheus.name", std::string(r.name)});
  if (r.id) {
    out->push_back({"cepheus.id", ""});
    AppendHex16(&out->back().value, r.id);
  }
}

void WarmUp(io::kafka::Producer& producer, const std::string& topic) {
  auto parts = producer.Partitions(topic, 2000);
  if (!parts.ok())
    spdlog::warn("kafka output {}: {} (sends are retried)", topic, parts.status().message());
}

Result<std::unique_ptr<io::Sink>> MakeKafkaSink(const io::KafkaSinkSpec& spec,
                                                const KafkaOutputContext& ctx) {
  if (spec.delivery == io::KafkaSinkSpec::Delivery::kExactlyOnce) {
    if (!ctx.spool_dir.empty()) return MakeTransactionalKafkaSink(spec, ctx);
    spdlog::info(
        "kafka output to topic {}: without checkpoints there are no transactions; "
        "delivery is at least once",
        spec.topic);
  }
  io::kafka::Properties props = spec.properties;
  props.emplace("enable.idempotence", "true");  // no duplicates from the producer's retries
  props.emplace("linger.ms", "5");
  auto producer = io::kafka::Producer::Create(props);
  if (!producer.ok()) return producer.status().WithPrefix("kafka output " + spec.topic + ": ");
  WarmUp(**producer, spec.topic);
  spdlog::info("kafka output to topic {} (at least once; {})", spec.topic,
               io::kafka::DescribeProperties(props));
  return std::unique_ptr<io::Sink>(new KafkaSink(spec, std::move(producer.value())));
}

}  // namespace cepheus::sinks
