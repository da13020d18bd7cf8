#include "common/paths.h"

#include <glob.h>

#include <algorithm>
#include <filesystem>

namespace cepheus {

bool SameFile(const std::string& a, const std::string& b) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path pa = fs::weakly_canonical(fs::absolute(a, ec), ec);
  const fs::path pb = fs::weakly_canonical(fs::absolute(b, ec), ec);
  if (!pa.empty() && pa == pb) return true;
  return fs::exists(a, ec) && fs::exists(b, ec) && fs::equivalent(a, b, ec);
}

Result<std::vector<std::string>> ExpandPathSpec(const std::string& spec, std::string_view suffix) {
  namespace fs = std::filesystem;
  const bool is_glob = spec.find_first_of("*?[") != std::string::npos;
  std::vector<std::string> found;
  glob_t g{};
  const int rc = ::glob(spec.c_str(), 0, nullptr, &g);
  for (size_t i = 0; rc == 0 && i < g.gl_pathc; ++i) found.push_back(g.gl_pathv[i]);
  ::globfree(&g);
  if (found.empty())
    return Status::NotFound(is_glob ? "matches no file" : "no such file or directory");
  std::vector<std::string> out;
  for (const std::string& f : found) {
    std::error_code ec;
    if (fs::is_directory(f, ec)) {
      for (const auto& e : fs::directory_iterator(f, ec)) {
        const std::string name = e.path().filename().string();
        if (e.is_regular_file() && name[0] != '.' && name.ends_with(suffix))
          out.push_back(e.path().string());
      }
    } else if (fs::exists(f, ec)) {
      out.push_back(f);
    } else {
      return Status::NotFound("no such file or directory: " + f);
    }
  }
  std::sort(out.begin(), out.end());
  if (out.empty())
    return Status::NotFound(suffix.empty() ? std::string("matches no file")
                                           : "matches no " + std::string(suffix) + " file");
  return out;
}

}  // namespace cepheus
