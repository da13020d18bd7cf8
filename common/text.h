// Small text helpers shared by the config reader and the pattern parser.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace cepheus {

// Edit distance (insertions, deletions, substitutions, swaps of neighbouring
// characters), for "did you mean" suggestions.
size_t EditDistance(std::string_view a, std::string_view b);

// The same, ignoring ASCII case.
size_t EditDistanceIgnoringCase(std::string_view a, std::string_view b);

// Appends `v` as 16 lowercase hex digits (match ids).
void AppendHex16(std::string* out, uint64_t v);

// Replaces ${NAME} by the value of environment variable NAME (an unset one is
// an error naming it); "$${" stays a literal "${". For secrets in configs:
// the config file names the variable, never the value.
Result<std::string> ExpandEnv(std::string_view text);

// "64MiB", "512k", "1.5 GB", "4096": a size in bytes (K, M, G count in
// 1024s, with or without B or iB; case-insensitive). Nullopt if malformed
// or negative.
std::optional<uint64_t> ParseByteSize(std::string_view text);

}  // namespace cepheus
