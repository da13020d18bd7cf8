#include "tests/support/test_io.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "sources/file_source.h"

namespace cepheus::testing {

io::RecordBatch Lines(std::string_view lines) {
  io::RecordBatch batch;
  while (!lines.empty()) {
    const size_t nl = lines.find('\n');
    batch.Begin(io::RecordKind::kMatch, {}, 0, {})->append(lines.substr(0, nl));
    batch.End();
    lines.remove_prefix(nl == std::string_view::npos ? lines.size() : nl + 1);
  }
  return batch;
}

engine::RunOptions FileRunOptions() {
  engine::RunOptions o;
  o.sources = &sources::FileSources();
  return o;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
}

std::vector<std::string> SortedLines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream ss(text);
  std::string l;
  while (std::getline(ss, l))
    if (!l.empty()) lines.push_back(l);
  std::sort(lines.begin(), lines.end());
  return lines;
}

Result<engine::CompiledPipeline> OneStreamPipeline(const std::string& pattern,
                                                   const std::string& input, int64_t lateness_ms,
                                                   const std::string& schema_spec,
                                                   const std::string& format) {
  engine::PipelineConfig cfg;
  engine::StreamConfig s;
  s.name = "s";
  s.source.path = input;
  s.source.format = format == "csv" ? engine::RecordFormat::kCsv : engine::RecordFormat::kJsonl;
  std::vector<Field> fields;
  std::stringstream ss(schema_spec);
  std::string part;
  while (std::getline(ss, part, ',')) {
    std::stringstream ps(part);
    std::string name, type;
    ps >> name >> type;
    fields.push_back(Field{name, *ParseFieldType(type)});
  }
  s.schema = Schema::Create(fields).value();
  if (s.schema.IndexOf("key") >= 0) s.key = {"key"};
  s.time_field = "ts";
  s.watermark.max_out_of_orderness = Duration::Millis(lateness_ms);
  cfg.streams.push_back(s);
  engine::PatternSource ps;
  ps.inline_text = pattern;
  cfg.patterns.push_back(ps);
  cfg.max_runs_per_key = 100000;
  return engine::CompilePipeline(std::move(cfg));
}

int SpawnCli(const std::vector<std::string>& args, int out_fd, const std::string& err_path,
             const std::string& stdin_path) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    int in = ::open(stdin_path.empty() ? "/dev/null" : stdin_path.c_str(), O_RDONLY);
    if (in >= 0) ::dup2(in, 0);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (err >= 0) ::dup2(err, 2);
    ::dup2(out_fd, 1);
    std::vector<char*> argv;
    std::string bin = CEPHEUS_BINARY;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

int SpawnCli(const std::vector<std::string>& args, int out_fd, const std::string& err_path) {
  return SpawnCli(args, out_fd, err_path, "");
}

int WaitPid(int pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return WEXITSTATUS(status);
}

CliResult RunCli(const std::vector<std::string>& args, const std::string& stdin_path) {
  namespace fs = std::filesystem;
  static int counter = 0;
  const std::string base =
      (fs::temp_directory_path() /
       ("cepheus-cli-" + std::to_string(::getpid()) + "-" + std::to_string(counter++)))
          .string();
  const std::string out_path = base + ".out", err_path = base + ".err";
  int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ::unlink(err_path.c_str());
  CliResult r;
  r.code = WaitPid(SpawnCli(args, out, err_path, stdin_path));
  ::close(out);
  r.out = ReadFile(out_path);
  r.err = ReadFile(err_path);
  ::unlink(out_path.c_str());
  ::unlink(err_path.c_str());
  return r;
}

int ScaledCases(int full, int minimum) {
  const char* env = std::getenv("CEPHEUS_TEST_SCALE");
  const double scale = env ? std::strtod(env, nullptr) : 1.0;
  if (!(scale > 0)) return full;
  return std::max(minimum, static_cast<int>(full * std::min(scale, 1.0)));
}

namespace {

// Removes the scratch directories of a test when it passed (a failed test
// keeps them, for a look at what it left).
class ScratchCleaner : public ::testing::EmptyTestEventListener {
 public:
  void Add(std::string dir) { dirs_.push_back(std::move(dir)); }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result() && info.result()->Passed()) {
      std::error_code ec;
      for (const std::string& d : dirs_) std::filesystem::remove_all(d, ec);
    }
    dirs_.clear();
  }

 private:
  std::vector<std::string> dirs_;
};

ScratchCleaner& Cleaner() {
  static ScratchCleaner* cleaner = [] {
    auto* c = new ScratchCleaner;  // owned by gtest's listener list
    ::testing::UnitTest::GetInstance()->listeners().Append(c);
    return c;
  }();
  return *cleaner;
}

}  // namespace

std::string ScratchDir(const std::string& prefix) {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / (prefix + "-" + std::to_string(::getpid()) + "-" +
                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  Cleaner().Add(dir.string());
  return dir.string();
}

HttpResponse HttpGet(int port, const std::string& path) {
  HttpResponse r;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return r;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return r;
  }
  const std::string req =
      "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (::write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return r;
  }
  std::string all;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) all.append(buf, static_cast<size_t>(n));
  ::close(fd);
  // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody"
  if (all.rfind("HTTP/1.", 0) != 0 || all.size() < 12) return r;
  r.status = std::atoi(all.c_str() + 9);
  const size_t body = all.find("\r\n\r\n");
  if (body != std::string::npos) r.body = all.substr(body + 4);
  return r;
}

int LoggedMetricsPort(const std::string& log) {
  static const std::string kPrefix = "metrics on http://127.0.0.1:";
  const size_t at = log.find(kPrefix);
  if (at == std::string::npos) return -1;
  return std::atoi(log.c_str() + at + kPrefix.size());
}

double ScrapedValue(const std::string& text, const std::string& series) {
  const size_t at = ("\n" + text).find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 1));
}

bool WaitUntil(const std::function<bool()>& done, int ms) {
  for (int i = 0; i < ms / 10; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

}  // namespace cepheus::testing
