// Path helpers shared by config checks and the command line.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace cepheus {

// Whether two paths name one file: equal once made absolute and normal
// (symbolic links resolved where they exist), or, when both exist, the same
// inode (hard links). Neither path needs to exist.
bool SameFile(const std::string& a, const std::string& b);

// The files a path spec names: a file, a glob (`*`, `?`, `[...]`), or a
// directory (its regular files whose names end in `suffix`, not hidden, not
// recursive); each glob match that is a directory is expanded the same way.
// Sorted by name. NotFound (with the reason, not naming the spec) when
// nothing matches or a path does not exist.
Result<std::vector<std::string>> ExpandPathSpec(const std::string& spec,
                                                std::string_view suffix = "");

}  // namespace cepheus
