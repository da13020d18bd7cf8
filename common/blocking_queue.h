// A bounded multi-producer multi-consumer queue. Push blocks while full
// (backpressure from slow workers to the reader); Pop blocks while empty,
// PopFor at most a given time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

namespace cepheus {

template <typename T>
class BlockingQueue {
 public:
  explicit BlockingQueue(size_t capacity) : capacity_(capacity) {}
  void Push(T v) {
    std::unique_lock<std::mutex> l(mu_);
    not_full_.wait(l, [&] { return q_.size() < capacity_; });
    q_.push_back(std::move(v));
    not_empty_.notify_one();
  }
  T Pop() {
    std::unique_lock<std::mutex> l(mu_);
    not_empty_.wait(l, [&] { return !q_.empty(); });
    T v = std::move(q_.front());
    q_.pop_front();
    not_full_.notify_one();
    return v;
  }
  // The next element, or nullopt if none came within `timeout`.
  std::optional<T> PopFor(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> l(mu_);
    if (!not_empty_.wait_for(l, timeout, [&] { return !q_.empty(); })) return std::nullopt;
    std::optional<T> v(std::move(q_.front()));
    q_.pop_front();
    not_full_.notify_one();
    return v;
  }

 private:
  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable not_full_, not_empty_;
  std::deque<T> q_;  // guarded by mu_
};

}  // namespace cepheus
