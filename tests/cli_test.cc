// The real `cepheus` binary as an operator meets it: live alerts leave while
// the input is still open, one process per state directory, and nothing an
// earlier run produced (or an input) is destroyed by starting again.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include <simdjson.h>

#include <sstream>

#include "tests/support/test_io.h"

namespace {

namespace fs = std::filesystem;
using cepheus::testing::ReadFile;
using cepheus::testing::RunCli;
using cepheus::testing::ScratchDir;
using cepheus::testing::SortedLines;
using cepheus::testing::SpawnCli;
using cepheus::testing::WaitPid;
using cepheus::testing::WriteFile;

constexpr const char* kSchema = "    schema: { user: string, kind: string, ts: timestamp }\n";
constexpr const char* kPattern =
    "patterns: [ { inline: \"PATTERN ab FROM s MATCH a -> b DEFINE a AS kind = 'a', b AS kind "
    "= 'b' EMIT user\" } ]\n";

class Cli : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = ScratchDir("cepheus-cli"); }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  // A pipeline over `input` (relative to dir_) with `rest` appended.
  std::string Pipeline(const std::string& name, const std::string& input, const std::string& rest,
                       const std::string& event_time = "{ field: ts, max_out_of_orderness: 0s }") {
    const std::string p = (dir_ / name).string();
    WriteFile(p, "streams:\n  s:\n    source: { type: file, path: " + input + " }\n" + kSchema +
                     "    key: user\n    event_time: " + event_time + "\n" + kPattern + rest);
    return p;
  }
  static std::string Events(int n) {
    std::string s;
    for (int i = 0; i < n; ++i)
      s += "{\"user\":\"u" + std::to_string(i % 7) + "\",\"kind\":\"" + (i % 2 ? "b" : "a") +
           "\",\"ts\":" + std::to_string(1000 + i) + "}\n";
    return s;
  }
  fs::path dir_;
};

// Reads one line from `fd` within `ms`, or returns "" on timeout or EOF.
std::string ReadLineWithin(int fd, int ms, std::string* pending) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (pending->find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) return "";
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return "";
    pending->append(buf, static_cast<size_t>(n));
  }
  const size_t nl = pending->find('\n');
  std::string line = pending->substr(0, nl);
  pending->erase(0, nl + 1);
  return line;
}

TEST_F(Cli, LiveMatchOnStdoutLeavesWhileTheInputIsStillOpen) {
  const std::string fifo = (dir_ / "in.fifo").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const int writer = ::open(fifo.c_str(), O_RDWR | O_CLOEXEC);  // keeps the FIFO open, never blocks
  ASSERT_GE(writer, 0);
  const std::string pipeline =
      Pipeline("p.yaml", "in.fifo", "outputs: { matches: { type: stdout } }\n",
               "{ field: ts, max_out_of_orderness: 0s, follow_wall_clock_when_idle: false }");
  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  const int pid = SpawnCli({"run", pipeline, "-p", "2"}, out[1], (dir_ / "err.log").string());
  ::close(out[1]);
  auto write = [&](const std::string& s) {
    ASSERT_EQ(::write(writer, s.data(), s.size()), static_cast<ssize_t>(s.size()));
  };
  std::string pending;
  // One event at a time; the match a@1000 b@2000 is released when a later
  // event moves the watermark past 2000.
  write("{\"user\":\"u1\",\"kind\":\"a\",\"ts\":1000}\n");
  write("{\"user\":\"u1\",\"kind\":\"b\",\"ts\":2000}\n");
  EXPECT_EQ(ReadLineWithin(out[0], 300, &pending), "") << "released before the watermark passed";
  const auto t0 = std::chrono::steady_clock::now();
  write("{\"user\":\"u2\",\"kind\":\"x\",\"ts\":3000}\n");
  const std::string line = ReadLineWithin(out[0], 10000, &pending);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  EXPECT_NE(line.find("\"pattern\":\"ab\""), std::string::npos)
      << "no match on stdout while the input is open: " << line;
  EXPECT_NE(line.find("\"user\":\"u1\""), std::string::npos) << line;
  EXPECT_LT(ms, 5000) << "the alert took " << ms << " ms";
  // A second match, later: each one leaves on its own.
  write(
      "{\"user\":\"u3\",\"kind\":\"a\",\"ts\":4000}\n{\"user\":\"u3\",\"kind\":\"b\",\"ts\":5000}"
      "\n");
  write("{\"user\":\"u2\",\"kind\":\"x\",\"ts\":6000}\n");
  const std::string second = ReadLineWithin(out[0], 10000, &pending);
  EXPECT_NE(second.find("\"user\":\"u3\""), std::string::npos) << second;
  ::close(writer);  // end of input: the run finishes
  EXPECT_EQ(WaitPid(pid), 0) << ReadFile(dir_ / "err.log");
  ::close(out[0]);
}

TEST_F(Cli, SecondRunOnTheSameStateDirectoryIsRefusedWithTheHoldersPid) {
  const std::string fifo = (dir_ / "in.fifo").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const int writer = ::open(fifo.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(writer, 0);
  const std::string pipeline =
      Pipeline("p.yaml", "in.fifo", "outputs: { matches: { type: file, path: out/m.jsonl } }\n");
  const int devnull = ::open("/dev/null", O_WRONLY);
  const int first = SpawnCli({"run", pipeline}, devnull, (dir_ / "first.log").string());
  // The first run holds the lock once its lock file names it.
  for (int i = 0; i < 500; ++i) {
    if (ReadFile(dir_ / "state" / "cepheus.lock") == std::to_string(first) + "\n") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(ReadFile(dir_ / "state" / "cepheus.lock"), std::to_string(first) + "\n");
  auto second = RunCli({"run", pipeline});
  EXPECT_EQ(second.code, 1);
  EXPECT_NE(second.err.find("in use by another cepheus process (pid " + std::to_string(first)),
            std::string::npos)
      << second.err;
  // The first run was not disturbed: it still takes input and finishes cleanly.
  const std::string events = Events(20);
  ASSERT_EQ(::write(writer, events.data(), events.size()), static_cast<ssize_t>(events.size()));
  ::close(writer);
  EXPECT_EQ(WaitPid(first), 0) << ReadFile(dir_ / "first.log");
  EXPECT_EQ(ReadFile(dir_ / "first.log").find("checkpoint failed"), std::string::npos);
  EXPECT_FALSE(ReadFile(dir_ / "out" / "m.jsonl").empty());
  ::close(devnull);
}

TEST_F(Cli, UnwritableStateDirectoryIsRefusedBeforeAnyWork) {
  WriteFile(dir_ / "in.jsonl", Events(10));
  WriteFile(dir_ / "blocker", "a file where the state directory's parent should be");
  for (const char* backend : {"memory", "rocksdb"}) {
    const std::string pipeline =
        Pipeline("p.yaml", "in.jsonl",
                 std::string("state: { backend: ") + backend + ", dir: blocker/state }\n");
    auto r = RunCli({"run", pipeline});
    EXPECT_EQ(r.code, 1) << backend;
    EXPECT_NE(r.err.find("cannot create state directory"), std::string::npos)
        << backend << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << backend << ": nothing may run: " << r.out;
  }
}

TEST_F(Cli, OutputThatIsAnInputIsRefusedAtCheck) {
  const std::string events = Events(10);
  WriteFile(dir_ / "in.jsonl", events);
  fs::create_hard_link(dir_ / "in.jsonl", dir_ / "alias.jsonl");
  for (const char* out : {"in.jsonl", "./sub/../in.jsonl", "alias.jsonl"}) {
    const std::string pipeline =
        Pipeline("p.yaml", "in.jsonl",
                 std::string("outputs: { late: { type: file, path: ") + out + " } }\n");
    for (const char* cmd : {"check", "run"}) {
      auto r = RunCli({cmd, pipeline});
      EXPECT_EQ(r.code, 1) << cmd << " " << out;
      EXPECT_NE(r.err.find("the input of stream 's'"), std::string::npos) << r.err;
    }
  }
  EXPECT_EQ(ReadFile(dir_ / "in.jsonl"), events) << "the input was touched";
  // Backtest: -o naming an input.
  const std::string pipeline = Pipeline("p.yaml", "in.jsonl", "");
  auto r = RunCli({"backtest", pipeline, "--input", (dir_ / "alias.jsonl").string(), "-o",
                   (dir_ / "in.jsonl").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("is also an input"), std::string::npos) << r.err;
  EXPECT_EQ(ReadFile(dir_ / "in.jsonl"), events) << "the input was touched";
  // Two outputs on one file, through a hard link.
  WriteFile(dir_ / "o1.jsonl", "");
  fs::create_hard_link(dir_ / "o1.jsonl", dir_ / "o2.jsonl");
  r = RunCli({"check", Pipeline("q.yaml", "in.jsonl",
                                "outputs: { late: { type: file, path: o1.jsonl }, dead_letter: { "
                                "type: file, path: o2.jsonl } }\n")});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("write the same file"), std::string::npos) << r.err;
}

TEST_F(Cli, VersionAndLogLevel) {
  auto v = RunCli({"--version"});
  EXPECT_EQ(v.code, 0);
  EXPECT_EQ(v.out.rfind("cepheus ", 0), 0u) << v.out;
  EXPECT_NE(v.out.find_first_of("0123456789"), std::string::npos) << v.out;
  WriteFile(dir_ / "in.jsonl", Events(40));
  const std::string pipeline = Pipeline("p.yaml", "in.jsonl",
                                        "outputs: { matches: { type: file, path: out/m.jsonl } }\n"
                                        "checkpoint: { enabled: false }\nmetrics: off\n");
  auto chatty = RunCli({"run", pipeline, "--restart"});
  ASSERT_EQ(chatty.code, 0) << chatty.err;
  EXPECT_NE(chatty.err.find(" info "), std::string::npos) << chatty.err;
  auto quiet = RunCli({"--log-level", "warn", "run", pipeline, "--restart"});
  ASSERT_EQ(quiet.code, 0) << quiet.err;
  EXPECT_EQ(quiet.err.find(" info "), std::string::npos) << quiet.err;
  EXPECT_EQ(ReadFile(dir_ / "out" / "m.jsonl").empty(), false);
  // The pipeline's log.level, unless the command line says otherwise.
  const std::string warn_only =
      Pipeline("w.yaml", "in.jsonl",
               "outputs: { matches: { type: file, path: out/m.jsonl } }\n"
               "checkpoint: { enabled: false }\nmetrics: off\nlog: { level: warn }\n");
  auto configured = RunCli({"run", warn_only, "--restart"});
  ASSERT_EQ(configured.code, 0) << configured.err;
  EXPECT_EQ(configured.err.find(" info "), std::string::npos) << configured.err;
  auto overridden = RunCli({"--log-level", "info", "run", warn_only, "--restart"});
  EXPECT_NE(overridden.err.find(" info "), std::string::npos) << overridden.err;
  auto bad = RunCli({"--log-level", "loud", "check", pipeline});
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("loud not in"), std::string::npos) << bad.err;
}

// log.format: json (or --log-format json): every line of standard error is
// one JSON object with time (UTC), level and message -- config warnings and
// messages with quotes and newlines included.
TEST_F(Cli, JsonLogsAreOneObjectPerLine) {
  WriteFile(dir_ / "in.jsonl", Events(40) + "{\"broken \"quote\n");
  // The pattern has no WITHIN: a warning (with its caret display) before
  // the run starts.
  const std::string outputs =
      "outputs: { matches: { type: file, path: out/m.jsonl }, dead_letter: { type: file, path: "
      "out/d.jsonl } }\ncheckpoint: { enabled: false }\nmetrics: off\n";
  const std::string json_cfg = Pipeline("j.yaml", "in.jsonl", outputs + "log: { format: json }\n");
  const std::string text_cfg = Pipeline("t.yaml", "in.jsonl", outputs);
  auto check_json = [](const std::string& err) {
    std::istringstream lines(err);
    int n = 0, infos = 0, warns = 0;
    simdjson::dom::parser parser;
    for (std::string line; std::getline(lines, line);) {
      ++n;
      simdjson::dom::element doc;
      ASSERT_FALSE(parser.parse(line).get(doc)) << "not JSON: " << line;
      std::string_view time, level, msg;
      ASSERT_FALSE(doc["time"].get(time)) << line;
      ASSERT_FALSE(doc["level"].get(level)) << line;
      ASSERT_FALSE(doc["msg"].get(msg)) << line;
      EXPECT_EQ(time.size(), 24u) << time;  // 2026-12-03T18:00:00.123Z
      EXPECT_EQ(time.back(), 'Z') << time;
      infos += level == "info";
      warns += level == "warning";
    }
    EXPECT_GT(infos, 0) << err;
    EXPECT_EQ(warns, 1) << "the pattern's warning, one message: " << err;
    EXPECT_GT(n, 2) << err;
  };
  auto configured = RunCli({"run", json_cfg, "--restart"});
  EXPECT_EQ(configured.code, 0) << configured.err;
  check_json(configured.err);
  EXPECT_NE(configured.err.find("unbounded state per key: no WITHIN"), std::string::npos)
      << configured.err;
  EXPECT_NE(configured.err.find("^"), std::string::npos) << "the caret stays in the message";
  auto flag = RunCli({"--log-format", "json", "run", text_cfg, "--restart"});
  EXPECT_EQ(flag.code, 0) << flag.err;
  check_json(flag.err);
  // The command line wins over the file.
  auto text = RunCli({"--log-format", "text", "run", json_cfg, "--restart"});
  EXPECT_EQ(text.code, 0) << text.err;
  EXPECT_EQ(text.err.find("{\"time\""), std::string::npos) << text.err;
  EXPECT_NE(text.err.find(" info "), std::string::npos) << text.err;
  auto bad = RunCli({"check", Pipeline("b.yaml", "in.jsonl", "log: { format: xml }\n")});
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("log.format must be text or json, not 'xml'"), std::string::npos)
      << bad.err;
}

TEST_F(Cli, FinishedPipelineIsNotRunAgainWithoutRestartAndKeepsItsOutput) {
  WriteFile(dir_ / "in.jsonl", Events(40));
  for (const char* ck : {"checkpoint: { interval: 10s }\n", "checkpoint: { enabled: false }\n"}) {
    fs::remove_all(dir_ / "state");
    fs::remove_all(dir_ / "out");
    const std::string pipeline =
        Pipeline("p.yaml", "in.jsonl",
                 std::string("outputs: { matches: { type: file, path: out/m.jsonl } }\n") + ck);
    auto first = RunCli({"run", pipeline});
    ASSERT_EQ(first.code, 0) << first.err;
    const std::string out = ReadFile(dir_ / "out" / "m.jsonl");
    ASSERT_FALSE(out.empty());
    auto again = RunCli({"run", pipeline});
    EXPECT_EQ(again.code, 1) << ck;
    EXPECT_NE(again.err.find("--restart"), std::string::npos) << again.err;
    EXPECT_EQ(ReadFile(dir_ / "out" / "m.jsonl"), out) << ck << "the earlier output was touched";
    auto restart = RunCli({"run", pipeline, "--restart"});
    EXPECT_EQ(restart.code, 0) << restart.err;
    EXPECT_EQ(SortedLines(ReadFile(dir_ / "out" / "m.jsonl")), SortedLines(out))
        << ck << "--restart reproduces the output";
  }
}

TEST_F(Cli, StdinSourceDoesNotLoseEarlierAlertsOnARerun) {
  // Standard input cannot be replayed, so a finished stdin pipeline asked to
  // run again must not replace the alerts of the first run.
  WriteFile(dir_ / "in.jsonl", Events(40));
  const std::string pipeline =
      Pipeline("p.yaml", "\"-\"", "outputs: { matches: { type: file, path: out/m.jsonl } }\n");
  ASSERT_EQ(RunCli({"run", pipeline}, (dir_ / "in.jsonl").string()).code, 0);
  const std::string out = ReadFile(dir_ / "out" / "m.jsonl");
  ASSERT_FALSE(out.empty());
  WriteFile(dir_ / "other.jsonl", "");
  auto again = RunCli({"run", pipeline}, (dir_ / "other.jsonl").string());
  EXPECT_EQ(again.code, 1);
  EXPECT_EQ(ReadFile(dir_ / "out" / "m.jsonl"), out);
}

}  // namespace

namespace {

TEST_F(Cli, UsageErrorsExitTwoAndSayWhatIsWrong) {
  auto unknown = RunCli({"chek", "p.yaml"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.err.find("unknown command 'chek'"), std::string::npos) << unknown.err;
  auto missing = RunCli({"run"});
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("pipeline is required"), std::string::npos) << missing.err;
  auto range = RunCli({"run", "p.yaml", "-p", "0"});
  EXPECT_EQ(range.code, 2) << range.err;
  EXPECT_EQ(RunCli({"--help"}).code, 0);
  WriteFile(dir_ / "in.jsonl", Events(10));
  const std::string pipeline = Pipeline("p.yaml", "in.jsonl", "");
  auto empty = RunCli({"backtest", pipeline, "--from", "2026-01-02", "--to", "2026-01-01"});
  EXPECT_EQ(empty.code, 2);
  EXPECT_NE(empty.err.find("must be before --to"), std::string::npos) << empty.err;
  auto bad = RunCli({"backtest", pipeline, "--from", "soon"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("not a date, an RFC 3339 time or epoch milliseconds"), std::string::npos);
  // Epoch milliseconds work as bounds: events at 1000..1009, keep [1002, 1006).
  auto ms = RunCli({"backtest", pipeline, "--from", "1002", "--to", "1006", "--summary-json",
                    (dir_ / "s.json").string(), "-o", (dir_ / "bt.jsonl").string()});
  ASSERT_EQ(ms.code, 0) << ms.err;
  EXPECT_NE(ReadFile(dir_ / "s.json").find("\"events\":4,"), std::string::npos)
      << ReadFile(dir_ / "s.json");
}

TEST_F(Cli, CheckVerifiesInputsAndOutputDirectories) {
  const std::string missing = Pipeline("p.yaml", "nope.jsonl", "");
  auto r = RunCli({"check", missing});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("input file '" + (dir_ / "nope.jsonl").string() + "' does not exist"),
            std::string::npos)
      << r.err;
  WriteFile(dir_ / "in.jsonl", Events(10));
  WriteFile(dir_ / "file", "");
  const std::string blocked = Pipeline(
      "q.yaml", "in.jsonl", "outputs: { late: { type: file, path: file/sub/late.jsonl } }\n");
  r = RunCli({"check", blocked});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("output 'late'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("is not a writable directory"), std::string::npos) << r.err;
  EXPECT_EQ(RunCli({"check", Pipeline("ok.yaml", "in.jsonl", "")}).code, 0);
}

// `patterns:` takes globs and directories of .cep files; `check` reports
// every error of every file (and every unusable path), not just the first,
// and warns only about patterns whose state per key has no bound.
TEST_F(Cli, CheckReportsEveryErrorOfEveryPatternFile) {
  const std::string head = "streams:\n  s:\n    source: { type: file, path: in.jsonl }\n" +
                           std::string(kSchema) + "    key: user\n    event_time: ts\n";
  fs::create_directories(dir_ / "rules" / "more");
  WriteFile(dir_ / "in.jsonl", Events(10));
  WriteFile(dir_ / "rules" / "a.cep",
            "PATTERN a1 FROM s MATCH a -> b WITHIN 1 MINUTE DEFINE a AS kind = 'a', b AS kind = "
            "'b' EMIT user\n");
  WriteFile(dir_ / "rules" / "b.cep",
            "PATTERN b1 FROM s MATCH a b DEFINE a AS kind = 'a', b AS kind = 'b' EMIT user\n");
  WriteFile(dir_ / "rules" / "notes.txt", "not a pattern\n");
  WriteFile(dir_ / "rules" / "more" / "c.cep",
            "PATTERN c1 FROM s MATCH a -> b+ DEFINE a AS kind = 'a', b AS kind = 'b' EMIT user\n");
  WriteFile(dir_ / "p.yaml", head + "patterns: [rules]\n");
  auto dir = RunCli({"check", (dir_ / "p.yaml").string()});
  EXPECT_EQ(dir.code, 0) << dir.err;
  EXPECT_NE(dir.err.find("2 pattern(s)"), std::string::npos) << "a.cep and b.cep: " << dir.err;
  EXPECT_EQ(dir.err.find("warning"), std::string::npos)
      << "a1 has WITHIN; b1 is strict: both bounded: " << dir.err;
  WriteFile(dir_ / "g.yaml", head + "patterns: [\"rules/*.cep\", \"rules/more/*.cep\"]\n");
  auto glob = RunCli({"check", (dir_ / "g.yaml").string()});
  EXPECT_EQ(glob.code, 0) << glob.err;
  EXPECT_NE(glob.err.find("3 pattern(s)"), std::string::npos) << glob.err;
  EXPECT_NE(glob.err.find("pattern 'c1' keeps unbounded state per key: no WITHIN: the looping "
                          "stage"),
            std::string::npos)
      << glob.err;
  WriteFile(dir_ / "n.yaml", head + "patterns: [\"rules/*.nothing\"]\n");
  auto none = RunCli({"check", (dir_ / "n.yaml").string()});
  EXPECT_EQ(none.code, 1);
  EXPECT_NE(none.err.find("patterns entry 'rules/*.nothing' matches no file"), std::string::npos)
      << none.err;
  // Two broken files, one with two errors, and two unusable paths: all reported.
  fs::create_directories(dir_ / "bad");
  WriteFile(dir_ / "bad" / "x.cep",
            "PATTERN x FROM s MATCH a -> b DEFINE a AS nope = 1, b AS kind = 'b' EMIT user\n"
            "PATTERN y FROM s MATCH a -> b DEFINE a AS kind = 'a', b AS missing > 2 EMIT user\n");
  WriteFile(dir_ / "bad" / "y.cep", "PATTERN z FROM nowhere MATCH a DEFINE a AS true EMIT user\n");
  WriteFile(dir_ / "b.yaml", head + "patterns: [bad]\n");
  auto bad = RunCli({"check", (dir_ / "b.yaml").string()});
  EXPECT_EQ(bad.code, 1);
  for (const char* what : {"x.cep:1:", "nope", "x.cep:2:", "missing", "y.cep:1:", "nowhere"})
    EXPECT_NE(bad.err.find(what), std::string::npos) << what << "\n" << bad.err;
  WriteFile(dir_ / "file", "");
  WriteFile(dir_ / "u.yaml", "streams:\n  s:\n    source: { type: file, path: gone.jsonl }\n" +
                                 std::string(kSchema) + "    key: user\n    event_time: ts\n" +
                                 kPattern +
                                 "outputs: { late: { type: file, path: file/sub/late.jsonl } }\n");
  auto unusable = RunCli({"check", (dir_ / "u.yaml").string()});
  EXPECT_EQ(unusable.code, 1);
  EXPECT_NE(unusable.err.find("gone.jsonl' does not exist"), std::string::npos) << unusable.err;
  EXPECT_NE(unusable.err.find("output 'late'"), std::string::npos) << unusable.err;
}

// `check --cost`: per pattern, the bound on live partial matches per key
// and state bytes at a key rate, or "unbounded" and why.
TEST_F(Cli, CheckCostPrintsABoundPerPattern) {
  WriteFile(dir_ / "in.jsonl", Events(10));
  WriteFile(
      dir_ / "r.cep",
      "PATTERN seq FROM s MATCH a -> b WITHIN 10 MINUTES DEFINE a AS kind = 'a', b AS "
      "kind = 'b' EMIT user\n"
      "PATTERN loop FROM s MATCH a -> b+ -> c WITHIN 1 MINUTE DEFINE a AS kind = 'a', b "
      "AS kind = 'b', c AS kind = 'c' EMIT user\n"
      "PATTERN strict FROM s MATCH a b DEFINE a AS kind = 'a', b AS kind = 'b' EMIT user\n"
      "PATTERN open FROM s MATCH a ->> b DEFINE a AS kind = 'a', b AS kind = 'b' EMIT user\n");
  WriteFile(dir_ / "p.yaml", "streams:\n  s:\n    source: { type: file, path: in.jsonl }\n" +
                                 std::string(kSchema) +
                                 "    key: user\n    event_time: ts\npatterns: [r.cep]\n");
  auto r = RunCli({"check", (dir_ / "p.yaml").string(), "--cost", "--key-rate", "0.5"});
  EXPECT_EQ(r.code, 0) << r.err;
  for (const char* line :
       {"pattern seq (stream s): WITHIN 10m at 0.5 event(s)/s per key: n = 300 events",
        "live partial matches per key <= n = 300 (one run per start event)",
        "pattern loop (stream s): WITHIN 1m at 0.5 event(s)/s per key: n = 30 events",
        "live partial matches per key <= n^2 = 900 (one run per start event, a choice of length "
        "per loop)",
        "pattern strict (stream s): strict contiguity: a run lives at most 2 events",
        "pattern open (stream s): unbounded -- no WITHIN: skip till any"})
    EXPECT_NE(r.out.find(line), std::string::npos) << line << "\n" << r.out;
  auto bad_rate = RunCli({"check", (dir_ / "p.yaml").string(), "--cost", "--key-rate", "0"});
  EXPECT_EQ(bad_rate.code, 2) << bad_rate.err;
  // A pattern's own budget caps its bound; a budget for no pattern is an error.
  WriteFile(dir_ / "b.yaml",
            ReadFile(dir_ / "p.yaml") + "limits: { loop: { max_runs_per_key: 200 } }\n");
  auto budget = RunCli({"check", (dir_ / "b.yaml").string(), "--cost", "--key-rate", "0.5"});
  EXPECT_EQ(budget.code, 0) << budget.err;
  EXPECT_NE(budget.out.find("n^2 = 900 (one run per start event, a choice of length per loop)\n"
                            "  capped at 200 per key"),
            std::string::npos)
      << budget.out;
  WriteFile(dir_ / "n.yaml",
            ReadFile(dir_ / "p.yaml") + "limits: { lopo: { max_state_bytes: 1MiB } }\n");
  auto nobody = RunCli({"check", (dir_ / "n.yaml").string()});
  EXPECT_EQ(nobody.code, 1);
  EXPECT_NE(nobody.err.find("limits.lopo: there is no pattern 'lopo'"), std::string::npos)
      << nobody.err;
}

// outputs.NAME with patterns: [names, globs]: those patterns' matches go to
// NAME (exactly once, like matches), the rest to matches; together they are
// what one output gets without routing. Records per output are counted.
TEST_F(Cli, PatternsRoutedToAnOutputOfTheirOwn) {
  WriteFile(dir_ / "in.jsonl", Events(400));
  const std::string pats =
      "patterns:\n  - inline: |\n"
      "      PATTERN card_ab FROM s MATCH a -> b WITHIN 1 SECOND DEFINE a AS kind = 'a', b AS "
      "kind = 'b' EMIT user\n"
      "      PATTERN card_aa FROM s MATCH a -> a WITHIN 1 SECOND DEFINE a AS kind = 'a' EMIT "
      "user\n"
      "      PATTERN other FROM s MATCH b -> a WITHIN 1 SECOND DEFINE a AS kind = 'a', b AS kind "
      "= 'b' EMIT user\n";
  const std::string head = "streams:\n  s:\n    source: { type: file, path: in.jsonl }\n" +
                           std::string(kSchema) + "    key: user\n    event_time: ts\n" + pats;
  WriteFile(dir_ / "all.yaml", head +
                                   "outputs: { matches: { type: file, path: out/all.jsonl } }\n"
                                   "checkpoint: { enabled: false }\n");
  WriteFile(dir_ / "routed.yaml",
            head +
                "outputs:\n  matches: { type: file, path: out/rest.jsonl }\n"
                "  fraud: { type: file, path: out/fraud.jsonl, patterns: [\"card_*\"] }\n"
                "checkpoint: { interval: 10ms }\nstate: { dir: state }\n");
  auto all = RunCli({"run", (dir_ / "all.yaml").string()});
  ASSERT_EQ(all.code, 0) << all.err;
  auto routed = RunCli({"run", (dir_ / "routed.yaml").string()});
  ASSERT_EQ(routed.code, 0) << routed.err;
  const std::string fraud = ReadFile(dir_ / "out" / "fraud.jsonl");
  const std::string rest = ReadFile(dir_ / "out" / "rest.jsonl");
  for (const std::string& l : SortedLines(fraud))
    EXPECT_NE(l.find("\"pattern\":\"card_"), std::string::npos) << l;
  for (const std::string& l : SortedLines(rest))
    EXPECT_NE(l.find("\"pattern\":\"other\""), std::string::npos) << l;
  EXPECT_NE(fraud.find("card_ab"), std::string::npos);
  EXPECT_NE(fraud.find("card_aa"), std::string::npos);
  EXPECT_EQ(SortedLines(fraud + rest), SortedLines(ReadFile(dir_ / "out" / "all.jsonl")));
  // A name that routes nothing, and an output that is neither standard nor routed.
  WriteFile(dir_ / "typo.yaml",
            head + "outputs: { fraud: { type: stdout, patterns: [crad_*] } }\n");
  auto typo = RunCli({"check", (dir_ / "typo.yaml").string()});
  EXPECT_EQ(typo.code, 1);
  EXPECT_NE(typo.err.find("outputs.fraud.patterns: 'crad_*' names no pattern"), std::string::npos)
      << typo.err;
  WriteFile(dir_ / "unknown.yaml", head + "outputs: { fraud: { type: stdout } }\n");
  auto unknown = RunCli({"check", (dir_ / "unknown.yaml").string()});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_NE(unknown.err.find("unknown output 'fraud'"), std::string::npos) << unknown.err;
}

// `cepheus test`: the sample's pattern test passes; a wrong expectation
// fails with a diff naming what is missing and what is extra; a broken test
// file is an error with its position; exit 0 only when every file passes.
TEST_F(Cli, PatternTestsPassFailAndReportDiffs) {
  const fs::path sample = fs::path(CEPHEUS_SOURCE_DIR) / "samples" / "fraud";
  const std::string good = (sample / "card_testing.test.yaml").string();
  auto pass = RunCli({"test", good});
  EXPECT_EQ(pass.code, 0) << pass.out << pass.err;
  EXPECT_NE(pass.out.find("PASS  " + good + " (2 match(es))"), std::string::npos) << pass.out;
  EXPECT_NE(pass.out.find("1 passed, 0 failed"), std::string::npos);
  // The same test with the match's charge wrong and the timeout left out.
  std::string text = ReadFile(good);
  text.replace(text.find("charged: 899"), 12, "charged: 900");
  text.erase(text.find("  - {type: timeout"),
             text.find("expect_late") - text.find("  - {type: timeout"));
  text.replace(text.find("pipeline: pipeline.yaml"), 23,
               "pipeline: " + (sample / "pipeline.yaml").string());
  WriteFile(dir_ / "wrong.test.yaml", text);
  WriteFile(dir_ / "broken.test.yaml", "pipeline: nope.yaml\nevents: []\nexpect: [oops]\n");
  auto fail = RunCli(
      {"test", good, (dir_ / "wrong.test.yaml").string(), (dir_ / "broken.test.yaml").string()});
  EXPECT_EQ(fail.code, 1) << fail.out << fail.err;
  EXPECT_NE(fail.out.find("FAIL  " + (dir_ / "wrong.test.yaml").string()), std::string::npos)
      << fail.out;
  EXPECT_NE(fail.out.find("  - expected, not emitted: pattern=card_testing key=c1 fields={"),
            std::string::npos)
      << fail.out;
  EXPECT_NE(fail.out.find("charged:900"), std::string::npos) << fail.out;
  EXPECT_NE(
      fail.out.find("  + emitted, not expected: {\"pattern\":\"card_testing\",\"type\":\"match\""),
      std::string::npos)
      << fail.out;
  EXPECT_NE(fail.out.find(
                "  + emitted, not expected: {\"pattern\":\"card_testing\",\"type\":\"timeout\""),
            std::string::npos)
      << fail.out;
  EXPECT_NE(fail.out.find("ERROR " + (dir_ / "broken.test.yaml").string()), std::string::npos)
      << fail.out;
  EXPECT_NE(fail.out.find("broken.test.yaml:3:"), std::string::npos) << fail.out;
  EXPECT_NE(fail.out.find("1 passed, 2 failed"), std::string::npos) << fail.out;
}

// `cepheus explain`: the automaton and its bound, and with events, what
// each run of the pattern did with each event of the key and why (the
// runtime's own tracing hook), then the matches.
TEST_F(Cli, ExplainTracesWhatEachRunDidWithEachEvent) {
  const std::string pipeline =
      (fs::path(CEPHEUS_SOURCE_DIR) / "samples" / "fraud" / "pipeline.yaml").string();
  WriteFile(dir_ / "ev.jsonl",
            "{\"card_id\":\"c1\",\"amount\":1.0,\"status\":\"approved\",\"merchant\":"
            "\"coffee\",\"ts\":\"2026-01-01T10:00:00Z\"}\n"
            "{\"card_id\":\"c1\",\"amount\":2.5,\"status\":\"approved\",\"merchant\":"
            "\"coffee\",\"ts\":\"2026-01-01T10:01:00Z\"}\n"
            "{\"card_id\":\"c2\",\"amount\":2.5,\"status\":\"approved\",\"merchant\":"
            "\"coffee\",\"ts\":\"2026-01-01T10:01:30Z\"}\n"
            "{\"card_id\":\"c1\",\"amount\":0.99,\"status\":\"approved\",\"merchant\":"
            "\"kiosk\",\"ts\":\"2026-01-01T10:02:00Z\"}\n"
            "{\"card_id\":\"c1\",\"amount\":30,\"status\":\"approved\",\"merchant\":"
            "\"kiosk\",\"ts\":\"2026-01-01T10:02:30Z\"}\n"
            "{\"card_id\":\"c1\",\"amount\":899,\"status\":\"approved\",\"merchant\":"
            "\"jeweller\",\"ts\":\"2026-01-01T10:03:00Z\"}\n");
  auto r = RunCli({"explain", pipeline, "--pattern", "card_testing", "--key", "c1", "--events",
                   (dir_ / "ev.jsonl").string()});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  for (const char* line :
       {"    3 small[3..]\n      -> 3 small[3..]  (followed-by)\n      -> 4 big  (followed-by)\n",
        "live partial matches per key <= n^2 = 360000",
        "event 2026-01-01T10:00:00.000Z key c1: {\"card_id\":\"c1\",\"amount\":1,\"status\":"
        "\"approved\"",
        "  run started 2026-01-01T10:00:00.000Z#0: starts, taking the event as 1 small[1]\n",
        "  run started 2026-01-01T10:00:00.000Z#0: in 3 small[3..], skips the event for 4 big "
        "(false: amount > 500 AND merchant <> LAST(small.merchant))\n",
        "  run started 2026-01-01T10:00:00.000Z#0: in 3 small[3..], takes the event as 4 big\n",
        "match {\"pattern\":\"card_testing\",\"type\":\"match\",\"key\":\"c1\"",
        "5 event(s) traced, 1 match(es) and timeout(s)"})
    EXPECT_NE(r.out.find(line), std::string::npos) << line << "\n" << r.out;
  EXPECT_EQ(r.out.find("key c2"), std::string::npos) << "--key c1 shows only c1";
  // --from/--to show a time range; the runs shown still began earlier.
  auto range = RunCli({"explain", pipeline, "--pattern", "card_testing", "--key", "c1", "--events",
                       (dir_ / "ev.jsonl").string(), "--from", "2026-01-01T10:02:30Z", "--to",
                       "2026-01-01T10:10:00Z"});
  ASSERT_EQ(range.code, 0) << range.out << range.err;
  EXPECT_EQ(range.out.find("event 2026-01-01T10:02:00"), std::string::npos) << range.out;
  EXPECT_NE(range.out.find("2 event(s) traced, 1 match(es)"), std::string::npos) << range.out;
  EXPECT_NE(range.out.find("  run started 2026-01-01T10:00:00.000Z#0: in 3 small[3..], takes the "
                           "event as 4 big\n"),
            std::string::npos)
      << range.out;
  auto dot = RunCli({"explain", pipeline, "--pattern", "card_testing", "--dot"});
  EXPECT_EQ(dot.code, 0);
  EXPECT_EQ(dot.out.rfind("digraph", 0), 0u) << dot.out;
  auto none = RunCli({"explain", pipeline, "--pattern", "nope"});
  EXPECT_EQ(none.code, 1);
  EXPECT_NE(none.out.find("there is no pattern 'nope' (patterns: card_testing)"), std::string::npos)
      << none.out;
}

TEST_F(Cli, MostlyBadInputWarnsLoudly) {
  // A CSV file declared as JSON lines: every record is a dead letter.
  std::string csv = "user,kind,ts\n";
  for (int i = 0; i < 300; ++i)
    csv += "u" + std::to_string(i % 5) + ",a," + std::to_string(i) + "\n";
  WriteFile(dir_ / "in.jsonl", csv);
  const std::string pipeline =
      Pipeline("p.yaml", "in.jsonl",
               "outputs: { dead_letter: { type: file, path: dead.jsonl } }\n"
               "checkpoint: { enabled: false }\n");
  auto run = RunCli({"run", pipeline});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_NE(run.err.find("stream 's': 100% dead letters and 0% late events of 301 records"),
            std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find("check the stream's format"), std::string::npos);
  auto bt = RunCli({"backtest", pipeline, "-o", (dir_ / "bt.jsonl").string()});
  EXPECT_EQ(bt.code, 0) << bt.err;
  EXPECT_NE(bt.err.find("WARNING        stream 's': 100% dead letters"), std::string::npos)
      << bt.err;
  // A clean run stays quiet, and the threshold is configurable.
  WriteFile(dir_ / "good.jsonl", Events(300) + "not json\n");
  const std::string good = Pipeline("g.yaml", "good.jsonl",
                                    "outputs: { dead_letter: { type: file, path: gdead.jsonl } }\n"
                                    "checkpoint: { enabled: false }\n");
  auto quiet = RunCli({"run", good});
  EXPECT_EQ(quiet.err.find("configuration error"), std::string::npos) << quiet.err;
  const std::string strict =
      Pipeline("h.yaml", "good.jsonl",
               "outputs: { dead_letter: { type: file, path: hdead.jsonl } }\n"
               "checkpoint: { enabled: false }\nlimits: { warn_bad_input_ratio: 0.001 }\n");
  auto loud = RunCli({"run", strict});
  EXPECT_NE(loud.err.find("configuration error"), std::string::npos) << loud.err;
}

}  // namespace

namespace {

// A backtest killed half way leaves no plausible-looking partial output, and
// the next one removes the spill directory it left behind.
TEST_F(Cli, KilledBacktestLeavesNoPartialResultAndItsSpillIsCleanedUp) {
  WriteFile(dir_ / "in.jsonl", Events(400000));
  const std::string pipeline = Pipeline("p.yaml", "in.jsonl", "");
  const fs::path spill = dir_ / "spill", out = dir_ / "bt.jsonl";
  fs::create_directories(spill);
  const std::vector<std::string> args = {
      "backtest", pipeline,      "-p",           "2",  "--memory-budget",
      "1",        "--spill-dir", spill.string(), "-o", out.string()};
  const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  const int pid = SpawnCli(args, devnull, (dir_ / "killed.log").string());
  // Kill it once it has spilled something.
  bool spilled = false;
  for (int i = 0; i < 3000 && !spilled; ++i) {
    std::error_code ec;
    for (const auto& d : fs::directory_iterator(spill, ec))
      for (const auto& f : fs::directory_iterator(d.path(), ec))
        spilled |= f.path().filename().string().starts_with("run-");
    if (!spilled) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ::kill(pid, SIGKILL);
  WaitPid(pid);
  ::close(devnull);
  ASSERT_TRUE(spilled) << ReadFile(dir_ / "killed.log");
  EXPECT_FALSE(fs::exists(out)) << "a killed backtest must not leave its output file";
  size_t left = 0;
  for (const auto& d : fs::directory_iterator(spill)) left += d.is_directory() ? 1 : 0;
  ASSERT_EQ(left, 1u) << "the killed backtest's spill directory is there";

  auto done = RunCli(args);
  ASSERT_EQ(done.code, 0) << done.err;
  EXPECT_NE(done.err.find("removed the spill directory of a backtest that did not finish"),
            std::string::npos)
      << done.err;
  EXPECT_TRUE(fs::is_empty(spill)) << "both spill directories are gone";
  EXPECT_FALSE(ReadFile(out).empty());
  for (const auto& f : fs::directory_iterator(dir_))
    EXPECT_FALSE(f.path().filename().string().starts_with(".bt.jsonl.tmp-")) << f.path();
}

}  // namespace
