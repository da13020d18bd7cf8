#include "sinks/outputs.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>

namespace cepheus::sinks {
namespace {

class FileOutput final : public engine::Output {
 public:
  FileOutput(std::FILE* f, std::string name, bool owned)
      : f_(f), name_(std::move(name)), owned_(owned) {}
  ~FileOutput() override {
    std::lock_guard<std::mutex> l(mu_);
    std::fflush(f_);
    if (owned_) std::fclose(f_);
  }
  Status Write(std::string_view lines) override {
    std::lock_guard<std::mutex> l(mu_);
    if (std::fwrite(lines.data(), 1, lines.size(), f_) != lines.size())
      return Status::IoError("writing " + name_ + ": " + std::strerror(errno));
    return Status::Ok();
  }
  Status Flush() override {
    std::lock_guard<std::mutex> l(mu_);
    if (std::fflush(f_) != 0)
      return Status::IoError("flushing " + name_ + ": " + std::strerror(errno));
    return Status::Ok();
  }

 private:
  std::mutex mu_;
  std::FILE* f_;  // guarded by mu_
  std::string name_;
  bool owned_;
};

}  // namespace

Result<std::unique_ptr<engine::Output>> MakeOutput(const engine::OutputConfig& config) {
  if (config.type == "stdout")
    return std::unique_ptr<engine::Output>(new FileOutput(stdout, "standard output", false));
  if (config.type == "stderr")
    return std::unique_ptr<engine::Output>(new FileOutput(stderr, "standard error", false));
  if (config.type == "file") {
    std::error_code ec;
    auto dir = std::filesystem::path(config.path).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir, ec);
    if (ec)
      return Status::IoError("cannot create directory '" + dir.string() + "': " + ec.message());
    std::FILE* f = std::fopen(config.path.c_str(), "w");
    if (!f)
      return Status::IoError("cannot open output file '" + config.path +
                             "': " + std::strerror(errno));
    return std::unique_ptr<engine::Output>(new FileOutput(f, config.path, true));
  }
  return Status::InvalidArgument("unknown output type '" + config.type + "'");
}

Status MemoryOutput::Write(std::string_view lines) {
  std::lock_guard<std::mutex> l(mu_);
  data_.append(lines);
  return Status::Ok();
}

std::string MemoryOutput::contents() const {
  std::lock_guard<std::mutex> l(mu_);
  return data_;
}

}  // namespace cepheus::sinks
