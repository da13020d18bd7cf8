// Durable state end to end: the real `cepheus run` binary with RocksDB state,
// checkpoints and exactly-once file outputs, killed with SIGKILL at random
// moments (some inside a checkpoint), stopped with SIGTERM, restarted with
// other parallelisms, and restored from damaged checkpoint directories. The
// committed output must always equal that of one uninterrupted run.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_io.h"

namespace {

namespace fs = std::filesystem;
using cepheus::testing::ReadFile;
using cepheus::testing::ScratchDir;
using cepheus::testing::SortedLines;
using cepheus::testing::WriteFile;

// Events of a few hundred users, slightly out of order (within the allowed
// lateness), with some late events and some malformed lines.
std::string GenerateInput(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out;
  int64_t t = 1'790'000'000'000;
  const char* kinds[] = {"a", "b", "c", "d"};
  for (size_t i = 0; i < n; ++i) {
    t += static_cast<int64_t>(rng() % 20);
    int64_t ts = t - static_cast<int64_t>(rng() % 1500);
    if (rng() % 500 == 0) ts = t - 20000;  // late
    if (rng() % 1000 == 0) {
      out += "{\"user\": \"u" + std::to_string(rng() % 300) + "\", \"kind\": oops}\n";
      continue;
    }
    out += "{\"user\":\"u" + std::to_string(rng() % 300) + "\",\"kind\":\"" + kinds[rng() % 4] +
           "\",\"v\":" + std::to_string(rng() % 100) + ",\"ts\":" + std::to_string(ts) + "}\n";
  }
  return out;
}

constexpr const char* kPatterns = R"(
PATTERN rising
FROM s
PARTITION BY user
MATCH a -> b+ -> c
WITHIN 5 SECONDS
DEFINE a AS kind = 'a', b AS kind = 'b' AND v > a.v, c AS kind = 'c'
AFTER MATCH SKIP PAST LAST EVENT
EMIT user, COUNT(b) AS nb, SUM(b.v) AS sb, c.v AS cv
ON TIMEOUT EMIT user, COUNT(b) AS nb

PATTERN quiet
FROM s
PARTITION BY user
MATCH d -> !x
WITHIN 3 SECONDS
DEFINE d AS kind = 'd' AND v > 90, x AS true
EMIT user, d.v AS dv
)";

class Checkpoints : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ScratchDir("cepheus-ckpt");
    WriteFile(dir_ / "events.jsonl", GenerateInput(300000, 7));
    WriteFile(dir_ / "patterns.cep", kPatterns);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // A pipeline whose outputs and state live under dir_/name.
  fs::path WritePipeline(const std::string& name, const std::string& interval = "30ms",
                         int cache_keys = 40, const std::string& checkpoint_extra = "") {
    fs::create_directories(dir_ / name);
    const fs::path p = dir_ / name / "pipeline.yaml";
    WriteFile(p,
              "streams:\n"
              "  s:\n"
              "    source: { type: file, path: ../events.jsonl }\n"
              "    schema: { user: string, kind: string, v: int, ts: timestamp }\n"
              "    key: user\n"
              "    event_time: { field: ts, max_out_of_orderness: 2s }\n"
              "patterns: [ ../patterns.cep ]\n"
              "outputs:\n"
              "  matches:     { type: file, path: out/matches.jsonl }\n"
              "  late:        { type: file, path: out/late.jsonl }\n"
              "  dead_letter: { type: file, path: out/dead.jsonl }\n"
              "  quiet_alerts: { type: file, path: out/quiet.jsonl, patterns: [quiet] }\n"
              "state: { backend: rocksdb, dir: state, cache_keys: " +
                  std::to_string(cache_keys) +
                  " }\n"
                  "checkpoint: { interval: " +
                  interval + ", retain: 3" + checkpoint_extra + " }\n");
    return p;
  }

  // Starts `cepheus run`; stderr is appended to `log`.
  pid_t Start(const fs::path& pipeline, int parallelism, const fs::path& log, int delay_ms = 0) {
    pid_t pid = ::fork();
    if (pid == 0) {
      FILE* f = std::fopen(log.c_str(), "a");
      if (f) ::dup2(::fileno(f), 2);
      FILE* null = std::fopen("/dev/null", "w");
      if (null) ::dup2(::fileno(null), 1);
      const std::string p = std::to_string(parallelism);
      const std::string delay = "--testing-checkpoint-delay-ms=" + std::to_string(delay_ms);
      ::execl(CEPHEUS_BINARY, CEPHEUS_BINARY, "run", pipeline.c_str(), "-p", p.c_str(),
              delay.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    return pid;
  }
  // Waits for `pid`; its exit status, or -signal.
  int Wait(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) return -WTERMSIG(status);
    return WEXITSTATUS(status);
  }
  int RunToEnd(const fs::path& pipeline, int parallelism, const fs::path& log) {
    return Wait(Start(pipeline, parallelism, log));
  }

  struct Outputs {
    std::vector<std::string> matches;
    std::string late, dead;
  };
  // Matches: `matches` and the output of its own that `quiet` is routed to
  // (both exactly once), together.
  Outputs Read(const std::string& name) {
    const std::string quiet = ReadFile(dir_ / name / "out" / "quiet.jsonl");
    EXPECT_EQ(ReadFile(dir_ / name / "out" / "matches.jsonl").find("\"pattern\":\"quiet\""),
              std::string::npos)
        << "quiet's matches go to their own output";
    for (const std::string& l : SortedLines(quiet))
      EXPECT_NE(l.find("\"pattern\":\"quiet\""), std::string::npos) << l;
    return Outputs{SortedLines(ReadFile(dir_ / name / "out" / "matches.jsonl") + quiet),
                   ReadFile(dir_ / name / "out" / "late.jsonl"),
                   ReadFile(dir_ / name / "out" / "dead.jsonl")};
  }
  void ExpectSame(const Outputs& got, const Outputs& want) {
    ASSERT_FALSE(want.matches.empty());
    EXPECT_EQ(got.matches.size(), want.matches.size());
    EXPECT_TRUE(got.matches == want.matches) << "committed matches differ";
    // Late events and dead letters come from the single reader in input
    // order: the same bytes.
    EXPECT_EQ(got.late, want.late);
    EXPECT_EQ(got.dead, want.dead);
  }
  // The newest checkpoint directory, if any, has no metadata.
  bool NewestCheckpointIncomplete(const std::string& name) {
    std::vector<fs::path> dirs;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_ / name / "state" / "checkpoints", ec))
      dirs.push_back(e.path());
    if (dirs.empty()) return false;
    std::sort(dirs.begin(), dirs.end());
    return !fs::exists(dirs.back() / "_metadata");
  }
  // Pending output parts exist (a checkpoint's outputs not yet published).
  bool PartsPending(const std::string& name) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_ / name / "out", ec))
      if (e.path().filename().string().find(".part-") != std::string::npos) return true;
    return false;
  }

  // Waits until the run has emitted some matches (it is running, with its
  // signal handlers installed), then a little longer.
  void WaitUntilMatching(const std::string& name) {
    const fs::path staged = dir_ / name / "out" / ".matches.jsonl.inprogress";
    for (int i = 0; i < 4000; ++i) {
      std::error_code ec;
      if (fs::file_size(staged, ec) > 0 && !ec) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

  fs::path dir_;
};

TEST_F(Checkpoints, SigkillAtRandomMomentsLosesAndRepeatsNothing) {
  const fs::path ref = WritePipeline("ref");
  ASSERT_EQ(RunToEnd(ref, 2, dir_ / "ref.log"), 0) << ReadFile(dir_ / "ref.log");
  const Outputs want = Read("ref");
  ASSERT_GT(want.matches.size(), 1000u);
  ASSERT_FALSE(want.late.empty());
  ASSERT_FALSE(want.dead.empty());

  // Each crash run is killed a random 0-150 ms after it completed one new
  // checkpoint (so every run makes progress), which lands kills in every
  // phase: while reading and matching, while workers write state back, while
  // the snapshot is taken, between the metadata and the output commit. The
  // delay stretches the last two, and the parallelism changes every restart.
  const int delay_ms = 15;
  const fs::path timing = WritePipeline("timing");
  ASSERT_EQ(Wait(Start(timing, 2, dir_ / "timing.log", delay_ms)), 0);
  auto count = [](const std::string& text, const std::string& what) {
    int n = 0;
    for (size_t pos = 0; (pos = text.find(what, pos)) != std::string::npos; ++pos) ++n;
    return n;
  };
  const int full_checkpoints = count(ReadFile(dir_ / "timing.log"), " complete in ");

  const fs::path crash = WritePipeline("crash");
  std::mt19937_64 rng(42);
  int kills = 0, in_checkpoint = 0, restores = 0, finished_early = 0;
  const int parallelisms[] = {1, 2, 3};
  for (int attempt = 0; attempt < 40 && (kills < 12 || in_checkpoint < 3); ++attempt) {
    const int p = parallelisms[attempt % 3];
    const int before = count(ReadFile(dir_ / "crash.log"), " complete in ");
    const pid_t pid = Start(crash, p, dir_ / "crash.log", delay_ms);
    for (int i = 0; i < 10000; ++i) {
      if (count(ReadFile(dir_ / "crash.log"), " complete in ") > before) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 150)(rng)));
    if (::kill(pid, SIGKILL) == 0) {
      const int st = Wait(pid);
      if (st == -SIGKILL) {
        ++kills;
        if (NewestCheckpointIncomplete("crash") || PartsPending("crash")) ++in_checkpoint;
        continue;
      }
      ASSERT_EQ(st, 0) << ReadFile(dir_ / "crash.log");
    } else {
      ASSERT_EQ(Wait(pid), 0) << ReadFile(dir_ / "crash.log");
    }
    ++finished_early;
    break;
  }
  if (!finished_early) {
    ASSERT_EQ(RunToEnd(crash, 2, dir_ / "crash.log"), 0);
  }
  const std::string log = ReadFile(dir_ / "crash.log");
  for (size_t pos = 0; (pos = log.find("restored checkpoint", pos)) != std::string::npos; ++pos)
    ++restores;
  EXPECT_GE(kills, 10) << "the input must outlast the kills";
  EXPECT_GE(in_checkpoint, 1) << "some kills must land inside a checkpoint";
  EXPECT_GE(restores, 3) << log;
  EXPECT_EQ(log.find("error"), std::string::npos) << log;
  ExpectSame(Read("crash"), want);
  std::cerr << "kills " << kills << " (in a checkpoint " << in_checkpoint << "), restores "
            << restores << "; an uninterrupted run takes " << full_checkpoints << " checkpoints\n";
}

// Killed after the final checkpoint's metadata, before the outputs published
// it: the next `run` refuses to begin again (the run finished) but first
// publishes that checkpoint, so the outputs are complete as it says.
TEST_F(Checkpoints, AKillBetweenTheFinalCheckpointAndItsPublicationIsRepairedByTheNextStart) {
  const fs::path ref = WritePipeline("ref", "1h");
  ASSERT_EQ(RunToEnd(ref, 2, dir_ / "ref.log"), 0);
  const Outputs want = Read("ref");
  const fs::path p = WritePipeline("last", "1h");
  const pid_t pid = Start(p, 2, dir_ / "last.log", 1500);
  bool in_window = false;
  for (int i = 0; i < 20000 && !in_window; ++i) {
    std::error_code ec;
    in_window =
        fs::exists(dir_ / "last" / "state" / "checkpoints" / "chk-000001" / "_metadata", ec) &&
        PartsPending("last");
    if (!in_window) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(in_window) << ReadFile(dir_ / "last.log");
  ::kill(pid, SIGKILL);
  ASSERT_EQ(Wait(pid), -SIGKILL);
  EXPECT_LT(Read("last").matches.size(), want.matches.size()) << "killed before publishing";
  ASSERT_EQ(RunToEnd(p, 1, dir_ / "last.log"), 1);
  EXPECT_NE(ReadFile(dir_ / "last.log").find("the previous run of this pipeline finished"),
            std::string::npos);
  EXPECT_FALSE(PartsPending("last"));
  ExpectSame(Read("last"), want);
}

TEST_F(Checkpoints, SigtermStopsAtACheckpointAndTheNextRunContinues) {
  const fs::path ref = WritePipeline("ref", "1h");
  ASSERT_EQ(RunToEnd(ref, 2, dir_ / "ref.log"), 0);
  const Outputs want = Read("ref");

  // No periodic checkpoint (1h): everything committed comes from the final
  // checkpoint SIGTERM takes.
  const fs::path p = WritePipeline("term", "1h");
  const pid_t pid = Start(p, 2, dir_ / "term.log", 0);
  WaitUntilMatching("term");
  ::kill(pid, SIGTERM);
  ASSERT_EQ(Wait(pid), 0) << ReadFile(dir_ / "term.log");
  const std::string log1 = ReadFile(dir_ / "term.log");
  ASSERT_NE(log1.find("(stopped)"), std::string::npos) << "stopped before the end: " << log1;
  ASSERT_NE(log1.find("checkpoint 1 complete"), std::string::npos) << log1;
  const auto partial = Read("term");
  EXPECT_LT(partial.matches.size(), want.matches.size());
  EXPECT_GT(partial.matches.size(), 0u) << "what was emitted before the stop is committed";

  ASSERT_EQ(RunToEnd(p, 3, dir_ / "term.log"), 0);
  EXPECT_NE(ReadFile(dir_ / "term.log").find("restored checkpoint 1"), std::string::npos);
  ExpectSame(Read("term"), want);
}

// A table file damaged in place (bytes flipped, not removed) is found by the
// checksum verification at restore. With hard-linked checkpoints every
// checkpoint holding that file is refused (retain gives no redundancy against
// it); with copy_files each checkpoint has its own copy and the restore falls
// back to the previous one. Either way nothing starts from damaged state.
TEST_F(Checkpoints, DamagedTableFileIsFoundAtRestoreAndCopiesGiveRedundancy) {
  const fs::path ref = WritePipeline("ref");
  ASSERT_EQ(RunToEnd(ref, 2, dir_ / "ref.log"), 0) << ReadFile(dir_ / "ref.log");
  const Outputs want = Read("ref");
  for (bool copies : {false, true}) {
    const std::string name = copies ? "copied" : "linked";
    SCOPED_TRACE(name);
    const fs::path p = WritePipeline(name, "30ms", 40, copies ? ", copy_files: true" : "");
    const pid_t pid = Start(p, 2, dir_ / (name + ".log"), 10);
    for (int i = 0; i < 4000; ++i) {
      if (ReadFile(dir_ / (name + ".log")).find("checkpoint 3 complete") != std::string::npos)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::kill(pid, SIGKILL);
    Wait(pid);
    std::vector<fs::path> chks;
    for (const auto& e : fs::directory_iterator(dir_ / name / "state" / "checkpoints"))
      if (fs::exists(e.path() / "_metadata")) chks.push_back(e.path());
    std::sort(chks.begin(), chks.end());
    ASSERT_GE(chks.size(), 2u) << ReadFile(dir_ / (name + ".log"));
    // The newest checkpoint's oldest table file: the one most likely shared.
    std::vector<fs::path> ssts;
    for (const auto& e : fs::directory_iterator(chks.back() / "state"))
      if (e.path().extension() == ".sst") ssts.push_back(e.path());
    ASSERT_FALSE(ssts.empty());
    std::sort(ssts.begin(), ssts.end());
    const fs::path victim = ssts.front();
    // Which checkpoints hold that very file (the same inode)?
    std::vector<std::string> sharing;
    for (const fs::path& c : chks) {
      std::error_code ec;
      if (fs::equivalent(c / "state" / victim.filename(), victim, ec))
        sharing.push_back(std::to_string(std::stoi(c.filename().string().substr(4))));
    }
    std::cerr << name << ": the damaged table file is in " << sharing.size() << " of "
              << chks.size() << " checkpoints\n";
    if (copies) {
      EXPECT_EQ(sharing.size(), 1u) << "with copy_files no table file is shared";
    } else {
      EXPECT_GT(sharing.size(), 1u) << "hard-linked checkpoints share table files";
    }
    {
      std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(fs::file_size(victim) / 3));
      f.write("\xde\xad\xbe\xef\xde\xad\xbe\xef", 8);
    }
    const int rc = RunToEnd(p, 2, dir_ / (name + "2.log"));
    const std::string log = ReadFile(dir_ / (name + "2.log"));
    for (const std::string& id : sharing)
      EXPECT_NE(log.find("checkpoint " + id + ": its state cannot be restored"), std::string::npos)
          << "checkpoint " << id << " holds the damaged file\n"
          << log;
    EXPECT_NE(log.find("checksum"), std::string::npos) << log;
    if (sharing.size() == chks.size()) {
      EXPECT_EQ(rc, 2) << log;
      EXPECT_NE(log.find("no checkpoint in"), std::string::npos) << log;
    } else {
      ASSERT_EQ(rc, 0) << log;
      EXPECT_NE(log.find("falling back to checkpoint"), std::string::npos) << log;
      ExpectSame(Read(name), want);
    }
  }
}

TEST_F(Checkpoints, DamagedCheckpointsFallBackOrRefuseNeverStartEmpty) {
  const fs::path ref = WritePipeline("ref");
  ASSERT_EQ(RunToEnd(ref, 2, dir_ / "ref.log"), 0);
  const Outputs want = Read("ref");

  const fs::path p = WritePipeline("dmg");
  // Stop somewhere in the middle, with several checkpoints on disk.
  const pid_t pid = Start(p, 2, dir_ / "dmg.log", 10);
  // Kill it once three checkpoints are complete (waiting on the log, not a
  // fixed time: the machine may be busy).
  for (int i = 0; i < 4000; ++i) {
    if (ReadFile(dir_ / "dmg.log").find("checkpoint 3 complete") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGKILL);
  Wait(pid);
  std::vector<fs::path> chks;
  for (const auto& e : fs::directory_iterator(dir_ / "dmg" / "state" / "checkpoints"))
    if (fs::exists(e.path() / "_metadata")) chks.push_back(e.path());
  std::sort(chks.begin(), chks.end());
  ASSERT_GE(chks.size(), 3u) << "expected three retained checkpoints: "
                             << ReadFile(dir_ / "dmg.log");
  const fs::path backup = dir_ / "backup";
  fs::copy(dir_ / "dmg", backup, fs::copy_options::recursive);

  // Newest: truncated metadata; second newest: state directory gone. The
  // restore must fall back to the third, say so, and still end exactly right.
  {
    const size_t n = chks.size();
    const std::string meta = ReadFile(chks[n - 1] / "_metadata");
    WriteFile(chks[n - 1] / "_metadata", meta.substr(0, meta.size() / 2));
    fs::remove_all(chks[n - 2] / "state");
    ASSERT_EQ(RunToEnd(p, 1, dir_ / "dmg2.log"), 0) << ReadFile(dir_ / "dmg2.log");
    const std::string log = ReadFile(dir_ / "dmg2.log");
    EXPECT_NE(log.find("is damaged"), std::string::npos) << log;
    EXPECT_NE(log.find("state directory"), std::string::npos) << log;
    const std::string third = chks[n - 3].filename().string();  // chk-000042
    EXPECT_NE(log.find("falling back to checkpoint " + std::to_string(std::stoi(third.substr(4)))),
              std::string::npos)
        << log;
    ExpectSame(Read("dmg"), want);
  }
  // The newest checkpoint's state lost a table file: RocksDB refuses to open
  // it, and the restore falls back to the previous checkpoint.
  {
    fs::remove_all(dir_ / "dmg");
    fs::copy(backup, dir_ / "dmg", fs::copy_options::recursive);
    const fs::path newest = dir_ / "dmg" / "state" / "checkpoints" / chks.back().filename();
    bool removed = false;
    for (const auto& e : fs::directory_iterator(newest / "state"))
      if (!removed && e.path().extension() == ".sst") removed = fs::remove(e.path());
    ASSERT_TRUE(removed) << "the snapshot has table files";
    ASSERT_EQ(RunToEnd(p, 2, dir_ / "dmg4.log"), 0) << ReadFile(dir_ / "dmg4.log");
    const std::string log = ReadFile(dir_ / "dmg4.log");
    EXPECT_NE(log.find("its state cannot be restored"), std::string::npos) << log;
    EXPECT_NE(log.find("newer ones could not be restored"), std::string::npos) << log;
    ExpectSame(Read("dmg"), want);
  }
  // Every checkpoint damaged: refuse with a clear error, write nothing.
  fs::remove_all(dir_ / "dmg");
  fs::rename(backup, dir_ / "dmg");
  for (const fs::path& c : chks) {
    WriteFile(c / "_metadata", "cepheus-checkpoint 1\nid 1\n");
  }
  const uintmax_t before = fs::file_size(dir_ / "dmg" / "out" / "matches.jsonl");
  EXPECT_EQ(RunToEnd(p, 2, dir_ / "dmg3.log"), 2);
  const std::string log = ReadFile(dir_ / "dmg3.log");
  EXPECT_NE(log.find("no usable checkpoint"), std::string::npos) << log;
  EXPECT_NE(log.find("refusing to start from empty state"), std::string::npos) << log;
  EXPECT_EQ(fs::file_size(dir_ / "dmg" / "out" / "matches.jsonl"), before);
}

TEST_F(Checkpoints, ChangedPatternSetKeepsDropsAndStartsStateByPattern) {
  const fs::path p = WritePipeline("chg", "1h");
  const pid_t pid = Start(p, 2, dir_ / "chg.log", 0);
  WaitUntilMatching("chg");
  ::kill(pid, SIGTERM);
  ASSERT_EQ(Wait(pid), 0);
  // `rising` changes (a different window), `quiet` stays, `fresh` is new.
  std::string changed = kPatterns;
  changed.replace(changed.find("WITHIN 5 SECONDS"), 16, "WITHIN 6 SECONDS");
  changed +=
      "\nPATTERN fresh\nFROM s\nPARTITION BY user\nMATCH a b\nDEFINE a AS kind = 'a', "
      "b AS kind = 'a'\nEMIT user\n";
  WriteFile(dir_ / "patterns.cep", changed);
  ASSERT_EQ(RunToEnd(p, 2, dir_ / "chg2.log"), 0) << ReadFile(dir_ / "chg2.log");
  const std::string log = ReadFile(dir_ / "chg2.log");
  EXPECT_NE(log.find("pattern rising: changed since checkpoint 1, its partial matches are dropped"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("pattern quiet: unchanged since checkpoint 1, its state is restored"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("pattern fresh: new since checkpoint 1, starts with empty state"),
            std::string::npos)
      << log;
}

}  // namespace
