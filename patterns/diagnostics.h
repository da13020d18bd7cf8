// Diagnostics: errors and warnings about a pattern source, rendered like a
// compiler's: "file:line:col: error: message", the source line, and a caret.
// Values; not thread-safe to mutate concurrently.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "patterns/ast.h"

namespace cepheus::patterns {

// A named pattern text. Line and column numbers are 1-based; columns count bytes.
class SourceFile {
 public:
  SourceFile(std::string name, std::string text);
  const std::string& name() const { return name_; }
  const std::string& text() const { return text_; }
  // 1-based line and column of byte `offset` (clamped to the text).
  void Position(uint32_t offset, int* line, int* col) const;
  std::string_view LineText(int line) const;

 private:
  std::string name_;
  std::string text_;
  std::vector<uint32_t> line_starts_;
};

struct Diagnostic {
  enum class Severity { kError, kWarning };
  Severity severity = Severity::kError;
  SourceSpan span;
  std::string message;
};

class Diagnostics {
 public:
  void Error(SourceSpan span, std::string message) {
    items_.push_back({Diagnostic::Severity::kError, span, std::move(message)});
  }
  void Warning(SourceSpan span, std::string message) {
    items_.push_back({Diagnostic::Severity::kWarning, span, std::move(message)});
  }
  bool HasErrors() const;
  const std::vector<Diagnostic>& items() const { return items_; }
  void Append(const Diagnostics& other) {
    items_.insert(items_.end(), other.items_.begin(), other.items_.end());
  }
  // All diagnostics, sorted by position, each with its source line and caret.
  std::string Render(const SourceFile& file) const;

 private:
  std::vector<Diagnostic> items_;
};

std::string RenderDiagnostic(const SourceFile& file, const Diagnostic& d);

}  // namespace cepheus::patterns
