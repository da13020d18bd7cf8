// Little helpers for compact binary encodings (state and checkpoint formats):
// LEB128 varints and zigzag for signed values. Header-only; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cepheus {

inline void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

inline void PutSigned(std::string* out, int64_t v) {
  PutVarint(out, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
}

// Reads from the front of *in; false (and *in unchanged) on truncated input.
inline bool GetVarint(std::string_view* in, uint64_t* v) {
  uint64_t result = 0;
  for (size_t i = 0; i < in->size() && i < 10; ++i) {
    uint64_t byte = static_cast<unsigned char>((*in)[i]);
    result |= (byte & 0x7f) << (7 * i);
    if (!(byte & 0x80)) {
      in->remove_prefix(i + 1);
      *v = result;
      return true;
    }
  }
  return false;
}

inline bool GetSigned(std::string_view* in, int64_t* v) {
  uint64_t u;
  if (!GetVarint(in, &u)) return false;
  *v = static_cast<int64_t>(u >> 1) ^ -static_cast<int64_t>(u & 1);
  return true;
}

// 8 bytes, most significant first: byte-wise order is numeric order (keys
// that must sort, such as arrival numbers and deadlines in state keys).
inline void PutFixed64BE(std::string* out, uint64_t v) {
  for (int b = 7; b >= 0; --b) out->push_back(static_cast<char>((v >> (8 * b)) & 0xff));
}

inline bool GetFixed64BE(std::string_view* in, uint64_t* v) {
  if (in->size() < 8) return false;
  uint64_t r = 0;
  for (size_t i = 0; i < 8; ++i) r = (r << 8) | static_cast<unsigned char>((*in)[i]);
  in->remove_prefix(8);
  *v = r;
  return true;
}

}  // namespace cepheus
