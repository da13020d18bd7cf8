// MockCluster: librdkafka's in-process mock Kafka cluster, for tests and the
// sample. It listens on localhost TCP ports and speaks the Kafka protocol,
// so clients talk to it as to a real cluster. Known limits (librdkafka
// 2.0.2): transactions are accepted but read_committed is not enforced and
// producers are not fenced.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"

namespace cepheus::io::kafka {

class MockCluster {
 public:
  static Result<std::unique_ptr<MockCluster>> Start(int brokers);
  ~MockCluster();
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;

  // "host:port,host:port": bootstrap.servers for clients.
  const std::string& bootstrap() const { return bootstrap_; }
  Status CreateTopic(const std::string& topic, int partitions);
  // Fault injection: a broker goes down (connections refused) or up again.
  Status SetBrokerDown(int broker_id, bool down);
  // The next `count` requests of Kafka API `api_key` fail with `error` (a
  // librdkafka error code).
  void FailRequests(int api_key, int count, int error);

 private:
  MockCluster() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string bootstrap_;
};

}  // namespace cepheus::io::kafka
