#include "tests/support/random_pattern.h"

namespace cepheus::testing {
namespace {

int Uniform(std::mt19937_64& rng, int lo, int hi) {
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}
bool Chance(std::mt19937_64& rng, int percent) { return Uniform(rng, 1, 100) <= percent; }

const char* RandomOp(std::mt19937_64& rng) {
  switch (Uniform(rng, 0, 2)) {
    case 0:
      return " ";
    case 1:
      return " -> ";
    default:
      return " ->> ";
  }
}

std::string RandomQuant(std::mt19937_64& rng, bool allow_mode, bool* has_until) {
  if (Chance(rng, 45)) return "";
  static const char* kBase[] = {"?", "+", "*", "{2}", "{1,2}", "{2,}", "{0,2}"};
  std::string q = kBase[Uniform(rng, 0, 6)];
  if (allow_mode) {
    int m = Uniform(rng, 0, 3);
    if (m == 1) q += "+";
    if (m == 2) q += "?";
  }
  int inner = Uniform(rng, 0, 3);
  if (inner == 1) q += " CONSECUTIVE";
  if (inner == 2) q += " COMBINATIONS";
  bool loops = q[0] == '+' || q[0] == '*' || q.rfind("{2,}", 0) == 0 || q.rfind("{1,2}", 0) == 0 ||
               q.rfind("{0,2}", 0) == 0 || q.rfind("{2}", 0) == 0;
  if (allow_mode && loops && Chance(rng, 12)) {
    q += " UNTIL (v >= " + std::to_string(Uniform(rng, 3, 5)) + ")";
    *has_until = true;
  }
  return q;
}

std::string RandomCondition(std::mt19937_64& rng, const std::string& var, bool first) {
  std::string t = std::string(1, static_cast<char>('A' + Uniform(rng, 0, 3)));
  std::string t2 = std::string(1, static_cast<char>('A' + Uniform(rng, 0, 3)));
  switch (Uniform(rng, 0, first ? 3 : 8)) {
    case 0:
      return "type = '" + t + "'";
    case 1:
      return "type IN ('" + t + "', '" + t2 + "')";
    case 2:
      return "v > " + std::to_string(Uniform(rng, 0, 3));
    case 3:
      return "type <> '" + t + "' AND v <= " + std::to_string(Uniform(rng, 1, 4));
    case 4:
      return "type = '" + t + "' AND v >= a.v";
    case 5:
      return "COUNT(" + var + ") <= 2";
    case 6:
      return "v >= AVG(" + var + ".v)";
    case 7:
      return "v > FIRST(a.v) OR type = '" + t + "'";
    default:
      return "v <> PREV(" + var + ".v)";
  }
}

}  // namespace

patterns::StreamCatalog RandomCatalog() {
  patterns::StreamCatalog c;
  c["s"] = patterns::StreamInfo{
      Schema::Create(
          {{"type", FieldType::kString}, {"v", FieldType::kInt}, {"ts", FieldType::kTimestamp}})
          .value(),
      {}};
  return c;
}

RowPtr MakeEvent(const patterns::StreamCatalog& catalog, const std::string& type, int64_t v,
                 int64_t ts, uint64_t seq) {
  RowBuilder b(catalog.at("s").schema.size());
  b.Reset();
  b.SetString(0, type);
  b.SetInt(1, v);
  b.SetInt(2, ts);
  return b.Build(EventTime::FromMillis(ts), seq);
}

RandomCase MakeRandomCase(std::mt19937_64& rng, const patterns::StreamCatalog& catalog,
                          int max_events) {
  RandomCase rc;
  // MATCH: a first, then 0-3 more elements.
  std::vector<std::string> used{"a"};
  bool has_until = false;
  auto feature = [&](const char* f) {
    if (std::find(rc.features.begin(), rc.features.end(), f) == rc.features.end())
      rc.features.push_back(f);
  };
  auto note_quant = [&](const std::string& q) {
    if (q.size() > 1 && (q[0] == '+' || q[0] == '*') && q[1] == '+') feature("greedy loop");
    if (q.rfind("{2}", 0) != 0 && q.find("}+") != std::string::npos) feature("greedy loop");
  };
  auto loops = [](const std::string& q) { return !q.empty() && q[0] != '?'; };
  std::string q0 = RandomQuant(rng, true, &has_until);
  note_quant(q0);
  std::string match = "a" + q0;
  // What the element just written is: a looping stage, a repeated group.
  bool prev_loop = loops(q0), prev_group = false;
  int more = Uniform(rng, 0, 3);
  bool neg_used = false;
  bool within = Chance(rng, 60);
  // A later stage may carry WITHIN GAP when `a` is mandatory (otherwise the
  // stage could start a match, which the compiler refuses).
  const bool a_mandatory = q0.empty() || q0[0] == '+' || (q0[0] == '{' && q0[1] != '0');
  auto gap = [&]() -> std::string {
    if (!a_mandatory || !Chance(rng, 20)) return "";
    feature("stage gap");
    return " WITHIN GAP " + std::to_string(Uniform(rng, 1, 4)) + " MILLISECONDS";
  };
  for (int i = 0; i < more; ++i) {
    const char* op = RandomOp(rng);
    int kind = Uniform(rng, 0, 9);
    std::string v1 = std::string(1, static_cast<char>('b' + Uniform(rng, 0, 2)));
    std::string v2 = std::string(1, static_cast<char>('b' + Uniform(rng, 0, 2)));
    if (kind <= 5) {
      std::string q = RandomQuant(rng, true, &has_until);
      note_quant(q);
      match += op + v1 + q + gap();
      used.push_back(v1);
      prev_loop = loops(q);
      prev_group = false;
    } else if (kind == 6 || kind == 7) {
      std::string q = RandomQuant(rng, false, &has_until);
      const char* inner = kind == 6 ? RandomOp(rng) : " | ";
      match += std::string(op) + "(" + v1 + inner + v2 + ")" + q;
      used.push_back(v1);
      used.push_back(v2);
      prev_loop = false;
      prev_group = loops(q);
    } else if (!neg_used) {
      if (prev_loop) feature("negation after loop");
      if (prev_group) feature("negation after group");
      // An absence at the end needs a deadline; otherwise (or by chance) a
      // stage follows, sometimes an optional one.
      const bool last = i == more - 1;
      match += std::string(op) + "!n";
      neg_used = true;
      if (!last || !within || Chance(rng, 50)) {
        static const char* kOptional[] = {"", "", "?", "*", "{,2}", "?+"};
        std::string q = kOptional[Uniform(rng, 0, 5)];
        if (!q.empty() && i == more - 1) feature("optional after negation");
        match += std::string(RandomOp(rng)) + v1 + q;
        used.push_back(v1);
        prev_loop = loops(q);
        prev_group = false;
      }
    } else {
      match += op + v1 + gap();
      used.push_back(v1);
      prev_loop = prev_group = false;
    }
  }
  std::string text = "PATTERN p\nFROM s\nMATCH " + match + "\n";
  if (within) text += "WITHIN " + std::to_string(Uniform(rng, 2, 9)) + " MILLISECONDS\n";
  if (Chance(rng, 20)) text += "MAX GAP " + std::to_string(Uniform(rng, 1, 4)) + " MILLISECONDS\n";
  text += "DEFINE\n  a AS " + RandomCondition(rng, "a", true);
  std::vector<std::string> defined{"a"};
  for (const std::string& v : used) {
    if (std::find(defined.begin(), defined.end(), v) != defined.end()) continue;
    defined.push_back(v);
    if (Chance(rng, 15)) continue;  // undefined stage: condition TRUE
    text += ",\n  " + v + " AS " + RandomCondition(rng, v, false);
  }
  if (neg_used) {
    std::string t = std::string(1, static_cast<char>('A' + Uniform(rng, 0, 3)));
    text += ",\n  n AS type = '" + t + "'";
  }
  text += "\n";
  static const char* kSkip[] = {"NO SKIP", "SKIP TO NEXT EVENT", "SKIP PAST LAST EVENT",
                                "SKIP TO FIRST a", "SKIP TO LAST a"};
  int skip = Chance(rng, 50) ? 0 : Uniform(rng, 1, 4);
  text += std::string("AFTER MATCH ") + kSkip[skip] + "\n";
  text += "EMIT COUNT(*) AS n\n";
  if (skip == 0 && Chance(rng, 50)) text += "ON TIMEOUT EMIT COUNT(*) AS n\n";
  rc.pattern_text = text;
  int n = Uniform(rng, 0, max_events);
  int64_t ts = 0;
  for (int i = 0; i < n; ++i) {
    ts += Uniform(rng, 0, 2);
    std::string type(1, static_cast<char>('A' + Uniform(rng, 0, 3)));
    rc.events.push_back(MakeEvent(catalog, type, Uniform(rng, 0, 5), ts, static_cast<uint64_t>(i)));
  }
  return rc;
}

}  // namespace cepheus::testing
