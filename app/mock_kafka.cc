// cepheus-mock-kafka: librdkafka's mock Kafka cluster as a process, for the
// Kafka sample and for trying pipelines without a broker. Creates topics,
// optionally produces a JSONL file into one (message key from a field),
// prints "bootstrap=<host:port,...>" and serves until stdin closes or a
// signal arrives. Not a broker: everything lives in memory (about 5 MB per
// partition; older messages are trimmed).
//
// With --print TOPIC --bootstrap B it is a client instead: prints every
// message on TOPIC of the cluster at B (key, then the value) and exits.
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <csignal>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "io/kafka/kafka.h"
#include "io/kafka/mock_cluster.h"

namespace {

// The value of string field `field` in a JSON line (no nesting needed here).
std::string FieldOf(const std::string& line, const std::string& field) {
  const std::string needle = "\"" + field + "\"";
  size_t at = line.find(needle);
  if (at == std::string::npos) return "";
  at = line.find(':', at + needle.size());
  if (at == std::string::npos) return "";
  at = line.find_first_not_of(" \t", at + 1);
  if (at == std::string::npos || line[at] != '"') return "";
  const size_t end = line.find('"', at + 1);
  return end == std::string::npos ? "" : line.substr(at + 1, end - at - 1);
}

// Prints "key<TAB>value" for every message now on `topic`, partition by partition.
int PrintTopic(const std::string& bootstrap, const std::string& topic) {
  auto consumer = cepheus::io::kafka::Consumer::Create({{"bootstrap.servers", bootstrap}}, "");
  if (!consumer.ok()) {
    std::cerr << "error: " << consumer.status().message() << "\n";
    return 1;
  }
  auto& c = **consumer;
  auto parts = c.Partitions(topic, 10000);
  if (!parts.ok()) {
    std::cerr << "error: " << parts.status().message() << "\n";
    return 1;
  }
  std::vector<cepheus::io::kafka::TopicPartition> tps;
  int64_t left = 0;
  for (int32_t p : *parts) {
    auto wm = c.Watermarks(topic, p, 10000);
    if (!wm.ok()) {
      std::cerr << "error: " << wm.status().message() << "\n";
      return 1;
    }
    tps.push_back({topic, p, wm->first});
    left += wm->second - wm->first;
  }
  if (auto s = c.Assign(tps); !s.ok()) {
    std::cerr << "error: " << s.message() << "\n";
    return 1;
  }
  for (int idle = 0; left > 0 && idle < 50;) {
    auto n = c.Poll(1000, 100, [&](const cepheus::io::kafka::Message& m) {
      std::cout << m.key << "\t" << m.payload << "\n";
      --left;
    });
    if (!n.ok()) {
      std::cerr << "error: " << n.status().message() << "\n";
      return 1;
    }
    idle = *n ? 0 : idle + 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"A mock Kafka cluster (librdkafka's) for samples and tests"};
  int brokers = 1;
  std::vector<std::string> topics;
  std::string produce_file, produce_topic, key_field;
  app.add_option("--brokers", brokers, "Number of mock brokers")->check(CLI::Range(1, 9));
  app.add_option("--topic", topics, "Topic to create, as name:partitions (repeatable)");
  app.add_option("--produce", produce_file, "JSONL file to produce, one message per line");
  app.add_option("--into", produce_topic, "Topic the --produce file goes to");
  app.add_option("--key-field", key_field, "JSON field whose value is the message key");
  std::string print_topic, bootstrap;
  app.add_option("--print", print_topic, "Client mode: print every message of this topic");
  app.add_option("--bootstrap", bootstrap, "Client mode: the cluster to read from");
  CLI11_PARSE(app, argc, argv);
  if (!print_topic.empty()) return PrintTopic(bootstrap, print_topic);

  auto cluster = cepheus::io::kafka::MockCluster::Start(brokers);
  if (!cluster.ok()) {
    std::cerr << "error: " << cluster.status().message() << "\n";
    return 1;
  }
  for (const std::string& t : topics) {
    const size_t colon = t.rfind(':');
    const std::string name = t.substr(0, colon);
    const int parts = colon == std::string::npos ? 1 : std::stoi(t.substr(colon + 1));
    if (auto s = (*cluster)->CreateTopic(name, parts); !s.ok()) {
      std::cerr << "error: " << s.message() << "\n";
      return 1;
    }
  }
  if (!produce_file.empty()) {
    auto producer = cepheus::io::kafka::Producer::Create(
        {{"bootstrap.servers", (*cluster)->bootstrap()}, {"linger.ms", "5"}});
    if (!producer.ok()) {
      std::cerr << "error: " << producer.status().message() << "\n";
      return 1;
    }
    std::ifstream in(produce_file);
    if (!in) {
      std::cerr << "error: cannot read " << produce_file << "\n";
      return 1;
    }
    std::string line;
    size_t n = 0;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      const std::string key = key_field.empty() ? "" : FieldOf(line, key_field);
      if (auto s = (*producer)->Produce(produce_topic, -1, key, line, -1); !s.ok()) {
        std::cerr << "error: " << s.message() << "\n";
        return 1;
      }
      ++n;
    }
    if (auto s = (*producer)->Flush(30000); !s.ok()) {
      std::cerr << "error: " << s.message() << "\n";
      return 1;
    }
    std::cerr << "produced " << n << " messages to " << produce_topic << "\n";
  }
  std::cout << "bootstrap=" << (*cluster)->bootstrap() << std::endl;
  // Serve until stdin closes (the parent went away) or a signal.
  char buf[256];
  while (::read(0, buf, sizeof buf) > 0) {
  }
  return 0;
}
