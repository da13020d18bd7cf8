#include "time/watermark.h"

#include <algorithm>
#include <limits>

namespace cepheus::timing {

void InputWatermark::OnEvent(EventTime t, int64_t wall_ms) {
  if (!has_events_ || t > max_ts_) max_ts_ = t;
  has_events_ = true;
  last_event_wall_ms_ = wall_ms;
}

void InputWatermark::OnPunctuation(EventTime t, int64_t wall_ms) {
  if (!has_punctuation_ || t > punctuation_) punctuation_ = t;
  has_punctuation_ = true;
  last_event_wall_ms_ = wall_ms;
}

bool InputWatermark::IsIdle(int64_t wall_ms) const {
  if (bounded_ || ended_ || last_event_wall_ms_ == kClockUnset) return false;
  return wall_ms - last_event_wall_ms_ >= options_.idle_timeout.millis();
}

Watermark InputWatermark::FromEvents() const {
  if (ended_) return Watermark::Max();
  const Watermark punctuated = has_punctuation_ ? Watermark::At(punctuation_) : Watermark::Min();
  if (!has_events_ || !options_.from_event_times) return punctuated;
  return std::max(punctuated, Generated());
}

Watermark InputWatermark::Generated() const {
  // Saturating: an event time near the minimum (decoders refuse those, but
  // this class does not rely on it) must not wrap around to +infinity.
  const int64_t delay = options_.max_out_of_orderness.millis();
  if (max_ts_.millis() < std::numeric_limits<int64_t>::min() + delay + 1) return Watermark::Min();
  return Watermark::At(EventTime::FromMillis(max_ts_.millis() - delay - 1));
}

Watermark InputWatermark::Current(int64_t wall_ms) const {
  Watermark w = FromEvents();
  // A punctuated input's watermark is what it says, never the wall clock.
  if (!ended_ && has_events() && options_.from_event_times &&
      options_.follow_wall_clock_when_idle && IsIdle(wall_ms)) {
    const EventTime advanced = w.time() + Duration::Millis(wall_ms - last_event_wall_ms_);
    // (Never +infinity: that means "every input ended".)
    w = std::max(w, Watermark::At(std::min(
                        advanced, EventTime::FromMillis(std::numeric_limits<int64_t>::max() - 1))));
  }
  return w;
}

int WatermarkCombiner::AddInput(WatermarkOptions options, bool bounded) {
  inputs_.emplace_back(options, bounded);
  return static_cast<int>(inputs_.size()) - 1;
}

bool WatermarkCombiner::AllEnded() const {
  return std::all_of(inputs_.begin(), inputs_.end(),
                     [](const InputWatermark& i) { return i.ended(); });
}

Watermark WatermarkCombiner::Update(int64_t wall_ms) {
  if (inputs_.empty()) return current_;
  bool any_active = false;
  Watermark active_min = Watermark::Max();
  for (auto& in : inputs_) in.StartClock(wall_ms);
  for (const auto& in : inputs_) {
    if (in.IsIdle(wall_ms)) continue;
    any_active = true;
    active_min = std::min(active_min, in.FromEvents());
  }
  Watermark w;
  if (any_active) {
    w = active_min;
  } else {
    // Every live input is idle: follow the wall clock (inputs that never saw
    // an event have no base and do not count).
    w = Watermark::Max();
    bool any = false;
    for (const auto& in : inputs_) {
      if (!in.has_events() && !in.ended()) continue;
      any = true;
      w = std::min(w, in.Current(wall_ms));
    }
    if (!any) w = current_;
  }
  current_ = std::max(current_, w);
  return current_;
}

}  // namespace cepheus::timing
