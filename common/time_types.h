// Strong types for the three notions of time Cepheus keeps apart: the event
// time an event carries, a length of time, and a watermark (the event time up
// to which a stream is known to be complete). All are milliseconds since the
// Unix epoch (or a count of milliseconds), held in int64. Values, thread-safe.
#pragma once

#include <compare>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace cepheus {

class Duration {
 public:
  constexpr Duration() = default;
  static constexpr Duration Millis(int64_t ms) { return Duration(ms); }
  static constexpr Duration Seconds(int64_t s) { return Duration(s * 1000); }
  static constexpr Duration Infinite() { return Duration(std::numeric_limits<int64_t>::max()); }
  constexpr int64_t millis() const { return ms_; }
  constexpr bool is_infinite() const { return ms_ == std::numeric_limits<int64_t>::max(); }
  constexpr auto operator<=>(const Duration&) const = default;

 private:
  constexpr explicit Duration(int64_t ms) : ms_(ms) {}
  int64_t ms_ = 0;
};

class EventTime {
 public:
  constexpr EventTime() = default;
  static constexpr EventTime FromMillis(int64_t ms) { return EventTime(ms); }
  static constexpr EventTime Min() { return EventTime(std::numeric_limits<int64_t>::min()); }
  static constexpr EventTime Max() { return EventTime(std::numeric_limits<int64_t>::max()); }
  constexpr int64_t millis() const { return ms_; }
  constexpr auto operator<=>(const EventTime&) const = default;
  // Saturating: adding to Max() or an infinite duration stays at Max().
  constexpr EventTime operator+(Duration d) const {
    if (d.is_infinite() || ms_ > std::numeric_limits<int64_t>::max() - d.millis()) return Max();
    return EventTime(ms_ + d.millis());
  }
  constexpr Duration operator-(EventTime other) const { return Duration::Millis(ms_ - other.ms_); }

 private:
  constexpr explicit EventTime(int64_t ms) : ms_(ms) {}
  int64_t ms_ = 0;
};

// A watermark W asserts that no event with event time <= W will arrive any more.
class Watermark {
 public:
  constexpr Watermark() = default;
  static constexpr Watermark At(EventTime t) { return Watermark(t); }
  static constexpr Watermark Min() { return Watermark(EventTime::Min()); }
  // End of a bounded input: every pending timer fires.
  static constexpr Watermark Max() { return Watermark(EventTime::Max()); }
  constexpr EventTime time() const { return t_; }
  constexpr bool is_max() const { return t_ == EventTime::Max(); }
  constexpr auto operator<=>(const Watermark&) const = default;
  // True when an event at `t` arriving now is late.
  constexpr bool IsLate(EventTime t) const { return t <= t_ && t_ != EventTime::Min(); }

 private:
  constexpr explicit Watermark(EventTime t) : t_(t) {}
  EventTime t_ = EventTime::Min();
};

// "2026-11-21T19:30:15.123Z". Millisecond precision, UTC.
std::string FormatRfc3339(EventTime t);
// Appends the same to `out` (no allocation for years 0-9999).
void AppendRfc3339(std::string* out, EventTime t);
// Accepts RFC 3339 date-times ("2026-11-21T19:30:15Z", fractional seconds,
// "+02:00" offsets, a space instead of 'T') and plain dates ("2026-11-21").
std::optional<EventTime> ParseRfc3339(std::string_view text);
// A time as users write it in config and on the command line: what
// ParseRfc3339 accepts, or whole epoch milliseconds ("1785542400000").
std::optional<EventTime> ParseTimeOrEpochMillis(std::string_view text);
// "250ms", "5s", "10m", "2h", "1d", "10 minutes", "30 seconds". Case-insensitive.
std::optional<Duration> ParseDuration(std::string_view text);
std::string FormatDuration(Duration d);

}  // namespace cepheus
