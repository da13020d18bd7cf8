#include "common/status.h"

namespace cepheus {

std::string Status::ToString() const {
  if (ok()) return "OK";
  const char* prefix = "";
  switch (state_->code) {
    case Code::kOk:
      break;
    case Code::kInvalidArgument:
      prefix = "invalid argument: ";
      break;
    case Code::kNotFound:
      prefix = "not found: ";
      break;
    case Code::kIoError:
      prefix = "I/O error: ";
      break;
    case Code::kCorruption:
      prefix = "corruption: ";
      break;
    case Code::kInternal:
      prefix = "internal error: ";
      break;
  }
  return prefix + state_->message;
}

}  // namespace cepheus
