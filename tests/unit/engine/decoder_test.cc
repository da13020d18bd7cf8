// Decoding input records: every malformed record is rejected with a reason.
#include "engine/ingest/decoder.h"

#include <gtest/gtest.h>

#include <random>

namespace cepheus::engine {
namespace {

Schema TestSchema() {
  return Schema::Create({{"id", FieldType::kString},
                         {"n", FieldType::kInt},
                         {"x", FieldType::kDouble},
                         {"ok", FieldType::kBool},
                         {"ts", FieldType::kTimestamp}})
      .value();
}

struct Decoded {
  bool ok;
  RowPtr row;
  std::string error;
};

class DecoderTest : public ::testing::Test {
 protected:
  DecoderTest() : schema_(TestSchema()) {
    opts_.schema = &schema_;
    opts_.time_field = 4;
    opts_.required = {4, 0};
    json_ = MakeJsonlDecoder(opts_);
    csv_ = MakeCsvDecoder(opts_);
  }
  Decoded Json(const std::string& line) {
    Decoded d;
    d.ok = json_->Decode(line, 7, &d.row, &d.error);
    return d;
  }
  Decoded Csv(const std::string& line) {
    Decoded d;
    d.ok = csv_->Decode(line, 7, &d.row, &d.error);
    return d;
  }
  Schema schema_;
  DecoderOptions opts_;
  std::unique_ptr<RecordDecoder> json_, csv_;
};

TEST_F(DecoderTest, JsonAllTypesAnyOrderUnknownFieldsIgnored) {
  auto d =
      Json(R"({"ts": 1500, "extra": [1, {"a": 2}], "x": 2.5, "n": -3, "ok": true, "id": "a\"b"})");
  ASSERT_TRUE(d.ok) << d.error;
  EXPECT_EQ(d.row->time().millis(), 1500);
  EXPECT_EQ(d.row->seq(), 7u);
  EXPECT_EQ(d.row->GetString(0), "a\"b");
  EXPECT_EQ(d.row->GetInt(1), -3);
  EXPECT_DOUBLE_EQ(d.row->GetDouble(2), 2.5);
  EXPECT_TRUE(d.row->GetBool(3));
}

TEST_F(DecoderTest, JsonTimestampsAsRfc3339AndIntegersForDoubles) {
  auto d = Json(R"({"id":"k","ts":"2026-11-21T10:00:00.250+01:00","x":3})");
  ASSERT_TRUE(d.ok) << d.error;
  EXPECT_EQ(d.row->time().millis(), ParseRfc3339("2026-11-21T09:00:00.250Z")->millis());
  EXPECT_DOUBLE_EQ(d.row->GetDouble(2), 3.0);
  EXPECT_TRUE(d.row->IsNull(1)) << "absent optional fields are null";
}

TEST_F(DecoderTest, JsonNullOptionalFieldIsNull) {
  auto d = Json(R"({"id":"k","ts":1,"n":null})");
  ASSERT_TRUE(d.ok) << d.error;
  EXPECT_TRUE(d.row->IsNull(1));
}

TEST_F(DecoderTest, JsonRejectsWithReasons) {
  struct Case {
    const char* line;
    const char* reason;
  } cases[] = {
      {R"({"id":"k","ts":1,"n":"3"})", "field 'n': expected an integer, got a string"},
      {R"({"id":"k","ts":1,"n":1.5})", "field 'n': expected an integer"},
      {R"({"id":"k","ts":1,"x":"big"})", "field 'x': expected a number, got a string"},
      {R"({"id":"k","ts":1,"ok":1})", "field 'ok': expected true or false, got the number 1"},
      {R"({"id":7,"ts":1})", "field 'id': expected a string, got the number 7"},
      {R"({"id":"k","ts":"soon"})",
       "field 'ts': 'soon' is not an RFC 3339 time or epoch milliseconds"},
      {R"({"id":"k","ts":{"ms":1}})",
       "field 'ts': expected an RFC 3339 time or epoch milliseconds, got an object"},
      {R"({"ts":1})", "missing key field 'id'"},
      {R"({"id":"k"})", "missing event time field 'ts'"},
      {R"({"id":"k","ts":null})", "missing event time field 'ts'"},
      {R"([1,2,3])", "invalid JSON: a record must be a JSON object"},
      {R"({"id":"k","ts":1} trailing)", "invalid JSON"},
      {R"({"id":"k","ts":1} {"id":"j","ts":2})", "invalid JSON: unexpected text after the object"},
      {R"({"id":"k","ts":1)", "invalid JSON"},
      {R"({"id":"k" "ts":1})", "invalid JSON"},
  };
  for (const Case& c : cases) {
    auto d = Json(c.line);
    EXPECT_FALSE(d.ok) << c.line;
    EXPECT_NE(d.error.find(c.reason), std::string::npos) << c.line << " -> " << d.error;
  }
}

// Values of the right JSON type that do not fit, and records that go wrong
// in particular ways, say exactly that.
TEST_F(DecoderTest, JsonReasonsSayWhatIsWrong) {
  struct Case {
    std::string line;
    const char* reason;
  } cases[] = {
      {R"({"id":"k","ts":1,"x":1e400})",
       "field 'x': the number 1e400 is out of range for a number"},
      {R"({"id":"k","ts":1,"n":99999999999999999999})",
       "field 'n': the number 99999999999999999999 is out of range for an integer"},
      {R"({"id":"k","ts":1,"n":1.5})", "field 'n': expected an integer, got the number 1.5"},
      {R"({"id":"k","ts":1} trailing)", "unexpected text after the object (at byte 18)"},
      {R"({"id":"k","ts":1)", "the record ends before its object closes"},
      {R"({"id":"k","ts":1,"z":"open)", "A string is opened, but never closed"},
      {R"({"id":"k\x","ts":1})", "field 'id': the string \"k\\x\" has an invalid escape"},
      {"{\"id\":\"k\xC3\",\"ts\":1}", "invalid JSON: the record is not valid UTF-8"},
  };
  for (const Case& c : cases) {
    auto d = Json(c.line);
    EXPECT_FALSE(d.ok) << c.line;
    EXPECT_NE(d.error.find(c.reason), std::string::npos) << c.line << " -> " << d.error;
  }
}

// Times that cannot be real poison the watermark (one far-future event makes
// every later event late); they are refused, never converted with overflow.
TEST_F(DecoderTest, EventTimesOutsideTheAcceptedRangeAreRejected) {
  for (const char* ts :
       {"1e23", "18446744073709551615", "-9223372036854775807", "9223372036854775807", "-1e300",
        "\"5000-01-01T00:00:00Z\"", "\"1800-06-01T00:00:00Z\""}) {
    auto d = Json(std::string(R"({"id":"k","ts":)") + ts + "}");
    EXPECT_FALSE(d.ok) << ts;
    const bool range = d.error.find("outside the accepted range") != std::string::npos ||
                       d.error.find("is out of range for epoch milliseconds") != std::string::npos;
    EXPECT_TRUE(range) << ts << " -> " << d.error;
  }
  EXPECT_TRUE(Json(R"({"id":"k","ts":1.5e12})").ok) << "a double in range is fine";
  EXPECT_TRUE(Json(R"({"id":"k","ts":-2208988800000})").ok) << "the lower bound is included";
  EXPECT_FALSE(Json(R"({"id":"k","ts":13569465600000})").ok) << "the upper bound is not";
  ASSERT_TRUE(csv_->SetHeader("id,ts").ok());
  EXPECT_FALSE(Csv("k,99999999999999").ok);
  // A configured range.
  DecoderOptions narrow = opts_;
  narrow.min_time = EventTime::FromMillis(0);
  narrow.max_time = EventTime::FromMillis(100);
  auto dec = MakeJsonlDecoder(narrow);
  RowPtr row;
  std::string error;
  EXPECT_TRUE(dec->Decode(R"({"id":"k","ts":99})", 1, &row, &error)) << error;
  EXPECT_FALSE(dec->Decode(R"({"id":"k","ts":100})", 1, &row, &error));
  EXPECT_FALSE(dec->Decode(R"({"id":"k","ts":-1})", 1, &row, &error));
}

TEST_F(DecoderTest, CsvRecordsMustBeUtf8) {
  ASSERT_TRUE(csv_->SetHeader("id,ts").ok());
  EXPECT_TRUE(Csv("caf\xC3\xA9,5").ok) << "well-formed UTF-8";
  for (const char* bad : {"caf\xE9,5", "\xC0\xAF,5", "\xED\xA0\x80,5", "\xF5\x80\x80\x80,5"}) {
    auto d = Csv(bad);
    EXPECT_FALSE(d.ok);
    EXPECT_NE(d.error.find("not valid UTF-8"), std::string::npos) << d.error;
  }
}

TEST_F(DecoderTest, CsvHeaderMapsColumnsByNameAndQuotesWork) {
  ASSERT_TRUE(csv_->SetHeader("ts,unused,id,x,n,ok").ok());
  auto d = Csv(R"(2026-01-01T00:00:00Z,"whatever, with comma","a ""quoted"" id",1.25,,true)");
  ASSERT_TRUE(d.ok) << d.error;
  EXPECT_EQ(d.row->GetString(0), "a \"quoted\" id");
  EXPECT_DOUBLE_EQ(d.row->GetDouble(2), 1.25);
  EXPECT_TRUE(d.row->IsNull(1)) << "an empty column is null";
  EXPECT_TRUE(d.row->GetBool(3));
  auto crlf = Csv("5,u,k,1,2,false\r");
  ASSERT_TRUE(crlf.ok) << crlf.error;
  EXPECT_EQ(crlf.row->time().millis(), 5);
}

TEST_F(DecoderTest, CsvRejectsWithReasons) {
  ASSERT_TRUE(csv_->SetHeader("id,n,x,ok,ts").ok());
  struct Case {
    const char* line;
    const char* reason;
  } cases[] = {
      {"k,three,1,true,5", "field 'n': 'three' is not an integer"},
      {"k,3,1x,true,5", "field 'x': '1x' is not a number"},
      {"k,3,1,maybe,5", "field 'ok': 'maybe' is not true or false"},
      {"k,3,1,true,later", "field 'ts': 'later' is not an RFC 3339 time or epoch milliseconds"},
      {"k,3,1,true", "CSV record has 4 columns, the header has 5"},
      {"\"k,3,1,true,5", "unterminated quoted field"},
      {",3,1,true,5", "missing key field 'id'"},
  };
  for (const Case& c : cases) {
    auto d = Csv(c.line);
    EXPECT_FALSE(d.ok) << c.line;
    EXPECT_NE(d.error.find(c.reason), std::string::npos) << c.line << " -> " << d.error;
  }
}

TEST_F(DecoderTest, CsvHeaderWithoutARequiredColumnIsAnError) {
  Status s = csv_->SetHeader("id,n,x");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("CSV header has no column 'ts'"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace cepheus::engine

namespace cepheus::engine {
namespace {

// DecodeBatch (one simdjson pass over many lines, with fallback) must give
// exactly what decoding line by line gives, for any mix of good and bad lines.
TEST(DecodeBatch, SameResultsAsLineByLineOnRandomMixes) {
  Schema schema = TestSchema();
  DecoderOptions opts;
  opts.schema = &schema;
  opts.time_field = 4;
  opts.required = {4, 0};
  auto batch_decoder = MakeJsonlDecoder(opts);
  auto line_decoder = MakeJsonlDecoder(opts);
  const std::vector<std::string> good = {
      R"({"id":"a","n":1,"x":1.5,"ok":true,"ts":10})",
      R"({"ts":"2026-01-01T00:00:00Z","id":"b"})",
      R"(  {"id":"c","ts":12,"extra":{"deep":[1,2,{"x":3}]}}  )",
      R"({"id":"d\"q","ts":13,"n":null})",
  };
  const std::vector<std::string> bad = {
      R"({"id":"e","ts":14,"n":"x"})",
      R"({not json)",
      R"({"id":"f","ts":15} junk)",
      R"({"id":"g","ts":16} {"id":"h","ts":17})",
      R"([1,2])",
      R"({"id":"i"})",
      R"("just a string")",
      R"({"id":"j","ts":18)",
      R"({"id":"k",)",
      R"("ts":19})",
  };
  std::mt19937_64 rng(5);
  for (int round = 0; round < 3000; ++round) {
    int n = std::uniform_int_distribution<int>(1, 12)(rng);
    std::string buffer;
    std::vector<std::pair<size_t, size_t>> spans;
    for (int i = 0; i < n; ++i) {
      bool is_bad = std::uniform_int_distribution<int>(0, 3)(rng) == 0;
      const auto& pool = is_bad ? bad : good;
      const std::string& l = pool[std::uniform_int_distribution<size_t>(0, pool.size() - 1)(rng)];
      spans.emplace_back(buffer.size(), l.size());
      buffer += l;
      buffer += '\n';
    }
    buffer.append(64, ' ');  // readable slack, as the line reader keeps
    std::vector<std::string_view> lines;
    for (auto [b, len] : spans) lines.emplace_back(buffer.data() + b, len);
    uint64_t seq = 100;
    std::vector<DecodedRecord> out;
    DecodeBatch(*batch_decoder, lines, 64, &seq, &out);
    ASSERT_EQ(out.size(), lines.size());
    uint64_t expected_seq = 100;
    for (size_t i = 0; i < lines.size(); ++i) {
      RowPtr row;
      std::string error;
      bool ok = line_decoder->Decode(lines[i], expected_seq, &row, &error);
      ASSERT_EQ(static_cast<bool>(out[i].row), ok)
          << "round " << round << " line " << i << ": " << lines[i];
      if (ok) {
        EXPECT_EQ(out[i].row->seq(), expected_seq);
        EXPECT_EQ(out[i].row->time(), row->time());
        EXPECT_EQ(out[i].row->GetString(0), row->GetString(0));
        ++expected_seq;
      } else {
        EXPECT_EQ(out[i].error, error) << lines[i];
      }
    }
    EXPECT_EQ(seq, expected_seq);
  }
}

}  // namespace
}  // namespace cepheus::engine
