#include "io/kafka/mock_cluster.h"

// The mock API is C: rdkafka.h first, then the mock header.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

namespace cepheus::io::kafka {

struct MockCluster::Impl {
  rd_kafka_t* rk = nullptr;  // the handle the cluster lives in
  rd_kafka_mock_cluster_t* cluster = nullptr;
  ~Impl() {
    if (cluster) rd_kafka_mock_cluster_destroy(cluster);
    if (rk) rd_kafka_destroy(rk);
  }
};

Result<std::unique_ptr<MockCluster>> MockCluster::Start(int brokers) {
  std::unique_ptr<MockCluster> m(new MockCluster());
  m->impl_ = std::make_unique<Impl>();
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // A quiet handle that only hosts the cluster.
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  m->impl_->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!m->impl_->rk) {
    rd_kafka_conf_destroy(conf);
    return Status::Internal(std::string("kafka mock: ") + err);
  }
  m->impl_->cluster = rd_kafka_mock_cluster_new(m->impl_->rk, brokers);
  if (!m->impl_->cluster) return Status::Internal("kafka mock: cannot start the cluster");
  m->bootstrap_ = rd_kafka_mock_cluster_bootstraps(m->impl_->cluster);
  return m;
}

MockCluster::~MockCluster() = default;

Status MockCluster::CreateTopic(const std::string& topic, int partitions) {
  const rd_kafka_resp_err_t e =
      rd_kafka_mock_topic_create(impl_->cluster, topic.c_str(), partitions, 1);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return Status::Internal("kafka mock: create topic " + topic + ": " + rd_kafka_err2str(e));
  return Status::Ok();
}

Status MockCluster::SetBrokerDown(int broker_id, bool down) {
  const rd_kafka_resp_err_t e = down ? rd_kafka_mock_broker_set_down(impl_->cluster, broker_id)
                                     : rd_kafka_mock_broker_set_up(impl_->cluster, broker_id);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return Status::Internal(std::string("kafka mock: broker state: ") + rd_kafka_err2str(e));
  return Status::Ok();
}

void MockCluster::FailRequests(int api_key, int count, int error) {
  for (int i = 0; i < count; ++i)
    rd_kafka_mock_push_request_errors(impl_->cluster, static_cast<int16_t>(api_key), 1,
                                      static_cast<rd_kafka_resp_err_t>(error));
}

}  // namespace cepheus::io::kafka
