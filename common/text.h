// Small text helpers shared by the config reader and the pattern parser.
#pragma once

#include <cstddef>
#include <string_view>

namespace cepheus {

// Edit distance (insertions, deletions, substitutions, swaps of neighbouring
// characters), for "did you mean" suggestions.
size_t EditDistance(std::string_view a, std::string_view b);

// The same, ignoring ASCII case.
size_t EditDistanceIgnoringCase(std::string_view a, std::string_view b);

}  // namespace cepheus
