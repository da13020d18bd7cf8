// The Kafka output against librdkafka's mock cluster over TCP: alerts of a
// Kafka-to-Kafka pipeline are the file run's matches, one message each with
// the partition key as message key and kind, pattern and match id as
// headers; a broker that goes down mid-run and comes back loses nothing.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "io/kafka/kafka.h"
#include "io/kafka/mock_cluster.h"
#include "tests/support/test_io.h"

namespace cepheus {
namespace {

namespace fs = std::filesystem;
using io::kafka::Consumer;
using io::kafka::MockCluster;
using io::kafka::Producer;

struct Alert {
  std::string key, payload;
  std::map<std::string, std::string> headers;
};

// Everything on `topic` (all partitions), as a read_committed consumer sees it.
std::vector<Alert> ReadTopic(const MockCluster& cluster, const std::string& topic) {
  auto consumer = Consumer::Create({{"bootstrap.servers", cluster.bootstrap()}}, "");
  EXPECT_TRUE(consumer.ok());
  Consumer& c = **consumer;
  c.ReadHeaders(true);
  auto parts = c.Partitions(topic, 5000);
  EXPECT_TRUE(parts.ok());
  std::vector<io::kafka::TopicPartition> tps;
  int64_t total = 0;
  for (int32_t p : *parts) {
    tps.push_back({topic, p, 0});
    auto wm = c.Watermarks(topic, p, 5000);
    EXPECT_TRUE(wm.ok());
    total += wm->second;
  }
  EXPECT_TRUE(c.Assign(tps).ok());
  std::vector<Alert> out;
  for (int tries = 0; tries < 300 && static_cast<int64_t>(out.size()) < total; ++tries) {
    auto n = c.Poll(1000, 50, [&](const io::kafka::Message& m) {
      Alert a{std::string(m.key), std::string(m.payload), {}};
      for (const auto& h : *m.headers) a.headers[h.name] = h.value;
      out.push_back(std::move(a));
    });
    EXPECT_TRUE(n.ok());
  }
  return out;
}

std::string Events(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out;
  for (int i = 0; i < n; ++i)
    out += "{\"key\":\"u" + std::to_string(rng() % 20) + "\",\"type\":\"" +
           std::string(1, "ABC"[rng() % 3]) + "\",\"price\":" + std::to_string(rng() % 100) +
           ",\"ts\":" + std::to_string(1700000000000 + i * 100) + "}\n";
  return out;
}

class KafkaSink : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::ScratchDir("kafka-sink");
    auto c = MockCluster::Start(3);
    ASSERT_TRUE(c.ok()) << c.status().message();
    cluster_ = std::move(c.value());
    ASSERT_TRUE(cluster_->CreateTopic("alerts", 3).ok());
    testing::WriteFile(dir_ + "/events.jsonl", Events(3000, 21));
  }
  std::string Pipeline(const std::string& name, const std::string& matches,
                       const std::string& extra = "checkpoint: { enabled: false }\n") {
    const std::string path = dir_ + "/" + name;
    testing::WriteFile(
        path,
        "streams:\n  events:\n    source: { type: file, path: events.jsonl }\n"
        "    schema: { key: string, type: string, price: int, ts: timestamp }\n"
        "    key: key\n    event_time: { field: ts, max_out_of_orderness: 0s }\n"
        "patterns:\n  - inline: |\n      PATTERN abc FROM events\n"
        "      MATCH a -> b -> c WITHIN 10 SECONDS\n"
        "      DEFINE a AS type = 'A', b AS type = 'B' AND price > a.price, c AS type = 'C'\n"
        "      EMIT key, a.price AS pa\n"
        "outputs:\n  matches: " +
            matches + "\n" + extra);
    return path;
  }
  std::string KafkaOutput(const std::string& more = "") {
    return "{ type: kafka, brokers: \"" + cluster_->bootstrap() +
           "\", topic: alerts, delivery: at_least_once" + more + " }";
  }
  std::string dir_;
  std::unique_ptr<MockCluster> cluster_;
};

TEST_F(KafkaSink, AlertsAreTheMatchesWithKeyAndHeaders) {
  auto file = testing::RunCli(
      {"run", Pipeline("f.yaml", "{ type: file, path: matches.jsonl }"), "-p", "2"});
  ASSERT_EQ(file.code, 0) << file.err;
  auto kafka = testing::RunCli({"run", Pipeline("k.yaml", KafkaOutput()), "-p", "2"});
  ASSERT_EQ(kafka.code, 0) << kafka.err;
  const auto want = testing::SortedLines(testing::ReadFile(dir_ + "/matches.jsonl"));
  ASSERT_GT(want.size(), 50u);
  const std::vector<Alert> alerts = ReadTopic(*cluster_, "alerts");
  std::string got;
  for (const Alert& a : alerts) {
    got += a.payload + "\n";
    // The key, pattern and id agree with the payload.
    EXPECT_NE(a.payload.find("\"key\":\"" + a.key + "\""), std::string::npos) << a.payload;
    EXPECT_EQ(a.headers.at("cepheus.kind"), "match");
    EXPECT_EQ(a.headers.at("cepheus.name"), "abc");
    EXPECT_NE(a.payload.find("\"id\":\"" + a.headers.at("cepheus.id") + "\""), std::string::npos)
        << a.payload;
  }
  EXPECT_EQ(testing::SortedLines(got), want);
}

// A broker down and up again while the pipeline writes and checkpoints:
// librdkafka retries, the checkpoint waits for the acknowledgements, and
// every alert arrives (at least once: here, with no crash, exactly once).
TEST_F(KafkaSink, ABrokerThatGoesDownAndComesBackLosesNothing) {
  auto file = testing::RunCli({"run", Pipeline("f.yaml", "{ type: file, path: matches.jsonl }")});
  ASSERT_EQ(file.code, 0) << file.err;
  // Every broker is down when the run starts and comes back 1.5 s later;
  // then produce requests fail for a while with a retriable error.
  constexpr int kProduce = 0;    // Kafka API key
  constexpr int kNotLeader = 6;  // NOT_LEADER_OR_FOLLOWER: retriable
  for (int b = 1; b <= 3; ++b) ASSERT_TRUE(cluster_->SetBrokerDown(b, true).ok());
  std::thread flap([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    cluster_->FailRequests(kProduce, 20, kNotLeader);
    for (int b = 1; b <= 3; ++b) (void)cluster_->SetBrokerDown(b, false);
  });
  const auto t0 = std::chrono::steady_clock::now();
  auto kafka =
      testing::RunCli({"run", Pipeline("k.yaml", KafkaOutput(),
                                       "checkpoint: { interval: 1s }\nstate: { dir: state }\n")});
  const auto waited = std::chrono::steady_clock::now() - t0;
  flap.join();
  EXPECT_GE(waited, std::chrono::milliseconds(1400)) << "the run waited for the brokers";
  ASSERT_EQ(kafka.code, 0) << kafka.err;
  std::string got;
  for (const Alert& a : ReadTopic(*cluster_, "alerts")) got += a.payload + "\n";
  EXPECT_EQ(testing::SortedLines(got),
            testing::SortedLines(testing::ReadFile(dir_ + "/matches.jsonl")));
}

TEST_F(KafkaSink, ExactlyOnceIsRefusedUntilItExistsAndSaysWhatToWrite) {
  auto r = testing::RunCli(
      {"check", Pipeline("x.yaml", "{ type: kafka, brokers: \"" + cluster_->bootstrap() +
                                       "\", topic: alerts }")});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("delivery: at_least_once"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace cepheus

namespace cepheus {
namespace {

// samples/kafka-alerts/run.sh works as docs/kafka.md and samples/README.md
// say: the mock cluster, the payments produced, the pipeline from topic to
// topic, the alerts printed back from the `alerts` topic.
TEST(KafkaSample, RunsEndToEndAndPrintsTheAlertsFromTheTopic) {
  const std::filesystem::path build =
      std::filesystem::path(CEPHEUS_BINARY).parent_path().parent_path();
  const std::string cmd = std::string("bash ") + CEPHEUS_SOURCE_DIR +
                          "/samples/kafka-alerts/run.sh " + build.string() + " 2>/dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ASSERT_EQ(::pclose(p), 0) << out;
  const auto lines = testing::SortedLines(out);
  ASSERT_EQ(lines.size(), 2u) << out;
  EXPECT_TRUE(lines[0].starts_with("c900\t{\"pattern\":\"card_testing\"")) << lines[0];
  EXPECT_TRUE(lines[1].starts_with("c901\t{\"pattern\":\"card_testing\"")) << lines[1];
}

}  // namespace
}  // namespace cepheus
