// The process's log: spdlog to standard error, as text lines (the default)
// or one JSON object per line (`log.format: json`, `--log-format json`) for
// log shippers.
#pragma once

#include <string_view>

namespace cepheus::app {

// Text: "2026-12-03T18:00:00.123 info message" (local time, colours on a
// terminal). JSON: {"time":"2026-12-03T18:00:00.123Z","level":"info",
// "msg":"message"} with the time in UTC.
void SetLogFormat(bool json);
// Whether `name` is a log format ("text" or "json"); sets `*json`.
bool ParseLogFormat(std::string_view name, bool* json);

}  // namespace cepheus::app
