#include "metrics/http_server.h"

#include <CivetServer.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <chrono>
#include <cstring>
#include <vector>

namespace cepheus::metrics {
namespace {

void Reply(mg_connection* conn, int code, const char* status, const char* type,
           const std::string& body) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Connection: close\r\n\r\n",
            code, status, type, body.size());
  mg_write(conn, body.data(), body.size());
}

class MetricsHandler final : public CivetHandler {
 public:
  explicit MetricsHandler(const Registry* r) : r_(r) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    Reply(conn, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", r_->RenderText());
    return true;
  }

 private:
  const Registry* r_;
};

class HealthHandler final : public CivetHandler {
 public:
  bool handleGet(CivetServer*, mg_connection* conn) override {
    Reply(conn, 200, "OK", "text/plain", "ok\n");
    return true;
  }
};

class ReadyHandler final : public CivetHandler {
 public:
  explicit ReadyHandler(const Readiness* r) : r_(r) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    std::string reason;
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
    if (r_->Get(now, &reason))
      Reply(conn, 200, "OK", "text/plain", "ready\n");
    else
      Reply(conn, 503, "Service Unavailable", "text/plain", "not ready: " + reason + "\n");
    return true;
  }

 private:
  const Readiness* r_;
};

class CivetHttpServer final : public HttpServer {
 public:
  CivetHttpServer(std::unique_ptr<CivetServer> server, const Registry* registry,
                  const Readiness* readiness)
      : server_(std::move(server)), metrics_(registry), ready_(readiness) {
    server_->addHandler("/metrics", metrics_);
    server_->addHandler("/healthz", health_);
    server_->addHandler("/readyz", ready_);
  }
  // civetweb's stop waits until its listener thread wakes from poll(2),
  // up to a second or two; connecting to the port meanwhile wakes it at once,
  // so a run that ends does not linger for its metrics listener.
  ~CivetHttpServer() override {
    const int port = this->port();
    std::atomic<bool> stopped{false};
    std::thread poke([&] {
      while (!stopped.load()) {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
          sockaddr_in addr{};
          addr.sin_family = AF_INET;
          addr.sin_port = htons(static_cast<uint16_t>(port));
          addr.sin_addr = wake_addr_;
          (void)::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
          ::close(fd);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
    server_->close();
    stopped.store(true);
    poke.join();
  }
  // Where the listener can be reached from here (its own address, or
  // loopback for a wildcard).
  void SetWakeAddress(const std::string& listen) {
    const std::string host = listen.substr(0, listen.rfind(':'));
    if (host.empty() || host == "0.0.0.0" || ::inet_pton(AF_INET, host.c_str(), &wake_addr_) != 1)
      ::inet_pton(AF_INET, "127.0.0.1", &wake_addr_);
  }
  int port() const override {
    auto ports = server_->getListeningPorts();
    return ports.empty() ? -1 : ports[0];
  }

 private:
  std::unique_ptr<CivetServer> server_;
  in_addr wake_addr_{};
  MetricsHandler metrics_;
  HealthHandler health_;
  ReadyHandler ready_;
};

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& listen,
                                                      const Registry* registry,
                                                      const Readiness* readiness) {
  // civetweb wants "host:port" as listening_ports; a few threads suffice
  // for a scraper and a health checker.
  std::vector<std::string> options = {"listening_ports",    listen, "num_threads", "2",
                                      "request_timeout_ms", "200"};
  try {
    auto server = std::make_unique<CivetServer>(options);
    if (server->getContext() == nullptr)
      return Status::IoError("cannot listen on " + listen + " for metrics");
    auto http = std::make_unique<CivetHttpServer>(std::move(server), registry, readiness);
    http->SetWakeAddress(listen);
    return std::unique_ptr<HttpServer>(std::move(http));
  } catch (const CivetException& e) {
    return Status::IoError("cannot listen on " + listen + " for metrics: " + e.what());
  }
}

}  // namespace cepheus::metrics
