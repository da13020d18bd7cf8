// The pattern compiler's internals, shared by its passes (not a public
// header: patterns/compiled.h is the API). One Compiler object carries a
// pattern through four passes, each in its own file:
//   check.cc         names, structure and stage order (what may precede what)
//   nfa_build.cc     the position automaton (Glushkov fragments, copies for counts)
//   expr_compile.cc  typing and code generation of DEFINE / UNTIL / EMIT, aggregates
//   compile.cc       Run(): the passes in order, and the public entry points
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "patterns/compiled.h"
#include "patterns/limits.h"
#include "patterns/parser.h"

namespace cepheus::patterns::compiler {

using VT = Value::Type;

VT TypeOfField(FieldType t);
const char* TypeName(VT t);
// The type of a value that is either an `a` or a `b` (CASE branches,
// COALESCE arguments): null goes with anything, int with double.
bool Unify(VT a, VT b, VT* out);

// ---- Glushkov fragments -----------------------------------------------------
struct Entry {
  int item;
  bool inherit;  // the contiguity is the one written before the enclosing element
  Contiguity op;
  std::vector<Guard> guards;
  uint64_t cont = 0, byp = 0;
  int until = -1;
  bool until_kills = false;
};
struct Exit {
  int item;
  std::vector<Guard> guards;
  uint64_t byp = 0;
  // A positive optional element was skipped after the last negation on the
  // way out. At the end of the pattern such a path completes at once, as
  // Flink's proceed to the final state does: the negation only guards the
  // stage that may still follow (`a -> !x -> c?` emits `a` when `a` arrives).
  bool open_tail = false;
  bool operator==(const Exit&) const = default;
};
struct NullPath {
  std::vector<Guard> guards;
  uint64_t byp = 0;
  bool operator==(const NullPath&) const = default;
};
struct Frag {
  std::vector<Entry> first;
  std::vector<Exit> last;
  std::vector<NullPath> nulls;  // empty: not nullable
};

template <typename T>
void AppendUnique(std::vector<T>& v, T x) {
  if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(std::move(x));
}
inline std::vector<Guard> Concat(const std::vector<Guard>& a, const std::vector<Guard>& b) {
  std::vector<Guard> r = a;
  for (const auto& g : b) AppendUnique(r, g);
  return r;
}

class Compiler {
 public:
  Compiler(const PatternAst& ast, const SourceFile& file, const StreamCatalog& catalog,
           Diagnostics& diags)
      : ast_(ast), file_(file), catalog_(catalog), d_(diags) {}

  std::unique_ptr<CompiledPattern> Run();

 private:
  enum class ScopeKind { kDefine, kEmit, kTimeoutEmit };
  struct Scope {
    ScopeKind kind;
    int var = -1;  // DEFINE/UNTIL: the stage being defined
  };

  void CollectVars(const RegexNode& n);
  void CheckStructure(const RegexNode& n, bool is_root);
  // `loop_guards`: negations written right after this element; as in Flink
  // they also guard the gaps between its iterations (a loop's own edges).
  Frag Build(const RegexNode& n, const std::vector<Guard>& loop_guards = {});
  Frag BuildVar(const RegexNode& n, const std::vector<Guard>& loop_guards);
  Frag BuildGroup(const RegexNode& n, const std::vector<Guard>& loop_guards);
  Frag BuildBody(const RegexNode& n);
  // `between`: guards on the edges from one part to the next (group copies).
  Frag SeqOf(std::vector<Frag> parts, const std::vector<Contiguity>& ops,
             const std::vector<Guard>& between = {});
  static Frag Optional(Frag f) {
    AppendUnique(f.nulls, NullPath{});
    return f;
  }
  void Connect(const std::vector<Exit>& from, const std::vector<Entry>& to, Contiguity op,
               const NullPath& mid);
  int NewState(int var, const std::string& label);
  void ComputePrecedence();

  int CompileExpr(const Expr& e, const Scope& s, VT* type);
  int CompileAgg(const Expr& e, const Scope& s, VT* type);
  int CompileCondition(const Expr& e, int var, std::string text, Condition* out);
  bool IsEventOnly(int node) const;
  int AndNodes(int a, int b);
  void CompileEmit(const std::vector<EmitItem>& items, ScopeKind kind, std::vector<EmitField>* out,
                   bool* events);
  int VarWord(int var, const char* which);
  AggLayout::VarAggs::FieldAgg& FieldAggOf(int var, int field);
  int NewWord() { return out_->aggs.num_words++; }
  std::string Slice(SourceSpan s) const { return file_.text().substr(s.begin, s.end - s.begin); }
  void CheckPrecedes(int ref_var, const Scope& s, SourceSpan span);

  const PatternAst& ast_;
  const SourceFile& file_;
  const StreamCatalog& catalog_;
  Diagnostics& d_;
  std::unique_ptr<CompiledPattern> out_;
  const StreamInfo* stream_ = nullptr;
  std::map<std::string, int> var_index_;
  std::vector<SourceSpan> var_spans_;
  std::vector<int> define_of_var_;
  // may_precede_[v] = stages that can be matched before some occurrence of v.
  std::vector<std::set<int>> may_precede_;
  std::vector<std::set<int>> guard_context_;  // for negated stages
  bool too_many_states_ = false;
  struct PendingUntil {
    int cond;
    const Expr* expr;
    int var;
  };
  std::vector<PendingUntil> pending_until_;
};

}  // namespace cepheus::patterns::compiler
