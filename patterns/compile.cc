// Checker and NFA compiler: resolves every name against the stream schema,
// types every expression, and builds the position automaton (docs/architecture.md).
// The passes live in check.cc, nfa_build.cc and expr_compile.cc (compiler.h).
#include <algorithm>
#include <cctype>
#include <set>

#include "common/hash.h"
#include "patterns/compiler.h"
#include "patterns/cost.h"

namespace cepheus::patterns {
namespace compiler {

std::unique_ptr<CompiledPattern> Compiler::Run() {
  out_ = std::make_unique<CompiledPattern>();
  out_->name = ast_.name;
  out_->stream = ast_.stream;
  out_->source_text = Slice(ast_.span);
  {
    std::string norm;
    for (char c : out_->source_text)
      if (!std::isspace(static_cast<unsigned char>(c))) norm.push_back(c);
    out_->fingerprint = StableHash(norm);
  }
  if (ast_.stream.empty()) {
    d_.Error(ast_.name_span, "pattern '" + ast_.name + "' has no FROM clause naming its stream");
    return nullptr;
  }
  auto sit = catalog_.find(ast_.stream);
  if (sit == catalog_.end()) {
    std::string known;
    for (const auto& [k, v] : catalog_) known += (known.empty() ? "" : ", ") + k;
    d_.Error(ast_.stream_span, "unknown stream '" + ast_.stream +
                                   "' (streams: " + (known.empty() ? "none" : known) + ")");
    return nullptr;
  }
  stream_ = &sit->second;
  out_->schema = &stream_->schema;
  if (ast_.match.children.empty() && ast_.match.kind != RegexNode::Kind::kVar) {
    d_.Error(ast_.name_span, "pattern '" + ast_.name + "' has no MATCH clause");
    return nullptr;
  }
  // Partition key.
  std::vector<std::string> keys = ast_.partition_by.empty() ? stream_->key : ast_.partition_by;
  for (size_t i = 0; i < keys.size(); ++i) {
    int f = stream_->schema.IndexOf(keys[i]);
    if (f < 0) {
      d_.Error(
          ast_.partition_spans.empty() ? ast_.stream_span : ast_.partition_spans[0],
          "PARTITION BY names '" + keys[i] + "', which stream '" + ast_.stream + "' does not have");
      continue;
    }
    out_->partition_fields.push_back(f);
    out_->partition_names.push_back(keys[i]);
  }
  if (ast_.within && ast_.within->millis() <= 0)
    d_.Error(ast_.name_span, "WITHIN must be positive");
  if (ast_.max_gap && ast_.max_gap->millis() <= 0)
    d_.Error(ast_.name_span, "MAX GAP must be positive");
  out_->within = ast_.within;
  out_->max_gap = ast_.max_gap;

  CollectVars(ast_.match);
  out_->aggs.vars.resize(out_->vars.size());
  out_->conditions.resize(out_->vars.size());
  CheckStructure(ast_.match, true);
  if (d_.HasErrors()) return nullptr;

  // Build the automaton.
  out_->states.push_back(NfaState{-1, -1, "start", {}, {}, false});
  RegexNode root = ast_.match;
  if (root.kind == RegexNode::Kind::kVar) {
    RegexNode s;
    s.kind = RegexNode::Kind::kSeq;
    s.ops.push_back(Contiguity::kStrict);
    s.span = root.span;
    s.children.push_back(std::move(root));
    root = std::move(s);
  }
  Frag top = Build(root);
  if (too_many_states_) return nullptr;
  if (!top.nulls.empty()) {
    d_.Error(ast_.match.span,
             "this MATCH can be satisfied by no event at all; make at least one stage mandatory");
    return nullptr;
  }
  for (const Entry& e : top.first) {
    Edge edge;
    edge.target = e.item;
    edge.op = Contiguity::kAny;
    edge.guards = e.guards;
    edge.continue_q = e.cont;
    edge.bypass_q = e.byp;
    edge.until_cond = e.until;
    AppendUnique(out_->states[0].edges, std::move(edge));
  }
  for (const Edge& e : out_->states[0].edges) {
    const NfaState& first = out_->states[static_cast<size_t>(e.target)];
    const int v = first.var;
    if (first.gap_ms != 0) {
      d_.Error(ast_.match.span, "stage '" + out_->vars[static_cast<size_t>(v)] +
                                    "' has WITHIN GAP but can start a match: the gap is measured "
                                    "from the event before it");
      return nullptr;
    }
  }
  for (const NfaState& st : out_->states)
    if (st.edges.size() > kMaxEdgesPerState || st.finals.size() > kMaxFinalsPerState) {
      d_.Error(ast_.match.span, "the pattern is too ambiguous: state " + st.label +
                                    " has more than " + std::to_string(kMaxEdgesPerState) +
                                    " ways to continue");
      return nullptr;
    }
  for (const Exit& x : top.last) {
    NfaState& st = out_->states[static_cast<size_t>(x.item)];
    const bool at_once = x.guards.empty() || x.open_tail;
    AppendUnique(st.finals, FinalEdge{at_once ? std::vector<Guard>{} : x.guards});
    if (at_once) st.has_unguarded_final = true;
  }
  bool needs_deadline = false;
  for (NfaState& st : out_->states) {
    // A state that completes at once needs no absence check as well: the
    // same events would complete again.
    if (st.has_unguarded_final)
      std::erase_if(st.finals, [](const FinalEdge& f) { return !f.guards.empty(); });
    for (const FinalEdge& f : st.finals)
      for (const Guard& g : f.guards)
        if (!g.strict) needs_deadline = true;
  }
  for (NfaState& st : out_->states) {
    // A run here can only go on within the longest gap of its next stages;
    // a final that waits out an absence keeps it to the pattern's window.
    int64_t wait = 0;
    bool bounded = !st.edges.empty() && (st.has_unguarded_final || st.finals.empty());
    for (const Edge& e : st.edges) {
      const int64_t g = out_->states[static_cast<size_t>(e.target)].gap_ms;
      if (g == 0) bounded = false;
      wait = std::max(wait, g);
    }
    st.wait_ms = bounded ? wait : 0;
  }
  if (needs_deadline && !out_->has_deadline())
    d_.Error(ast_.match.span,
             "a pattern that ends with '-> !x' (absence) needs WITHIN (or MAX GAP): "
             "the match is emitted when that time has passed without x");
  ComputePrecedence();

  // Conditions.
  std::map<std::string, const Define*> defs;
  for (const Define& d : ast_.defines) {
    if (!var_index_.count(d.name)) {
      d_.Error(d.span, "DEFINE '" + d.name + "' names no stage of the MATCH clause");
      continue;
    }
    if (!defs.emplace(d.name, &d).second)
      d_.Error(d.span, "stage '" + d.name + "' is defined twice");
  }
  for (size_t v = 0; v < out_->vars.size(); ++v) {
    Condition c;
    auto it = defs.find(out_->vars[v]);
    if (it == defs.end()) {
      c.var = static_cast<int>(v);
      c.text = "true";
    } else {
      CompileCondition(it->second->condition, static_cast<int>(v),
                       Slice(it->second->condition.span), &c);
    }
    out_->conditions[v] = c;
  }
  for (const PendingUntil& pu : pending_until_) {
    Condition c;
    CompileCondition(*pu.expr, pu.var, "UNTIL " + Slice(pu.expr->span), &c);
    out_->conditions[static_cast<size_t>(pu.cond)] = c;
  }

  // Skip strategy.
  out_->skip = ast_.skip.kind;
  if (ast_.skip.kind == SkipStrategy::Kind::kToFirst ||
      ast_.skip.kind == SkipStrategy::Kind::kToLast) {
    auto it = var_index_.find(ast_.skip.var);
    if (it == var_index_.end())
      d_.Error(ast_.skip.span,
               "SKIP TO names '" + ast_.skip.var + "', which is not a stage of the MATCH clause");
    else
      out_->skip_var = it->second;
    out_->skip_strict = ast_.skip.strict;
    // A stage that can start the match: skipping to it may skip nothing at all
    // (Flink guards the same case only with throwExceptionOnMiss()).
    bool can_start = false;
    for (const Edge& e : out_->states[0].edges)
      if (out_->states[static_cast<size_t>(e.target)].var == out_->skip_var) can_start = true;
    if (it != var_index_.end() && can_start && ast_.skip.kind == SkipStrategy::Kind::kToFirst)
      d_.Warning(ast_.skip.span,
                 "SKIP TO FIRST " + ast_.skip.var + ": '" + ast_.skip.var +
                     "' can be a match's first event, and then nothing is skipped" +
                     (ast_.skip.strict ? " (STRICT reports those matches as errors)"
                                       : " (add STRICT to report those matches instead)"));
  }

  // Projections.
  CompileEmit(ast_.emit, ScopeKind::kEmit, &out_->emit, &out_->emit_events);
  out_->has_timeout_emit = ast_.has_timeout_emit;
  CompileEmit(ast_.timeout_emit, ScopeKind::kTimeoutEmit, &out_->timeout_emit,
              &out_->timeout_emit_events);
  if (ast_.has_timeout_emit && !out_->has_deadline())
    d_.Warning(ast_.name_span, "ON TIMEOUT EMIT without WITHIN or MAX GAP never fires");
  if (!out_->within) {
    // Bounded without a window only when every event must advance a run
    // (strict contiguity, no loop): patterns/cost.h.
    const CostBound bound = BoundCost(*out_);
    if (!bound.bounded)
      d_.Warning(ast_.name_span, "pattern '" + ast_.name +
                                     "' keeps unbounded state per key: " + bound.reason +
                                     " (cepheus check --cost shows every pattern's bound)");
  }
  if (ast_.skip.kind != SkipStrategy::Kind::kNoSkip) {
    // Flink's rule, kept: a completed match waits for every earlier-started
    // partial match of its key to end, so an alert can be late by that much.
    const std::string bound =
        ast_.within ? "up to WITHIN " + FormatDuration(*ast_.within) + " of event time"
                    : "until those partial matches end (no WITHIN: possibly until the input ends)";
    d_.Warning(ast_.skip.span,
               "with AFTER MATCH SKIP, a completed match is held until every earlier-started "
               "partial match of its key has ended: an alert can be delayed " +
                   bound + " (counted as held matches in the run summary)");
  }
  if (d_.HasErrors()) return nullptr;
  return std::move(out_);
}

}  // namespace compiler

using compiler::Compiler;

std::unique_ptr<CompiledPattern> CompilePattern(const PatternAst& ast, const SourceFile& file,
                                                const StreamCatalog& catalog, Diagnostics& diags) {
  Diagnostics local;
  Compiler c(ast, file, catalog, local);
  auto r = c.Run();
  diags.Append(local);
  return r;
}

Result<std::vector<std::shared_ptr<const CompiledPattern>>> CompilePatternFile(
    const SourceFile& file, const StreamCatalog& catalog, std::string* warnings) {
  Diagnostics diags;
  std::vector<PatternAst> asts = ParsePatterns(file, diags);
  std::vector<std::shared_ptr<const CompiledPattern>> out;
  std::set<std::string> names;
  for (const PatternAst& ast : asts) {
    if (!names.insert(ast.name).second) {
      diags.Error(ast.name_span, "pattern '" + ast.name + "' is defined twice");
      continue;
    }
    auto p = CompilePattern(ast, file, catalog, diags);
    if (p) out.push_back(std::move(p));
  }
  if (diags.HasErrors()) return Status::InvalidArgument(diags.Render(file));
  if (warnings) *warnings = diags.Render(file);
  return out;
}

}  // namespace cepheus::patterns
