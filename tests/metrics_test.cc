// Metrics, health and readiness over real HTTP: `cepheus run` reading a live
// input (a FIFO the test writes to) serves /metrics, /healthz and /readyz
// on an ephemeral port; the counts scraped while it runs are exact.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "tests/support/test_io.h"

namespace cepheus {
namespace {

double Series(const std::string& text, const std::string& name) {
  return testing::ScrapedValue(text, name);
}
using testing::WaitUntil;

TEST(MetricsHttp, LiveCountsHealthAndReadinessOfARunningPipeline) {
  const std::string dir = testing::ScratchDir("metrics-http");
  // 3000 records: every 100th event is 20 s late, every 250th line is not
  // JSON. The reader alone decides both, so the counts are exact.
  std::string events;
  int late = 0, bad = 0, records = 0;
  for (int i = 0; i < 3000; ++i, ++records) {
    if (i % 250 == 249) {
      events += "{oops " + std::to_string(i) + "\n";
      ++bad;
      continue;
    }
    int64_t ts = 1700000000000 + i * 100;
    if (i % 100 == 99) {
      ts -= 20000;
      ++late;
    }
    events += "{\"key\":\"u" + std::to_string(i % 7) + "\",\"type\":\"" +
              std::string(1, "ABC"[(i / 7) % 3]) + "\",\"ts\":" + std::to_string(ts) + "}\n";
  }
  testing::WriteFile(dir + "/p.yaml",
                     "streams:\n  s:\n    source: { path: \"-\" }\n"
                     "    schema: { key: string, type: string, ts: timestamp }\n"
                     "    key: key\n    event_time: { field: ts, max_out_of_orderness: 0s }\n"
                     "patterns:\n  - inline: |\n      PATTERN abc FROM s\n"
                     "      MATCH a -> b -> c WITHIN 10 SECONDS\n"
                     "      DEFINE a AS type = 'A', b AS type = 'B', c AS type = 'C'\n"
                     "      EMIT key\n"
                     "  - inline: |\n      PATTERN bc FROM s\n"
                     "      MATCH b -> c WITHIN 10 SECONDS\n"
                     "      DEFINE b AS type = 'B', c AS type = 'C'\n"
                     "      EMIT key\n"
                     "outputs:\n  matches: { type: file, path: matches.jsonl }\n"
                     "  late: { type: file, path: late.jsonl }\n"
                     "  dead_letter: { type: file, path: dead.jsonl }\n"
                     "checkpoint: { enabled: false }\n"
                     "metrics: { listen: \"127.0.0.1:0\" }\n"
                     "log: { progress: 100ms }\n");
  const std::string fifo = dir + "/in.fifo", log = dir + "/run.log";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const int pid = testing::SpawnCli({"run", dir + "/p.yaml"}, 1, log, fifo);
  const int in = ::open(fifo.c_str(), O_WRONLY);  // meets the child's open
  ASSERT_GE(in, 0);
  int port = -1;
  ASSERT_TRUE(WaitUntil([&] {
    return (port = testing::LoggedMetricsPort(testing::ReadFile(log))) > 0;
  })) << testing::ReadFile(log);

  // Up and serving before any record arrived.
  EXPECT_EQ(testing::HttpGet(port, "/healthz").status, 200);
  EXPECT_TRUE(WaitUntil([&] { return testing::HttpGet(port, "/readyz").status == 200; }));
  EXPECT_EQ(Series(testing::HttpGet(port, "/metrics").body, "cepheus_records_read_total"), 0);

  ASSERT_EQ(::write(in, events.data(), events.size()), static_cast<ssize_t>(events.size()));
  std::string text;
  ASSERT_TRUE(WaitUntil([&] {
    text = testing::HttpGet(port, "/metrics").body;
    return Series(text, "cepheus_records_read_total") == records;
  })) << text;
  // The run is still going (the FIFO is open): these are live values.
  EXPECT_EQ(Series(text, "cepheus_late_events_total"), late);
  EXPECT_EQ(Series(text, "cepheus_dead_letters_total"), bad);
  EXPECT_EQ(Series(text, "cepheus_stream_records_total{stream=\"s\"}"), records);
  EXPECT_EQ(Series(text, "cepheus_stream_late_events_total{stream=\"s\"}"), late);
  EXPECT_EQ(Series(text, "cepheus_stream_dead_letters_total{stream=\"s\"}"), bad);
  EXPECT_NE(text.find("# HELP cepheus_records_read_total Input records read\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE cepheus_records_read_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE cepheus_live_runs gauge\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE cepheus_output_latency_seconds histogram\n"), std::string::npos);
  // Every event that was neither bad nor late looked up its key once per
  // pattern, but the newest: it waits for the watermark to pass it.
  EXPECT_TRUE(WaitUntil([&] {
    text = testing::HttpGet(port, "/metrics").body;
    return Series(text, "cepheus_state_cache_lookups_total") == 2 * (records - bad - late - 1);
  })) << text;
  EXPECT_EQ(Series(text, "cepheus_state_cache_misses_total"), 0) << "no state backend";
  // Matches per pattern: the count scraped equals the lines the output
  // holds, once the watermark has released what it will release.
  auto lines = [&](const std::string& pattern) {
    const std::string m = testing::ReadFile(dir + "/matches.jsonl");
    double n = 0;
    for (size_t at = 0; (at = m.find("\"pattern\":\"" + pattern + "\"", at)) != std::string::npos;
         ++at)
      ++n;
    return n;
  };
  double abc = -1, bc = -1;
  EXPECT_TRUE(WaitUntil([&] {
    text = testing::HttpGet(port, "/metrics").body;
    abc = Series(text, "cepheus_matches_total{pattern=\"abc\"}");
    bc = Series(text, "cepheus_matches_total{pattern=\"bc\"}");
    return abc > 0 && bc > 0 && abc == lines("abc") && bc == lines("bc");
  })) << abc
      << " and " << bc << " scraped, " << lines("abc") << " and " << lines("bc") << " written";
  EXPECT_NE(abc, bc) << "the two patterns match differently, so the labels are not mixed up";
  // Each match written was observed once by the latency histogram, after
  // its event was read: in the buckets, and well under a minute.
  EXPECT_EQ(Series(text, "cepheus_output_latency_seconds_count"), abc + bc) << text;
  EXPECT_EQ(Series(text, "cepheus_output_latency_seconds_bucket{le=\"+Inf\"}"), abc + bc);
  EXPECT_EQ(Series(text, "cepheus_output_latency_seconds_bucket{le=\"60\"}"), abc + bc);
  EXPECT_GT(Series(text, "cepheus_output_latency_seconds_sum"), 0);
  // Gauges per pattern exist (their values move with the partial matches).
  EXPECT_GE(Series(text, "cepheus_live_runs{pattern=\"abc\"}"), 0) << text;
  EXPECT_GE(Series(text, "cepheus_buffered_events{pattern=\"bc\"}"), 0) << text;
  EXPECT_EQ(testing::HttpGet(port, "/nothing").status, 404);
  // The watermark (at least the newest event's time - 1 ms) and its lag.
  text = testing::HttpGet(port, "/metrics").body;
  EXPECT_GE(Series(text, "cepheus_watermark_seconds"), 1700000299.799 - 1e-6) << text;
  EXPECT_GT(Series(text, "cepheus_watermark_lag_seconds"), 0) << text;
  // Per stream too (published once a second).
  EXPECT_TRUE(WaitUntil([&] {
    text = testing::HttpGet(port, "/metrics").body;
    return Series(text, "cepheus_stream_watermark_seconds{stream=\"s\"}") >= 1700000299.799 - 1e-6;
  })) << text;
  EXPECT_GT(Series(text, "cepheus_stream_watermark_lag_seconds{stream=\"s\"}"), 0) << text;
  // The progress line (log.progress: 100ms) while the input is open.
  EXPECT_TRUE(WaitUntil([&] {
    return testing::ReadFile(log).find("progress: " + std::to_string(records) + " records") !=
           std::string::npos;
  })) << testing::ReadFile(log);

  ::close(in);  // the end of the input ends the run
  EXPECT_EQ(testing::WaitPid(pid), 0) << testing::ReadFile(log);
  EXPECT_EQ(testing::HttpGet(port, "/healthz").status, -1) << "the listener ends with the run";
}

// `backtest` serves the same listener: its progress while it reads and
// matches, then its results under the names `run` uses.
TEST(MetricsHttp, BacktestServesProgressAndResults) {
  const std::string dir = testing::ScratchDir("metrics-backtest");
  std::string events;
  for (int i = 0; i < 5000; ++i)
    events += "{\"key\":\"u" + std::to_string(i % 7) + "\",\"type\":\"" +
              std::string(1, "ABC"[(i / 7) % 3]) +
              "\",\"ts\":" + std::to_string(1700000000000 + i * 100) + "}\n";
  testing::WriteFile(dir + "/in.jsonl", events + "{broken\n");
  testing::WriteFile(dir + "/p.yaml",
                     "streams:\n  s:\n    source: { path: in.jsonl }\n"
                     "    schema: { key: string, type: string, ts: timestamp }\n"
                     "    key: key\n    event_time: ts\n"
                     "patterns:\n  - inline: |\n      PATTERN abc FROM s\n"
                     "      MATCH a -> b -> c WITHIN 10 SECONDS\n"
                     "      DEFINE a AS type = 'A', b AS type = 'B', c AS type = 'C'\n"
                     "      EMIT key\n"
                     "outputs: { dead_letter: { type: file, path: dead.jsonl } }\n"
                     "metrics: { listen: \"127.0.0.1:0\" }\n");
  const std::string log = dir + "/bt.log";
  const int pid = testing::SpawnCli(
      {"backtest", dir + "/p.yaml", "-o", dir + "/m.jsonl", "--testing-hold-metrics-ms", "20000"},
      1, log);
  int port = -1;
  ASSERT_TRUE(WaitUntil([&] {
    return (port = testing::LoggedMetricsPort(testing::ReadFile(log))) > 0;
  })) << testing::ReadFile(log);
  std::string text;
  ASSERT_TRUE(WaitUntil([&] {
    text = testing::HttpGet(port, "/metrics").body;
    return Series(text, "cepheus_matches_total{pattern=\"abc\"}") > 0;
  })) << text;
  const std::string out = testing::ReadFile(dir + "/m.jsonl");
  EXPECT_EQ(Series(text, "cepheus_matches_total{pattern=\"abc\"}"),
            static_cast<double>(std::count(out.begin(), out.end(), '\n')));
  EXPECT_EQ(Series(text, "cepheus_records_read_total"), 5001);
  EXPECT_EQ(Series(text, "cepheus_dead_letters_total"), 1);
  EXPECT_EQ(Series(text, "cepheus_backtest_events"), 5000);
  EXPECT_EQ(Series(text, "cepheus_backtest_progress_ratio"), 1);
  ::kill(pid, SIGTERM);
  testing::WaitPid(pid);
}

// A port someone else listens on: the run says so and goes on without
// metrics (no lost run because a dashboard port was taken).
TEST(MetricsHttp, APortInUseIsReportedAndTheRunGoesOn) {
  const std::string dir = testing::ScratchDir("metrics-busy");
  const int other = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(other, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(other, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(other, 4), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(other, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int busy = ntohs(addr.sin_port);
  testing::WriteFile(dir + "/e.jsonl", "{\"key\":\"a\",\"ts\":1700000000000}\n");
  testing::WriteFile(dir + "/p.yaml",
                     "streams:\n  s:\n    source: { path: e.jsonl }\n"
                     "    schema: { key: string, ts: timestamp }\n"
                     "    key: key\n    event_time: ts\n"
                     "patterns:\n  - inline: |\n      PATTERN one FROM s MATCH a DEFINE a AS "
                     "true EMIT key\n"
                     "outputs: { matches: { type: file, path: m.jsonl } }\n"
                     "checkpoint: { enabled: false }\n"
                     "metrics: { listen: \"127.0.0.1:" +
                         std::to_string(busy) + "\" }\n");
  auto r = testing::RunCli({"run", dir + "/p.yaml"});
  ::close(other);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("cannot listen on 127.0.0.1:" + std::to_string(busy)), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("running without metrics"), std::string::npos) << r.err;
  EXPECT_NE(testing::ReadFile(dir + "/m.jsonl").find("\"key\":\"a\""), std::string::npos);
}

}  // namespace
}  // namespace cepheus
