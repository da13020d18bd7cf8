// TimerQueue: event-time timers, earliest first -- a min-heap of (time,
// payload). Owners that reschedule a payload leave the old entry in place
// and recognise it as superseded when it pops (lazy deletion), which keeps a
// reschedule O(log n) without a handle per entry. Pure value; single-threaded.
#pragma once

#include <algorithm>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "common/time_types.h"

namespace cepheus::timing {

template <typename T>
class TimerQueue {
 public:
  struct Timer {
    EventTime at;
    T payload;
  };

  void Push(EventTime at, T payload) {
    heap_.push_back(Timer{at, std::move(payload)});
    std::push_heap(heap_.begin(), heap_.end(), Later);
  }
  // The earliest timer if it is due at `now` (at <= now), removed.
  std::optional<Timer> PopDue(EventTime now) {
    if (heap_.empty() || heap_.front().at > now) return std::nullopt;
    std::pop_heap(heap_.begin(), heap_.end(), Later);
    Timer t = std::move(heap_.back());
    heap_.pop_back();
    return t;
  }
  // When the earliest timer is due (Max: none).
  EventTime next() const { return heap_.empty() ? EventTime::Max() : heap_.front().at; }
  bool empty() const { return heap_.empty(); }
  size_t size() const { return heap_.size(); }
  void Clear() { heap_.clear(); }
  // Replaces every timer (after the payloads moved), in O(n).
  void Assign(std::vector<Timer> timers) {
    heap_ = std::move(timers);
    std::make_heap(heap_.begin(), heap_.end(), Later);
  }

 private:
  static bool Later(const Timer& a, const Timer& b) { return a.at > b.at; }
  std::vector<Timer> heap_;
};

}  // namespace cepheus::timing
