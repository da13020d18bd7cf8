// JSON text writing: whatever bytes go in, valid JSON and UTF-8 come out.
#include "common/json.h"

#include <gtest/gtest.h>

#include <random>

namespace cepheus {
namespace {

TEST(Json, InvalidUtf8BecomesTheReplacementCharacter) {
  struct Case {
    std::string in, out;
  } cases[] = {
      {"plain", "\"plain\""},
      {"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",
       "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\""},
      {"a\xFFz", "\"a\xEF\xBF\xBDz\""},                              // a byte never valid in UTF-8
      {"\xC3", "\"\xEF\xBF\xBD\""},                                  // cut short
      {"\xC0\xAF", "\"\xEF\xBF\xBD\xEF\xBF\xBD\""},                  // overlong '/'
      {"\xED\xA0\x80", "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""},  // a surrogate
      {"\xF4\x90\x80\x80", "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""},  // > U+10FFFF
      {"q\"\\\n\x01", "\"q\\\"\\\\\\n\\u0001\""},
  };
  for (const Case& c : cases) {
    std::string out;
    AppendJsonString(out, c.in);
    EXPECT_EQ(out, c.out);
    EXPECT_TRUE(IsValidUtf8(out));
  }
  size_t bad = 0;
  EXPECT_FALSE(IsValidUtf8("ok\xE2\x82", &bad));
  EXPECT_EQ(bad, 2u);
}

TEST(Json, RandomBytesAlwaysGiveValidUtf8) {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 20000; ++i) {
    std::string in(rng() % 12, '\0');
    for (char& c : in) c = static_cast<char>(rng());
    std::string out;
    AppendJsonString(out, in);
    ASSERT_TRUE(IsValidUtf8(out));
    if (IsValidUtf8(in) && in.find_first_of(std::string("\"\\\0", 3)) == std::string::npos) {
      bool control = false;
      for (unsigned char c : in) control |= c < 0x20;
      if (!control) {
        ASSERT_EQ(out, "\"" + in + "\"") << "valid text is copied as it is";
      }
    }
  }
}

TEST(Json, Base64) {
  for (auto [in, out] : {std::pair<std::string, std::string>{"", ""},
                         {"f", "Zg=="},
                         {"fo", "Zm8="},
                         {"foo", "Zm9v"},
                         {"foob", "Zm9vYg=="},
                         {std::string("\xFF\x00\x10", 3), "/wAQ"}}) {
    std::string b;
    AppendBase64(b, in);
    EXPECT_EQ(b, out);
  }
}

}  // namespace
}  // namespace cepheus
