// Status and Result<T>: error values for everything that can fail on user input
// or I/O. A Status costs one null pointer on success. Result<T> holds either a
// value or a non-OK Status. Both are plain values, not thread-safe to mutate
// concurrently, safe to copy between threads.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace cepheus {

class [[nodiscard]] Status {
 public:
  enum class Code { kOk = 0, kInvalidArgument, kNotFound, kIoError, kCorruption, kInternal };

  Status() = default;
  Status(const Status& other) : state_(other.state_ ? new State(*other.state_) : nullptr) {}
  Status& operator=(const Status& other) {
    if (this != &other) state_.reset(other.state_ ? new State(*other.state_) : nullptr);
    return *this;
  }
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) { return Status(Code::kInvalidArgument, msg); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status IoError(std::string msg) { return Status(Code::kIoError, std::move(msg)); }
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, std::move(msg)); }
  static Status Internal(std::string msg) { return Status(Code::kInternal, std::move(msg)); }

  bool ok() const { return state_ == nullptr; }
  Code code() const { return state_ ? state_->code : Code::kOk; }
  // The message without a code prefix; empty for OK.
  const std::string& message() const {
    static const std::string kEmpty;
    return state_ ? state_->message : kEmpty;
  }
  std::string ToString() const;
  // The same error with `prefix` before its message.
  Status WithPrefix(const std::string& prefix) const {
    return ok() ? Status() : Status(code(), prefix + message());
  }
  // Statuses are [[nodiscard]]: dropping one says so, here, with the reason
  // at the call site (`s.IgnoreError();  // best effort: ...`).
  void IgnoreError() const {}

 private:
  struct State {
    Code code;
    std::string message;
  };
  Status(Code code, std::string msg) : state_(new State{code, std::move(msg)}) {}
  std::unique_ptr<State> state_;
};

// Either a T or a non-OK Status. Access to value() requires ok().
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT(implicit)
  Result(Status status) : v_(std::move(status)) {}  // NOLINT(implicit); status must not be OK
  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }

 private:
  std::variant<T, Status> v_;
};

#define CEPHEUS_RETURN_IF_ERROR(expr) \
  do {                                \
    ::cepheus::Status _st = (expr);   \
    if (!_st.ok()) return _st;        \
  } while (0)

}  // namespace cepheus
