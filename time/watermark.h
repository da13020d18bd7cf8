// Watermarks. A source's watermark trails the largest event time it has seen
// by the allowed out-of-orderness (Flink's bounded-out-of-orderness rule:
// max_ts - delay - 1ms). A pipeline's watermark is the minimum over its live
// inputs. Idle unbounded inputs let the watermark follow the wall clock, so a
// quiet live stream still fires timeouts and absence matches. Values of these
// classes are owned by the single reader thread; not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "common/time_types.h"

namespace cepheus::timing {

struct WatermarkOptions {
  // Events may arrive this much behind the largest event time seen.
  Duration max_out_of_orderness = Duration::Seconds(0);
  // An unbounded input with no event for this long is idle.
  Duration idle_timeout = Duration::Seconds(30);
  // While every unbounded input is idle, event time advances with the wall
  // clock from the last event. Default on; turn off to freeze the watermark.
  bool follow_wall_clock_when_idle = true;
  // False (`watermark: punctuated`): event times do not move the watermark;
  // only punctuations (records or a watermark field) and the end do.
  bool from_event_times = true;
};

class InputWatermark {
 public:
  InputWatermark(WatermarkOptions options, bool bounded) : options_(options), bounded_(bounded) {}

  // An event at `t` arrived at wall time `wall_ms`.
  void OnEvent(EventTime t, int64_t wall_ms);
  // The input says that no event at or before `t` follows (Flink's
  // Watermark(t)). Combined with the generated watermark by max.
  void OnPunctuation(EventTime t, int64_t wall_ms);
  // The input ended: everything is known.
  void OnEnd() { ended_ = true; }

  bool ended() const { return ended_; }
  bool bounded() const { return bounded_; }
  // Has a base for the watermark: an event or a punctuation was seen.
  bool has_events() const { return has_events_ || has_punctuation_; }
  // Idle: unbounded, not ended, and silent for at least the idle timeout --
  // counted from its last event, or from when it was first looked at (an
  // input that has not had an event yet, e.g. a new Kafka partition, holds
  // the watermark back for the idle timeout, as in Flink's idleness).
  bool IsIdle(int64_t wall_ms) const;
  // Starts the idle clock at `wall_ms` if it has not started (the combiner
  // does this on every update).
  void StartClock(int64_t wall_ms) {
    if (last_event_wall_ms_ == kClockUnset) last_event_wall_ms_ = wall_ms;
  }
  // The watermark from events alone.
  Watermark FromEvents() const;
  // The watermark including wall-clock advance while idle.
  Watermark Current(int64_t wall_ms) const;

  // What a checkpoint keeps of an input (its options come from the config).
  struct Saved {
    bool ended = false;
    bool has_events = false;
    EventTime max_ts = EventTime::Min();
    int64_t last_event_wall_ms = 0;
    std::optional<EventTime> punctuation;
  };
  Saved Save() const {
    Saved s{ended_, has_events_, max_ts_, last_event_wall_ms_, std::nullopt};
    if (has_punctuation_) s.punctuation = punctuation_;
    return s;
  }
  void Restore(const Saved& s) {
    ended_ = s.ended;
    has_events_ = s.has_events;
    max_ts_ = s.max_ts;
    // The idle clock restarts: the time the process was down is not silence
    // of the input (a Kafka backlog after a restart must not be late).
    last_event_wall_ms_ = kClockUnset;
    has_punctuation_ = s.punctuation.has_value();
    punctuation_ = s.punctuation.value_or(EventTime::Min());
  }

 private:
  Watermark Generated() const;  // from event times (has_events_)

  WatermarkOptions options_;
  bool bounded_;
  bool ended_ = false;
  bool has_events_ = false;
  EventTime max_ts_ = EventTime::Min();
  static constexpr int64_t kClockUnset = INT64_MIN;
  int64_t last_event_wall_ms_ = kClockUnset;
  bool has_punctuation_ = false;
  EventTime punctuation_ = EventTime::Min();
};

// The minimum over a set of inputs. An idle input does not hold back the
// others; when all unbounded inputs are idle they all follow the wall clock.
// The combined watermark never moves backwards.
class WatermarkCombiner {
 public:
  int AddInput(WatermarkOptions options, bool bounded);
  InputWatermark& input(int i) { return inputs_[static_cast<size_t>(i)]; }
  const InputWatermark& input(int i) const { return inputs_[static_cast<size_t>(i)]; }
  size_t size() const { return inputs_.size(); }
  // Recomputes and returns the combined watermark.
  Watermark Update(int64_t wall_ms);
  Watermark current() const { return current_; }
  // Restoring from a checkpoint: the combined watermark it had reached.
  void RestoreCurrent(Watermark w) { current_ = w; }
  bool AllEnded() const;

 private:
  std::vector<InputWatermark> inputs_;
  Watermark current_ = Watermark::Min();
};

}  // namespace cepheus::timing
