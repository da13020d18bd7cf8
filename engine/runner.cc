#include "engine/runner.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <thread>

#include "common/hash.h"
#include "common/json.h"
#include "engine/checkpoint.h"
#include "engine/event_reader.h"
#include "engine/match_render.h"
#include "engine/worker.h"
#include "state/key_groups.h"

namespace cepheus::engine {
namespace {
constexpr size_t kBatchEvents = 2048;

int64_t WallMillis() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

int64_t MonotonicMillis() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

std::string SchemaText(const Schema& schema) {
  std::string t;
  for (const Field& f : schema.fields())
    t += f.name + ":" + std::string(FieldTypeName(f.type)) + ",";
  return t;
}

// What identifies a keying across runs: its stream, the stream's schema
// (pending events are stored in that layout) and the key fields.
std::string KeyingSignature(const CompiledPipeline& p, const Keying& k) {
  const StreamConfig& sc = p.config.streams[static_cast<size_t>(k.stream)];
  std::string sig = sc.name + "|" + SchemaText(sc.schema) + "|";
  for (int f : k.fields) sig += sc.schema.field(static_cast<size_t>(f)).name + ",";
  return sig;
}

std::string PatternFingerprint(const CompiledPipeline& p, int pattern_index) {
  for (const Keying& k : p.keyings)
    for (int pi : k.patterns)
      if (pi == pattern_index)
        return Fingerprint(p.patterns[static_cast<size_t>(pi)]->ToText() + "|" +
                           KeyingSignature(p, k));
  return Fingerprint(p.patterns[static_cast<size_t>(pattern_index)]->ToText());
}

// Testing aid: CEPHEUS_CHECKPOINT_DELAY_MS stretches two moments of every
// checkpoint (after the parts are staged, before the metadata; and after the
// metadata, before the parts are published), so that crash tests can kill
// the process inside them. Unset in normal use.
void FaultDelay() {
  static const long ms = [] {
    const char* v = std::getenv("CEPHEUS_CHECKPOINT_DELAY_MS");
    return v ? std::strtol(v, nullptr, 10) : 0L;
  }();
  if (ms <= 0) return;
  struct timespec d {
    ms / 1000, (ms % 1000) * 1000000L
  };
  nanosleep(&d, nullptr);
}

const char* BackendName(state::BackendKind k) {
  return k == state::BackendKind::kMemory ? "memory" : "rocksdb";
}

}  // namespace

PipelineRunner::PipelineRunner(const CompiledPipeline& pipeline, RunOutputs outputs,
                               RunOptions options)
    : pipeline_(pipeline), outputs_(outputs), options_(options) {}

Result<RunSummary> PipelineRunner::Run() {
  const int parallelism = std::max(1, options_.parallelism);
  RunSummary summary;
  metrics::Registry local_metrics;
  metrics::Registry& reg = options_.metrics ? *options_.metrics : local_metrics;

  ReaderOptions ropts;
  ropts.clock = options_.clock;
  ropts.lines_per_turn = std::max<size_t>(1, options_.lines_per_turn);
  ropts.read_buffer_bytes = options_.read_buffer_bytes;
  EventReader reader(pipeline_, ropts);
  // Every input is opened first: a missing file fails the run before it starts.
  CEPHEUS_RETURN_IF_ERROR(reader.Open());

  std::vector<std::unique_ptr<Worker>> workers;
  for (int w = 0; w < parallelism; ++w) {
    workers.push_back(
        std::make_unique<Worker>(pipeline_, w, outputs_.matches, outputs_.dead_letter));
    if (options_.max_live_runs)
      workers.back()->SetRunBudget(
          std::max<size_t>(1, options_.max_live_runs / static_cast<size_t>(parallelism)));
  }
  std::vector<EventBatch> batches(static_cast<size_t>(parallelism));
  size_t pending_events = 0;
  Watermark sent_wm = Watermark::Min();

  // Durable state: restore the latest complete checkpoint, or start fresh.
  const CheckpointOptions& ck = options_.checkpoint;
  std::unique_ptr<state::StateBackend> backend;
  std::unique_ptr<CheckpointStore> store;
  const std::pair<const char*, io::Sink*> slots[] = {{"matches", outputs_.matches},
                                                     {"late", outputs_.late},
                                                     {"dead_letter", outputs_.dead_letter},
                                                     {"watermarks", outputs_.watermarks}};
  uint64_t next_checkpoint = 0;
  if (ck.enabled) {
    store = std::make_unique<CheckpointStore>(ck.state_dir);
    if (ck.restart) CEPHEUS_RETURN_IF_ERROR(store->DeleteAll());
    auto usable = store->Usable();
    if (!usable.ok()) return usable.status();
    std::optional<CheckpointStore::Found> found;
    if (!usable->empty() && usable->front().metadata.finished) {
      spdlog::info(
          "state: the previous run of this pipeline finished (checkpoint {}); starting from the "
          "beginning",
          usable->front().metadata.id);
      CEPHEUS_RETURN_IF_ERROR(store->DeleteAll());
      usable->clear();
    }
    // The newest usable checkpoint whose state opens; a state that does not
    // open (damaged table files) falls back to the previous checkpoint.
    std::vector<std::string> failures;
    for (auto& candidate : *usable) {
      const CheckpointMetadata& m = candidate.metadata;
      if (m.state_backend != BackendName(ck.backend))
        return Status::InvalidArgument("checkpoint " + std::to_string(m.id) + " holds " +
                                       m.state_backend + " state; the pipeline now uses " +
                                       BackendName(ck.backend));
      auto opened = state::OpenWorkingState(ck.backend, store->working_dir(),
                                            candidate.dir + "/" + m.state_location);
      if (opened.ok()) {
        if (!failures.empty())
          spdlog::warn("falling back to checkpoint {} (newer ones could not be restored)", m.id);
        backend = std::move(opened.value());
        found = std::move(candidate);
        break;
      }
      spdlog::warn("checkpoint {}: its state cannot be restored: {}", m.id,
                   opened.status().message());
      failures.push_back("checkpoint " + std::to_string(m.id) + ": " + opened.status().message());
    }
    if (!failures.empty() && !found) {
      std::string msg = "no checkpoint in '" + ck.state_dir +
                        "' could be restored (refusing to start from empty state; move the "
                        "state directory away to start over):";
      for (const auto& f : failures) msg += "\n  " + f;
      return Status::Corruption(msg);
    }
    const CheckpointMetadata* meta = found ? &found->metadata : nullptr;
    if (!backend) {
      auto opened = state::OpenWorkingState(ck.backend, store->working_dir(), "");
      if (!opened.ok()) return opened.status();
      backend = std::move(opened.value());
    }
    for (auto [slot, out] : slots) {
      std::string record;
      if (meta)
        for (const auto& [name, rec] : meta->outputs)
          if (name == slot) record = rec;
      if (out) CEPHEUS_RETURN_IF_ERROR(out->Recover(record));
    }
    WorkerStateOptions wso;
    wso.backend = backend.get();
    wso.parallelism = parallelism;
    wso.cache_keys = ck.cache_keys;
    for (auto& w : workers) w->AttachState(wso);
    if (meta) {
      CEPHEUS_RETURN_IF_ERROR(store->DeleteNewerThan(meta->id));
      // Patterns: unchanged ones keep their state, changed or removed ones
      // drop it, new ones start empty.
      for (const auto& [name, fp] : meta->patterns) {
        int now = -1;
        for (size_t i = 0; i < pipeline_.patterns.size(); ++i)
          if (pipeline_.patterns[i]->name == name) now = static_cast<int>(i);
        const bool same = now >= 0 && PatternFingerprint(pipeline_, now) == fp;
        if (same) {
          spdlog::info("pattern {}: unchanged since checkpoint {}, its state is restored", name,
                       meta->id);
          continue;
        }
        spdlog::warn("pattern {}: {} since checkpoint {}, its partial matches are dropped", name,
                     now >= 0 ? "changed" : "removed", meta->id);
        CEPHEUS_RETURN_IF_ERROR(Worker::DropPatternState(backend.get(), name));
      }
      for (const auto& pat : pipeline_.patterns) {
        bool known = false;
        for (const auto& [name, fp] : meta->patterns) known |= name == pat->name;
        if (!known)
          spdlog::info("pattern {}: new since checkpoint {}, starts with empty state", pat->name,
                       meta->id);
      }
      RestoreMapping mapping;
      mapping.watermark = meta->watermark;
      mapping.timers_in_state = meta->worker_state >= 2;
      for (const std::string& sig : meta->keyings) {
        int now = -1;
        for (size_t k = 0; k < pipeline_.keyings.size(); ++k)
          if (KeyingSignature(pipeline_, pipeline_.keyings[k]) == sig) now = static_cast<int>(k);
        mapping.keyings.push_back(now);
      }
      CEPHEUS_RETURN_IF_ERROR(reader.RestorePosition(meta->reader_state));
      for (auto& w : workers) CEPHEUS_RETURN_IF_ERROR(w->Restore(mapping));
      sent_wm = meta->watermark;
      summary.restored_from = meta->id;
      spdlog::info(
          "restored checkpoint {} (written by a run with parallelism {}, now {}): watermark {}",
          meta->id, meta->parallelism, parallelism,
          meta->watermark == Watermark::Min() ? std::string("none")
                                              : FormatRfc3339(meta->watermark.time()));
    } else {
      CEPHEUS_RETURN_IF_ERROR(store->DeleteAll());
    }
    next_checkpoint = store->NextId();
  }
  for (auto& w : workers) w->Start();

  auto& c_records = reg.GetCounter("cepheus_records_read_total", "Input records read");
  auto& c_dead = reg.GetCounter("cepheus_dead_letters_total", "Records that could not be decoded");
  auto& c_late = reg.GetCounter("cepheus_late_events_total", "Events at or behind the watermark");
  auto& c_checkpoints = reg.GetCounter("cepheus_checkpoints_total", "Checkpoints completed");
  auto& g_ckpt_ms = reg.GetGauge("cepheus_last_checkpoint_duration_ms",
                                 "Duration of the last completed checkpoint");
  auto& g_ckpt_pause_ms = reg.GetGauge("cepheus_last_checkpoint_pause_ms",
                                       "How long workers were paused in the last checkpoint");
  auto& g_ckpt_id =
      reg.GetGauge("cepheus_last_checkpoint_id", "Id of the last completed checkpoint");
  std::string dead_out, late_out, wm_out;
  // Counters are published once per turn, not per record.
  ReaderCounts published;
  auto publish_counters = [&] {
    const ReaderCounts& c = reader.counts();
    c_records.Add(c.records_read - published.records_read);
    c_dead.Add(c.dead_letters - published.dead_letters);
    c_late.Add(c.late - published.late);
    published = c;
  };
  auto flush_side_outputs = [&]() -> Status {
    if (!dead_out.empty()) {
      CEPHEUS_RETURN_IF_ERROR(outputs_.dead_letter->Write(dead_out));
      dead_out.clear();
    }
    if (!late_out.empty()) {
      CEPHEUS_RETURN_IF_ERROR(outputs_.late->Write(late_out));
      late_out.clear();
    }
    if (!wm_out.empty()) {
      CEPHEUS_RETURN_IF_ERROR(outputs_.watermarks->Write(wm_out));
      wm_out.clear();
    }
    return Status::Ok();
  };
  // The watermarks output: one record each time the watermark sent to the
  // workers advances, written before the workers see it (so before any
  // result it releases), and one at the end of the input.
  auto note_watermark = [&](Watermark wm) {
    if (!outputs_.watermarks || wm <= sent_wm) return;
    JsonObject o(wm_out);
    if (wm.is_max()) {
      o.Raw("watermark", "null");
      o.Raw("watermark_ms", "null");
      o.Raw("end_of_input", "true");
    } else {
      o.String("watermark", FormatRfc3339(wm.time()));
      o.Int("watermark_ms", wm.time().millis());
    }
    o.End();
    wm_out.push_back('\n');
  };
  auto send = [&](Watermark wm) {
    note_watermark(wm);
    for (int w = 0; w < parallelism; ++w) {
      EventBatch& b = batches[static_cast<size_t>(w)];
      b.watermark = wm;
      workers[static_cast<size_t>(w)]->Push(std::move(b));
      b = EventBatch{};
    }
    pending_events = 0;
    sent_wm = wm;
  };

  // One checkpoint, in two parts (docs/architecture.md "Checkpoints").
  // Synchronous: a barrier after everything read so far; each worker writes
  // back the keys that changed since the last checkpoint and waits while the
  // outputs close their parts and the backend takes an image of the state
  // (RocksDB lists and pins its live files; nothing is flushed). Then the
  // workers go on. Asynchronous, on a thread of its own: the image is
  // written into the checkpoint directory and the metadata makes the
  // checkpoint complete; then, back on this thread, the outputs publish
  // their parts. One checkpoint is in flight at a time.
  struct InFlight {
    CheckpointMetadata meta;
    std::unique_ptr<state::PendingSnapshot> image;
    int64_t t0 = 0, t_written_back = 0, t_sync = 0;
    std::thread thread;
    std::atomic<bool> done{false};
    Status status;  // of the asynchronous part; read after `done`
  };
  std::unique_ptr<InFlight> inflight;
  // Joins the thread on every way out of Run (it uses the store and backend).
  struct JoinInFlight {
    std::unique_ptr<InFlight>& f;
    ~JoinInFlight() {
      if (f && f->thread.joinable()) f->thread.join();
    }
  } join_inflight{inflight};
  int64_t last_checkpoint_ms = MonotonicMillis();
  // Completes the checkpoint in flight if its asynchronous part is done (or
  // waits for it with `wait`).
  auto finish_checkpoint = [&](bool wait) -> Status {
    if (!inflight || (!wait && !inflight->done.load(std::memory_order_acquire)))
      return Status::Ok();
    inflight->thread.join();
    std::unique_ptr<InFlight> f = std::move(inflight);
    CEPHEUS_RETURN_IF_ERROR(f->status);
    FaultDelay();
    for (const auto& [slot, rec] : f->meta.outputs)
      for (auto [name, out] : slots)
        if (out && std::string_view(name) == slot) CEPHEUS_RETURN_IF_ERROR(out->Commit(rec));
    if (Status r = store->Retain(ck.retain); !r.ok())
      // Old checkpoints left behind cost disk space, not correctness.
      spdlog::warn("checkpoint.retain: {}", r.message());
    ++summary.checkpoints;
    c_checkpoints.Add(1);
    g_ckpt_id.Set(static_cast<int64_t>(f->meta.id));
    const int64_t t1 = MonotonicMillis();
    g_ckpt_ms.Set(t1 - f->t0);
    g_ckpt_pause_ms.Set(f->t_sync - f->t0);
    spdlog::info(
        "checkpoint {} complete in {} ms (workers paused {} ms: {} ms writing back changed keys, "
        "{} ms taking the image){}",
        f->meta.id, t1 - f->t0, f->t_sync - f->t0, f->t_written_back - f->t0,
        f->t_sync - f->t_written_back, f->meta.finished ? ", run finished" : "");
    return Status::Ok();
  };
  auto begin_checkpoint = [&](Watermark wm, bool finished) -> Status {
    CEPHEUS_RETURN_IF_ERROR(finish_checkpoint(/*wait=*/true));
    auto f = std::make_unique<InFlight>();
    f->t0 = MonotonicMillis();
    last_checkpoint_ms = f->t0;
    CheckpointMetadata& meta = f->meta;
    meta.id = next_checkpoint++;
    meta.finished = finished;
    meta.parallelism = parallelism;
    meta.reader_state = reader.SavePosition();
    meta.watermark = wm;
    meta.state_backend = BackendName(ck.backend);
    meta.state_location = "state";
    meta.key_groups = "0-" + std::to_string(state::kDefaultKeyGroups - 1);
    for (size_t i = 0; i < pipeline_.patterns.size(); ++i)
      meta.patterns.emplace_back(pipeline_.patterns[i]->name,
                                 PatternFingerprint(pipeline_, static_cast<int>(i)));
    for (const Keying& k : pipeline_.keyings) meta.keyings.push_back(KeyingSignature(pipeline_, k));
    // The directory exists from the start: a crash at any point of the
    // checkpoint leaves it without metadata, i.e. visibly incomplete.
    std::error_code ec;
    std::filesystem::create_directories(store->DirOf(meta.id), ec);
    auto sync = std::make_shared<SnapshotSync>(parallelism);
    for (auto& b : batches) b.barrier = sync;
    send(wm);
    Status s = sync->WaitAllArrived();
    if (s.ok()) s = flush_side_outputs();  // the watermark just sent
    f->t_written_back = MonotonicMillis();
    if (s.ok() && ec)
      s = Status::IoError("cannot create '" + store->DirOf(meta.id) + "': " + ec.message());
    for (auto [slot, out] : slots) {
      if (!s.ok() || !out) continue;
      auto rec = out->PrepareCommit(meta.id);
      if (!rec.ok())
        s = rec.status();
      else
        meta.outputs.emplace_back(slot, std::move(rec.value()));
    }
    if (s.ok()) {
      auto image = backend->BeginSnapshot();
      if (image.ok())
        f->image = std::move(image.value());
      else
        s = image.status();
    }
    sync->Release();
    CEPHEUS_RETURN_IF_ERROR(s);
    f->t_sync = MonotonicMillis();
    InFlight* raw = f.get();
    inflight = std::move(f);
    raw->thread = std::thread([raw, &store, &ck] {
      const std::string dir = store->StateDirOf(raw->meta.id);
      Status st = raw->image->WriteTo(dir);
      raw->image.reset();  // unpins the files
      if (st.ok() && ck.copy_files) st = state::UnshareSnapshotFiles(dir);
      if (st.ok()) {
        FaultDelay();
        raw->meta.created_ms = WallMillis();
        st = store->Complete(raw->meta);
      }
      raw->status = st;
      raw->done.store(true, std::memory_order_release);
    });
    return Status::Ok();
  };
  // A checkpoint that has completed when this returns.
  auto checkpoint = [&](Watermark wm, bool finished) -> Status {
    CEPHEUS_RETURN_IF_ERROR(begin_checkpoint(wm, finished));
    return finish_checkpoint(/*wait=*/true);
  };

  Status failure;
  std::vector<ReadEvent> events;
  std::string key_scratch;
  while (!stop_.load()) {
    events.clear();
    auto turn = reader.ReadTurn(&events, &dead_out, &late_out);
    if (!turn.ok()) {
      failure = turn.status();
      break;
    }
    for (ReadEvent& e : events) {
      const StreamConfig& sc = pipeline_.config.streams[static_cast<size_t>(e.stream)];
      for (size_t k = 0; k < pipeline_.keyings.size(); ++k) {
        const Keying& keying = pipeline_.keyings[k];
        if (keying.stream != e.stream) continue;
        uint64_t h = StableHash(KeyView(*e.row, keying.fields, sc.schema, &key_scratch));
        int group = state::KeyGroupOf(h, state::kDefaultKeyGroups);
        int w = state::WorkerOfGroup(group, state::kDefaultKeyGroups, parallelism);
        batches[static_cast<size_t>(w)].events.push_back(
            RoutedEvent{e.row, static_cast<uint32_t>(k)});
        ++pending_events;
      }
    }
    publish_counters();
    if (*turn == EventReader::Turn::kEnd) break;
    if (options_.stop_after_records && reader.counts().records_read >= options_.stop_after_records)
      Stop();
    const bool progress = *turn == EventReader::Turn::kProgress;
    // The end of every input (a Max watermark) is sent only after the loop,
    // with the final checkpoint: workers end their run when they see it.
    Watermark wm = reader.UpdateWatermark();
    if (wm.is_max()) wm = sent_wm;
    if (pending_events >= kBatchEvents || (wm > sent_wm && (pending_events > 0 || !progress)) ||
        (!progress && pending_events > 0)) {
      send(wm);
    }
    Status fs = flush_side_outputs();
    if (!fs.ok()) {
      failure = fs;
      break;
    }
    if (ck.enabled) {
      Status cs = finish_checkpoint(/*wait=*/false);
      if (cs.ok() && !inflight && ck.interval_ms > 0 &&
          MonotonicMillis() - last_checkpoint_ms >= ck.interval_ms)
        cs = begin_checkpoint(wm, false);
      if (!cs.ok()) {
        failure = cs.WithPrefix("checkpoint failed: ");
        break;
      }
    }
    if (!progress) {
      // Only unbounded inputs remain and none had data: wait for data (or
      // a little while), then look again (the watermark may move with the
      // wall clock meanwhile).
      reader.WaitForInput(std::min(options_.poll_ms, 20));
    }
  }
  publish_counters();
  Status fs = flush_side_outputs();
  if (failure.ok() && !fs.ok()) failure = fs;
  const bool stopped = stop_.load() || !failure.ok();
  if (ck.enabled && failure.ok()) {
    Status cs = finish_checkpoint(/*wait=*/true);
    if (!cs.ok()) failure = cs.WithPrefix("checkpoint failed: ");
  }
  if (ck.enabled && failure.ok()) {
    // A stop ends at a checkpoint the next run continues from; the end of
    // the input at a final one that commits the last outputs.
    Status cs = checkpoint(stopped ? sent_wm : Watermark::Max(), !stopped);
    if (!cs.ok()) failure = cs.WithPrefix("final checkpoint failed: ");
  } else if (!stopped) {
    send(Watermark::Max());
    Status ws = flush_side_outputs();
    if (failure.ok() && !ws.ok()) failure = ws;
  }
  if (stopped || !failure.ok()) {
    for (auto& w : workers) {
      EventBatch b;
      b.stop = true;
      w->Push(std::move(b));
    }
  }
  for (auto& w : workers) w->Join();
  summary.reader = reader.counts();
  summary.streams = reader.stream_counts();
  for (auto& w : workers) {
    summary.matcher.Add(w->stats().matcher);
    summary.keys_evicted += w->stats().keys_evicted;
    summary.keys_loaded += w->stats().keys_loaded;
    summary.peak_cached_keys = std::max(summary.peak_cached_keys, w->stats().peak_cached_keys);
    summary.peak_live_runs += w->stats().peak_live_runs;
    if (failure.ok() && !w->status().ok()) failure = w->status();
  }
  summary.matches = summary.matcher.matches;
  summary.timeouts = summary.matcher.timeouts;
  summary.runs_dropped = summary.matcher.runs_dropped;
  reg.GetCounter("cepheus_matches_total", "Matches emitted").Add(summary.matches);
  reg.GetCounter("cepheus_timeouts_total", "Partial matches that timed out").Add(summary.timeouts);
  reg.GetCounter("cepheus_runs_dropped_total", "Partial matches cut by max_runs_per_key")
      .Add(summary.runs_dropped);
  reg.GetCounter("cepheus_runs_cut_by_budget_total",
                 "Partial matches cut to keep limits.max_live_runs")
      .Add(summary.matcher.runs_cut_by_budget);
  reg.GetCounter("cepheus_held_matches_total",
                 "Matches held by AFTER MATCH SKIP until earlier partial matches ended")
      .Add(summary.matcher.held_matches);
  reg.GetCounter("cepheus_skip_errors_total",
                 "Matches AFTER MATCH SKIP TO ... STRICT could not skip for (sent to dead_letter)")
      .Add(summary.matcher.skip_errors);
  reg.GetGauge("cepheus_held_match_max_wait_ms",
               "Longest event-time wait of a held match after its last event")
      .Set(summary.matcher.held_wait_ms_max);
  reg.GetCounter("cepheus_state_keys_evicted_total", "Keys written back and dropped from the cache")
      .Add(summary.keys_evicted);
  reg.GetCounter("cepheus_state_keys_loaded_total", "Keys read back from the state backend")
      .Add(summary.keys_loaded);
  // A failed flush (full disk, closed pipe) fails the run: output was lost.
  for (io::Sink* o : {outputs_.matches, outputs_.late, outputs_.dead_letter, outputs_.watermarks}) {
    if (!o) continue;
    Status flushed = o->Flush();
    if (failure.ok() && !flushed.ok()) failure = flushed;
  }
  if (!failure.ok()) return failure;
  summary.stopped = stopped;
  if (const std::string held = summary.matcher.HeldSummary(); !held.empty())
    spdlog::info("{}", held);
  if (summary.matcher.skip_errors)
    spdlog::error(
        "{} matches could not apply AFTER MATCH SKIP ... STRICT; they went to the dead_letter "
        "output with the reason",
        summary.matcher.skip_errors);
  for (const std::string& w : BadInputWarnings(pipeline_.config, summary.streams))
    spdlog::warn("{}", w);
  if (summary.matcher.runs_cut_by_budget)
    spdlog::warn(
        "{} partial matches were cut to keep limits.max_live_runs={} (oldest first; see "
        "cepheus_runs_cut_by_budget_total)",
        summary.matcher.runs_cut_by_budget, options_.max_live_runs);
  if (summary.runs_dropped)
    spdlog::warn(
        "{} partial matches were cut by max_runs_per_key={} (see cepheus_runs_dropped_total)",
        summary.runs_dropped, pipeline_.config.max_runs_per_key);
  return summary;
}

}  // namespace cepheus::engine
