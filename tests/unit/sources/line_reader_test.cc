// Reading plain and compressed inputs line by line.
#include "sources/line_reader.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cctype>
#include <filesystem>
#include <fstream>

namespace cepheus::sources {
namespace {

namespace fs = std::filesystem;

std::string Gzip(const std::string& data) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);  // gzip wrapper
  std::string out(deflateBound(&z, data.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(out.size() - z.avail_out);
  deflateEnd(&z);
  return out;
}

std::string Zstd(const std::string& data) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3));
  return out;
}

class LineReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("cepheus-lr-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    for (int i = 0; i < 20000; ++i)
      text_ +=
          "{\"line\":" + std::to_string(i) + ",\"pad\":\"" + std::string(i % 50, 'x') + "\"}\n";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& bytes) {
    std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
  // All lines, or the error.
  Result<std::vector<std::string>> ReadAll(const std::string& path) {
    auto r = LineReader::Open(path);
    if (!r.ok()) return r.status();
    std::vector<std::string> lines;
    std::vector<LineReader::Line> batch;
    while (true) {
      batch.clear();
      auto res = r.value()->NextLines(300, 0, &batch);
      if (res == LineReader::Result::kEnd) break;
      if (res == LineReader::Result::kError) return r.value()->error();
      for (const auto& l : batch) lines.emplace_back(l.text);
    }
    return lines;
  }
  fs::path dir_;
  std::string text_;
};

TEST_F(LineReaderTest, CompressedInputsReadLikePlainText) {
  auto plain = ReadAll(Write("p.jsonl", text_));
  ASSERT_TRUE(plain.ok());
  ASSERT_EQ(plain->size(), 20000u);
  auto gz = ReadAll(Write("p.jsonl.gz", Gzip(text_)));
  ASSERT_TRUE(gz.ok()) << gz.status().message();
  EXPECT_EQ(gz.value(), plain.value());
  auto zst = ReadAll(Write("p.jsonl.zst", Zstd(text_)));
  ASSERT_TRUE(zst.ok()) << zst.status().message();
  EXPECT_EQ(zst.value(), plain.value());
  // `cat a.gz b.gz` is one gzip stream with two members.
  size_t half = text_.find('\n', text_.size() / 2) + 1;
  auto multi = ReadAll(Write("m.gz", Gzip(text_.substr(0, half)) + Gzip(text_.substr(half))));
  ASSERT_TRUE(multi.ok()) << multi.status().message();
  EXPECT_EQ(multi.value(), plain.value());
  // Several zstd frames likewise.
  auto frames = ReadAll(Write("m.zst", Zstd(text_.substr(0, half)) + Zstd(text_.substr(half))));
  ASSERT_TRUE(frames.ok()) << frames.status().message();
  EXPECT_EQ(frames.value(), plain.value());
}

TEST_F(LineReaderTest, TruncatedOrCorruptStreamsAreErrors) {
  std::string gz = Gzip(text_), zst = Zstd(text_);
  auto t1 = ReadAll(Write("t.gz", gz.substr(0, gz.size() / 2)));
  ASSERT_FALSE(t1.ok());
  EXPECT_NE(t1.status().message().find("ends in the middle of a gzip stream"), std::string::npos);
  auto t2 = ReadAll(Write("t.zst", zst.substr(0, zst.size() / 2)));
  ASSERT_FALSE(t2.ok());
  EXPECT_NE(t2.status().message().find("ends in the middle of a zstd stream"), std::string::npos);
  std::string bad = gz;
  for (size_t i = 40; i < 60; ++i) bad[i] = static_cast<char>(bad[i] ^ 0x5a);
  auto c1 = ReadAll(Write("c.gz", bad));
  ASSERT_FALSE(c1.ok());
  EXPECT_NE(c1.status().message().find("corrupt gzip stream"), std::string::npos)
      << c1.status().message();
  std::string badz = zst;
  for (size_t i = 20; i < 40; ++i) badz[i] = static_cast<char>(badz[i] ^ 0x5a);
  auto c2 = ReadAll(Write("c.zst", badz));
  ASSERT_FALSE(c2.ok());
  EXPECT_NE(c2.status().message().find("corrupt zstd stream"), std::string::npos)
      << c2.status().message();
}

TEST_F(LineReaderTest, LinesKeepNumbersAndOffsetsAcrossBufferRefills) {
  auto r = LineReader::Open(Write("p.jsonl", text_));
  ASSERT_TRUE(r.ok());
  std::vector<LineReader::Line> batch;
  uint64_t expected_number = 1, expected_offset = 0;
  while (r.value()->NextLines(777, 0, &batch) == LineReader::Result::kLine) {
    for (const auto& l : batch) {
      ASSERT_EQ(l.number, expected_number);
      ASSERT_EQ(l.offset, expected_offset);
      ASSERT_EQ(text_.substr(l.offset, l.text.size()), l.text);
      ++expected_number;
      expected_offset += l.text.size() + 1;
    }
    batch.clear();
  }
  EXPECT_EQ(expected_number, 20001u);
}

TEST_F(LineReaderTest, ByteRangesSplitTheLinesExactly) {
  const std::string path = Write("p.jsonl", text_);
  auto all = ReadAll(path);
  ASSERT_TRUE(all.ok());
  uint64_t size = 0;
  ASSERT_TRUE(LineReader::Splittable(path, &size));
  EXPECT_EQ(size, text_.size());
  EXPECT_FALSE(LineReader::Splittable(Write("z.gz", Gzip(text_)), &size));
  for (uint64_t cut : {uint64_t{1}, uint64_t{37}, size / 3, size / 2, size - 1}) {
    // Cuts at arbitrary bytes, including just after and just before a newline.
    for (uint64_t c : {cut, text_.find('\n', cut), text_.find('\n', cut) + 1}) {
      std::vector<std::string> lines;
      std::vector<uint64_t> offsets;
      uint64_t bytes = 0;  // what progress reports: each range counts its own bytes
      for (auto [b, e] : {std::pair<uint64_t, uint64_t>{0, c}, {c, size}}) {
        auto r = LineReader::OpenRange(path, b, e);
        ASSERT_TRUE(r.ok()) << r.status().message();
        struct Count {
          uint64_t* total;
          LineReader* reader;
          ~Count() { *total += reader->raw_bytes_read(); }
        } count{&bytes, r.value().get()};
        std::vector<LineReader::Line> batch;
        while (r.value()->NextLines(500, 0, &batch) == LineReader::Result::kLine) {
          for (const auto& l : batch) {
            lines.emplace_back(l.text);
            offsets.push_back(l.offset);
            if (b > 0) {
              EXPECT_EQ(l.number, 0u) << "line numbers are unknown past the first range";
            }
          }
          batch.clear();
        }
      }
      ASSERT_EQ(lines, all.value()) << "cut at " << c;
      EXPECT_EQ(bytes, size) << "progress bytes over all ranges, cut at " << c;
      for (size_t i = 0; i < offsets.size(); ++i)
        ASSERT_EQ(text_.substr(offsets[i], lines[i].size()), lines[i]);
    }
  }
}

TEST_F(LineReaderTest, CsvRecordsKeepQuotedNewlinesAndNumberTheirFirstLine) {
  const std::string csv =
      "id,note,ts\r\n1,\"two\nlines\",5\r\n2,plain,6\n3,\"a \"\"quoted\"\"\n\n\",7\n"
      "4,x\"y,8\n5,\"open";
  const std::string path = Write("q.csv", csv);
  for (size_t buffer : {size_t{1} << 20, size_t{256}}) {
    auto r = LineReader::Open(path, buffer);
    ASSERT_TRUE(r.ok());
    r.value()->set_quoted_records(true);
    std::vector<LineReader::Line> lines, batch;
    std::vector<std::string> texts;  // views live until the next call: copied
    while (r.value()->NextLines(2, 0, &batch) == LineReader::Result::kLine) {
      for (const auto& l : batch) texts.emplace_back(l.text);
      lines.insert(lines.end(), batch.begin(), batch.end());
      batch.clear();
    }
    ASSERT_EQ(lines.size(), 6u);
    EXPECT_EQ(texts[1], "1,\"two\nlines\",5");
    EXPECT_EQ(texts[3], "3,\"a \"\"quoted\"\"\n\n\",7");
    EXPECT_EQ(texts[4], "4,x\"y,8") << "a quote inside a field does not open a quoted field";
    EXPECT_EQ(texts[5], "5,\"open") << "an unterminated quote ends at the end of the data";
    const uint64_t numbers[] = {1, 2, 4, 5, 8, 9};
    for (size_t i = 0; i < lines.size(); ++i) {
      EXPECT_EQ(lines[i].number, numbers[i]) << texts[i];
      EXPECT_EQ(csv.substr(lines[i].offset, texts[i].size()), texts[i]);
    }
  }
  // Without quoted records (JSON lines) a newline always ends a record.
  auto plain = ReadAll(path);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->size(), 9u);
}

TEST_F(LineReaderTest, ByteOrderMarkAtTheStartIsSkipped) {
  const std::string body = "id,ts\n1,5\n";
  for (const std::string name : {"bom.csv", "bom.csv.gz"}) {
    const std::string bytes = "\xEF\xBB\xBF" + body;
    const std::string path = Write(name, name.ends_with(".gz") ? Gzip(bytes) : bytes);
    auto all = ReadAll(path);
    ASSERT_TRUE(all.ok());
    EXPECT_EQ(all.value(), (std::vector<std::string>{"id,ts", "1,5"})) << name;
  }
  // Only at the very start: one later in the data is data.
  auto later = ReadAll(Write("late.csv", body + "\xEF\xBB\xBFx\n"));
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later->back(), "\xEF\xBB\xBFx");
}

TEST_F(LineReaderTest, CsvRecordStartsNeverCutAQuotedField) {
  std::string csv = "k,v,ts\n";
  for (int i = 0; i < 3000; ++i)
    csv += std::to_string(i) + ",\"line\n" + std::string(i % 7, 'z') + "\n,x\"," +
           std::to_string(i) + "\n";
  const std::string path = Write("split.csv", csv);
  std::vector<uint64_t> targets;
  for (uint64_t t = 0; t <= csv.size(); t += csv.size() / 37) targets.push_back(t);
  targets.push_back(csv.size());
  auto starts = LineReader::CsvRecordStarts(path, targets);
  ASSERT_TRUE(starts.ok());
  ASSERT_EQ(starts->size(), targets.size());
  for (size_t i = 0; i < targets.size(); ++i) {
    const uint64_t s = (*starts)[i];
    EXPECT_GE(s, targets[i]);
    // A record start: the byte before is a newline and a record (a number) follows.
    if (s > 0 && s < csv.size()) {
      EXPECT_EQ(csv[s - 1], '\n');
      EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(csv[s]))) << csv.substr(s, 20);
    }
  }
  EXPECT_EQ(starts->back(), csv.size());
}

}  // namespace
}  // namespace cepheus::sources
