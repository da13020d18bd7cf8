// Minimal JSON text writing: escaping and a builder for flat records. Output
// records are written this way (reading uses simdjson). Not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cepheus {

// Appends `s` as a quoted JSON string.
void AppendJsonString(std::string& out, std::string_view s);
// Appends a finite double in shortest round-trip form; NaN/inf become null.
void AppendJsonDouble(std::string& out, double d);

// Builds one JSON object: Begin, fields, End. Keys are escaped.
class JsonObject {
 public:
  explicit JsonObject(std::string& out) : out_(out) { out_.push_back('{'); }
  JsonObject& Key(std::string_view k);
  JsonObject& String(std::string_view k, std::string_view v) {
    Key(k);
    AppendJsonString(out_, v);
    return *this;
  }
  JsonObject& Int(std::string_view k, int64_t v) {
    Key(k);
    out_ += std::to_string(v);
    return *this;
  }
  JsonObject& Raw(std::string_view k, std::string_view json) {
    Key(k);
    out_ += json;
    return *this;
  }
  void End() { out_.push_back('}'); }
  std::string& out() { return out_; }

 private:
  std::string& out_;
  bool first_ = true;
};

}  // namespace cepheus
