#include "sources/file_source.h"

#include <sys/stat.h>

#include <spdlog/spdlog.h>

#include "common/varint.h"
#include "sources/line_reader.h"

namespace cepheus::sources {

namespace {

bool Blank(std::string_view text) {
  return text.find_first_not_of(" \t") == std::string_view::npos;
}

class FileSource : public io::Source {
 public:
  FileSource(const io::SourceSpec& spec, std::vector<FileRange> ranges, bool ranged)
      : spec_(spec), ranges_(std::move(ranges)), ranged_(ranged) {
    if (!ranged_)
      for (size_t i = 0; i < spec_.paths.size(); ++i)
        ranges_.push_back(FileRange{spec_.paths[i], static_cast<uint32_t>(i), 0, UINT64_MAX});
    for (const FileRange& r : ranges_) {
      struct stat st;
      if (r.end != UINT64_MAX)
        total_bytes_ += r.end - r.begin;
      else if (r.path != "-" && ::stat(r.path.c_str(), &st) == 0 && S_ISREG(st.st_mode))
        total_bytes_ += static_cast<uint64_t>(st.st_size);
    }
  }

  Status Open() override {
    if (ranges_.empty()) return Status::InvalidArgument("stream '" + spec_.stream + "': no input");
    CEPHEUS_RETURN_IF_ERROR(OpenNext());
    changes_.push_back(io::AssignmentChange{0, true, reader_->bounded()});
    return Status::Ok();
  }

  Result<Polled> Poll(size_t max_records, io::SourceBatch* batch) override {
    batch->Clear();
    if (ended_) return Polled::kEnd;
    if (pending_header_) {
      // The header of the file this share or restore starts inside.
      pending_header_ = false;
      batch->records.push_back(io::SourceRecord{header_, header_line_, 0, 0, true});
      return Polled::kMore;
    }
    lines_.clear();
    const LineReader::Result r = reader_->NextLines(max_records, 0, &lines_);
    if (r == LineReader::Result::kTimeout) return Polled::kNothing;
    if (r == LineReader::Result::kError) return reader_->error();
    if (r == LineReader::Result::kEnd) {
      if (next_file_ < ranges_.size()) {
        CEPHEUS_RETURN_IF_ERROR(OpenNext());
        return Polled::kMore;
      }
      ended_ = true;
      return Polled::kEnd;
    }
    for (const LineReader::Line& l : lines_) {
      if (Blank(l.text)) continue;
      io::SourceRecord rec{l.text, l.number, l.offset,
                           ranged_ ? InputPosition(file_index_, l.offset) : 0, false};
      if (!header_done_) {
        header_.assign(l.text);
        header_line_ = l.number;
        header_done_ = true;
        rec.header = true;
      }
      batch->records.push_back(rec);
    }
    if (!batch->records.empty())
      batch->readable_after = reader_->readable_after(batch->records.back().payload);
    return Polled::kMore;
  }

  void TakeAssignmentChanges(std::vector<io::AssignmentChange>* out) override {
    out->insert(out->end(), changes_.begin(), changes_.end());
    changes_.clear();
  }
  bool ended() const override { return ended_; }
  std::string_view origin(int) const override {
    return reader_ ? std::string_view(reader_->name()) : std::string_view(spec_.paths.back());
  }
  bool positioned() const override { return ranged_; }
  int wait_fd() const override { return reader_ && !reader_->bounded() ? reader_->fd() : -1; }
  bool has_buffered() const override { return reader_ && reader_->has_buffered(); }

  uint64_t bytes_read() const override {
    return finished_bytes_ + (reader_ ? reader_->raw_bytes_read() : 0);
  }
  uint64_t total_bytes() const override { return total_bytes_; }

  // The fields (and their order) are those of reader positions before the
  // source interface existed, so older checkpoints restore.
  void SavePosition(std::string* out) const override {
    PutVarint(out, next_file_);
    const std::string& file =
        ranged_ || next_file_ == 0 ? std::string() : spec_.paths[next_file_ - 1];
    PutVarint(out, file.size());
    *out += file;
    PutVarint(out, ended_ ? 1 : 0);
    PutVarint(out, reader_ ? reader_->position() : 0);
    PutVarint(out, reader_ ? reader_->line_number() : 0);
    PutVarint(out, header_done_ ? 1 : 0);
    PutVarint(out, header_.size());
    *out += header_;
  }

  Status RestorePosition(std::string_view* in) override {
    auto bad = [] { return Status::Corruption("checkpoint: damaged reader position"); };
    uint64_t next_file, flen, ended, pos, line, header_done, hlen;
    if (!GetVarint(in, &next_file) || !GetVarint(in, &flen) || flen > in->size()) return bad();
    const std::string file(in->substr(0, flen));
    in->remove_prefix(flen);
    if (!GetVarint(in, &ended) || !GetVarint(in, &pos) || !GetVarint(in, &line) ||
        !GetVarint(in, &header_done) || !GetVarint(in, &hlen) || hlen > in->size())
      return bad();
    header_.assign(in->substr(0, hlen));
    in->remove_prefix(hlen);
    if (ranged_) return Status::InvalidArgument("cannot restore a ranged reader");
    if (next_file == 0 || next_file > spec_.paths.size() || spec_.paths[next_file - 1] != file)
      return Status::InvalidArgument("stream '" + spec_.stream + "': the checkpoint was reading '" +
                                     file + "', which is not among the stream's inputs now");
    ended_ = ended != 0;
    if (ended_) {
      reader_.reset();
      return Status::Ok();
    }
    if (next_file != next_file_) {
      next_file_ = static_cast<size_t>(next_file) - 1;
      CEPHEUS_RETURN_IF_ERROR(OpenNext());
    }
    Status s = reader_->SkipTo(pos, line);
    if (!s.ok()) {
      if (reader_->bounded()) return s;
      spdlog::warn("stream '{}': {}; continuing with the data that arrives next", spec_.stream,
                   s.message());
    }
    header_done_ = header_done != 0;
    pending_header_ = header_done_ && csv();
    header_line_ = 0;
    return Status::Ok();
  }

 private:
  bool csv() const { return spec_.framing == io::Framing::kCsv; }

  Status OpenNext() {
    const FileRange& r = ranges_[next_file_++];
    cepheus::Result<std::unique_ptr<LineReader>> reader =
        r.begin == 0 && r.end == UINT64_MAX ? LineReader::Open(r.path, spec_.read_buffer_bytes)
                                            : LineReader::OpenRange(r.path, r.begin, r.end);
    if (!reader.ok())
      return Status::IoError("stream '" + spec_.stream + "': " + reader.status().message());
    if (reader_) finished_bytes_ += reader_->raw_bytes_read();
    reader_ = std::move(reader.value());
    reader_->set_quoted_records(csv());
    file_index_ = r.file_index;
    header_done_ = !csv();  // every CSV file has its header
    header_.clear();
    if (!header_done_ && r.begin > 0) return ReadHeaderOf(r.path);
    return Status::Ok();
  }

  // A range after a file's first: its header is the file's first record.
  Status ReadHeaderOf(const std::string& path) {
    auto head = LineReader::Open(path);
    if (!head.ok()) return head.status();
    head.value()->set_quoted_records(true);
    std::string_view line;
    while (head.value()->Next(&line, 0) == LineReader::Result::kLine) {
      if (Blank(line)) continue;
      header_.assign(line);
      header_line_ = head.value()->line_number();
      header_done_ = true;
      pending_header_ = true;
      break;
    }
    return head.value()->error();
  }

  io::SourceSpec spec_;
  std::vector<FileRange> ranges_;  // the whole files when not ranged
  const bool ranged_;
  size_t next_file_ = 0;
  uint32_t file_index_ = 0;
  std::unique_ptr<LineReader> reader_;
  bool ended_ = false;
  bool header_done_ = false;
  bool pending_header_ = false;
  std::string header_;
  uint64_t header_line_ = 0;
  uint64_t total_bytes_ = 0;
  uint64_t finished_bytes_ = 0;  // of files already closed
  std::vector<LineReader::Line> lines_;
  std::vector<io::AssignmentChange> changes_;
};

}  // namespace

std::unique_ptr<io::Source> MakeFileSource(const io::SourceSpec& spec) {
  return std::make_unique<FileSource>(spec, std::vector<FileRange>{}, false);
}

std::unique_ptr<io::Source> MakeFileRangeSource(const io::SourceSpec& spec,
                                                std::vector<FileRange> ranges) {
  return std::make_unique<FileSource>(spec, std::move(ranges), true);
}

Result<std::vector<std::vector<FileRange>>> SplitFiles(const io::SourceSpec& spec, int shares,
                                                       uint64_t split_above) {
  const auto n = static_cast<size_t>(std::max(1, shares));
  std::vector<std::vector<FileRange>> out(n);
  for (size_t fi = 0; fi < spec.paths.size(); ++fi) {
    const std::string& f = spec.paths[fi];
    uint64_t size = 0;
    if (!LineReader::Splittable(f, &size) || size < split_above) {
      out[fi % n].push_back(FileRange{f, static_cast<uint32_t>(fi), 0, UINT64_MAX});
      continue;
    }
    std::vector<uint64_t> cuts;  // share t reads [cuts[t], cuts[t + 1])
    for (size_t t = 0; t <= n; ++t) cuts.push_back(size * t / n);
    if (spec.framing == io::Framing::kCsv) {
      // A CSV record may span lines (quoted newlines): cut only where a record starts.
      auto starts = LineReader::CsvRecordStarts(f, cuts);
      if (!starts.ok()) return starts.status();
      cuts = std::move(starts.value());
    }
    for (size_t t = 0; t < n; ++t)
      if (cuts[t] < cuts[t + 1])
        out[t].push_back(FileRange{f, static_cast<uint32_t>(fi), cuts[t], cuts[t + 1]});
  }
  return out;
}

Result<std::unique_ptr<io::Source>> FileSourceProvider::Open(const io::SourceSpec& spec) {
  if (spec.kind != io::SourceKind::kFile)
    return Status::InvalidArgument("stream '" + spec.stream + "': source type '" +
                                   std::string(io::SourceKindName(spec.kind)) +
                                   "' is not supported by the file source provider");
  return MakeFileSource(spec);
}

Result<std::vector<std::unique_ptr<io::Source>>> FileSourceProvider::OpenShares(
    const io::SourceSpec& spec, int shares, uint64_t split_above) {
  auto split = SplitFiles(spec, shares, split_above);
  if (!split.ok()) return split.status();
  std::vector<std::unique_ptr<io::Source>> out;
  for (auto& ranges : split.value())
    out.push_back(ranges.empty() ? nullptr : MakeFileRangeSource(spec, std::move(ranges)));
  return out;
}

io::SourceProvider& FileSources() {
  static FileSourceProvider provider;
  return provider;
}

}  // namespace cepheus::sources
