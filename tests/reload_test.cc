// Hot reload: `cepheus run` over a live input (a FIFO the test writes to)
// takes a new pattern set on SIGHUP -- at a checkpoint, keeping the partial
// matches of unchanged patterns, dropping removed ones, starting new ones
// empty -- and keeps the old set when the new one is invalid.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "tests/support/test_io.h"

namespace cepheus {
namespace {

using testing::WaitUntil;
double Series(const std::string& text, const std::string& series) {
  return testing::ScrapedValue(text, series);
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = 0; (at = text.find(what, at)) != std::string::npos; ++at) ++n;
  return n;
}

// The pipeline of these tests: one stream read from a FIFO, rules.cep,
// an exactly-once file output, checkpoints only at stops (and reloads),
// metrics on a free port; `extra` adds settings.
void WritePipeline(const std::string& dir, const std::string& extra = "") {
  testing::WriteFile(dir + "/p.yaml",
                     "streams:\n  s:\n    source: { type: file, path: in.fifo }\n"
                     "    schema: { user: string, kind: string, ts: timestamp }\n"
                     "    key: user\n    event_time: { field: ts, max_out_of_orderness: 0s }\n"
                     "patterns: [ rules.cep ]\n"
                     "outputs: { matches: { type: file, path: m.jsonl } }\n"
                     "checkpoint: { interval: 1h }\nstate: { dir: state }\n"
                     "metrics: { listen: \"127.0.0.1:0\" }\n" +
                         extra);
}

// `cepheus run` of that pipeline, its FIFO open for writing.
struct LiveRun {
  std::string log;
  int pid = -1, in = -1, port = -1;
  void Send(const std::string& lines) const {
    ASSERT_EQ(::write(in, lines.data(), lines.size()), static_cast<ssize_t>(lines.size()));
  }
  double Scrape(const std::string& series) const {
    return Series(testing::HttpGet(port, "/metrics").body, series);
  }
};
void Start(const std::string& dir, LiveRun* r) {
  const std::string fifo = dir + "/in.fifo";
  if (::access(fifo.c_str(), F_OK) != 0) {
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  }
  r->log = dir + "/run.log";
  // A restart appends to the same log: its port is logged after this.
  const size_t from = testing::ReadFile(r->log).size();
  r->pid = testing::SpawnCli({"run", dir + "/p.yaml"}, 1, r->log);
  r->in = ::open(fifo.c_str(), O_WRONLY);
  ASSERT_GE(r->in, 0);
  ASSERT_TRUE(WaitUntil([&] {
    return (r->port = testing::LoggedMetricsPort(testing::ReadFile(r->log).substr(from))) > 0;
  })) << testing::ReadFile(r->log);
}

TEST(HotReload, KeepsUnchangedPatternsAndRefusesAnInvalidSet) {
  const std::string dir = testing::ScratchDir("hot-reload");
  const std::string rule = " FROM s MATCH a -> b WITHIN 1 HOUR DEFINE a AS kind = 'a', b AS kind ";
  testing::WriteFile(dir + "/rules.cep",
                     "PATTERN keep" + rule + "= 'b' EMIT user\n" +
                         "PATTERN gone FROM s MATCH a -> a WITHIN 1 HOUR DEFINE a AS kind = 'a' "
                         "EMIT user\n");
  WritePipeline(dir);
  LiveRun run;
  ASSERT_NO_FATAL_FAILURE(Start(dir, &run));
  const int pid = run.pid;
  const std::string log = run.log;
  auto send = [&](const std::string& lines) { run.Send(lines); };
  auto scrape = [&](const std::string& series) { return run.Scrape(series); };
  // Before: u1 starts a `keep` run; u2 completes `gone` (u9 moves the watermark).
  send(
      "{\"user\":\"u1\",\"kind\":\"a\",\"ts\":1000}\n{\"user\":\"u2\",\"kind\":\"a\",\"ts\":1001}\n"
      "{\"user\":\"u2\",\"kind\":\"a\",\"ts\":1002}\n{\"user\":\"u9\",\"kind\":\"x\",\"ts\":1003}"
      "\n");
  ASSERT_TRUE(WaitUntil([&] { return scrape("cepheus_matches_total{pattern=\"gone\"}") == 1; }))
      << testing::ReadFile(log);
  // An invalid set is refused; the old one keeps running.
  testing::WriteFile(dir + "/rules.cep", "PATTERN keep FROM s MATCH a ->\n");
  ASSERT_EQ(::kill(pid, SIGHUP), 0);
  ASSERT_TRUE(WaitUntil([&] { return scrape("cepheus_reload_failures_total") == 1; }))
      << testing::ReadFile(log);
  EXPECT_NE(testing::ReadFile(log).find("reload refused, the running pattern set stays"),
            std::string::npos);
  EXPECT_NE(testing::ReadFile(log).find("rules.cep:2:1: error: expected a stage"),
            std::string::npos)
      << "the error has its position: " << testing::ReadFile(log);
  // A valid set: `keep` changed in a condition and its EMIT only (the same
  // automaton and state layout), `gone` removed, `fresh` new.
  testing::WriteFile(dir + "/rules.cep",
                     "PATTERN keep" + rule + "= 'b' AND ts > 0 EMIT user AS who\n" +
                         "PATTERN fresh FROM s MATCH b -> b WITHIN 1 HOUR DEFINE b AS kind = 'b' "
                         "EMIT user\n");
  ASSERT_EQ(::kill(pid, SIGHUP), 0);
  ASSERT_TRUE(WaitUntil([&] { return scrape("cepheus_reloads_total") == 1; }))
      << testing::ReadFile(log);
  // After: u1's `keep` run from before the reload completes; u2's a a would
  // have matched `gone`; u1's b b matches `fresh`.
  send(
      "{\"user\":\"u1\",\"kind\":\"b\",\"ts\":2000}\n{\"user\":\"u1\",\"kind\":\"b\",\"ts\":2001}\n"
      "{\"user\":\"u2\",\"kind\":\"a\",\"ts\":2002}\n{\"user\":\"u2\",\"kind\":\"a\",\"ts\":2003}"
      "\n");
  ::close(run.in);  // the end of the input ends the run
  ASSERT_EQ(testing::WaitPid(pid), 0) << testing::ReadFile(log);
  const std::string out = testing::ReadFile(dir + "/m.jsonl");
  const std::string text = testing::ReadFile(log);
  EXPECT_EQ(Count(out, "\n"), 3u) << out;
  EXPECT_EQ(Count(out,
                  "\"pattern\":\"keep\",\"type\":\"match\",\"key\":\"u1\",\"start\":\"1970-01-"
                  "01T00:00:01.000Z\",\"end\":\"1970-01-01T00:00:02.000Z\""),
            1u)
      << "the partial match from before the reload completed after it:\n"
      << out;
  EXPECT_EQ(Count(out, "\"fields\":{\"who\":\"u1\"}"), 1u)
      << "...under the new definition (its EMIT):\n"
      << out;
  EXPECT_EQ(Count(out, "\"pattern\":\"gone\""), 1u) << "only before the reload:\n" << out;
  EXPECT_EQ(Count(out, "\"pattern\":\"fresh\""), 1u) << out;
  for (const char* line :
       {"pattern keep: changed since checkpoint 1 in its conditions or EMIT only",
        "pattern gone: removed since", "pattern fresh: new since checkpoint"})
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
}

// A reload then a SIGKILL: the next start restores the checkpoint the
// reload stopped at and maps it onto the new pattern set again -- the
// partial match of the pattern that stayed, not the removed one's.
TEST(HotReload, AKillAfterAReloadRestoresTheNewSetsState) {
  const std::string dir = testing::ScratchDir("hot-reload-kill");
  const std::string keep =
      "PATTERN keep FROM s MATCH a -> b WITHIN 1 HOUR DEFINE a AS kind = 'a', b AS kind = 'b' "
      "EMIT user\n";
  testing::WriteFile(dir + "/rules.cep",
                     keep +
                         "PATTERN gone FROM s MATCH a -> c WITHIN 1 HOUR DEFINE a AS kind = "
                         "'a', c AS kind = 'c' EMIT user\n");
  WritePipeline(dir);
  LiveRun run;
  ASSERT_NO_FATAL_FAILURE(Start(dir, &run));
  // u1 starts a run of both patterns; the reload keeps `keep` and drops `gone`.
  const std::string before =
      "{\"user\":\"u1\",\"kind\":\"a\",\"ts\":1000}\n{\"user\":\"u9\",\"kind\":\"x\",\"ts\":1001}"
      "\n";
  run.Send(before);
  ASSERT_TRUE(WaitUntil([&] { return run.Scrape("cepheus_records_read_total") == 2; }));
  testing::WriteFile(dir + "/rules.cep", keep);
  ASSERT_EQ(::kill(run.pid, SIGHUP), 0);
  ASSERT_TRUE(WaitUntil([&] { return run.Scrape("cepheus_reloads_total") == 1; }))
      << testing::ReadFile(run.log);
  ASSERT_EQ(::kill(run.pid, SIGKILL), 0);
  testing::WaitPid(run.pid);
  ::close(run.in);
  // The next start: the state of the reload's checkpoint, the new set.
  LiveRun again;
  ASSERT_NO_FATAL_FAILURE(Start(dir, &again));
  const std::string after =
      "{\"user\":\"u1\",\"kind\":\"b\",\"ts\":2000}\n{\"user\":\"u1\",\"kind\":\"c\",\"ts\":2001}"
      "\n";
  again.Send(after);
  ::close(again.in);
  ASSERT_EQ(testing::WaitPid(again.pid), 0) << testing::ReadFile(again.log);
  const std::string out = testing::ReadFile(dir + "/m.jsonl");
  EXPECT_EQ(Count(out,
                  "\"pattern\":\"keep\",\"type\":\"match\",\"key\":\"u1\",\"start\":\"1970-01-"
                  "01T00:00:01.000Z\""),
            1u)
      << out;
  EXPECT_EQ(Count(out, "\"pattern\":\"gone\""), 0u) << out;
  const std::string text = testing::ReadFile(again.log);
  for (const char* line : {"pattern keep: unchanged since checkpoint 1, its state is restored",
                           "pattern gone: removed since checkpoint 1"})
    EXPECT_GE(Count(text, line), 1u) << "at the restart (and at the reload, unless the kill came "
                                        "first): "
                                     << line << "\n"
                                     << text;
}

// patterns_reload: watch -- a changed pattern file is picked up without a
// signal (the files are looked at twice a second).
TEST(HotReload, AWatchedPatternFileReloadsWithoutASignal) {
  const std::string dir = testing::ScratchDir("hot-reload-watch");
  testing::WriteFile(dir + "/rules.cep",
                     "PATTERN one FROM s MATCH a DEFINE a AS kind = 'a' EMIT user\n");
  WritePipeline(dir, "patterns_reload: watch\n");
  LiveRun run;
  ASSERT_NO_FATAL_FAILURE(Start(dir, &run));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  testing::WriteFile(dir + "/rules.cep",
                     "PATTERN two FROM s MATCH b DEFINE b AS kind = 'b' EMIT user\n");
  ASSERT_TRUE(WaitUntil([&] { return run.Scrape("cepheus_reloads_total") == 1; }))
      << testing::ReadFile(run.log);
  const std::string lines =
      "{\"user\":\"u1\",\"kind\":\"a\",\"ts\":1}\n{\"user\":\"u1\",\"kind\":\"b\",\"ts\":2}\n";
  run.Send(lines);
  ::close(run.in);
  ASSERT_EQ(testing::WaitPid(run.pid), 0) << testing::ReadFile(run.log);
  const std::string out = testing::ReadFile(dir + "/m.jsonl");
  EXPECT_EQ(Count(out, "\"pattern\":\"two\""), 1u) << out;
  EXPECT_EQ(Count(out, "\"pattern\":\"one\""), 0u) << out;
  EXPECT_NE(testing::ReadFile(run.log).find("reload: a pattern file or the pipeline file of " +
                                            dir + "/p.yaml changed"),
            std::string::npos)
      << testing::ReadFile(run.log);
}

}  // namespace
}  // namespace cepheus
