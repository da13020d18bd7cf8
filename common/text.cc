#include "common/text.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <vector>

namespace cepheus {
namespace {

// Optimal string alignment: insertions, deletions, substitutions and swaps
// of two neighbouring characters (FORM for FROM is one edit).
template <typename Eq>
size_t Distance(std::string_view a, std::string_view b, Eq eq) {
  const size_t w = b.size() + 1;
  std::vector<size_t> d((a.size() + 1) * w);
  for (size_t i = 0; i <= a.size(); ++i) d[i * w] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t v = std::min({d[(i - 1) * w + j] + 1, d[i * w + j - 1] + 1,
                           d[(i - 1) * w + j - 1] + (eq(a[i - 1], b[j - 1]) ? 0 : 1)});
      if (i > 1 && j > 1 && eq(a[i - 1], b[j - 2]) && eq(a[i - 2], b[j - 1]))
        v = std::min(v, d[(i - 2) * w + j - 2] + 1);
      d[i * w + j] = v;
    }
  }
  return d[a.size() * w + b.size()];
}

}  // namespace

size_t EditDistance(std::string_view a, std::string_view b) {
  return Distance(a, b, [](char x, char y) { return x == y; });
}

size_t EditDistanceIgnoringCase(std::string_view a, std::string_view b) {
  return Distance(a, b, [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

Result<std::string> ExpandEnv(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text.substr(i, 3) == "$${") {
      out += "${";
      i += 2;
      continue;
    }
    if (text.substr(i, 2) != "${") {
      out += text[i];
      continue;
    }
    const size_t end = text.find('}', i + 2);
    if (end == std::string_view::npos)
      return Status::InvalidArgument("unterminated ${ in '" + std::string(text) + "'");
    const std::string name(text.substr(i + 2, end - i - 2));
    const char* value = name.empty() ? nullptr : std::getenv(name.c_str());
    if (!value)
      return Status::InvalidArgument("environment variable '" + name +
                                     "' is not set (referenced as ${" + name + "})");
    out += value;
    i = end;
  }
  return out;
}

void AppendHex16(std::string* out, uint64_t v) {
  char hex[16];
  for (int i = 15; i >= 0; --i, v >>= 4) hex[i] = "0123456789abcdef"[v & 15];
  out->append(hex, 16);
}

std::optional<uint64_t> ParseByteSize(std::string_view text) {
  const std::string s(text);
  size_t pos = 0;
  double v;
  try {
    v = std::stod(s, &pos);
  } catch (...) {
    return std::nullopt;
  }
  std::string unit;
  for (char c : s.substr(pos))
    if (c != ' ') unit += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double mult = 1;
  if (unit == "" || unit == "B")
    mult = 1;
  else if (unit == "K" || unit == "KB" || unit == "KIB")
    mult = 1024;
  else if (unit == "M" || unit == "MB" || unit == "MIB")
    mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GB" || unit == "GIB")
    mult = 1024.0 * 1024 * 1024;
  else
    return std::nullopt;
  if (!(v >= 0)) return std::nullopt;
  return static_cast<uint64_t>(v * mult);
}

}  // namespace cepheus
