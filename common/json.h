// Minimal JSON text writing: escaping and a builder for flat records. Output
// records are written this way (reading uses simdjson). Not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cepheus {

// Appends `s` as a quoted JSON string. The output is always valid JSON and
// UTF-8: a byte that does not start a well-formed UTF-8 sequence (RFC 3629:
// no overlong forms, surrogates or code points above U+10FFFF) becomes
// U+FFFD, the replacement character.
void AppendJsonString(std::string& out, std::string_view s);
// The length of the well-formed UTF-8 sequence at the start of `s`, or 0.
size_t Utf8SequenceLength(std::string_view s);
// Whether `s` is well-formed UTF-8; if not, `*bad_offset` (if given) is the
// offset of the first byte that is not.
bool IsValidUtf8(std::string_view s, size_t* bad_offset = nullptr);
// Appends `bytes` in base64 (RFC 4648, with padding).
void AppendBase64(std::string& out, std::string_view bytes);
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
