// Pipeline files: valid ones load; invalid ones say where and what.
#include "engine/pipeline_config.h"

#include <gtest/gtest.h>

namespace cepheus::engine {
namespace {

const char* kValid = R"(
streams:
  payments:
    source: { type: file, path: data/p.csv, format: csv }
    schema: { card: string, amount: double, ts: timestamp }
    key: card
    event_time: { field: ts, max_out_of_orderness: 5s, idle_timeout: 1m, follow_wall_clock_when_idle: false }
patterns: [ fraud.cep, { inline: "PATTERN p FROM payments MATCH a" } ]
outputs:
  matches: { type: file, path: out/m.jsonl }
  late: { type: stderr }
parallelism: 3
limits: { max_runs_per_key: 77 }
)";

TEST(PipelineConfig, LoadsAndResolvesPathsAgainstTheFile) {
  auto c = ParsePipelineConfig(kValid, "/etc/cepheus/pipe.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  ASSERT_EQ(c->streams.size(), 1u);
  const StreamConfig& s = c->streams[0];
  EXPECT_EQ(s.source.path, "/etc/cepheus/data/p.csv");
  EXPECT_EQ(s.source.format, "csv");
  EXPECT_EQ(s.key, std::vector<std::string>{"card"});
  EXPECT_EQ(s.watermark.max_out_of_orderness.millis(), 5000);
  EXPECT_EQ(s.watermark.idle_timeout.millis(), 60000);
  EXPECT_FALSE(s.watermark.follow_wall_clock_when_idle);
  ASSERT_EQ(c->patterns.size(), 2u);
  EXPECT_EQ(c->patterns[0].path, "/etc/cepheus/fraud.cep");
  EXPECT_FALSE(c->patterns[1].inline_text.empty());
  EXPECT_EQ(c->matches.path, "/etc/cepheus/out/m.jsonl");
  ASSERT_TRUE(c->late.has_value());
  EXPECT_EQ(c->late->type, "stderr");
  EXPECT_FALSE(c->dead_letter.has_value());
  EXPECT_EQ(c->parallelism, 3);
  EXPECT_EQ(c->max_runs_per_key, 77u);
}

std::string Error(const std::string& yaml) {
  auto c = ParsePipelineConfig(yaml, "p.yaml");
  EXPECT_FALSE(c.ok());
  return c.ok() ? "" : c.status().message();
}

TEST(PipelineConfig, ErrorsNameTheLineAndTheProblem) {
  const std::string base = "streams:\n  s:\n    source: { path: e.jsonl }\n";
  EXPECT_NE(
      Error(base + "    schema: { a: strin, ts: timestamp }\n    event_time: ts\npatterns: [x]\n")
          .find("p.yaml:4:"),
      std::string::npos);
  EXPECT_NE(
      Error(base + "    schema: { a: strin, ts: timestamp }\n    event_time: ts\npatterns: [x]\n")
          .find("unknown type 'strin'"),
      std::string::npos);
  EXPECT_NE(Error(base +
                  "    schema: { a: string, ts: timestamp }\n    event_time: when\npatterns: [x]\n")
                .find("event_time field 'when' is not in the schema"),
            std::string::npos);
  EXPECT_NE(Error(base + "    schema: { a: string, ts: timestamp }\n    key: b\n    event_time: "
                         "ts\npatterns: [x]\n")
                .find("key field 'b' is not in the schema"),
            std::string::npos);
  EXPECT_NE(
      Error(base + "    schema: { a: string, ts: string }\n    event_time: ts\npatterns: [x]\n")
          .find("must be a timestamp"),
      std::string::npos);
  EXPECT_NE(Error(base + "    schema: { a: string, ts: timestamp }\n    event_time: { field: ts, "
                         "max_out_of_orderness: soon }\npatterns: [x]\n")
                .find("'soon' is not a duration"),
            std::string::npos);
  EXPECT_NE(Error(base + "    schema: { a: string, ts: timestamp }\n    event_time: ts\n")
                .find("'patterns'"),
            std::string::npos);
  EXPECT_NE(
      Error(base + "    schema: { a: string, ts: timestamp }\n    event_time: ts\npatterns: [x]\n"
                   "outputs: { matches: { type: kafka } }\n")
          .find("must be stdout, stderr or file"),
      std::string::npos);
  EXPECT_NE(
      Error(base + "    schema: { a: string, ts: timestamp }\n    event_time: ts\npatterns: [x]\n"
                   "parralelism: 2\n")
          .find("unknown key 'parralelism'"),
      std::string::npos);
  EXPECT_NE(
      Error(base +
            "    schema: { \"a b\": string, ts: timestamp }\n    event_time: ts\npatterns: [x]\n")
          .find("not an identifier"),
      std::string::npos);
  EXPECT_NE(Error("streams: [\n").find("p.yaml:"), std::string::npos)
      << "YAML syntax errors have a position";
}

TEST(PipelineConfig, EventTimeRangeAndFutureSkew) {
  const std::string base =
      "streams:\n  s:\n    source: { path: e.jsonl }\n    schema: { a: string, ts: timestamp }\n"
      "    event_time: { field: ts";
  auto d = ParsePipelineConfig(base + " }\npatterns: [x]\n", "p.yaml");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(FormatRfc3339(d->streams[0].min_time), "1900-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatRfc3339(d->streams[0].max_time), "2400-01-01T00:00:00.000Z");
  EXPECT_EQ(d->streams[0].max_future_skew.millis(), 0);
  auto c = ParsePipelineConfig(
      base +
          ", min_time: 2020-01-01, max_time: 4102444800000, max_future_skew: 5m }\npatterns: [x]\n",
      "p.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(FormatRfc3339(c->streams[0].min_time), "2020-01-01T00:00:00.000Z");
  EXPECT_EQ(c->streams[0].max_time.millis(), 4102444800000);
  EXPECT_EQ(c->streams[0].max_future_skew.millis(), 300000);
  EXPECT_NE(Error(base + ", min_time: yesterday }\npatterns: [x]\n").find("not a date"),
            std::string::npos);
  EXPECT_NE(Error(base + ", min_time: 2030-01-01, max_time: 2020-01-01 }\npatterns: [x]\n")
                .find("min_time must be before"),
            std::string::npos);
}

TEST(PipelineConfig, StateAndCheckpointSettings) {
  const std::string base =
      "streams:\n  s:\n    source: { path: e.jsonl }\n    schema: { a: string, ts: timestamp }\n"
      "    event_time: ts\npatterns: [x]\n";
  auto d = ParsePipelineConfig(base, "/p/p.yaml");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->state_backend, "rocksdb");
  EXPECT_EQ(d->state_dir, "/p/state");
  EXPECT_TRUE(d->checkpoints_enabled);
  EXPECT_EQ(d->checkpoint_interval.millis(), 10000);
  EXPECT_EQ(d->checkpoint_retain, 3);
  auto c = ParsePipelineConfig(base +
                                   "state: { backend: memory, dir: /var/lib/x, cache_keys: 5 }\n"
                                   "checkpoint: { interval: 30s, retain: 5 }\n",
                               "/p/p.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->state_backend, "memory");
  EXPECT_EQ(c->state_dir, "/var/lib/x");
  EXPECT_EQ(c->state_cache_keys, 5u);
  EXPECT_EQ(c->checkpoint_interval.millis(), 30000);
  EXPECT_EQ(c->checkpoint_retain, 5);
  auto off = ParsePipelineConfig(base + "checkpoint: { interval: off }\n", "p.yaml");
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off->checkpoint_interval.millis(), 0);
  EXPECT_NE(Error(base + "state: { backend: leveldb }\n").find("rocksdb or memory"),
            std::string::npos);
  EXPECT_NE(Error(base + "state: { bakend: memory }\n").find("unknown state setting 'bakend'"),
            std::string::npos);
  EXPECT_NE(Error(base + "checkpoint: { retain: 0 }\n").find("at least 1"), std::string::npos);
  EXPECT_NE(Error(base + "checkpoint: { interval: often }\n").find("'often' is not a duration"),
            std::string::npos);
  EXPECT_NE(Error(base + "outputs: { matches: { type: file, path: o.jsonl }, late: { type: file, "
                         "path: o.jsonl } }\n")
                .find("outputs 'matches' and 'late' write the same file"),
            std::string::npos);
}

}  // namespace
}  // namespace cepheus::engine
