// The exactly-once Kafka output: one transaction per checkpoint period,
// committed when the checkpoint completes, with the period's records kept in
// a spool file under the state directory so that a crash between the
// checkpoint's metadata and the transaction's commit can be repaired. The
// argument, case by case: docs/architecture.md "Kafka output: delivery
// guarantees".
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "io/kafka/kafka.h"
#include "sinks/kafka_sink.h"
#include "sinks/spool.h"

namespace cepheus::sinks {
namespace {

namespace fs = std::filesystem;
using io::kafka::Producer;
using io::kafka::TxnResult;

// One transactional call. Short, so that a stop request is honoured soon:
// a call that times out is retried.
constexpr int kTxnTimeoutMs = 2 * 1000;
constexpr int kMaxBackoffMs = 30 * 1000;

// Where the output learns which periods' transactions committed.
class Ledger {
 public:
  virtual ~Ledger() = default;
  // The id of the last period whose transaction committed (0: none).
  virtual Result<uint64_t> LastCommitted() = 0;
  // Adds "period `id` committed" to the open transaction.
  virtual TxnResult Add(Producer& p, uint64_t id) = 0;
  // The transaction `token` of period `id` committed.
  virtual Status Committed(uint64_t /*id*/, const std::string& /*token*/) { return Status::Ok(); }
  // Whether messages carry their transaction's token (header cepheus.txn).
  virtual bool tags_messages() const { return false; }
};

// Production: a transactional offset commit of offset `id` on partition 0
// of the output topic, for a consumer group of its own. The brokers apply it
// atomically with the transaction, so the group's committed offset is the
// last committed period.
class GroupLedger final : public Ledger {
 public:
  GroupLedger(io::kafka::Properties props, std::string topic, std::string group)
      : props_(std::move(props)), topic_(std::move(topic)), group_(std::move(group)) {}
  Result<uint64_t> LastCommitted() override {
    auto c = io::kafka::Consumer::Create(props_, group_);
    if (!c.ok()) return c.status();
    std::vector<io::kafka::TopicPartition> tps{{topic_, 0, 0}};
    CEPHEUS_RETURN_IF_ERROR((*c)->Committed(&tps, kTxnTimeoutMs));
    return tps[0].offset < 0 ? 0 : static_cast<uint64_t>(tps[0].offset);
  }
  TxnResult Add(Producer& p, uint64_t id) override {
    return p.SendOffsetsToTransaction(group_, {{topic_, 0, static_cast<int64_t>(id)}},
                                      kTxnTimeoutMs);
  }

 private:
  io::kafka::Properties props_;
  std::string topic_, group_;
};

// Testing (librdkafka's mock cluster neither applies transactional offset
// commits nor filters aborted messages): after each successful commit, a
// line "<id> <token>" is appended to a file, and every message carries its
// transaction's token, so a test can tell which messages a read_committed
// consumer would see. The commit point is the line: a crash between the
// broker's commit and the line counts as an aborted transaction, and the
// output behaves exactly as it would then.
class FileLedger final : public Ledger {
 public:
  FileLedger(std::string path, std::unique_ptr<Ledger> group)
      : path_(std::move(path)), group_(std::move(group)) {}
  Result<uint64_t> LastCommitted() override {
    std::ifstream in(path_);
    uint64_t id = 0, last = 0;
    std::string token;
    while (in >> id >> token) last = id;
    return last;
  }
  // The group ledger's call still goes to the brokers (the production path
  // runs), but the mock ignores it.
  TxnResult Add(Producer& p, uint64_t id) override { return group_->Add(p, id); }
  Status Committed(uint64_t id, const std::string& token) override {
    std::FILE* f = std::fopen(path_.c_str(), "a");
    if (!f) return Status::IoError("cannot open test ledger '" + path_ + "'");
    std::fprintf(f, "%llu %s\n", static_cast<unsigned long long>(id), token.c_str());
    const bool ok = std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
    std::fclose(f);
    return ok ? Status::Ok() : Status::IoError("writing test ledger '" + path_ + "'");
  }
  bool tags_messages() const override { return true; }

 private:
  std::string path_;
  std::unique_ptr<Ledger> group_;
};

class TransactionalKafkaSink final : public io::Sink {
 public:
  TransactionalKafkaSink(io::KafkaSinkSpec spec, std::string spool_dir,
                         std::unique_ptr<Producer> producer, std::unique_ptr<Ledger> ledger)
      : spec_(std::move(spec)),
        spool_dir_(std::move(spool_dir)),
        producer_(std::move(producer)),
        ledger_(std::move(ledger)) {}

  ~TransactionalKafkaSink() override {
    std::lock_guard<std::mutex> l(mu_);
    // An open transaction holds records of a period no checkpoint covers:
    // they are replayed by the next start; abort it now rather than at the
    // transaction timeout.
    // (Not after a stop request: the cluster may be unreachable, and the
    // next start's registration aborts it anyway.)
    if (txn_open_ && !interrupted_.load()) (void)producer_->AbortTransaction(5000);
    if (commit_retries_ > 0)
      spdlog::warn("kafka output {}: {} transactional call(s) were retried in this run",
                   spec_.topic, commit_retries_);
    if (spool_ && spool_->count() == 0) {
      spool_.reset();
      std::error_code ec;
      fs::remove(InProgress(), ec);
    }
  }

  Status Write(const io::RecordBatch& batch) override {
    std::lock_guard<std::mutex> l(mu_);
    if (!spool_) return Status::Internal("kafka output " + spec_.topic + " used before recovery");
    const uint64_t before = spool_->size();
    for (size_t i = 0; i < batch.size(); ++i) CEPHEUS_RETURN_IF_ERROR(spool_->Append(batch[i]));
    if (prepared_ || broken_) return Status::Ok();  // sent from the spool later
    // Records of this period not yet sent (written while the previous
    // period's transaction waited for its commit) go first.
    CEPHEUS_RETURN_IF_ERROR(SendBacklog(before));
    if (broken_) return Status::Ok();
    for (size_t i = 0; i < batch.size() && !broken_; ++i) Send(batch[i]);
    if (!broken_) sent_ = spool_->size();
    return Status::Ok();
  }

  Status Flush() override {
    std::lock_guard<std::mutex> l(mu_);
    return spool_ ? spool_->Flush() : Status::Ok();
  }

  // With the workers paused at barrier `id`: the period's records become
  // spool file `id` (synced). Its transaction stays open until Commit.
  Result<std::string> PrepareCommit(uint64_t id) override {
    std::lock_guard<std::mutex> l(mu_);
    if (!spool_) return Status::Internal("kafka output " + spec_.topic + " used before recovery");
    if (prepared_)
      return Status::Internal("kafka output " + spec_.topic + ": checkpoint " +
                              std::to_string(*prepared_) + " was prepared but not committed");
    CEPHEUS_RETURN_IF_ERROR(spool_->Seal(SpoolPath(id)));
    prepared_ = id;
    prepared_sent_ = txn_open_ && !broken_ ? sent_ : 0;
    sent_ = 0;
    CEPHEUS_RETURN_IF_ERROR(OpenSpool());
    return std::to_string(id);
  }

  // Checkpoint `record` is complete: its period's transaction commits
  // (retried with backoff while the cluster cannot take it; the coordinator
  // begins no checkpoint meanwhile). Then the records written since the
  // barrier go into the next transaction.
  Status Commit(const std::string& record) override {
    std::lock_guard<std::mutex> l(mu_);
    uint64_t id = 0;
    if (!ParseId(record, &id) || !prepared_ || *prepared_ != id)
      return Status::Internal("kafka output " + spec_.topic + ": commit of checkpoint '" + record +
                              "' that was not prepared");
    CEPHEUS_RETURN_IF_ERROR(CommitPeriod(id, prepared_sent_));
    prepared_.reset();
    RemoveSpools(id);
    return SendBacklog(spool_->size());
  }

  Status Recover(const std::string& record) override {
    std::lock_guard<std::mutex> l(mu_);
    std::error_code ec;
    fs::create_directories(spool_dir_, ec);
    if (ec) return Status::IoError("cannot create '" + spool_dir_ + "': " + ec.message());
    // Fences an earlier process with our transactional.id and aborts its
    // open transaction (periods no complete checkpoint covers).
    CEPHEUS_RETURN_IF_ERROR(Retry("registering the transactional producer",
                                  [&] { return producer_->InitTransactions(kTxnTimeoutMs); }));
    WarmUp(*producer_, spec_.topic);
    uint64_t id = 0;
    if (record.empty()) {
      // A fresh start: checkpoint ids start again, so the ledger does too.
      CEPHEUS_RETURN_IF_ERROR(CommitPeriod(0, 0, /*spool=*/false));
    } else if (!ParseId(record, &id)) {
      return Status::Corruption("kafka output " + spec_.topic + ": bad commit record '" + record +
                                "'");
    } else {
      uint64_t last = 0;
      CEPHEUS_RETURN_IF_ERROR(Retry("reading which transactions committed", [&] {
        auto c = ledger_->LastCommitted();
        if (c.ok()) last = *c;
        return c.ok() ? TxnResult{} : TxnResult{TxnResult::Kind::kRetriable, c.status().message()};
      }));
      if (last < id) {
        // The checkpoint completed but its transaction did not commit (a
        // crash between the two): send its spooled period again.
        if (!fs::exists(SpoolPath(id)))
          return Status::Corruption(
              "kafka output " + spec_.topic + ": checkpoint " + std::to_string(id) +
              " is complete but its transaction never committed, and its spool file '" +
              SpoolPath(id) + "' is missing");
        spdlog::warn(
            "kafka output {}: checkpoint {} completed but its transaction did not commit; "
            "sending its {} again from the spool",
            spec_.topic, id, SpoolPath(id));
        CEPHEUS_RETURN_IF_ERROR(CommitPeriod(id, 0));
      }
    }
    RemoveSpools(std::numeric_limits<uint64_t>::max());  // later ones never completed
    return OpenSpool();
  }

  void Interrupt() override { interrupted_.store(true); }

 private:
  std::string SpoolPath(uint64_t id) const { return spool_dir_ + "/" + std::to_string(id); }
  std::string InProgress() const { return spool_dir_ + "/inprogress"; }

  static bool ParseId(const std::string& s, uint64_t* id) {
    if (s.empty() || s.size() > 19) return false;
    uint64_t v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    *id = v;
    return true;
  }

  Status OpenSpool() {
    auto w = SpoolWriter::Create(InProgress());
    if (!w.ok()) return w.status();
    spool_ = std::move(w.value());
    sent_ = 0;
    return Status::Ok();
  }

  // Spool files of periods up to `upto` (and the stale in-progress one when
  // upto is the maximum).
  void RemoveSpools(uint64_t upto) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(spool_dir_, ec)) {
      const std::string name = e.path().filename().string();
      uint64_t id = 0;
      const bool numbered = ParseId(name, &id);
      if ((numbered && id <= upto) || (!numbered && upto == std::numeric_limits<uint64_t>::max()))
        fs::remove(e.path(), ec);
    }
  }

  Status BeginTxn() {
    CEPHEUS_RETURN_IF_ERROR(
        Retry("beginning a transaction", [&] { return producer_->BeginTransaction(); }));
    txn_open_ = true;
    broken_ = false;
    token_ = std::to_string(::getpid()) + "." + std::to_string(++txn_count_);
    return Status::Ok();
  }

  // Sends one record into the open transaction; a failure marks the
  // transaction broken (it is aborted and its period sent again from the
  // spool at commit).
  void Send(const io::Record& r) {
    RecordHeaders(r, &headers_);
    if (ledger_->tags_messages()) headers_.push_back({"cepheus.txn", token_});
    Status s = producer_->Produce(spec_.topic, -1, r.key, r.payload, r.time_ms, headers_);
    if (!s.ok()) {
      spdlog::warn("kafka output {}: {}; the period is sent again at its commit", spec_.topic,
                   s.message());
      broken_ = true;
    }
  }

  // Sends the in-progress spool's records from sent_ up to `upto` into the
  // open transaction (begun if needed), unless a prepared period's
  // transaction still holds the producer.
  Status SendBacklog(uint64_t upto) {
    if (prepared_ || broken_) return Status::Ok();
    if (!txn_open_ && upto == 0 && spool_->size() == 0) return Status::Ok();
    if (!txn_open_) CEPHEUS_RETURN_IF_ERROR(BeginTxn());
    if (sent_ >= upto) return Status::Ok();
    CEPHEUS_RETURN_IF_ERROR(spool_->Flush());
    CEPHEUS_RETURN_IF_ERROR(ReadSpool(InProgress(), sent_, upto, [&](const io::Record& r) {
      if (!broken_) Send(r);
      return Status::Ok();
    }));
    if (!broken_) sent_ = upto;
    return Status::Ok();
  }

  // Commits period `id`: the open transaction if it holds the whole period
  // (its first `sent` spool bytes were sent; the rest is sent now), else a
  // new one filled from the spool. Retried until it commits, the producer
  // fails fatally, or the process is asked to stop.
  Status CommitPeriod(uint64_t id, uint64_t sent, bool spool = true) {
    // librdkafka allows only the call that failed with a retriable error to
    // be made again (e.g. a commit that timed out while flushing), so the
    // loop resumes at the step that failed.
    enum class Step { kFill, kLedger, kCommit } step = Step::kFill;
    int backoff_ms = 100;
    for (int attempt = 1;; ++attempt) {
      TxnResult r;
      if (step == Step::kFill) {
        if (txn_open_ && broken_) r = producer_->AbortTransaction(kTxnTimeoutMs);
        if (r.ok() && (!txn_open_ || broken_)) {
          txn_open_ = false;
          sent = 0;
          CEPHEUS_RETURN_IF_ERROR(BeginTxn());
        }
        if (r.ok() && spool) {
          Status s = ReadSpool(SpoolPath(id), sent, std::numeric_limits<uint64_t>::max(),
                               [&](const io::Record& rec) {
                                 if (!broken_) Send(rec);
                                 return Status::Ok();
                               });
          if (!s.ok()) return s.WithPrefix("kafka output " + spec_.topic + ": ");
          if (broken_) r = {TxnResult::Kind::kAbortable, "a record could not be sent"};
        }
        if (r.ok()) step = Step::kLedger;
      }
      if (r.ok() && step == Step::kLedger) {
        r = ledger_->Add(*producer_, id);
        if (r.ok()) step = Step::kCommit;
      }
      if (r.ok() && step == Step::kCommit) r = producer_->CommitTransaction(kTxnTimeoutMs);
      if (r.ok()) {
        txn_open_ = false;
        CEPHEUS_RETURN_IF_ERROR(ledger_->Committed(id, token_));
        if (attempt > 1)
          spdlog::info("kafka output {}: the transaction of checkpoint {} committed (attempt {})",
                       spec_.topic, id, attempt);
        return Status::Ok();
      }
      if (r.kind == TxnResult::Kind::kFatal)
        return Status::IoError("kafka output " + spec_.topic + ": " + r.message +
                               " (is another process using transactional.id " + "of this output?)");
      if (r.kind == TxnResult::Kind::kAbortable) {
        broken_ = true;  // aborted, and the period sent again from its spool
        step = Step::kFill;
      }
      ++commit_retries_;
      spdlog::warn(
          "kafka output {}: the transaction of checkpoint {} did not commit ({}); retrying in "
          "{} ms, no new checkpoint begins meanwhile",
          spec_.topic, id, r.message, backoff_ms);
      CEPHEUS_RETURN_IF_ERROR(Sleep(backoff_ms, id));
      backoff_ms = std::min(backoff_ms * 2, kMaxBackoffMs);
    }
  }

  // A transactional call retried with backoff while its error is retriable.
  template <typename F>
  Status Retry(const char* what, F call) {
    int backoff_ms = 100;
    while (true) {
      TxnResult r = call();
      if (r.ok()) return Status::Ok();
      if (r.kind != TxnResult::Kind::kRetriable)
        return Status::IoError("kafka output " + spec_.topic + ": " + what + ": " + r.message);
      spdlog::warn("kafka output {}: {}: {}; retrying in {} ms", spec_.topic, what, r.message,
                   backoff_ms);
      CEPHEUS_RETURN_IF_ERROR(Sleep(backoff_ms, 0));
      backoff_ms = std::min(backoff_ms * 2, kMaxBackoffMs);
    }
  }

  Status Sleep(int ms, uint64_t id) {
    for (int waited = 0; waited < ms; waited += 50) {
      if (interrupted_.load())
        return Status::IoError("kafka output " + spec_.topic + ": stopped while " +
                               (id ? "the transaction of checkpoint " + std::to_string(id) +
                                         " could not commit; the next start sends it from the spool"
                                   : std::string("the cluster could not be reached")));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return Status::Ok();
  }

  const io::KafkaSinkSpec spec_;
  const std::string spool_dir_;
  std::atomic<bool> interrupted_{false};
  std::mutex mu_;
  // Guarded by mu_:
  std::unique_ptr<Producer> producer_;
  std::unique_ptr<Ledger> ledger_;
  std::unique_ptr<SpoolWriter> spool_;  // the current period's records
  uint64_t sent_ = 0;                   // spool bytes sent into the open transaction
  bool txn_open_ = false;
  bool broken_ = false;               // a send into the open transaction failed
  std::optional<uint64_t> prepared_;  // a period whose transaction awaits Commit
  uint64_t prepared_sent_ = 0;        // its spool bytes the open transaction holds
  std::string token_;
  uint64_t txn_count_ = 0;
  uint64_t commit_retries_ = 0;
  std::vector<io::kafka::Header> headers_;
};

}  // namespace

Result<std::unique_ptr<io::Sink>> MakeTransactionalKafkaSink(const io::KafkaSinkSpec& spec,
                                                             const KafkaOutputContext& ctx) {
  io::kafka::Properties props = spec.properties;
  const std::string id = props.count("transactional.id")
                             ? props["transactional.id"] + "." + ctx.name
                             : ctx.transactional_id;
  props["transactional.id"] = id;
  props.emplace("linger.ms", "5");
  auto producer = io::kafka::Producer::Create(props);
  if (!producer.ok()) return producer.status().WithPrefix("kafka output " + spec.topic + ": ");
  io::kafka::Properties consumer_props = spec.properties;
  consumer_props.erase("transactional.id");
  std::unique_ptr<Ledger> ledger =
      std::make_unique<GroupLedger>(consumer_props, spec.topic, "cepheus-ledger." + id);
  if (!ctx.test_ledger.empty())
    ledger = std::make_unique<FileLedger>(ctx.test_ledger, std::move(ledger));
  spdlog::info("kafka output to topic {} (exactly once: transactional.id {}, spool {}; {})",
               spec.topic, id, ctx.spool_dir, io::kafka::DescribeProperties(props));
  return std::unique_ptr<io::Sink>(new TransactionalKafkaSink(
      spec, ctx.spool_dir, std::move(producer.value()), std::move(ledger)));
}

}  // namespace cepheus::sinks
