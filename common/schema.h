// The declared shape of a stream's events: an ordered list of typed fields.
// Field i of a row lives in slot i. Immutable after construction; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace cepheus {

enum class FieldType : uint8_t { kInt, kDouble, kString, kBool, kTimestamp };

std::string_view FieldTypeName(FieldType t);
// "int", "int64", "long", "double", "float", "string", "bool", "boolean", "timestamp".
std::optional<FieldType> ParseFieldType(std::string_view name);

struct Field {
  std::string name;
  FieldType type;
};

class Schema {
 public:
  // At most kMaxFields fields (rows keep a 64-bit null mask).
  static constexpr size_t kMaxFields = 64;

  Schema() = default;
  static Result<Schema> Create(std::vector<Field> fields);

  size_t size() const { return fields_.size(); }
  const Field& field(size_t i) const { return fields_[i]; }
  const std::vector<Field>& fields() const { return fields_; }
  // Index of the field called `name`, or -1.
  int IndexOf(std::string_view name) const;

 private:
  std::vector<Field> fields_;
};

}  // namespace cepheus
