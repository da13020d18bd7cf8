// Decoding input records: every malformed record is rejected with a reason.
#include "engine/decoder.h"

#include <gtest/gtest.h>

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
      {R"({"id":"k","ts":1,"ok":1})", "field 'ok': expected true or false, got a number"},
      {R"({"id":7,"ts":1})", "field 'id': expected a string, got a number"},
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
