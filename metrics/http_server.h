// The metrics listener: one HTTP server (civetweb) per process serving
//   /metrics  the registry in the Prometheus text format,
//   /healthz  200 while the process is up,
//   /readyz   200 when the pipeline is restored and reading, else 503 with
//             the reason (restoring, an output that cannot commit).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"
#include "metrics/counters.h"

namespace cepheus::metrics {

// What /readyz reports: not ready while the pipeline restores, nor while an
// output's commit has been pending for longer than a grace period (a
// commit that cannot go through, e.g. a Kafka cluster that is down; a
// normal commit takes milliseconds and never shows). Thread-safe.
class Readiness {
 public:
  static constexpr int64_t kCommitGraceMs = 2000;
  void SetReady(bool ready, std::string reason = "") {
    std::lock_guard<std::mutex> l(mu_);
    ready_ = ready;
    reason_ = std::move(reason);
  }
  // An output commit starts (now_ms: a monotonic clock) / ends.
  void CommitStarted(int64_t now_ms) { commit_since_ms_.store(now_ms); }
  void CommitEnded() { commit_since_ms_.store(-1); }
  bool Get(int64_t now_ms, std::string* reason) const {
    std::lock_guard<std::mutex> l(mu_);
    if (!ready_) {
      *reason = reason_;
      return false;
    }
    const int64_t since = commit_since_ms_.load();
    if (since >= 0 && now_ms - since > kCommitGraceMs) {
      *reason = "an output has been committing a checkpoint for " +
                std::to_string((now_ms - since) / 1000) + " s (see the log)";
      return false;
    }
    return true;
  }

 private:
  mutable std::mutex mu_;
  bool ready_ = false;
  std::string reason_ = "starting";
  std::atomic<int64_t> commit_since_ms_{-1};
};

class HttpServer {
 public:
  // Listens on `listen` ("host:port"; port 0: any free port). The registry
  // and readiness must outlive the server.
  static Result<std::unique_ptr<HttpServer>> Start(const std::string& listen,
                                                   const Registry* registry,
                                                   const Readiness* readiness);
  virtual ~HttpServer() = default;
  // The port it listens on (useful with port 0).
  virtual int port() const = 0;
};

}  // namespace cepheus::metrics
