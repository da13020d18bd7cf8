#include "common/time_types.h"

#include <cctype>
#include <charconv>
#include <cstdio>

namespace cepheus {
namespace {

// Days since 1970-01-01 for a proleptic Gregorian date (era-based arithmetic:
// 400-year eras have a fixed number of days).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

bool ReadDigits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

}  // namespace

std::string FormatRfc3339(EventTime t) {
  std::string s;
  AppendRfc3339(&s, t);
  return s;
}

void AppendRfc3339(std::string* dst, EventTime t) {
  if (t == EventTime::Max()) {
    dst->append("+inf");
    return;
  }
  if (t == EventTime::Min()) {
    dst->append("-inf");
    return;
  }
  int64_t ms = t.millis();
  int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
  int64_t rem = ms - days * 86400000;
  int64_t y;
  unsigned mo, d;
  CivilFromDays(days, &y, &mo, &d);
  if (y < 0 || y > 9999) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%lld-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<long long>(y),
                  mo, d, static_cast<int>(rem / 3600000), static_cast<int>(rem / 60000 % 60),
                  static_cast<int>(rem / 1000 % 60), static_cast<int>(rem % 1000));
    dst->append(buf);
    return;
  }
  // Hot in output rendering: write the digits directly.
  char out[25] = "0000-00-00T00:00:00.000Z";
  auto put = [&](int pos, int64_t v, int width) {
    for (int i = width - 1; i >= 0; --i) {
      out[pos + i] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
  };
  put(0, y, 4);
  put(5, mo, 2);
  put(8, d, 2);
  put(11, rem / 3600000, 2);
  put(14, rem / 60000 % 60, 2);
  put(17, rem / 1000 % 60, 2);
  put(20, rem % 1000, 3);
  dst->append(out, 24);
}

std::optional<EventTime> ParseRfc3339(std::string_view s) {
  int y, mo, d, h = 0, mi = 0, sec = 0;
  if (!ReadDigits(s, 0, 4, &y) || s.size() < 10 || s[4] != '-' || !ReadDigits(s, 5, 2, &mo) ||
      s[7] != '-' || !ReadDigits(s, 8, 2, &d))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31) return std::nullopt;
  size_t pos = 10;
  int64_t frac_ms = 0;
  int64_t offset_min = 0;
  if (pos < s.size()) {
    if (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' ') return std::nullopt;
    if (!ReadDigits(s, pos + 1, 2, &h) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !ReadDigits(s, pos + 4, 2, &mi))
      return std::nullopt;
    pos += 6;
    if (pos < s.size() && s[pos] == ':') {
      if (!ReadDigits(s, pos + 1, 2, &sec)) return std::nullopt;
      pos += 3;
    }
    if (pos < s.size() && s[pos] == '.') {
      ++pos;
      int digits = 0;
      while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
        if (digits < 3) frac_ms = frac_ms * 10 + (s[pos] - '0');
        ++digits;
        ++pos;
      }
      if (digits == 0) return std::nullopt;
      for (int i = digits; i < 3; ++i) frac_ms *= 10;
    }
    if (pos < s.size()) {
      if (s[pos] == 'Z' || s[pos] == 'z') {
        ++pos;
      } else if (s[pos] == '+' || s[pos] == '-') {
        int oh, om;
        int sign = s[pos] == '-' ? -1 : 1;
        if (!ReadDigits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
            !ReadDigits(s, pos + 4, 2, &om))
          return std::nullopt;
        offset_min = sign * (oh * 60 + om);
        pos += 6;
      } else {
        return std::nullopt;
      }
    }
    if (pos != s.size()) return std::nullopt;
    if (h > 23 || mi > 59 || sec > 60) return std::nullopt;
  }
  int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  int64_t ms = ((days * 24 + h) * 60 + mi) * 60000 + sec * 1000 + frac_ms - offset_min * 60000;
  return EventTime::FromMillis(ms);
}

std::optional<EventTime> ParseTimeOrEpochMillis(std::string_view text) {
  if (auto t = ParseRfc3339(text)) return t;
  int64_t ms;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
  if (ec == std::errc() && p == text.data() + text.size() && !text.empty())
    return EventTime::FromMillis(ms);
  return std::nullopt;
}

std::optional<Duration> ParseDuration(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(s.data() + i, s.data() + s.size(), value);
  if (ec != std::errc() || value < 0) return std::nullopt;
  i = static_cast<size_t>(ptr - s.data());
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  std::string unit;
  for (; i < s.size(); ++i) {
    if (std::isspace(static_cast<unsigned char>(s[i]))) break;
    unit.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(s[i]))));
  }
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  if (i != s.size()) return std::nullopt;
  int64_t mult;
  if (unit == "ms" || unit == "millisecond" || unit == "milliseconds")
    mult = 1;
  else if (unit == "s" || unit == "sec" || unit == "second" || unit == "seconds")
    mult = 1000;
  else if (unit == "m" || unit == "min" || unit == "minute" || unit == "minutes")
    mult = 60000;
  else if (unit == "h" || unit == "hour" || unit == "hours")
    mult = 3600000;
  else if (unit == "d" || unit == "day" || unit == "days")
    mult = 86400000;
  else
    return std::nullopt;
  return Duration::Millis(value * mult);
}

std::string FormatDuration(Duration d) {
  if (d.is_infinite()) return "inf";
  int64_t ms = d.millis();
  if (ms != 0 && ms % 86400000 == 0) return std::to_string(ms / 86400000) + "d";
  if (ms != 0 && ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
  if (ms != 0 && ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace cepheus
