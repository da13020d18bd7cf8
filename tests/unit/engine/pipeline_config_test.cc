// Pipeline files: valid ones load; invalid ones say where and what.
#include "engine/plan/pipeline_config.h"

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
  EXPECT_EQ(s.source.format, RecordFormat::kCsv);
  EXPECT_EQ(s.key, std::vector<std::string>{"card"});
  EXPECT_EQ(s.watermark.max_out_of_orderness.millis(), 5000);
  EXPECT_EQ(s.watermark.idle_timeout.millis(), 60000);
  EXPECT_FALSE(s.watermark.follow_wall_clock_when_idle);
  ASSERT_EQ(c->patterns.size(), 2u);
  EXPECT_EQ(c->patterns[0].path, "/etc/cepheus/fraud.cep");
  EXPECT_FALSE(c->patterns[1].inline_text.empty());
  EXPECT_EQ(c->matches.path, "/etc/cepheus/out/m.jsonl");
  ASSERT_TRUE(c->late.has_value());
  EXPECT_EQ(c->late->kind, io::SinkKind::kStderr);
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
                   "outputs: { matches: { type: kafkaa } }\n")
          .find("must be stdout, stderr, file or kafka"),
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

TEST(PipelineConfig, WatermarkModesAndTheWatermarksOutput) {
  const std::string base =
      "streams:\n  s:\n    source: { path: e.jsonl }\n"
      "    schema: { a: string, ts: timestamp, wm: timestamp }\n"
      "    event_time: { field: ts";
  auto d = ParsePipelineConfig(base + " }\npatterns: [x]\n", "p.yaml");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->streams[0].watermark.from_event_times);
  EXPECT_EQ(d->streams[0].punctuation_field, "__watermark");
  EXPECT_FALSE(d->watermarks.has_value());
  auto c = ParsePipelineConfig(
      base +
          ", watermark: punctuated, punctuation_field: wmark, watermark_field: wm }\n"
          "patterns: [x]\noutputs:\n  watermarks: { type: file, path: out/wm.jsonl }\n",
      "/p/p.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_FALSE(c->streams[0].watermark.from_event_times);
  EXPECT_EQ(c->streams[0].punctuation_field, "wmark");
  EXPECT_EQ(c->streams[0].watermark_field, "wm");
  ASSERT_TRUE(c->watermarks.has_value());
  EXPECT_EQ(c->watermarks->path, "/p/out/wm.jsonl");
  EXPECT_NE(Error(base + ", watermark: sometimes }\npatterns: [x]\n")
                .find("event_time.watermark must be bounded"),
            std::string::npos);
  EXPECT_NE(Error(base + ", watermark_field: nope }\npatterns: [x]\n").find("not in the schema"),
            std::string::npos);
  EXPECT_NE(Error(base + ", watermark_field: a }\npatterns: [x]\n").find("must be a timestamp"),
            std::string::npos);
  std::string csv = base;
  csv.replace(csv.find("path: e.jsonl"), 13, "path: e.csv, format: csv");
  EXPECT_NE(Error(csv + ", watermark: punctuated }\npatterns: [x]\n")
                .find("needs event_time.watermark_field"),
            std::string::npos);
  EXPECT_NE(Error(base + " }\npatterns: [x]\noutputs:\n  matches: { type: file, path: m }\n"
                         "  watermarks: { type: file, path: m }\n")
                .find("write the same file"),
            std::string::npos);
}

// Misspelt or misplaced keys anywhere are errors with a suggestion, and
// values of the wrong type name the setting.
TEST(PipelineConfig, StrictKeysAndTypedValues) {
  const std::string head = "streams:\n  s:\n";
  const std::string src = "    source: { path: e.jsonl }\n";
  const std::string rest =
      "    schema: { a: string, ts: timestamp }\n    event_time: ts\npatterns: [x]\n";
  struct Case {
    std::string yaml, error;
  } cases[] = {
      {head + "    source: { path: e.jsonl, formt: csv }\n" + rest,
       "p.yaml:3:30: unknown key 'formt' in streams.s.source, file source (did you mean "
       "'format'?)"},
      {head + src +
           "    schema: { a: string, ts: timestamp }\n    event_time: { field: ts, "
           "max_out_of_order: 30s }\npatterns: [x]\n",
       "unknown key 'max_out_of_order' in streams.s.event_time (did you mean "
       "'max_out_of_orderness'?)"},
      {head + src + "    shema: { a: string }\n" + rest,
       "unknown key 'shema' in streams.s (did you mean 'schema'?)"},
      {head + src + rest + "outputs: { matches: { type: file, pth: o.jsonl } }\n",
       "unknown key 'pth' in outputs.matches, file output (did you mean 'path'?)"},
      // Each kind reads its own keys: a path means nothing to stdout.
      {head + src + rest + "outputs: { late: { type: stdout, path: o.jsonl } }\n",
       "p.yaml:7:34: unknown key 'path' in outputs.late, stdout output; known keys: type"},
      {head + src + rest + "outputs: { late: { type: kafka, topic: t } }\n",
       "p.yaml:7:18: a kafka output needs brokers: host:port[,host:port...]"},
      {head + src + rest +
           "outputs: { late: { type: kafka, brokers: b, topic: t, delivery: sometimes } }\n",
       "outputs.late.delivery must be exactly_once or at_least_once, not 'sometimes'"},
      {head + src + rest +
           "outputs: { late: { type: kafka, brokers: b, delivery: at_least_once } }\n",
       "a kafka output needs topic: <name>"},
      {head + src + rest + "outputs: { late: { type: kafka, brokers: b, topic: t, path: x } }\n",
       "unknown key 'path' in outputs.late, kafka output"},
      {head + "    source: { type: kafkaa, topic: t }\n" + rest,
       "p.yaml:3:21: source type 'kafkaa' is not supported here (supported: file, kafka)"},
      {head + "    source: { type: kafka, topic: t }\n" + rest,
       "p.yaml:3:13: a kafka source needs brokers: host:port[,host:port...]"},
      {head + "    source: { type: kafka, brokers: b, topic: t, grup: g }\n" + rest,
       "p.yaml:3:50: unknown key 'grup' in streams.s.source, kafka source (did you mean 'group'?)"},
      {head + "    source: { type: kafka, brokers: b, topic: t, start: yesterday }\n" + rest,
       "start must be earliest, latest or a time"},
      {head + "    source: { type: kafka, brokers: b }\n" + rest,
       "a kafka source needs topic: <name> (or topics: [...])"},
      {head + src + rest + "metrics: { port: 9464 }\n", "unknown key 'port' in metrics"},
      {head + src + rest + "metrics: { listen: localhost }\n", "metrics.listen must be host:port"},
      {head + src + rest + "metrics: maybe\n", "metrics must be off or a map"},
      {head + src + rest + "log: { level: loud }\n", "log.level must be trace, debug"},
      {head + src + rest + "log: { progress: often }\n", "log.progress: 'often' is not a duration"},
      {head + src + rest + "log: { format: xml }\n", "log.format must be text or json, not 'xml'"},
      {head + src + rest + "limits: { p: { max_state_bytes: lots } }\n",
       "limits.p.max_state_bytes must be a size like 64MiB, not 'lots'"},
      {head + src + rest + "limits: { p: { max_runs: 3 } }\n",
       "unknown key 'max_runs' in limits.p"},
      {head + src + rest + "limits: { p: {} }\n",
       "limits.p needs max_runs_per_key or max_state_bytes"},
      {head + src + rest + "log: { colour: yes }\n", "unknown key 'colour' in log"},
      {head + src + rest + "parralelism: 2\n",
       "unknown key 'parralelism' in the pipeline (did you mean 'parallelism'?)"},
      {head + src + rest + "limits: { max_runs: 5 }\n", "unknown key 'max_runs' in limits"},
      {head + src + rest + "parallelism: lots\n",
       "p.yaml:7:14: parallelism: expected a whole number, got 'lots'"},
      {head + src + rest + "parallelism: [1, 2]\n",
       "parallelism: expected a text value, got a list"},
      {head + src + rest + "checkpoint: { enabled: maybe }\n",
       "checkpoint.enabled: expected true or false, got 'maybe'"},
      {head + "    source: { path: { a: 1 } }\n" + rest,
       "streams.s.source.path: expected a text value, got a map"},
      {head + src + rest + "checkpoint: { interval: 0s }\n",
       "checkpoint.interval must be positive"},
      {head + src + rest + "state: { cache_keys: 0 }\n", "state.cache_keys must be at least 1"},
      {head + src + rest + "limits: { warn_bad_input_ratio: 2 }\n",
       "warn_bad_input_ratio must be a fraction"},
      {head + src + rest + "limits: { max_live_runs: 10 }\n",
       "limits.max_live_runs must be at least 1000"},
      {head + "    source: { path: \"-\" }\n" + rest.substr(0, rest.find("patterns")) +
           "  t:\n    source: { path: \"-\" }\n" + rest,
       "streams 's' and 't' both read standard input"},
  };
  for (const Case& c : cases)
    EXPECT_NE(Error(c.yaml).find(c.error), std::string::npos) << c.yaml << "\n-> " << Error(c.yaml);
}

TEST(PipelineConfig, KafkaOutputsAreExactlyOnceUnlessTheySayOtherwise) {
  const std::string base =
      "streams:\n  s:\n    source: { path: e.jsonl }\n    schema: { a: string, ts: timestamp }\n"
      "    event_time: ts\npatterns: [x]\noutputs:\n"
      "  matches: { type: kafka, brokers: b, topic: alerts }\n"
      "  late: { type: kafka, brokers: b, topic: late, delivery: at_least_once }\n"
      "  dead_letter: { type: kafka, brokers: b, topic: dead, delivery: exactly_once }\n";
  auto c = ParsePipelineConfig(base, "/p/p.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  using D = io::KafkaSinkSpec::Delivery;
  EXPECT_EQ(c->matches.kafka.delivery, D::kExactlyOnce);
  EXPECT_EQ(c->late->kafka.delivery, D::kAtLeastOnce);
  EXPECT_EQ(c->dead_letter->kafka.delivery, D::kExactlyOnce);
  EXPECT_EQ(c->matches.kafka.topic, "alerts");
}

TEST(PipelineConfig, MetricsListenOnLoopbackUnlessToldOtherwise) {
  const std::string base =
      "streams:\n  s:\n    source: { path: e.jsonl }\n    schema: { a: string, ts: timestamp }\n"
      "    event_time: ts\npatterns: [x]\n";
  auto d = ParsePipelineConfig(base, "/p/p.yaml");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->metrics_listen, "127.0.0.1:9464");
  auto off = ParsePipelineConfig(base + "metrics: off\n", "/p/p.yaml");
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off->metrics_listen, "");
  auto any = ParsePipelineConfig(base + "metrics: { listen: \"0.0.0.0:9500\" }\n", "/p/p.yaml");
  ASSERT_TRUE(any.ok());
  EXPECT_EQ(any->metrics_listen, "0.0.0.0:9500");
}

TEST(PipelineConfig, StateAndCheckpointSettings) {
  const std::string base =
      "streams:\n  s:\n    source: { path: e.jsonl }\n    schema: { a: string, ts: timestamp }\n"
      "    event_time: ts\npatterns: [x]\n";
  auto d = ParsePipelineConfig(base, "/p/p.yaml");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->state_backend, state::BackendKind::kRocksDb);
  EXPECT_EQ(d->state_dir, "/p/state");
  EXPECT_TRUE(d->checkpoints_enabled);
  EXPECT_EQ(d->checkpoint_interval.millis(), 10000);
  EXPECT_EQ(d->checkpoint_retain, 3);
  auto c = ParsePipelineConfig(base +
                                   "state: { backend: memory, dir: /var/lib/x, cache_keys: 5 }\n"
                                   "checkpoint: { interval: 30s, retain: 5 }\n",
                               "/p/p.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->state_backend, state::BackendKind::kMemory);
  EXPECT_EQ(c->state_dir, "/var/lib/x");
  EXPECT_EQ(c->state_cache_keys, 5u);
  EXPECT_EQ(c->checkpoint_interval.millis(), 30000);
  EXPECT_EQ(c->checkpoint_retain, 5);
  auto off = ParsePipelineConfig(base + "checkpoint: { interval: off }\n", "p.yaml");
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off->checkpoint_interval.millis(), 0);
  EXPECT_NE(Error(base + "state: { backend: leveldb }\n").find("rocksdb or memory"),
            std::string::npos);
  EXPECT_NE(Error(base + "state: { bakend: memory }\n")
                .find("unknown key 'bakend' in state (did you mean 'backend'?)"),
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
