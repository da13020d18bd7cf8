// The Kafka source against librdkafka's mock cluster, spoken to over TCP as
// a real cluster: the wrapper's calls, then `cepheus run` reading a
// multi-partition topic -- the same matches as the same events from a file,
// dead letters that name topic, partition and offset, a restart that
// continues from the checkpoint's offsets, offsets committed to the group.
#include <gtest/gtest.h>
#include <poll.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "io/kafka/kafka.h"
#include "io/kafka/mock_cluster.h"
#include "sources/kafka_source.h"
#include "tests/support/test_io.h"

namespace cepheus {
namespace {

namespace fs = std::filesystem;
using io::kafka::Consumer;
using io::kafka::MockCluster;
using io::kafka::Producer;
using io::kafka::TopicPartition;

std::unique_ptr<MockCluster> StartCluster() {
  auto c = MockCluster::Start(3);
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? std::move(c.value()) : nullptr;
}

io::kafka::Properties Props(const MockCluster& c) { return {{"bootstrap.servers", c.bootstrap()}}; }

TEST(KafkaWrapper, ProducesConsumesLooksUpAndCommitsOverTcp) {
  auto cluster = StartCluster();
  ASSERT_TRUE(cluster);
  ASSERT_TRUE(cluster->CreateTopic("t", 4).ok());
  auto producer = Producer::Create(Props(*cluster));
  ASSERT_TRUE(producer.ok()) << producer.status().message();
  for (int i = 0; i < 100; ++i)
    ASSERT_TRUE(
        (*producer)
            ->Produce("t", i % 4, "k" + std::to_string(i), "m" + std::to_string(i), 1000 + i * 10)
            .ok());
  ASSERT_TRUE((*producer)->Flush(10000).ok());

  auto consumer = Consumer::Create(Props(*cluster), "g1");
  ASSERT_TRUE(consumer.ok()) << consumer.status().message();
  Consumer& c = **consumer;
  auto parts = c.Partitions("t", 5000);
  ASSERT_TRUE(parts.ok()) << parts.status().message();
  EXPECT_EQ(*parts, (std::vector<int32_t>{0, 1, 2, 3}));
  auto wm = c.Watermarks("t", 2, 5000);
  ASSERT_TRUE(wm.ok()) << wm.status().message();
  EXPECT_EQ(wm->first, 0);
  EXPECT_EQ(wm->second, 25);
  // (librdkafka 2.0.2's mock cluster answers every lookup by time with "no
  // offset": the wrapper passes that on as -1, as for a time after the last
  // message, and the source decides what it means. A lookup that lands
  // inside a partition needs a real broker.)
  std::vector<TopicPartition> late{{"t", 1, 99999}};
  ASSERT_TRUE(c.OffsetsForTimes(&late, 5000).ok());
  EXPECT_EQ(late[0].offset, -1) << "no message that late";

  ASSERT_TRUE(c.Assign({{"t", 0, 0}, {"t", 3, 20}}).ok());
  std::set<std::string> got;
  for (int tries = 0; tries < 100 && got.size() < 30; ++tries) {
    auto n = c.Poll(100, 100, [&](const io::kafka::Message& m) {
      EXPECT_EQ(m.topic, "t");
      EXPECT_TRUE(m.partition == 0 || (m.partition == 3 && m.offset >= 20));
      got.insert(std::string(m.payload));
    });
    ASSERT_TRUE(n.ok());
  }
  EXPECT_EQ(got.size(), 30u) << "25 of partition 0, 5 of partition 3";
  ASSERT_TRUE(c.Commit({{"t", 0, 25}, {"t", 3, 25}}).ok());
  std::vector<TopicPartition> committed{{"t", 0, 0}, {"t", 3, 0}};
  ASSERT_TRUE(c.Committed(&committed, 5000).ok());
  EXPECT_EQ(committed[0].offset, 25);
  EXPECT_EQ(committed[1].offset, 25);
}

// A reader with nothing to read waits on WakeFd and is woken by the next
// message (instead of sleeping a fixed time and adding it to every alert's
// latency on a quiet stream). librdkafka also writes to it for other events
// (a wake-up may find no message: the reader then waits again), so the test
// waits on the descriptor and polls after each wake-up until the message is
// there; without the descriptor being written to, the first wait times out.
TEST(KafkaWrapper, TheWakeDescriptorTurnsReadableWhenAMessageArrives) {
  auto cluster = StartCluster();
  ASSERT_TRUE(cluster);
  ASSERT_TRUE(cluster->CreateTopic("quiet", 1).ok());
  auto consumer = Consumer::Create(Props(*cluster), "");
  ASSERT_TRUE(consumer.ok());
  Consumer& c = **consumer;
  ASSERT_TRUE(c.Assign({{"quiet", 0, 0}}).ok());
  const int fd = c.WakeFd();
  ASSERT_GE(fd, 0);
  auto nothing = c.Poll(10, 200, [](const io::kafka::Message&) {});
  ASSERT_TRUE(nothing.ok());
  ASSERT_EQ(*nothing, 0u);
  auto producer = Producer::Create(Props(*cluster));
  ASSERT_TRUE(producer.ok());
  ASSERT_TRUE((*producer)->Produce("quiet", 0, "k", "hello", -1).ok());
  ASSERT_TRUE((*producer)->Flush(10000).ok());
  std::string got;
  for (int wakes = 0; wakes < 50 && got.empty(); ++wakes) {
    pollfd p{fd, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 10000), 1) << "not woken by the message";
    auto n = c.Poll(10, 0, [&](const io::kafka::Message& m) { got = std::string(m.payload); });
    ASSERT_TRUE(n.ok());
  }
  EXPECT_EQ(got, "hello");
}

// Consumer lag per partition (cepheus_kafka_consumer_lag): the partition's
// high watermark offset, as the latest fetch saw it, minus the next offset
// the source delivers -- without a request to the brokers per scrape.
TEST(KafkaSourceLag, IsTheHighWatermarkMinusTheNextOffsetToDeliver) {
  auto cluster = StartCluster();
  ASSERT_TRUE(cluster);
  ASSERT_TRUE(cluster->CreateTopic("lag", 4).ok());
  auto producer = Producer::Create(Props(*cluster));
  ASSERT_TRUE(producer.ok());
  auto produce = [&](int partition, int n) {
    for (int i = 0; i < n; ++i)
      ASSERT_TRUE((*producer)->Produce("lag", partition, "k", "{}", -1).ok());
    ASSERT_TRUE((*producer)->Flush(10000).ok());
  };
  for (int p = 0; p < 4; ++p) produce(p, 100);
  io::SourceSpec spec;
  spec.stream = "s";
  spec.kind = io::SourceKind::kKafka;
  spec.kafka.properties = Props(*cluster);
  spec.kafka.topics = {"lag"};
  auto source = sources::MakeKafkaSource(spec);
  ASSERT_TRUE(source.ok()) << source.status().message();
  io::Source& src = **source;
  ASSERT_TRUE(src.Open().ok());
  auto lags = [&] {
    std::vector<io::PartitionLag> l;
    src.Lags(&l);
    std::map<int32_t, int64_t> by;
    for (const auto& pl : l) {
      EXPECT_EQ(pl.topic, "lag");
      by[pl.partition] = pl.messages;
    }
    return by;
  };
  const std::map<int32_t, int64_t> all100{{0, 100}, {1, 100}, {2, 100}, {3, 100}};
  EXPECT_EQ(lags(), all100) << "nothing delivered yet";
  // Delivers up to `max` records per poll until `total` were delivered.
  size_t delivered = 0;
  auto deliver = [&](size_t total, size_t max) {
    io::SourceBatch batch;
    for (int tries = 0; tries < 2000 && delivered < total; ++tries) {
      batch.Clear();
      auto polled = src.Poll(max, &batch);
      ASSERT_TRUE(polled.ok()) << polled.status().message();
      delivered += batch.records.size();
      if (batch.records.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_EQ(delivered, total);
  };
  deliver(400, 10);
  const std::map<int32_t, int64_t> all0{{0, 0}, {1, 0}, {2, 0}, {3, 0}};
  EXPECT_EQ(lags(), all0);
  // 40 more on partition 2; one of them delivered: the fetch that brought
  // them also brought the new high watermark (140), beyond the one the
  // source saw when it opened (100).
  produce(2, 40);
  deliver(401, 1);
  EXPECT_EQ(lags(), (std::map<int32_t, int64_t>{{0, 0}, {1, 0}, {2, 39}, {3, 0}}));
}

TEST(KafkaWrapper, SecretsAreNotDescribed) {
  const std::string d = io::kafka::DescribeProperties(
      {{"sasl.password", "hunter2"}, {"bootstrap.servers", "b:9092"}, {"ssl.key.pem", "KEY"}});
  EXPECT_EQ(d.find("hunter2"), std::string::npos);
  EXPECT_EQ(d.find("KEY"), std::string::npos);
  EXPECT_NE(d.find("bootstrap.servers=b:9092"), std::string::npos);
}

// Events for SEQ(A, B, C) per key, in event-time order; every `bad_every`th
// record is not JSON.
struct Workload {
  std::vector<std::string> keys;
  std::vector<std::string> lines;
};

Workload MakeEvents(int n, uint32_t seed, int bad_every) {
  std::mt19937 rng(seed);
  Workload w;
  for (int i = 0; i < n; ++i) {
    const std::string key = "u" + std::to_string(rng() % 20);
    std::string line;
    if (bad_every && i % bad_every == bad_every - 1) {
      line = "{not json " + std::to_string(i);
    } else {
      line = "{\"key\":\"" + key + "\",\"type\":\"" + std::string(1, "ABC"[rng() % 3]) +
             "\",\"price\":" + std::to_string(rng() % 100) +
             ",\"ts\":" + std::to_string(1700000000000 + i * 100) + "}";
    }
    w.keys.push_back(key);
    w.lines.push_back(line);
  }
  return w;
}

void ProduceAll(const MockCluster& cluster, const std::string& topic, const Workload& w,
                size_t from = 0, size_t to = SIZE_MAX) {
  auto producer = Producer::Create(Props(cluster));
  ASSERT_TRUE(producer.ok()) << producer.status().message();
  for (size_t i = from; i < std::min(to, w.lines.size()); ++i)
    ASSERT_TRUE((*producer)->Produce(topic, -1, w.keys[i], w.lines[i], -1).ok());
  ASSERT_TRUE((*producer)->Flush(10000).ok());
}

// A run that stops at the end of a topic keeps the events the watermark has
// not passed (the data has not ended): to compare its matches with a file
// run, which ends its input, every partition gets a last event an hour
// later that matches nothing and moves the watermark past everything.
void ProduceEndMarkers(const MockCluster& cluster, const std::string& topic, int partitions) {
  auto producer = Producer::Create(Props(cluster));
  ASSERT_TRUE(producer.ok()) << producer.status().message();
  for (int p = 0; p < partitions; ++p)
    ASSERT_TRUE((*producer)
                    ->Produce(topic, p, "end",
                              "{\"key\":\"~end\",\"type\":\"X\",\"price\":0,\"ts\":" +
                                  std::to_string(1700000000000 + 24 * 3600 * 1000) + "}",
                              -1)
                    .ok());
  ASSERT_TRUE((*producer)->Flush(10000).ok());
}

class KafkaRun : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::ScratchDir("kafka-run");
    cluster_ = StartCluster();
    ASSERT_TRUE(cluster_);
    ASSERT_TRUE(cluster_->CreateTopic("events", 4).ok());
  }
  // A pipeline over `source` (a YAML flow map), matches to `out`.
  std::string Pipeline(const std::string& name, const std::string& source,
                       const std::string& extra = "checkpoint: { enabled: false }\n") {
    const std::string path = (fs::path(dir_) / name).string();
    testing::WriteFile(path,
                       "streams:\n"
                       "  events:\n"
                       "    source: " +
                           source +
                           "\n"
                           "    schema: { key: string, type: string, price: int, ts: "
                           "timestamp }\n"
                           "    key: key\n"
                           "    event_time: { field: ts, max_out_of_orderness: 0s }\n"
                           "patterns:\n"
                           "  - inline: |\n"
                           "      PATTERN abc FROM events\n"
                           "      MATCH a -> b -> c WITHIN 10 SECONDS\n"
                           "      DEFINE a AS type = 'A', b AS type = 'B' AND price > "
                           "a.price, c AS type = 'C'\n"
                           "      EMIT key, a.price AS pa, c.ts AS tc\n"
                           "outputs:\n"
                           "  matches: { type: file, path: " +
                           name +
                           ".matches.jsonl }\n"
                           "  dead_letter: { type: file, path: " +
                           name + ".dead.jsonl }\n" + extra);
    return path;
  }
  std::string KafkaSource(const std::string& more = "") {
    return "{ type: kafka, brokers: \"" + cluster_->bootstrap() +
           "\", topic: events, stop_at_end: true" + more + " }";
  }
  std::string Out(const std::string& name, const std::string& what) {
    return testing::ReadFile((fs::path(dir_) / (name + "." + what + ".jsonl")).string());
  }
  std::string dir_;
  std::unique_ptr<MockCluster> cluster_;
};

TEST_F(KafkaRun, MatchesEqualThoseOfTheSameEventsFromAFile) {
  const Workload w = MakeEvents(3000, 7, 0);
  std::string all;
  for (const auto& l : w.lines) all += l + "\n";
  testing::WriteFile((fs::path(dir_) / "events.jsonl").string(), all);
  ProduceAll(*cluster_, "events", w);
  ProduceEndMarkers(*cluster_, "events", 4);
  auto file = testing::RunCli(
      {"run", Pipeline("file.yaml", "{ type: file, path: events.jsonl }"), "-p", "1"});
  ASSERT_EQ(file.code, 0) << file.err;
  for (const char* p : {"1", "2"}) {
    const std::string name = std::string("kafka") + p;
    auto kafka = testing::RunCli({"run", Pipeline(name + ".yaml", KafkaSource()), "-p", p});
    ASSERT_EQ(kafka.code, 0) << kafka.err;
    const auto want = testing::SortedLines(Out("file.yaml", "matches"));
    ASSERT_GT(want.size(), 50u) << "the workload must match";
    EXPECT_EQ(testing::SortedLines(Out(name + ".yaml", "matches")), want) << "-p " << p;
  }
}

// Topic to topic, the alert pipeline itself: events on a 4-partition topic,
// alerts to a 3-partition topic (exactly once, checkpoints every 200 ms):
// the alerts are the file run's matches, byte for byte (match ids included),
// each keyed by its partition key with the match id as a header.
TEST_F(KafkaRun, TopicToTopicAlertsAreTheFileRunsMatches) {
  const Workload w = MakeEvents(3000, 11, 0);
  std::string all;
  for (const auto& l : w.lines) all += l + "\n";
  testing::WriteFile((fs::path(dir_) / "events.jsonl").string(), all);
  ProduceAll(*cluster_, "events", w);
  ProduceEndMarkers(*cluster_, "events", 4);
  ASSERT_TRUE(cluster_->CreateTopic("alerts", 3).ok());
  auto file = testing::RunCli(
      {"run", Pipeline("file.yaml", "{ type: file, path: events.jsonl }"), "-p", "1"});
  ASSERT_EQ(file.code, 0) << file.err;
  const std::string path = Pipeline("k2k.yaml", KafkaSource(),
                                    "state: { dir: k2k-state }\ncheckpoint: { interval: 200ms }\n");
  std::string yaml = testing::ReadFile(path);
  const std::string file_out = "{ type: file, path: k2k.yaml.matches.jsonl }";
  ASSERT_NE(yaml.find(file_out), std::string::npos);
  yaml.replace(yaml.find(file_out), file_out.size(),
               "{ type: kafka, brokers: \"" + cluster_->bootstrap() + "\", topic: alerts }");
  testing::WriteFile(path, yaml);
  auto run = testing::RunCli({"run", path, "-p", "2"});
  ASSERT_EQ(run.code, 0) << run.err;

  auto consumer = Consumer::Create(Props(*cluster_), "");
  ASSERT_TRUE(consumer.ok());
  Consumer& c = **consumer;
  c.ReadHeaders(true);
  int64_t total = 0;
  std::vector<TopicPartition> tps;
  for (int32_t p = 0; p < 3; ++p) {
    auto wm = c.Watermarks("alerts", p, 5000);
    ASSERT_TRUE(wm.ok());
    total += wm->second;
    tps.push_back({"alerts", p, 0});
  }
  ASSERT_TRUE(c.Assign(tps).ok());
  std::string got;
  int64_t n = 0;
  for (int tries = 0; tries < 200 && n < total; ++tries) {
    auto polled = c.Poll(1000, 50, [&](const io::kafka::Message& m) {
      got += std::string(m.payload) + "\n";
      ++n;
      EXPECT_NE(m.payload.find("\"key\":\"" + std::string(m.key) + "\""), std::string::npos);
      for (const io::kafka::Header& h : *m.headers)
        if (h.name == "cepheus.id") {
          EXPECT_NE(m.payload.find("\"id\":\"" + h.value + "\""), std::string::npos);
        }
    });
    ASSERT_TRUE(polled.ok());
  }
  const auto want = testing::SortedLines(Out("file.yaml", "matches"));
  ASSERT_GT(want.size(), 20u);
  EXPECT_EQ(testing::SortedLines(got), want);
}

TEST_F(KafkaRun, BadMessagesBecomeDeadLettersWithTopicPartitionAndOffset) {
  const Workload w = MakeEvents(400, 3, 50);
  ProduceAll(*cluster_, "events", w);
  ProduceEndMarkers(*cluster_, "events", 4);
  auto r = testing::RunCli({"run", Pipeline("bad.yaml", KafkaSource())});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto dead = testing::SortedLines(Out("bad.yaml", "dead"));
  ASSERT_EQ(dead.size(), 8u);
  for (const std::string& d : dead) {
    EXPECT_NE(d.find("\"source\":\"kafka:events/"), std::string::npos) << d;
    EXPECT_NE(d.find("\"offset\":"), std::string::npos) << d;
    EXPECT_NE(d.find("\"record\":\"{not json"), std::string::npos) << d;
  }
  // The offsets are those of the bad messages in their partitions.
  auto consumer = Consumer::Create(Props(*cluster_), "");
  ASSERT_TRUE(consumer.ok());
  ASSERT_TRUE((*consumer)
                  ->Assign({{"events", 0, 0}, {"events", 1, 0}, {"events", 2, 0}, {"events", 3, 0}})
                  .ok());
  std::set<std::string> bad_at;
  for (int tries = 0; tries < 200 && bad_at.size() < 8; ++tries)
    ASSERT_TRUE((*consumer)
                    ->Poll(1000, 50,
                           [&](const io::kafka::Message& m) {
                             if (m.payload.starts_with("{not json"))
                               bad_at.insert(
                                   "kafka:events/" + std::to_string(m.partition) +
                                   "\",\"line\":null,\"offset\":" + std::to_string(m.offset));
                           })
                    .ok());
  ASSERT_EQ(bad_at.size(), 8u);
  for (const std::string& at : bad_at) {
    bool found = false;
    for (const std::string& d : dead) found |= d.find(at) != std::string::npos;
    EXPECT_TRUE(found) << at;
  }
}

TEST_F(KafkaRun, ARestartContinuesFromTheCheckpointOffsetsAndCommitsThemToTheGroup) {
  const Workload w = MakeEvents(2000, 11, 0);
  std::string all;
  for (const auto& l : w.lines) all += l + "\n";
  testing::WriteFile((fs::path(dir_) / "events.jsonl").string(), all);
  auto file = testing::RunCli({"run", Pipeline("file.yaml", "{ type: file, path: events.jsonl }")});
  ASSERT_EQ(file.code, 0) << file.err;
  // The first half is on the topic; the first run reads it and stops at its
  // end with a checkpoint; then the rest arrives and a second run continues.
  const std::string ck = "checkpoint: { interval: 1s }\nstate: { dir: state }\n";
  ProduceAll(*cluster_, "events", w, 0, 1000);
  const std::string pipeline = Pipeline("k.yaml", KafkaSource(", group: alerts"), ck);
  auto first = testing::RunCli({"run", pipeline});
  ASSERT_EQ(first.code, 0) << first.err;
  ProduceAll(*cluster_, "events", w, 1000);
  ProduceEndMarkers(*cluster_, "events", 4);
  auto second = testing::RunCli({"run", pipeline});
  ASSERT_EQ(second.code, 0) << second.err;
  EXPECT_NE(second.err.find("restored checkpoint"), std::string::npos) << second.err;
  const auto got = testing::SortedLines(Out("k.yaml", "matches"));
  const auto want = testing::SortedLines(Out("file.yaml", "matches"));
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want) << "no match lost or doubled across the restart";
  // The group's committed offsets are the ends of the partitions.
  auto consumer = Consumer::Create(Props(*cluster_), "alerts");
  ASSERT_TRUE(consumer.ok());
  std::vector<TopicPartition> committed{
      {"events", 0, 0}, {"events", 1, 0}, {"events", 2, 0}, {"events", 3, 0}};
  ASSERT_TRUE((*consumer)->Committed(&committed, 5000).ok());
  int64_t total = 0;
  for (const auto& tp : committed) total += tp.offset;
  EXPECT_EQ(total, 2000 + 4) << "every event and the four end markers";
}

// `cepheus backtest` over a Kafka stream reads the topic as history (up to
// its end now, or the time range) with the same batch engine: the same
// output as a backtest over the same events in a file, whole and for a range.
TEST_F(KafkaRun, BacktestOfATopicEqualsBacktestOfTheSameEventsInAFile) {
  const Workload w = MakeEvents(3000, 13, 100);
  std::string all;
  for (const auto& l : w.lines) all += l + "\n";
  testing::WriteFile((fs::path(dir_) / "events.jsonl").string(), all);
  ProduceAll(*cluster_, "events", w);
  ProduceEndMarkers(*cluster_, "events", 4);
  const std::string file = Pipeline("bf.yaml", "{ type: file, path: events.jsonl }");
  const std::string kafka = Pipeline(
      "bk.yaml", "{ type: kafka, brokers: \"" + cluster_->bootstrap() + "\", topic: events }");
  const std::vector<std::vector<std::string>> ranges = {
      {}, {"--from", "2023-11-14T22:14:00Z", "--to", "2023-11-14T22:16:00Z"}};
  for (const auto& range : ranges) {
    std::vector<std::string> a = {"backtest", file, "-o", dir_ + "/bf.out"};
    std::vector<std::string> b = {"backtest", kafka, "-o", dir_ + "/bk.out"};
    a.insert(a.end(), range.begin(), range.end());
    b.insert(b.end(), range.begin(), range.end());
    auto rf = testing::RunCli(a);
    ASSERT_EQ(rf.code, 0) << rf.err;
    auto rk = testing::RunCli(b);
    ASSERT_EQ(rk.code, 0) << rk.err;
    const std::string want = testing::ReadFile(dir_ + "/bf.out");
    ASSERT_GT(testing::SortedLines(want).size(), range.empty() ? 50u : 10u);
    EXPECT_EQ(testing::ReadFile(dir_ + "/bk.out"), want) << "range: " << range.size();
  }
}

// Fetches that fail with a retriable error and brokers that go down and
// come back while the run reads: librdkafka retries, the source waits, and
// the matches are exactly those of the same events from a file.
TEST_F(KafkaRun, FetchErrorsAndABrokerOutageLoseNothing) {
  const Workload w = MakeEvents(20000, 17, 0);
  std::string all;
  for (const auto& l : w.lines) all += l + "\n";
  testing::WriteFile((fs::path(dir_) / "events.jsonl").string(), all);
  ProduceAll(*cluster_, "events", w);
  ProduceEndMarkers(*cluster_, "events", 4);
  auto file = testing::RunCli({"run", Pipeline("f.yaml", "{ type: file, path: events.jsonl }")});
  ASSERT_EQ(file.code, 0) << file.err;
  constexpr int kFetch = 1;      // Kafka API key
  constexpr int kNotLeader = 6;  // NOT_LEADER_OR_FOLLOWER: retriable
  cluster_->FailRequests(kFetch, 10, kNotLeader);
  std::thread flap([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    for (int b = 1; b <= 3; ++b) (void)cluster_->SetBrokerDown(b, true);
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    for (int b = 1; b <= 3; ++b) (void)cluster_->SetBrokerDown(b, false);
  });
  auto kafka = testing::RunCli({"run", Pipeline("k.yaml", KafkaSource())});
  flap.join();
  ASSERT_EQ(kafka.code, 0) << kafka.err;
  EXPECT_NE(kafka.err.find("20004 records"), std::string::npos) << kafka.err;
  EXPECT_EQ(testing::SortedLines(Out("k.yaml", "matches")),
            testing::SortedLines(Out("f.yaml", "matches")));
}

// The partition key and the event time can come from the message key and
// timestamp instead of the payload: the same matches as events that carry
// them as fields.
TEST_F(KafkaRun, KeyAndEventTimeFromTheMessageMetadata) {
  const Workload w = MakeEvents(3000, 23, 0);
  std::string all;
  for (const auto& l : w.lines) all += l + "\n";
  testing::WriteFile((fs::path(dir_) / "events.jsonl").string(), all);
  auto producer = Producer::Create(Props(*cluster_));
  ASSERT_TRUE(producer.ok());
  for (size_t i = 0; i < w.lines.size(); ++i) {
    // {"key":"u3","type":"A","price":5,"ts":...} -> {"type":"A","price":5}
    const std::string& l = w.lines[i];
    const size_t type = l.find("\"type\"");
    const size_t ts = l.find(",\"ts\":");
    const std::string payload = "{" + l.substr(type, ts - type) + "}";
    const int64_t time = std::stoll(l.substr(ts + 6, l.size() - ts - 7));
    ASSERT_TRUE((*producer)->Produce("events", -1, w.keys[i], payload, time).ok());
  }
  ASSERT_TRUE((*producer)->Flush(10000).ok());
  producer->reset();
  ProduceEndMarkers(*cluster_, "events", 4);
  auto file = testing::RunCli({"run", Pipeline("f.yaml", "{ type: file, path: events.jsonl }")});
  ASSERT_EQ(file.code, 0) << file.err;
  auto kafka = testing::RunCli(
      {"run", Pipeline("m.yaml", KafkaSource(", metadata: { key: key, timestamp: ts }"))});
  ASSERT_EQ(kafka.code, 0) << kafka.err;
  const auto want = testing::SortedLines(Out("f.yaml", "matches"));
  ASSERT_GT(want.size(), 50u);
  EXPECT_EQ(testing::SortedLines(Out("m.yaml", "matches")), want);
  auto bad = testing::RunCli(
      {"check", Pipeline("b.yaml", KafkaSource(", metadata: { key: nosuchfield }"))});
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("metadata field 'nosuchfield' is not in the schema"), std::string::npos)
      << bad.err;
}

TEST_F(KafkaRun, StartLatestSkipsWhatIsAlreadyOnTheTopic) {
  ProduceAll(*cluster_, "events", MakeEvents(300, 5, 0));
  auto r = testing::RunCli({"run", Pipeline("late.yaml", KafkaSource(", start: latest"))});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(testing::SortedLines(Out("late.yaml", "matches")).empty());
}

TEST_F(KafkaRun, AnUnreachableClusterFailsWithAClearError) {
  // (The mock cluster creates unknown topics on first use, as a broker with
  // auto.create.topics.enable does; a real cluster without it reports them.)
  auto r = testing::RunCli(
      {"run",
       Pipeline("missing.yaml",
                "{ type: kafka, brokers: \"127.0.0.1:1\", topic: events, stop_at_end: true }")});
  EXPECT_NE(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("metadata of topic 'events'"), std::string::npos) << r.err;
}

TEST_F(KafkaRun, SecretsComeFromTheEnvironmentAndAreNotLogged) {
  ::setenv("CEPHEUS_TEST_KAFKA_BROKERS", cluster_->bootstrap().c_str(), 1);
  ::setenv("CEPHEUS_TEST_SECRET", "s3cr3t-value", 1);
  ProduceAll(*cluster_, "events", MakeEvents(100, 9, 0));
  auto r = testing::RunCli(
      {"run", Pipeline("env.yaml",
                       "{ type: kafka, brokers: \"${CEPHEUS_TEST_KAFKA_BROKERS}\", topic: events, "
                       "stop_at_end: true, properties: { sasl.password: \"${CEPHEUS_TEST_SECRET}\" "
                       "} }")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err.find("s3cr3t-value"), std::string::npos) << r.err;
  auto missing = testing::RunCli(
      {"check", Pipeline("noenv.yaml",
                         "{ type: kafka, brokers: \"${CEPHEUS_TEST_UNSET_VARIABLE}\", topic: "
                         "events }")});
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("CEPHEUS_TEST_UNSET_VARIABLE"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace cepheus
