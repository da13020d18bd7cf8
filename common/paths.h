// Path helpers shared by config checks and the command line.
#pragma once

#include <string>

namespace cepheus {

// Whether two paths name one file: equal once made absolute and normal
// (symbolic links resolved where they exist), or, when both exist, the same
// inode (hard links). Neither path needs to exist.
bool SameFile(const std::string& a, const std::string& b);

}  // namespace cepheus
