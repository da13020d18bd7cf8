#include "patterns/diagnostics.h"

#include <algorithm>

namespace cepheus::patterns {

SourceFile::SourceFile(std::string name, std::string text)
    : name_(std::move(name)), text_(std::move(text)) {
  line_starts_.push_back(0);
  for (uint32_t i = 0; i < text_.size(); ++i)
    if (text_[i] == '\n') line_starts_.push_back(i + 1);
}

void SourceFile::Position(uint32_t offset, int* line, int* col) const {
  offset = std::min<uint32_t>(offset, static_cast<uint32_t>(text_.size()));
  auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  size_t idx = static_cast<size_t>(it - line_starts_.begin()) - 1;
  *line = static_cast<int>(idx) + 1;
  *col = static_cast<int>(offset - line_starts_[idx]) + 1;
}

std::string_view SourceFile::LineText(int line) const {
  if (line < 1 || static_cast<size_t>(line) > line_starts_.size()) return {};
  uint32_t b = line_starts_[static_cast<size_t>(line) - 1];
  uint32_t e = static_cast<size_t>(line) < line_starts_.size()
                   ? line_starts_[static_cast<size_t>(line)]
                   : static_cast<uint32_t>(text_.size());
  std::string_view v(text_.data() + b, e - b);
  while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.remove_suffix(1);
  return v;
}

bool Diagnostics::HasErrors() const {
  return std::any_of(items_.begin(), items_.end(), [](const Diagnostic& d) {
    return d.severity == Diagnostic::Severity::kError;
  });
}

std::string RenderDiagnostic(const SourceFile& file, const Diagnostic& d) {
  int line, col;
  file.Position(d.span.begin, &line, &col);
  std::string out = file.name() + ":" + std::to_string(line) + ":" + std::to_string(col) + ": " +
                    (d.severity == Diagnostic::Severity::kError ? "error: " : "warning: ") +
                    d.message + "\n";
  std::string_view text = file.LineText(line);
  out += "  ";
  out += text;
  out += "\n  ";
  // Columns count bytes; the caret lines up by characters (a UTF-8
  // continuation byte takes no column on screen).
  auto is_continuation = [&](int i) {
    return static_cast<size_t>(i - 1) < text.size() &&
           (static_cast<unsigned char>(text[static_cast<size_t>(i - 1)]) & 0xC0) == 0x80;
  };
  for (int i = 1; i < col; ++i) {
    if (is_continuation(i)) continue;
    out += (static_cast<size_t>(i - 1) < text.size() && text[static_cast<size_t>(i - 1)] == '\t')
               ? '\t'
               : ' ';
  }
  out += '^';
  // Underline the rest of the span when it stays on this line.
  int end_line, end_col;
  file.Position(d.span.end, &end_line, &end_col);
  if (end_line == line)
    for (int i = col + 1; i < end_col; ++i)
      if (!is_continuation(i)) out += '~';
  out += "\n";
  return out;
}

std::string Diagnostics::Render(const SourceFile& file) const {
  std::vector<const Diagnostic*> sorted;
  for (const auto& d : items_) sorted.push_back(&d);
  std::stable_sort(sorted.begin(), sorted.end(), [](const Diagnostic* a, const Diagnostic* b) {
    return a->span.begin < b->span.begin;
  });
  std::string out;
  for (const Diagnostic* d : sorted) out += RenderDiagnostic(file, *d);
  return out;
}

}  // namespace cepheus::patterns
