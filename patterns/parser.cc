// The grammar, written with Boost.Spirit X3. This is the only translation unit
// that includes X3 (it compiles slowly). Every rule is declared with a name
// (used in "expected ..." messages) and defined with BOOST_SPIRIT_DEFINE;
// semantic actions build the public AST directly, so no Fusion adaptation.
#include "patterns/parser.h"

#include "common/json.h"
#include "common/text.h"

#include <algorithm>
#if defined(__clang__)
// X3 grammars mix `>>` (sequence) and `>` (expectation) by design.
#pragma clang diagnostic ignored "-Woverloaded-shift-op-parentheses"
#endif
#include <boost/spirit/home/x3.hpp>
#include <cctype>
#include <charconv>
#include <cstring>
#include <string>
#include <type_traits>

namespace cepheus::patterns {
namespace {

namespace x3 = boost::spirit::x3;
using It = const char*;

// Start of the whole file text: spans are offsets from it. The parser is not
// re-entrant within one thread, which holds: a parse never starts another.
thread_local It g_base = nullptr;

SourceSpan SpanOf(It b, It e) {
  return SourceSpan{static_cast<uint32_t>(b - g_base), static_cast<uint32_t>(e - g_base)};
}
// Span of the input matched by the innermost spanned[] that finished last.
// An action attached right after spanned[p] reads the span of p.
thread_local SourceSpan g_last_span;
template <typename Ctx>
SourceSpan Where(const Ctx&) {
  return g_last_span;
}

// spanned[p]: parses p (attribute passes through) and records its span.
template <typename Subject>
struct Spanned : x3::unary_parser<Subject, Spanned<Subject>> {
  using base_type = x3::unary_parser<Subject, Spanned<Subject>>;
  static bool const is_pass_through_unary = true;
  constexpr Spanned(Subject const& subject) : base_type(subject) {}
  template <typename Iter, typename Ctx, typename RCtx, typename Attr>
  bool parse(Iter& first, Iter const& last, Ctx const& ctx, RCtx& rctx, Attr& attr) const {
    x3::skip_over(first, last, ctx);
    Iter begin = first;
    if (!this->subject.parse(first, last, ctx, rctx, attr)) return false;
    g_last_span = SpanOf(begin, first);
    return true;
  }
};
struct SpannedGen {
  template <typename S>
  constexpr Spanned<typename x3::extension::as_parser<S>::value_type> operator[](S const& s) const {
    return {x3::as_parser(s)};
  }
};
constexpr SpannedGen spanned{};

}  // namespace
}  // namespace cepheus::patterns

namespace boost::spirit::x3 {
// "expected ..." messages name what spanned[] wraps, not the wrapper.
template <typename Subject>
struct get_info<cepheus::patterns::Spanned<Subject>> {
  using result_type = std::string;
  std::string operator()(cepheus::patterns::Spanned<Subject> const& p) const {
    return what(p.subject);
  }
};
}  // namespace boost::spirit::x3

namespace cepheus::patterns {
namespace {

bool IsIdentChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// A case-insensitive keyword that does not run into an identifier character.
struct Keyword : x3::parser<Keyword> {
  using attribute_type = x3::unused_type;
  static bool const has_attribute = false;
  const char* word;  // lower case
  constexpr explicit Keyword(const char* w) : word(w) {}
  template <typename Iter, typename Ctx, typename RCtx, typename Attr>
  bool parse(Iter& first, Iter const& last, Ctx const& ctx, RCtx&, Attr&) const {
    x3::skip_over(first, last, ctx);
    Iter it = first;
    for (const char* w = word; *w; ++w, ++it)
      if (it == last || std::tolower(static_cast<unsigned char>(*it)) != *w) return false;
    if (it != last && IsIdentChar(*it)) return false;
    first = it;
    return true;
  }
};
constexpr Keyword kw(const char* w) { return Keyword(w); }

}  // namespace
}  // namespace cepheus::patterns

namespace boost::spirit::x3 {
template <>
struct get_info<cepheus::patterns::Keyword> {
  using result_type = std::string;
  std::string operator()(cepheus::patterns::Keyword const& k) const {
    std::string s = k.word;
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
  }
};
}  // namespace boost::spirit::x3

namespace cepheus::patterns {
namespace {

// Words that can never be identifiers (they would make expressions ambiguous).
bool IsReserved(std::string_view w) {
  static const char* kWords[] = {"and", "or",   "not",   "in",   "matches",
                                 "as",  "true", "false", "null", "is"};
  std::string lower(w);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* k : kWords)
    if (lower == k) return true;
  return false;
}
// Clause keywords, which may also not name a stage in MATCH (they end it).
bool IsClauseWord(std::string_view w) {
  static const char* kWords[] = {"pattern",      "from", "partition", "by",     "match",
                                 "within",       "max",  "gap",       "define", "after",
                                 "emit",         "on",   "timeout",   "until",  "consecutive",
                                 "combinations", "skip"};
  std::string lower(w);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* k : kWords)
    if (lower == k) return true;
  return false;
}

// ---- rule declarations ----------------------------------------------------
x3::rule<class ident_r, std::string> const ident = "identifier";
x3::rule<class var_name_r, std::string> const var_name = "a stage name";
x3::rule<class string_lit_r, std::string> const string_lit = "a 'quoted string'";
x3::rule<class duration_r, int64_t> const duration = "a duration (e.g. 10 MINUTES)";
x3::rule<class expr_r, Expr> const expr = "expression";
x3::rule<class or_r, Expr> const or_expr = "expression";
x3::rule<class and_r, Expr> const and_expr = "expression";
x3::rule<class not_r, Expr> const not_expr = "expression";
x3::rule<class cmp_r, Expr> const cmp_expr = "expression";
x3::rule<class add_r, Expr> const add_expr = "expression";
x3::rule<class mul_r, Expr> const mul_expr = "expression";
x3::rule<class unary_r, Expr> const unary_expr = "expression";
x3::rule<class primary_r, Expr> const primary = "a value, field or function call";
x3::rule<class number_r, Expr> const number = "number";
x3::rule<class call_r, Expr> const call = "function call";
x3::rule<class ref_r, Expr> const ref = "field reference";
x3::rule<class in_list_r, std::vector<Expr>> const in_list = "a list of values";
x3::rule<class stage_gap_r, StageGap> const stage_gap = "WITHIN GAP duration";
x3::rule<class when_r, Expr> const when_clause = "WHEN condition THEN value";
x3::rule<class case_r, Expr> const case_expr = "CASE WHEN ... THEN ... END";
x3::rule<class alt_r, RegexNode> const alt = "a pattern of stages";
x3::rule<class seq_r, RegexNode> const seq = "a sequence of stages";
x3::rule<class elem_r, RegexNode> const elem = "a stage, a (group) or a !negation";
x3::rule<class atom_r, RegexNode> const atom = "a stage or a (group)";
x3::rule<class quant_r, Quantifier> const quant = "quantifier";
x3::rule<class quant_body_r, Quantifier> const quant_body = "quantifier";
x3::rule<class define_r, Define> const define_item = "a definition 'name AS condition'";
x3::rule<class emit_r, EmitItem> const emit_item = "an EMIT item (expression [AS name] or EVENTS)";
x3::rule<class emits_r, std::vector<EmitItem>> const emit_list = "EMIT items";
x3::rule<class skip_r, SkipStrategy> const skip =
    "a skip strategy (NO SKIP, SKIP TO NEXT EVENT, "
    "SKIP PAST LAST EVENT, SKIP TO FIRST x, "
    "SKIP TO LAST x)";
x3::rule<class pattern_r, PatternAst> const pattern = "PATTERN";
x3::rule<class clause_end_r> const clause_end =
    "a clause (FROM, PARTITION BY, MATCH, WITHIN, MAX GAP, DEFINE, AFTER MATCH, EMIT, "
    "ON TIMEOUT EMIT) or the end of the pattern";

// ---- actions -----------------------------------------------------------------
auto const assign = [](auto& ctx) { x3::_val(ctx) = std::move(x3::_attr(ctx)); };

Expr MakeBinary(std::string op, Expr lhs, Expr rhs) {
  Expr e;
  e.kind = Expr::Kind::kBinary;
  e.op = std::move(op);
  e.span = SourceSpan{lhs.span.begin, rhs.span.end};
  e.args.push_back(std::move(lhs));
  e.args.push_back(std::move(rhs));
  return e;
}

template <const char* Op>
struct FoldOp {
  template <typename Ctx>
  void operator()(Ctx& ctx) const {
    x3::_val(ctx) = MakeBinary(Op, std::move(x3::_val(ctx)), std::move(x3::_attr(ctx)));
  }
};
// SQL LIKE to an anchored RE2 pattern: % is any run of characters, _ one
// character, a backslash makes the next character literal.
std::string LikeToRegex(const std::string& like, bool ignore_case) {
  std::string re = ignore_case ? "(?is)^" : "(?s)^";
  for (size_t i = 0; i < like.size(); ++i) {
    char c = like[i];
    if (c == '\\' && i + 1 < like.size()) {
      c = like[++i];
    } else if (c == '%') {
      re += ".*";
      continue;
    } else if (c == '_') {
      re += ".";
      continue;
    }
    if (!std::isalnum(static_cast<unsigned char>(c)) && static_cast<unsigned char>(c) < 0x80)
      re += '\\';
    re += c;
  }
  return re + "$";
}

constexpr char kOr[] = "OR";
constexpr char kAnd[] = "AND";

auto const fold_sym = [](auto& ctx) {
  auto& a = x3::_attr(ctx);
  x3::_val(ctx) = MakeBinary(boost::fusion::at_c<0>(a), std::move(x3::_val(ctx)),
                             std::move(boost::fusion::at_c<1>(a)));
};

struct ArithOps : x3::symbols<std::string> {
  ArithOps(std::initializer_list<const char*> ops) {
    for (const char* o : ops) add(o, o);
  }
};
ArithOps const add_ops{"+", "-", "||"};
ArithOps const mul_ops{"*", "/", "%"};
struct CmpOps : x3::symbols<std::string> {
  CmpOps() {
    add("=", "=")("==", "=")("<>", "<>")("!=", "<>")("<", "<")("<=", "<=")(">", ">")(">=", ">=");
  }
} const cmp_ops;

// A duration unit (case-insensitive), not running into an identifier. Written
// by hand rather than with x3::no_case, whose case folding is undefined for
// bytes >= 0x80.
struct UnitParser : x3::parser<UnitParser> {
  using attribute_type = int64_t;
  static bool const has_attribute = true;
  template <typename Iter, typename Ctx, typename RCtx, typename Attr>
  bool parse(Iter& first, Iter const& last, Ctx const&, RCtx&, Attr& attr) const {
    static const std::pair<const char*, int64_t> kUnits[] = {
        {"ms", 1},         {"millisecond", 1}, {"milliseconds", 1}, {"s", 1000},
        {"sec", 1000},     {"second", 1000},   {"seconds", 1000},   {"m", 60000},
        {"min", 60000},    {"minute", 60000},  {"minutes", 60000},  {"h", 3600000},
        {"hour", 3600000}, {"hours", 3600000}, {"d", 86400000},     {"day", 86400000},
        {"days", 86400000}};
    Iter it = first;
    std::string word;
    while (it != last && IsIdentChar(*it) && word.size() < 16)
      word.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(*it++))));
    if (it != last && IsIdentChar(*it)) return false;
    for (const auto& [name, ms] : kUnits)
      if (word == name) {
        x3::traits::move_to(ms, attr);
        first = it;
        return true;
      }
    return false;
  }
};
UnitParser const units;

// Character classes as explicit ASCII sets: X3's classifiers (alpha, space,
// ...) are undefined for bytes >= 0x80, which UTF-8 text is full of.
auto const ascii_alpha = x3::char_("a-zA-Z");
auto const ascii_alnum = x3::char_("a-zA-Z0-9");
auto const ascii_digit = x3::char_("0-9");
auto const white_space = x3::char_(" \t\r\n\f\v");

// ---- lexical -------------------------------------------------------------------
auto const ident_def =
    x3::lexeme[x3::raw[(ascii_alpha | x3::char_('_')) >> *(ascii_alnum | x3::char_('_'))]]
              [([](auto& ctx) {
                auto r = x3::_attr(ctx);
                std::string s(r.begin(), r.end());
                if (IsReserved(s)) {
                  x3::_pass(ctx) = false;
                  return;
                }
                x3::_val(ctx) = std::move(s);
              })];
auto const var_name_def = ident[([](auto& ctx) {
  if (IsClauseWord(x3::_attr(ctx))) {
    x3::_pass(ctx) = false;
    return;
  }
  x3::_val(ctx) = std::move(x3::_attr(ctx));
})];
auto const string_lit_def =
    x3::lexeme['\'' > *((x3::lit("''") >> x3::attr('\'')) | (x3::char_ - '\'')) > '\''];
auto const duration_def =
    (x3::lexeme[x3::uint_ >> x3::omit[*white_space] >> units])[([](auto& ctx) {
      auto& a = x3::_attr(ctx);
      x3::_val(ctx) = static_cast<int64_t>(boost::fusion::at_c<0>(a)) * boost::fusion::at_c<1>(a);
    })];

// ---- expressions ----------------------------------------------------------------
auto const expr_def = or_expr;
auto const or_expr_def = and_expr[assign] >> *((kw("or") > and_expr)[FoldOp<kOr>()]);
auto const and_expr_def = not_expr[assign] >> *((kw("and") > not_expr)[FoldOp<kAnd>()]);
auto const not_expr_def = spanned[kw("not") > not_expr][([](auto& ctx) {
                            Expr e;
                            e.kind = Expr::Kind::kUnary;
                            e.op = "NOT";
                            e.span = Where(ctx);
                            e.args.push_back(std::move(x3::_attr(ctx)));
                            x3::_val(ctx) = std::move(e);
                          })] |
                          cmp_expr[assign];

auto const make_in = [](bool negated) {
  return [negated](auto& ctx) {
    Expr e;
    e.kind = Expr::Kind::kIn;
    e.negated = negated;
    e.span = SourceSpan{x3::_val(ctx).span.begin, Where(ctx).end};
    e.args.push_back(std::move(x3::_val(ctx)));
    for (auto& v : x3::_attr(ctx)) e.args.push_back(std::move(v));
    x3::_val(ctx) = std::move(e);
  };
};
auto const make_matches = [](bool negated) {
  return [negated](auto& ctx) {
    Expr e;
    e.kind = Expr::Kind::kMatches;
    e.negated = negated;
    e.text = std::move(x3::_attr(ctx));
    e.span = SourceSpan{x3::_val(ctx).span.begin, Where(ctx).end};
    e.args.push_back(std::move(x3::_val(ctx)));
    x3::_val(ctx) = std::move(e);
  };
};
auto const make_is_null = [](bool negated) {
  return [negated](auto& ctx) {
    Expr e;
    e.kind = Expr::Kind::kIsNull;
    e.negated = negated;
    e.span = SourceSpan{x3::_val(ctx).span.begin, Where(ctx).end};
    e.args.push_back(std::move(x3::_val(ctx)));
    x3::_val(ctx) = std::move(e);
  };
};
// x BETWEEN lo AND hi is x >= lo AND x <= hi (x is evaluated twice; expressions
// have no side effects).
auto const make_between = [](bool negated) {
  return [negated](auto& ctx) {
    auto& a = x3::_attr(ctx);
    Expr x = std::move(x3::_val(ctx));
    const SourceSpan span{x.span.begin, Where(ctx).end};
    Expr lo = MakeBinary(">=", x, std::move(boost::fusion::at_c<0>(a)));
    Expr hi = MakeBinary("<=", std::move(x), std::move(boost::fusion::at_c<1>(a)));
    Expr both = MakeBinary("AND", std::move(lo), std::move(hi));
    both.span = span;
    if (negated) {
      Expr n;
      n.kind = Expr::Kind::kUnary;
      n.op = "NOT";
      n.span = span;
      n.args.push_back(std::move(both));
      both = std::move(n);
    }
    x3::_val(ctx) = std::move(both);
  };
};
auto const make_like = [](bool negated, bool ignore_case) {
  return [negated, ignore_case](auto& ctx) {
    Expr e;
    e.kind = Expr::Kind::kMatches;
    e.op = ignore_case ? "ILIKE" : "LIKE";
    e.negated = negated;
    e.text = LikeToRegex(x3::_attr(ctx), ignore_case);
    e.span = SourceSpan{x3::_val(ctx).span.begin, Where(ctx).end};
    e.args.push_back(std::move(x3::_val(ctx)));
    x3::_val(ctx) = std::move(e);
  };
};
auto const in_list_def = x3::lit('(') > (expr % ',') > ')';
auto const when_clause_def = spanned[kw("when") > expr > kw("then") > expr][([](auto& ctx) {
  auto& a = x3::_attr(ctx);
  Expr w;
  w.kind = Expr::Kind::kCase;
  w.span = Where(ctx);
  w.args.push_back(std::move(boost::fusion::at_c<0>(a)));
  w.args.push_back(std::move(boost::fusion::at_c<1>(a)));
  x3::_val(ctx) = std::move(w);
})];
// Builds a CASE node from its WHEN clauses; with a subject (simple CASE) each
// WHEN v becomes WHEN subject = v.
template <typename Otherwise>
Expr MakeCase(const Expr* subject, std::vector<Expr>& whens, Otherwise& otherwise,
              SourceSpan span) {
  Expr e;
  e.kind = Expr::Kind::kCase;
  e.span = span;
  for (Expr& w : whens) {
    e.args.push_back(subject ? MakeBinary("=", *subject, std::move(w.args[0]))
                             : std::move(w.args[0]));
    e.args.push_back(std::move(w.args[1]));
  }
  e.int_value = static_cast<int64_t>(whens.size());
  if (otherwise) e.args.push_back(std::move(*otherwise));
  return e;
}
auto const make_searched_case = [](auto& ctx) {
  auto& a = x3::_attr(ctx);
  x3::_val(ctx) =
      MakeCase(nullptr, boost::fusion::at_c<0>(a), boost::fusion::at_c<1>(a), Where(ctx));
};
auto const make_simple_case = [](auto& ctx) {
  auto& a = x3::_attr(ctx);
  x3::_val(ctx) = MakeCase(&boost::fusion::at_c<0>(a), boost::fusion::at_c<1>(a),
                           boost::fusion::at_c<2>(a), Where(ctx));
};
// CASE is not a reserved word: `case` may still name a field.
auto const case_expr_def =
    spanned[kw("case") >> &kw("when") > +when_clause > -(kw("else") > expr) > kw("end")]
           [make_searched_case] |
    spanned[kw("case") >> expr >> &kw("when") > +when_clause > -(kw("else") > expr) > kw("end")]
           [make_simple_case];
auto const cmp_expr_def =
    add_expr[assign] >>
    -((cmp_ops > add_expr)[fold_sym] | spanned[kw("in") > in_list][make_in(false)] |
      spanned[kw("matches") > string_lit][make_matches(false)] |
      spanned[kw("not") >> kw("in") > in_list][make_in(true)] |
      spanned[kw("not") >> kw("matches") > string_lit][make_matches(true)] |
      spanned[kw("is") >> kw("not") > kw("null")][make_is_null(true)] |
      spanned[kw("is") > kw("null")][make_is_null(false)] |
      spanned[kw("between") > add_expr > kw("and") > add_expr][make_between(false)] |
      spanned[kw("not") >> kw("between") > add_expr > kw("and") > add_expr][make_between(true)] |
      spanned[kw("like") > string_lit][make_like(false, false)] |
      spanned[kw("ilike") > string_lit][make_like(false, true)] |
      spanned[kw("not") >> kw("like") > string_lit][make_like(true, false)] |
      spanned[kw("not") >> kw("ilike") > string_lit][make_like(true, true)]);
auto const add_expr_def = mul_expr[assign] >> *((add_ops >> !x3::lit('>') > mul_expr)[fold_sym]);
auto const mul_expr_def = unary_expr[assign] >> *((mul_ops > unary_expr)[fold_sym]);
auto const unary_expr_def = spanned[x3::lit('-') >> !x3::lit('>') > unary_expr][([](auto& ctx) {
                              Expr e;
                              e.kind = Expr::Kind::kUnary;
                              e.op = "-";
                              e.span = Where(ctx);
                              e.args.push_back(std::move(x3::_attr(ctx)));
                              x3::_val(ctx) = std::move(e);
                            })] |
                            primary[assign];

auto const number_def =
    spanned[x3::raw[x3::lexeme[+ascii_digit >> -('.' >> +ascii_digit)]]][([](auto& ctx) {
      auto r = x3::_attr(ctx);
      std::string s(r.begin(), r.end());
      Expr e;
      e.span = Where(ctx);
      if (s.find('.') != std::string::npos) {
        e.kind = Expr::Kind::kDoubleLit;
        e.double_value = std::stod(s);
      } else {
        e.kind = Expr::Kind::kIntLit;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), e.int_value);
        if (ec != std::errc()) {
          e.kind = Expr::Kind::kDoubleLit;
          e.double_value = std::stod(s);
        }
      }
      x3::_val(ctx) = std::move(e);
    })];

auto const make_call = [](bool star) {
  return [star](auto& ctx) {
    Expr e;
    e.kind = Expr::Kind::kCall;
    e.star = star;
    if constexpr (std::is_same_v<std::decay_t<decltype(x3::_attr(ctx))>, std::string>) {
      e.op = x3::_attr(ctx);
    } else {
      auto& a = x3::_attr(ctx);
      e.op = boost::fusion::at_c<0>(a);
      if (auto& args = boost::fusion::at_c<1>(a)) e.args = std::move(*args);
    }
    for (char& c : e.op) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    e.span = Where(ctx);
    x3::_val(ctx) = std::move(e);
  };
};
auto const call_def = spanned[ident >> '(' >> '*' > ')'][make_call(true)] |
                      spanned[ident >> '(' >> -(expr % ',') > ')'][make_call(false)];

auto const ref_def = spanned[ident >> -('.' >> ident)][([](auto& ctx) {
  auto& a = x3::_attr(ctx);
  Expr e;
  e.kind = Expr::Kind::kRef;
  if (auto& second = boost::fusion::at_c<1>(a)) {
    e.qualifier = boost::fusion::at_c<0>(a);
    e.name = *second;
  } else {
    e.name = boost::fusion::at_c<0>(a);
  }
  e.span = Where(ctx);
  x3::_val(ctx) = std::move(e);
})];

auto const literal_action = [](Expr::Kind kind, int64_t v) {
  return [kind, v](auto& ctx) {
    Expr e;
    e.kind = kind;
    e.int_value = v;
    e.span = Where(ctx);
    x3::_val(ctx) = std::move(e);
  };
};

auto const primary_def = (x3::lit('(') > expr > ')')[assign] | spanned[duration][([](auto& ctx) {
                           Expr e;
                           e.kind = Expr::Kind::kDurationLit;
                           e.int_value = x3::_attr(ctx);
                           e.span = Where(ctx);
                           x3::_val(ctx) = std::move(e);
                         })] |
                         number[assign] | spanned[string_lit][([](auto& ctx) {
                           Expr e;
                           e.kind = Expr::Kind::kStringLit;
                           e.text = std::move(x3::_attr(ctx));
                           e.span = Where(ctx);
                           x3::_val(ctx) = std::move(e);
                         })] |
                         spanned[kw("true")][literal_action(Expr::Kind::kBoolLit, 1)] |
                         spanned[kw("false")][literal_action(Expr::Kind::kBoolLit, 0)] |
                         spanned[kw("null")][literal_action(Expr::Kind::kNullLit, 0)] |
                         case_expr[assign] | call[assign] | ref[assign];

// ---- MATCH regex -----------------------------------------------------------------
auto const alt_def = seq[assign] >> *((x3::lit('|') > seq)[([](auto& ctx) {
                       RegexNode& v = x3::_val(ctx);
                       if (v.kind != RegexNode::Kind::kAlt || v.quant.present) {
                         RegexNode a;
                         a.kind = RegexNode::Kind::kAlt;
                         a.span = v.span;
                         a.children.push_back(std::move(v));
                         v = std::move(a);
                       }
                       v.span.end = x3::_attr(ctx).span.end;
                       v.children.push_back(std::move(x3::_attr(ctx)));
                     })]);

auto const seq_push = [](Contiguity op) {
  return [op](auto& ctx) {
    RegexNode& v = x3::_val(ctx);
    v.ops.push_back(op);
    v.span.end = x3::_attr(ctx).span.end;
    v.children.push_back(std::move(x3::_attr(ctx)));
  };
};
auto const seq_def = elem[([](auto& ctx) {
                       RegexNode s;
                       s.kind = RegexNode::Kind::kSeq;
                       s.span = x3::_attr(ctx).span;
                       s.ops.push_back(Contiguity::kStrict);
                       s.children.push_back(std::move(x3::_attr(ctx)));
                       x3::_val(ctx) = std::move(s);
                     })] >>
                     *((x3::lit("->>") > elem)[seq_push(Contiguity::kAny)] |
                       (x3::lit("->") > elem)[seq_push(Contiguity::kRelaxed)] |
                       elem[seq_push(Contiguity::kStrict)]);

auto const elem_def = spanned[x3::lit('!') > var_name][([](auto& ctx) {
                        RegexNode n;
                        n.kind = RegexNode::Kind::kNeg;
                        n.name = std::move(x3::_attr(ctx));
                        n.span = Where(ctx);
                        x3::_val(ctx) = std::move(n);
                      })] |
                      (atom >> -quant >> -stage_gap)[([](auto& ctx) {
                        auto& a = x3::_attr(ctx);
                        RegexNode n = std::move(boost::fusion::at_c<0>(a));
                        auto& gap = boost::fusion::at_c<2>(a);
                        if (auto& q = boost::fusion::at_c<1>(a)) {
                          if (n.quant.present) {
                            // A quantified group that is quantified again: wrap it.
                            RegexNode wrap;
                            wrap.kind = RegexNode::Kind::kSeq;
                            wrap.span = n.span;
                            wrap.ops.push_back(Contiguity::kStrict);
                            wrap.children.push_back(std::move(n));
                            n = std::move(wrap);
                          }
                          n.quant = std::move(*q);
                          n.quant.present = true;
                          n.span.end = n.quant.span.end;
                        }
                        if (gap) {
                          n.gap_ms = gap->ms;
                          n.gap_span = gap->span;
                        }
                        x3::_val(ctx) = std::move(n);
                      })];

auto const stage_gap_def = spanned[kw("within") >> kw("gap") > duration][([](auto& ctx) {
  x3::_val(ctx).ms = x3::_attr(ctx);
  x3::_val(ctx).span = Where(ctx);
})];

auto const atom_def = spanned[var_name][([](auto& ctx) {
                        RegexNode n;
                        n.kind = RegexNode::Kind::kVar;
                        n.name = std::move(x3::_attr(ctx));
                        n.span = Where(ctx);
                        x3::_val(ctx) = std::move(n);
                      })] |
                      spanned[x3::lit('(') > alt > ')'][([](auto& ctx) {
                        RegexNode n = std::move(x3::_attr(ctx));
                        // Parentheses make a group: a sequence node even for a single element, so
                        // that a quantifier applies to the whole group.
                        if (n.kind != RegexNode::Kind::kSeq && n.kind != RegexNode::Kind::kAlt) {
                          RegexNode s;
                          s.kind = RegexNode::Kind::kSeq;
                          s.ops.push_back(Contiguity::kStrict);
                          s.children.push_back(std::move(n));
                          n = std::move(s);
                        }
                        n.span = Where(ctx);
                        x3::_val(ctx) = std::move(n);
                      })];

auto const set_bounds = [](int lo, int hi) {
  return [lo, hi](auto& ctx) {
    x3::_val(ctx).min = lo;
    x3::_val(ctx).max = hi;
  };
};
auto const quant_body_def =
    (x3::lit('?')[set_bounds(0, 1)] | x3::lit('*')[set_bounds(0, Quantifier::kUnbounded)] |
     x3::lit('+')[set_bounds(1, Quantifier::kUnbounded)] |
     (x3::lit('{') > ((x3::int_ >> ',' >> x3::int_)[([](auto& ctx) {
                        auto& a = x3::_attr(ctx);
                        x3::_val(ctx).min = boost::fusion::at_c<0>(a);
                        x3::_val(ctx).max = boost::fusion::at_c<1>(a);
                      })] |
                      (x3::int_ >> ',')[([](auto& ctx) {
                        x3::_val(ctx).min = x3::_attr(ctx);
                        x3::_val(ctx).max = Quantifier::kUnbounded;
                      })] |
                      x3::int_[([](auto& ctx) {
                        x3::_val(ctx).min = x3::_attr(ctx);
                        x3::_val(ctx).max = x3::_attr(ctx);
                      })] |
                      (x3::lit(',') > x3::int_)[([](auto& ctx) {
                        x3::_val(ctx).min = 0;
                        x3::_val(ctx).max = x3::_attr(ctx);
                      })]) > '}')) >>
    -(x3::lit('?')[([](auto& ctx) { x3::_val(ctx).mode = Quantifier::Mode::kReluctant; })] |
      x3::lit('+')[([](auto& ctx) { x3::_val(ctx).mode = Quantifier::Mode::kGreedy; })]) >>
    -(kw("consecutive")[([](auto& ctx) {
        x3::_val(ctx).inner = Contiguity::kStrict;
        x3::_val(ctx).inner_explicit = true;
      })] |
      kw("combinations")[([](auto& ctx) {
        x3::_val(ctx).inner = Contiguity::kAny;
        x3::_val(ctx).inner_explicit = true;
      })]) >>
    -(kw("until") > '(' > expr >
      ')')[([](auto& ctx) { x3::_val(ctx).until = std::move(x3::_attr(ctx)); })];

auto const quant_def = spanned[quant_body][([](auto& ctx) {
  x3::_val(ctx) = std::move(x3::_attr(ctx));
  x3::_val(ctx).span = Where(ctx);
})];

// ---- clauses ------------------------------------------------------------------------
auto const define_item_def = spanned[var_name > kw("as") > expr][([](auto& ctx) {
  auto& a = x3::_attr(ctx);
  Define d;
  d.name = std::move(boost::fusion::at_c<0>(a));
  d.condition = std::move(boost::fusion::at_c<1>(a));
  d.span = Where(ctx);
  x3::_val(ctx) = std::move(d);
})];

auto const emit_item_def = spanned[kw("events")][([](auto& ctx) {
                             x3::_val(ctx).events = true;
                             x3::_val(ctx).span = Where(ctx);
                           })] |
                           spanned[expr >> -(kw("as") > ident)][([](auto& ctx) {
                             auto& a = x3::_attr(ctx);
                             EmitItem item;
                             item.expr = std::move(boost::fusion::at_c<0>(a));
                             if (auto& alias = boost::fusion::at_c<1>(a))
                               item.alias = std::move(*alias);
                             item.span = Where(ctx);
                             x3::_val(ctx) = std::move(item);
                           })];
auto const emit_list_def = emit_item % ',';

auto const set_skip = [](SkipStrategy::Kind k) {
  return [k](auto& ctx) {
    x3::_val(ctx).kind = k;
    x3::_val(ctx).span = Where(ctx);
  };
};
auto const set_skip_strict = [](auto& ctx) { x3::_val(ctx).strict = true; };
auto const set_skip_var = [](SkipStrategy::Kind k) {
  return [k](auto& ctx) {
    x3::_val(ctx).kind = k;
    x3::_val(ctx).var = std::move(x3::_attr(ctx));
    x3::_val(ctx).span = Where(ctx);
  };
};
auto const event_word = kw("event") | kw("row");
auto const skip_def =
    spanned[kw("no") > kw("skip")][set_skip(SkipStrategy::Kind::kNoSkip)] |
    (kw("skip") >
     ((kw("to") > (spanned[kw("next") > event_word][set_skip(SkipStrategy::Kind::kToNext)] |
                   (spanned[kw("first") > var_name][set_skip_var(SkipStrategy::Kind::kToFirst)] >>
                    -kw("strict")[set_skip_strict]) |
                   (spanned[kw("last") > var_name][set_skip_var(SkipStrategy::Kind::kToLast)] >>
                    -kw("strict")[set_skip_strict]))) |
      spanned[kw("past") > kw("last") > event_word][set_skip(SkipStrategy::Kind::kPastLast)]));

auto const pattern_clause =
    (kw("from") > spanned[ident])[([](auto& ctx) {
      x3::_val(ctx).stream = std::move(x3::_attr(ctx));
      x3::_val(ctx).stream_span = Where(ctx);
    })] |
    (kw("partition") > kw("by") > spanned[ident % ','])[([](auto& ctx) {
      x3::_val(ctx).partition_by = std::move(x3::_attr(ctx));
      x3::_val(ctx).partition_spans.push_back(Where(ctx));
    })] |
    (kw("match") > alt)[([](auto& ctx) { x3::_val(ctx).match = std::move(x3::_attr(ctx)); })] |
    (kw("within") >
     duration)[([](auto& ctx) { x3::_val(ctx).within = Duration::Millis(x3::_attr(ctx)); })] |
    (kw("max") > kw("gap") >
     duration)[([](auto& ctx) { x3::_val(ctx).max_gap = Duration::Millis(x3::_attr(ctx)); })] |
    (kw("define") > (define_item % ','))[([](auto& ctx) {
      for (auto& d : x3::_attr(ctx)) x3::_val(ctx).defines.push_back(std::move(d));
    })] |
    (kw("after") > kw("match") >
     skip)[([](auto& ctx) { x3::_val(ctx).skip = std::move(x3::_attr(ctx)); })] |
    (kw("emit") > emit_list)[([](auto& ctx) { x3::_val(ctx).emit = std::move(x3::_attr(ctx)); })] |
    (kw("on") > kw("timeout") > kw("emit") > emit_list)[([](auto& ctx) {
      x3::_val(ctx).has_timeout_emit = true;
      x3::_val(ctx).timeout_emit = std::move(x3::_attr(ctx));
    })];

auto const clause_end_def = x3::eoi;
auto const pattern_def = (kw("pattern") > spanned[ident])[([](auto& ctx) {
                           x3::_val(ctx).name = std::move(x3::_attr(ctx));
                           x3::_val(ctx).name_span = Where(ctx);
                         })] > *pattern_clause > clause_end;

BOOST_SPIRIT_DEFINE(ident, var_name, string_lit, duration, expr, or_expr, and_expr, not_expr,
                    cmp_expr, add_expr, mul_expr, unary_expr, primary, number, call, ref, in_list,
                    when_clause, case_expr, stage_gap, alt, seq, elem, atom, quant, quant_body,
                    define_item, emit_item, emit_list, skip, pattern, clause_end)

// Comments: "--" or "//" to the end of the line.
auto const skipper = white_space | x3::lexeme[(x3::lit("--") | "//") >> *(x3::char_ - x3::eol)];

std::string DescribeFound(It where, It end) {
  if (where == end) return "the end of the pattern";
  It e = where;
  if (static_cast<unsigned char>(*e) >= 0x80) {
    // A non-ASCII character (identifiers are ASCII): show all of it.
    const size_t len =
        Utf8SequenceLength(std::string_view(where, static_cast<size_t>(end - where)));
    e += std::max<size_t>(len, 1);
  } else if (IsIdentChar(*e)) {
    while (e != end && IsIdentChar(*e)) ++e;
  } else {
    ++e;
    while (e != end && (*e == '>' || *e == '=' || *e == '-') && e - where < 3) ++e;
  }
  return "'" + std::string(where, e) + "'";
}

// Words of SQL that the expression language does not have: named where they
// stand rather than reported as "expected a clause".
const char* UnsupportedSqlWord(std::string_view word) {
  std::string up;
  for (char c : word) up.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  if (up == "IS") return "IS must be followed by NULL or NOT NULL";
  if (up == "ESCAPE") return "LIKE ... ESCAPE is not supported; a backslash escapes % and _";
  if (up == "SIMILAR") return "SIMILAR TO is not supported; use MATCHES with an RE2 expression";
  if (up == "WHEN" || up == "THEN" || up == "ELSE" || up == "END")
    return "WHEN, THEN, ELSE and END belong in CASE WHEN cond THEN value [ELSE value] END";
  return nullptr;
}

// A word that is a clause keyword misspelt (WITHN, DEFNE, EMT): the grammar
// reads it as a stage name and fails later, on an innocent token.
const char* MisspeltClause(std::string_view word) {
  static const char* const kClauses[] = {"FROM",   "PARTITION", "MATCH", "WITHIN",
                                         "DEFINE", "AFTER",     "EMIT",  "TIMEOUT"};
  if (word.size() < 3) return nullptr;
  for (const char* kw : kClauses) {
    const size_t d = EditDistanceIgnoringCase(word, kw);
    if (d == 0) return nullptr;  // the keyword itself
    if (d <= (std::string_view(kw).size() >= 6 ? 2u : 1u)) return kw;
  }
  return nullptr;
}

// The identifier at `at` (empty if none).
std::string_view WordAt(It at, It end) {
  It e = at;
  while (e != end && IsIdentChar(*e)) ++e;
  return std::string_view(at, static_cast<size_t>(e - at));
}

// Up-front limits, so that hostile or generated input is refused with a clear
// error before the recursive grammar (and the passes after it) could run out
// of stack or time.
constexpr size_t kMaxBlockBytes = 64 * 1024;
constexpr int kMaxNesting = 100;    // open parentheses plus prefix operators
constexpr int kMaxExprDepth = 256;  // of a parsed expression tree
constexpr int kMaxStages = 256;     // stage occurrences written in MATCH

// Checks a PATTERN block's size and nesting before it is parsed: parentheses
// (in MATCH and in expressions) and runs of prefix operators (NOT, !, unary
// -) and CASE ... END each cost a level of recursion. Strings and comments are skipped.
bool CheckNesting(It b, It e, Diagnostics& diags) {
  if (static_cast<size_t>(e - b) > kMaxBlockBytes) {
    diags.Error(SpanOf(b, b + 7), "this PATTERN block has " + std::to_string(e - b) +
                                      " bytes; at most " + std::to_string(kMaxBlockBytes) +
                                      " are allowed");
    return false;
  }
  int depth = 0, prefix = 0;
  bool after_operand = false;
  for (It p = b; p < e;) {
    const char c = *p;
    if (c == '\'') {  // a string literal ('' inside is a quote)
      for (++p; p < e; ++p)
        if (*p == '\'' && !(p + 1 < e && p[1] == '\'' && ++p)) break;
      ++p;
      after_operand = true;
      prefix = 0;
      continue;
    }
    if ((c == '-' && p + 1 < e && p[1] == '-') || (c == '/' && p + 1 < e && p[1] == '/')) {
      while (p < e && *p != '\n') ++p;
      continue;
    }
    if (IsIdentChar(c)) {
      It w = p;
      while (p < e && IsIdentChar(*p)) ++p;
      const bool is_not = p - w == 3 && std::tolower(static_cast<unsigned char>(w[0])) == 'n' &&
                          std::tolower(static_cast<unsigned char>(w[1])) == 'o' &&
                          std::tolower(static_cast<unsigned char>(w[2])) == 't';
      auto is_word = [&](const char* k) {
        const size_t n = std::strlen(k);
        if (static_cast<size_t>(p - w) != n) return false;
        for (size_t i = 0; i < n; ++i)
          if (std::tolower(static_cast<unsigned char>(w[i])) != k[i]) return false;
        return true;
      };
      if (is_not) {
        ++prefix;
        after_operand = false;
      } else if (is_word("case")) {  // CASE ... END nests like parentheses
        ++depth;
        prefix = 0;
        after_operand = false;
      } else if (is_word("end")) {
        depth = std::max(0, depth - 1);
        prefix = 0;
        after_operand = true;
      } else {
        prefix = 0;
        after_operand = true;
      }
    } else {
      if (c == '(') {
        ++depth;
        after_operand = false;
      } else if (c == ')') {
        depth = std::max(0, depth - 1);
        after_operand = true;
      } else if ((c == '-' || c == '!') && !after_operand) {
        ++prefix;
      } else if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
        after_operand = false;
      }
      ++p;
    }
    if (depth + prefix > kMaxNesting) {
      diags.Error(SpanOf(p - 1, p), "nesting too deep: more than " + std::to_string(kMaxNesting) +
                                        " levels of parentheses and prefix operators");
      return false;
    }
  }
  return true;
}

// The depth of an expression tree, without recursion.
int ExprDepth(const Expr& root) {
  int deepest = 0;
  std::vector<std::pair<const Expr*, int>> stack{{&root, 1}};
  while (!stack.empty()) {
    auto [e, d] = stack.back();
    stack.pop_back();
    deepest = std::max(deepest, d);
    if (deepest > kMaxExprDepth) break;
    for (const Expr& a : e->args) stack.emplace_back(&a, d + 1);
  }
  return deepest;
}

// Refuses parsed patterns whose size would make later passes slow or deep.
void CheckSizes(const PatternAst& ast, Diagnostics& diags) {
  int stages = 0;
  std::vector<const RegexNode*> stack{&ast.match};
  while (!stack.empty()) {
    const RegexNode* n = stack.back();
    stack.pop_back();
    if (n->kind == RegexNode::Kind::kVar || n->kind == RegexNode::Kind::kNeg) ++stages;
    for (const RegexNode& c : n->children) stack.push_back(&c);
  }
  if (stages > kMaxStages)
    diags.Error(ast.match.span, "MATCH names " + std::to_string(stages) + " stages; at most " +
                                    std::to_string(kMaxStages) + " are allowed");
  auto check = [&](const Expr& e) {
    if (ExprDepth(e) > kMaxExprDepth)
      diags.Error(e.span, "expression too deeply nested (more than " +
                              std::to_string(kMaxExprDepth) + " levels of operators)");
  };
  for (const Define& d : ast.defines) check(d.condition);
  for (const auto* items : {&ast.emit, &ast.timeout_emit})
    for (const EmitItem& i : *items) check(i.expr);
}

// Splits the text into PATTERN blocks: each starts at a line whose first word
// is PATTERN. Comment-only and blank lines before the first block are fine.
std::vector<std::pair<uint32_t, uint32_t>> SplitBlocks(const std::string& text,
                                                       Diagnostics& diags) {
  std::vector<uint32_t> starts;
  size_t pos = 0;
  bool reported_junk = false;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    size_t b = pos;
    while (b < eol && (text[b] == ' ' || text[b] == '\t' || text[b] == '\r')) ++b;
    bool is_start = eol - b >= 7 && [&] {
      for (size_t i = 0; i < 7; ++i)
        if (std::tolower(static_cast<unsigned char>(text[b + i])) != "pattern"[i]) return false;
      return true;
    }() && (b + 7 == eol || !IsIdentChar(text[b + 7]));
    if (is_start) {
      starts.push_back(static_cast<uint32_t>(b));
    } else if (starts.empty() && b < eol && !reported_junk &&
               !(text.compare(b, 2, "--") == 0 || text.compare(b, 2, "//") == 0)) {
      diags.Error(SourceSpan{static_cast<uint32_t>(b), static_cast<uint32_t>(eol)},
                  "expected PATTERN to start a pattern definition");
      reported_junk = true;
    }
    pos = eol + 1;
  }
  std::vector<std::pair<uint32_t, uint32_t>> blocks;
  for (size_t i = 0; i < starts.size(); ++i)
    blocks.emplace_back(starts[i],
                        i + 1 < starts.size() ? starts[i + 1] : static_cast<uint32_t>(text.size()));
  return blocks;
}

}  // namespace

std::vector<PatternAst> ParsePatterns(const SourceFile& file, Diagnostics& diags) {
  const std::string& text = file.text();
  g_base = text.data();
  std::vector<PatternAst> out;
  size_t bad_byte = 0;
  if (!IsValidUtf8(text, &bad_byte)) {
    diags.Error(SourceSpan{static_cast<uint32_t>(bad_byte), static_cast<uint32_t>(bad_byte + 1)},
                "the pattern text is not valid UTF-8");
    g_base = nullptr;
    return out;
  }
  auto blocks = SplitBlocks(text, diags);
  if (blocks.empty() && !diags.HasErrors())
    diags.Error(SourceSpan{0, 0}, "expected at least one PATTERN definition");
  for (auto [b, e] : blocks) {
    It first = text.data() + b;
    const It first_of_block = first;
    It last = text.data() + e;
    if (!CheckNesting(first, last, diags)) continue;
    PatternAst ast;
    try {
      bool ok = x3::phrase_parse(first, last, pattern, skipper, ast);
      if (!ok) {
        diags.Error(SpanOf(first, first + 1), "expected PATTERN");
        continue;
      }
      ast.span = SourceSpan{b, e};
      const size_t errors = diags.items().size();
      CheckSizes(ast, diags);
      if (diags.items().size() == errors) out.push_back(std::move(ast));
    } catch (const x3::expectation_failure<It>& f) {
      It where = f.where();
      // Point at the offending token, not at the white space before it.
      while (where != last && std::isspace(static_cast<unsigned char>(*where))) ++where;
      const std::string_view found = WordAt(where, last);
      if (const char* why = UnsupportedSqlWord(found)) {
        diags.Error(SpanOf(where, where + found.size()), why);
        continue;
      }
      // A misspelt clause keyword: the found word, or one of the three words
      // before it (the grammar took them as stage names).
      It w = where;
      bool reported = false;
      const bool at_clause = f.which().starts_with("a clause");
      for (int back = 0; at_clause && back < 4 && !reported; ++back) {
        const std::string_view word = WordAt(w, last);
        if (const char* kw = MisspeltClause(word)) {
          diags.Error(SpanOf(w, w + word.size()),
                      "unknown clause '" + std::string(word) + "' (did you mean " + kw + "?)");
          reported = true;
        }
        // The start of the previous word.
        It p = w;
        while (p != first_of_block && !IsIdentChar(*(p - 1))) {
          if (!std::isspace(static_cast<unsigned char>(*(p - 1))) && *(p - 1) != '>' &&
              *(p - 1) != '-')
            break;
          --p;
        }
        if (p == first_of_block || !IsIdentChar(*(p - 1))) break;
        while (p != first_of_block && IsIdentChar(*(p - 1))) --p;
        w = p;
      }
      if (reported) continue;
      diags.Error(SpanOf(where, where == last ? where : where + 1),
                  "expected " + f.which() + ", found " + DescribeFound(where, last));
    }
  }
  g_base = nullptr;
  return out;
}

}  // namespace cepheus::patterns
