// The file source behind io::Source: files in order as one partition,
// framing (blank lines, CSV headers), replay positions, and shares for
// parallel reading.
#include "sources/file_source.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace cepheus::sources {
namespace {

namespace fs = std::filesystem;

class FileSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("cepheus-fs-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& bytes) {
    std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
  static io::SourceSpec Spec(std::vector<std::string> paths, io::Framing framing) {
    io::SourceSpec spec;
    spec.stream = "s";
    spec.paths = std::move(paths);
    spec.framing = framing;
    spec.read_buffer_bytes = 64;  // several polls per file
    return spec;
  }
  struct Got {
    std::string text;  // "h:" prefix for headers
    std::string origin;
    uint64_t line, offset, position;
  };
  // Polls until the end (at most `limit` records).
  static std::vector<Got> Drain(io::Source& s, size_t limit = SIZE_MAX) {
    std::vector<Got> out;
    io::SourceBatch batch;
    while (out.size() < limit) {
      auto r = s.Poll(limit - out.size() < 2 ? 1 : 2, &batch);
      EXPECT_TRUE(r.ok()) << r.status().message();
      if (!r.ok() || r.value() == io::Source::Polled::kEnd) break;
      for (const auto& rec : batch.records)
        out.push_back(Got{(rec.header ? "h:" : "") + std::string(rec.payload),
                          std::string(s.origin(batch.partition)), rec.line, rec.offset,
                          rec.position});
    }
    return out;
  }
  static std::vector<std::string> Texts(const std::vector<Got>& got) {
    std::vector<std::string> out;
    for (const auto& g : got) out.push_back(g.text);
    return out;
  }
  fs::path dir_;
};

TEST_F(FileSourceTest, ReadsFilesInOrderAsOnePartitionSkippingBlankLines) {
  const std::string a = Write("a.jsonl", "{\"v\":1}\n\n  \n{\"v\":2}\n");
  const std::string b = Write("b.jsonl", "{\"v\":3}");  // no final newline
  auto s = FileSources().Open(Spec({a, b}, io::Framing::kLines));
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s.value()->Open().ok());
  std::vector<io::AssignmentChange> changes;
  s.value()->TakeAssignmentChanges(&changes);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].partition, 0);
  EXPECT_TRUE(changes[0].added);
  EXPECT_TRUE(changes[0].bounded);
  const auto got = Drain(*s.value());
  EXPECT_EQ(Texts(got), (std::vector<std::string>{"{\"v\":1}", "{\"v\":2}", "{\"v\":3}"}));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1].origin, a);
  EXPECT_EQ(got[1].line, 4u);
  EXPECT_EQ(got[1].offset, 12u);
  EXPECT_EQ(got[2].origin, b);
  EXPECT_TRUE(s.value()->ended());
  EXPECT_FALSE(s.value()->positioned());
  EXPECT_EQ(s.value()->bytes_read(), s.value()->total_bytes());
}

TEST_F(FileSourceTest, AMissingFileFailsAtOpenWithTheStreamName) {
  auto s = FileSources().Open(Spec({(dir_ / "nope.jsonl").string()}, io::Framing::kLines));
  ASSERT_TRUE(s.ok());
  Status st = s.value()->Open();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("stream 's'"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("nope.jsonl"), std::string::npos) << st.message();
}

TEST_F(FileSourceTest, APositionRestoresExactlyWhereItWasTakenAndConsumesOnlyItsBytes) {
  std::string text[2];
  for (int i = 0; i < 40; ++i) text[i / 20] += "{\"v\":" + std::to_string(i) + "}\n";
  const std::string a = Write("a.jsonl", text[0]);
  const std::string b = Write("b.jsonl", text[1]);
  const auto spec = Spec({a, b}, io::Framing::kLines);
  const auto whole = [&] {
    auto s = MakeFileSource(spec);
    EXPECT_TRUE(s->Open().ok());
    return Texts(Drain(*s));
  }();
  ASSERT_EQ(whole.size(), 40u);
  for (size_t cut : {size_t{0}, size_t{7}, size_t{20}, size_t{33}, size_t{40}}) {
    auto first = MakeFileSource(spec);
    ASSERT_TRUE(first->Open().ok());
    auto head = Texts(Drain(*first, cut));
    std::string saved;
    first->SavePosition(&saved);
    saved += "tail";  // what follows belongs to someone else
    auto second = MakeFileSource(spec);
    ASSERT_TRUE(second->Open().ok());
    std::string_view in = saved;
    ASSERT_TRUE(second->RestorePosition(&in).ok()) << cut;
    EXPECT_EQ(in, "tail") << cut;
    auto rest = Texts(Drain(*second));
    head.insert(head.end(), rest.begin(), rest.end());
    EXPECT_EQ(head, whole) << "cut after " << cut;
  }
}

TEST_F(FileSourceTest, ARestoreWithOtherFilesIsRefusedClearly) {
  const std::string a = Write("a.jsonl", "{\"v\":1}\n{\"v\":2}\n");
  const std::string b = Write("b.jsonl", "{\"v\":3}\n");
  auto first = MakeFileSource(Spec({a}, io::Framing::kLines));
  ASSERT_TRUE(first->Open().ok());
  Drain(*first, 1);
  std::string saved;
  first->SavePosition(&saved);
  auto other = MakeFileSource(Spec({b}, io::Framing::kLines));
  ASSERT_TRUE(other->Open().ok());
  std::string_view in = saved;
  Status st = other->RestorePosition(&in);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("not among the stream's inputs"), std::string::npos) << st.message();
  std::string_view damaged = std::string_view(saved).substr(0, 3);
  EXPECT_FALSE(MakeFileSource(Spec({a}, io::Framing::kLines))->RestorePosition(&damaged).ok());
}

TEST_F(FileSourceTest, EveryCsvFileStartsWithAHeaderAndARestoreRepeatsIt) {
  const std::string a = Write("a.csv", "k,v\n\"x\ny\",1\nb,2\n");
  const std::string b = Write("b.csv", "v,k\n3,c\n");
  const auto spec = Spec({a, b}, io::Framing::kCsv);
  auto s = MakeFileSource(spec);
  ASSERT_TRUE(s->Open().ok());
  EXPECT_EQ(Texts(Drain(*s)),
            (std::vector<std::string>{"h:k,v", "\"x\ny\",1", "b,2", "h:v,k", "3,c"}));

  auto first = MakeFileSource(spec);
  ASSERT_TRUE(first->Open().ok());
  Drain(*first, 2);  // the header and the quoted record
  std::string saved;
  first->SavePosition(&saved);
  auto second = MakeFileSource(spec);
  ASSERT_TRUE(second->Open().ok());
  std::string_view in = saved;
  ASSERT_TRUE(second->RestorePosition(&in).ok());
  EXPECT_EQ(Texts(Drain(*second)), (std::vector<std::string>{"h:k,v", "b,2", "h:v,k", "3,c"}));
}

TEST_F(FileSourceTest, SharesReadEveryRecordOnceWithPositionsThatIgnoreTheSplit) {
  std::string csv = "k,v\n";
  for (int i = 0; i < 300; ++i)
    csv += (i % 7 == 0 ? "\"q\n" + std::to_string(i) + "\"" : "k" + std::to_string(i)) + "," +
           std::to_string(i) + "\n";
  const std::string big = Write("big.csv", csv);
  const std::string small = Write("small.csv", "k,v\nz,1\n");
  const auto spec = Spec({big, small}, io::Framing::kCsv);
  std::vector<std::pair<uint64_t, std::string>> whole;
  {
    auto s = MakeFileSource(spec);
    ASSERT_TRUE(s->Open().ok());
    for (const Got& g : Drain(*s))
      if (g.text.rfind("h:", 0) != 0)
        whole.emplace_back(InputPosition(g.origin == big ? 0 : 1, g.offset), g.text);
  }
  for (int shares : {1, 2, 3, 5}) {
    auto opened = FileSources().OpenShares(spec, shares, /*split_above=*/100);
    ASSERT_TRUE(opened.ok());
    ASSERT_EQ(opened.value().size(), static_cast<size_t>(shares));
    std::vector<std::pair<uint64_t, std::string>> got;
    for (auto& share : opened.value()) {
      if (!share) continue;
      ASSERT_TRUE(share->Open().ok());
      EXPECT_TRUE(share->positioned());
      bool header_seen = false;
      for (const Got& g : Drain(*share)) {
        if (g.text.rfind("h:", 0) == 0) {
          header_seen = true;
          continue;
        }
        EXPECT_TRUE(header_seen) << "every share starts with its file's header";
        got.emplace_back(g.position, g.text);
      }
      std::string saved;
      share->SavePosition(&saved);
      std::string_view in = saved;
      EXPECT_FALSE(share->RestorePosition(&in).ok()) << "a share cannot be restored";
    }
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, whole) << shares << " shares";
  }
}

}  // namespace
}  // namespace cepheus::sources
