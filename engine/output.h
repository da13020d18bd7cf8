// Output: where the engine writes records (JSON lines): matches, late events,
// dead letters. Implementations live in sinks/. Write() may be called from
// several worker threads; implementations serialize internally.
#pragma once

#include <string_view>

#include "common/status.h"

namespace cepheus::engine {

class Output {
 public:
  virtual ~Output() = default;
  // `lines` holds zero or more complete records, each ending in '\n'.
  virtual Status Write(std::string_view lines) = 0;
  virtual Status Flush() = 0;
};

}  // namespace cepheus::engine
