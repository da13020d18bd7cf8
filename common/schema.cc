#include "common/schema.h"

#include <algorithm>
#include <cctype>

namespace cepheus {

std::string_view FieldTypeName(FieldType t) {
  switch (t) {
    case FieldType::kInt:
      return "int";
    case FieldType::kDouble:
      return "double";
    case FieldType::kString:
      return "string";
    case FieldType::kBool:
      return "bool";
    case FieldType::kTimestamp:
      return "timestamp";
  }
  return "?";
}

std::optional<FieldType> ParseFieldType(std::string_view name) {
  std::string n(name);
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
  if (n == "int" || n == "int64" || n == "long" || n == "integer") return FieldType::kInt;
  if (n == "double" || n == "float" || n == "number") return FieldType::kDouble;
  if (n == "string" || n == "text") return FieldType::kString;
  if (n == "bool" || n == "boolean") return FieldType::kBool;
  if (n == "timestamp" || n == "time") return FieldType::kTimestamp;
  return std::nullopt;
}

Result<Schema> Schema::Create(std::vector<Field> fields) {
  if (fields.empty()) return Status::InvalidArgument("a schema needs at least one field");
  if (fields.size() > kMaxFields) return Status::InvalidArgument("a schema has at most 64 fields");
  for (const Field& f : fields) {
    // Names are referenced from patterns, so they must be identifiers (this
    // also lets decoders compare JSON keys without unescaping them).
    bool ok = !f.name.empty() && !std::isdigit(static_cast<unsigned char>(f.name[0]));
    for (unsigned char c : f.name) ok = ok && (std::isalnum(c) || c == '_');
    if (!ok)
      return Status::InvalidArgument("field name '" + f.name +
                                     "' is not an identifier (letters, digits and _)");
  }
  for (size_t i = 0; i < fields.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (fields[i].name == fields[j].name)
        return Status::InvalidArgument("field '" + fields[i].name + "' is declared twice");
  Schema s;
  s.fields_ = std::move(fields);
  return s;
}

int Schema::IndexOf(std::string_view name) const {
  for (size_t i = 0; i < fields_.size(); ++i)
    if (fields_[i].name == name) return static_cast<int>(i);
  return -1;
}

}  // namespace cepheus
