// HttpTransportLoop (see http_transport_loop.h). The Deliver stream is a
// callback-API reactor: each batch read goes to the HttpSender in one go,
// except the deliveries that must wait for an earlier one of their subscription
// (after_previous): those queue per subscription and are posted from the
// previous one's completion, or answered skipped if it failed. Results are
// written back in batches (gRPC allows one outstanding write: what
// completes meanwhile waits and goes in the next). The reactor is held
// by a shared_ptr that the sender's callbacks share, so a result arriving after
// the RPC ended finds a live object and is dropped. Reads pause while a
// stream has `window` deliveries unanswered: gRPC flow control then pushes
// back on the host instead of the queue growing without bound.
#include "loops/http/http_transport_loop.h"

#include <grpcpp/support/server_callback.h>

#include <algorithm>
#include <deque>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/env_parse.h"
#include "common/logging.h"
#include "loophost/v1/transport.grpc.pb.h"
#include "loops/http/transport_metrics.h"

#ifndef LH_VERSION
#error "LH_VERSION must be defined by the build"
#endif

namespace loophost::loops::http {
namespace {

// A per-request timeout above this is clamped: a stopping server waits for
// CheckEndpoint calls, and a result after minutes helps nobody.
constexpr absl::Duration kMaxTimeout = absl::Seconds(60);
// Endpoints a stream remembers as valid URLs; it starts over when full.
constexpr size_t kMaxRememberedEndpoints = 65536;

std::string Lookup(const sdk::LoopEnv& env, const char* name) {
  auto it = env.find(name);
  return it == env.end() ? "" : it->second;
}

absl::Duration RequestTimeout(uint32_t timeout_ms) {
  if (timeout_ms == 0) return absl::ZeroDuration();  // the sender's default
  return std::min(absl::Milliseconds(timeout_ms), kMaxTimeout);
}

uint32_t Micros(absl::Duration d) {
  return static_cast<uint32_t>(std::clamp<int64_t>(
      absl::ToInt64Microseconds(d), 0, std::numeric_limits<uint32_t>::max()));
}

const char* OutcomeName(HttpOutcome o) {
  switch (o) {
    case HttpOutcome::kDelivered:
      return "delivered";
    case HttpOutcome::kHttpStatus:
      return "http_status";
    case HttpOutcome::kTimeout:
      return "timeout";
    case HttpOutcome::kConnectFailed:
      return "connect_failed";
    case HttpOutcome::kConnectionLost:
      return "connection_lost";
    case HttpOutcome::kFailed:
      return "failed";
  }
  return "failed";
}

class DeliverReactor final
    : public grpc::ServerBidiReactor<v1::DeliveryBatch,
                                     v1::DeliveryResultBatch>,
      public std::enable_shared_from_this<DeliverReactor> {
 public:
  DeliverReactor(HttpSender& sender, TransportMetrics& metrics, int window)
      : sender_(sender), metrics_(metrics), window_(window) {}

  // Keeps itself alive until OnDone.
  void Begin() {
    self_ = shared_from_this();
    StartRead(&reading_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the host half-closed, or the call is over
      {
        absl::MutexLock lock(&mu_);
        reads_done_ = true;
      }
      MaybeFinish();
      return;
    }
    v1::DeliveryBatch batch = std::move(reading_);
    reading_.Clear();
    bool read_more = false;
    {
      absl::MutexLock lock(&mu_);
      unanswered_ += batch.deliveries_size();
      read_more = unanswered_ < window_;
      read_paused_ = !read_more;
    }
    Submit(batch);
    if (read_more) StartRead(&reading_);
  }

  void OnWriteDone(bool ok) override {
    bool write_next = false;
    bool read_again = false;
    {
      absl::MutexLock lock(&mu_);
      unanswered_ -= writing_.results_size();
      writing_.Clear();
      if (!ok) {
        broken_ = true;
        write_in_progress_ = false;
      } else if (pending_.results_size() > 0 && !cancelled_) {
        // Everything that completed while the last write was out goes in one.
        writing_.Swap(&pending_);
        write_next = true;
      } else {
        write_in_progress_ = false;
      }
      if (read_paused_ && unanswered_ < window_ && !broken_ && !cancelled_) {
        read_paused_ = false;
        read_again = true;
      }
    }
    if (write_next) StartWrite(&writing_);
    if (read_again) StartRead(&reading_);
    MaybeFinish();
  }

  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
    }
    MaybeFinish();
  }

  void OnDone() override {
    absl::MutexLock lock(&mu_);
    finished_ = true;
    self_.reset();  // sender callbacks may still hold a reference
  }

 private:
  // One delivery on its way to the sender, with what its result needs.
  struct Outgoing {
    uint64_t id = 0;
    std::string endpoint;
    std::string subscription;
    HttpPost post;
  };

  // A subscription's deliveries in this stream: one posted at a time, the
  // rest waiting behind it; `failed` until a delivery not after_previous.
  struct SubscriptionLane {
    bool posting = false;
    bool failed = false;
    std::deque<Outgoing> waiting;
  };

  // Hands the batch's deliveries that can go now to the sender at once (one
  // wakeup of its worker); the rest wait in their subscription's lane. An
  // invalid endpoint and a delivery behind a failure are answered here.
  void Submit(v1::DeliveryBatch& batch) {
    std::vector<HttpSender::Request> requests;
    requests.reserve(batch.deliveries_size());
    std::vector<v1::DeliveryResult> answered;
    for (v1::Delivery& delivery : *batch.mutable_deliveries()) {
      const uint64_t id = delivery.delivery_id();
      if (absl::Status st = CheckEndpoint(delivery.endpoint()); !st.ok()) {
        metrics_.Rejected();
        v1::DeliveryResult result;
        result.set_delivery_id(id);
        result.set_error(absl::StrCat("endpoint \"", delivery.endpoint(),
                                      "\": ", st.message()));
        answered.push_back(std::move(result));
        absl::MutexLock lock(&mu_);
        lanes_[delivery.subscription_id()].failed = true;
        continue;
      }
      Outgoing out;
      out.id = id;
      out.endpoint = std::move(*delivery.mutable_endpoint());
      out.subscription = std::move(*delivery.mutable_subscription_id());
      out.post.url = out.endpoint;
      out.post.body = std::move(*delivery.mutable_body());
      out.post.content_type = delivery.content_type();
      out.post.timeout = RequestTimeout(delivery.timeout_ms());
      absl::MutexLock lock(&mu_);
      SubscriptionLane& lane = lanes_[out.subscription];
      if (!delivery.after_previous()) {
        lane.failed = false;
      } else if (lane.failed) {
        answered.push_back(Skipped(id));
        continue;
      }
      metrics_.Accepted();
      if (lane.posting) {
        lane.waiting.push_back(std::move(out));
      } else {
        lane.posting = true;
        requests.push_back(ToRequest(std::move(out)));
      }
    }
    for (v1::DeliveryResult& result : answered) Enqueue(std::move(result));
    if (!requests.empty()) sender_.PostAll(std::move(requests));
  }

  // CheckHttpUrl, remembering the endpoints that passed (Submit runs for one
  // read at a time, so only it touches the set).
  absl::Status CheckEndpoint(const std::string& endpoint) {
    if (valid_endpoints_.contains(endpoint)) return absl::OkStatus();
    absl::Status st = CheckHttpUrl(endpoint);
    if (st.ok()) {
      if (valid_endpoints_.size() >= kMaxRememberedEndpoints) {
        valid_endpoints_.clear();
      }
      valid_endpoints_.insert(endpoint);
    }
    return st;
  }

  static v1::DeliveryResult Skipped(uint64_t id) {
    v1::DeliveryResult result;
    result.set_delivery_id(id);
    result.set_skipped(true);
    result.set_error("not sent: an earlier delivery to the subscriber failed");
    return result;
  }

  HttpSender::Request ToRequest(Outgoing out) {
    HttpPost post = std::move(out.post);
    return {std::move(post), [self = shared_from_this(), out = std::move(out)](
                                 const HttpPostResult& r) mutable {
              self->OnPosted(std::move(out), r);
            }};
  }

  void OnPosted(Outgoing done, const HttpPostResult& r) {
    const std::string& endpoint = done.endpoint;
    const std::string& subscription = done.subscription;
    if (metrics_.Delivered(endpoint, r)) {
      if (r.outcome == HttpOutcome::kDelivered) {
        LogInfo("subscriber endpoint delivering again",
                {{"endpoint", endpoint}, {"subscription", subscription}});
      } else {
        LogWarn("subscriber endpoint failing",
                {{"endpoint", endpoint},
                 {"subscription", subscription},
                 {"outcome", OutcomeName(r.outcome)},
                 {"error", r.error}});
      }
    }
    const bool delivered = r.outcome == HttpOutcome::kDelivered;
    v1::DeliveryResult result;
    result.set_delivery_id(done.id);
    result.set_delivered(delivered);
    result.set_http_status(r.http_status);
    result.set_error(r.error);
    result.set_latency_us(Micros(r.latency));
    Enqueue(std::move(result));
    // The subscription's next delivery goes now; after a failure, none does.
    std::optional<Outgoing> next;
    std::vector<v1::DeliveryResult> skipped;
    {
      absl::MutexLock lock(&mu_);
      auto it = lanes_.find(subscription);
      if (it == lanes_.end()) return;
      SubscriptionLane& lane = it->second;
      lane.failed = lane.failed || !delivered;
      if (lane.failed) {
        for (const Outgoing& w : lane.waiting) skipped.push_back(Skipped(w.id));
        lane.waiting.clear();
      } else if (!lane.waiting.empty() && !cancelled_ && !broken_) {
        next = std::move(lane.waiting.front());
        lane.waiting.pop_front();
      }
      lane.posting = next.has_value();
      if (!lane.posting && !lane.failed) lanes_.erase(it);
    }
    for (v1::DeliveryResult& s : skipped) Enqueue(std::move(s));
    if (next) {
      HttpSender::Request request = ToRequest(*std::move(next));
      sender_.Post(std::move(request.post), std::move(request.done));
    }
  }

  // Writes the result now if no write is out, else adds it to the next batch.
  void Enqueue(v1::DeliveryResult result) {
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || broken_ || cancelled_) return;
      if (write_in_progress_) {
        *pending_.add_results() = std::move(result);
        return;
      }
      write_in_progress_ = true;
      *writing_.add_results() = std::move(result);
    }
    StartWrite(&writing_);
  }

  void MaybeFinish() {
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || write_in_progress_) return;  // a write ends first
      if (broken_ || cancelled_) {
        status = grpc::Status(grpc::StatusCode::CANCELLED, "stream ended");
      } else if (!reads_done_ || unanswered_ > 0) {
        return;
      }
      finished_ = true;
    }
    Finish(status);
  }

  HttpSender& sender_;
  TransportMetrics& metrics_;
  const int window_;
  std::shared_ptr<DeliverReactor> self_;
  v1::DeliveryBatch reading_;                         // the read in progress
  absl::flat_hash_set<std::string> valid_endpoints_;  // Submit's only

  absl::Mutex mu_;
  // The write in progress (gRPC allows one: its owner is whoever set
  // write_in_progress_), and the results for the next.
  v1::DeliveryResultBatch writing_;
  v1::DeliveryResultBatch pending_ ABSL_GUARDED_BY(mu_);
  int unanswered_ ABSL_GUARDED_BY(mu_) = 0;  // read, result not yet written
  // Subscriptions with a delivery posted or waiting, or behind a failure.
  absl::flat_hash_map<std::string, SubscriptionLane> lanes_
      ABSL_GUARDED_BY(mu_);
  bool write_in_progress_ ABSL_GUARDED_BY(mu_) = false;
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

class CheckReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit CheckReactor(v1::CheckEndpointResponse* response)
      : response_(response) {}

  void Begin(std::shared_ptr<CheckReactor> self) { self_ = std::move(self); }

  void Complete(const HttpPostResult& r) {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
      response_->set_http_status(r.http_status);
      response_->set_error(r.error);
    }
    Finish(grpc::Status::OK);
  }

  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
    }
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
  }

  void OnDone() override { self_.reset(); }

 private:
  v1::CheckEndpointResponse* const response_;  // gRPC's, valid until OnDone
  std::shared_ptr<CheckReactor> self_;
  absl::Mutex mu_;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

class TransportService final : public v1::Transport::CallbackService {
 public:
  void Attach(HttpSender* sender, TransportMetrics* metrics) {
    sender_ = sender;
    metrics_ = metrics;
  }

  grpc::ServerBidiReactor<v1::DeliveryBatch, v1::DeliveryResultBatch>* Deliver(
      grpc::CallbackServerContext* /*context*/) override {
    auto reactor = std::make_shared<DeliverReactor>(
        *sender_, *metrics_, 4 * sender_->options().max_in_flight);
    reactor->Begin();
    return reactor.get();
  }

  grpc::ServerUnaryReactor* CheckEndpoint(
      grpc::CallbackServerContext* /*context*/,
      const v1::CheckEndpointRequest* request,
      v1::CheckEndpointResponse* response) override {
    auto reactor = std::make_shared<CheckReactor>(response);
    reactor->Begin(reactor);
    if (absl::Status st = CheckHttpUrl(request->endpoint()); !st.ok()) {
      HttpPostResult r;
      r.error = absl::StrCat("endpoint \"", request->endpoint(),
                             "\": ", st.message());
      reactor->Complete(r);
      return reactor.get();
    }
    HttpPost post;
    post.url = request->endpoint();
    post.body = request->body();
    post.content_type = request->content_type();
    post.timeout = RequestTimeout(request->timeout_ms());
    sender_->Post(std::move(post),
                  [reactor](const HttpPostResult& r) { reactor->Complete(r); });
    return reactor.get();
  }

 private:
  HttpSender* sender_ = nullptr;
  TransportMetrics* metrics_ = nullptr;
};

class HttpTransportLoop final : public sdk::Loop {
 public:
  std::string Name() const override { return "http"; }
  std::string Version() const override { return LH_VERSION; }
  std::vector<std::string> Kinds() const override { return {"transport"}; }

  absl::Status Start(sdk::LoopContext& ctx) override {
    absl::StatusOr<HttpTransportConfig> config =
        ParseHttpTransportConfig(ctx.env);
    if (!config.ok()) return config.status();
    absl::StatusOr<std::unique_ptr<TransportMetrics>> metrics =
        TransportMetrics::Register(ctx.metrics);
    if (!metrics.ok()) return metrics.status();
    metrics_ = *std::move(metrics);
    sdk::HealthChecks& health = ctx.health;
    health.Set(kHealthCheck, "");
    config->sender.on_health = [&health](const std::string& error) {
      health.Set(kHealthCheck, error);
    };
    absl::StatusOr<std::unique_ptr<HttpSender>> sender =
        HttpSender::Start(config->sender);
    if (!sender.ok()) return sender.status();
    sender_ = *std::move(sender);
    service_.Attach(sender_.get(), metrics_.get());
    LogInfo("http transport ready",
            {{"transport_host", config->transport_host},
             {"timeout", absl::FormatDuration(config->sender.default_timeout)},
             {"max_in_flight", absl::StrCat(config->sender.max_in_flight)}});
    return absl::OkStatus();
  }

  std::vector<grpc::Service*> Services() override { return {&service_}; }

  // The server has stopped: no RPC runs. Requests still in flight end now.
  void Stop() override {
    if (sender_ != nullptr) sender_->Stop();
  }

 private:
  TransportService service_;
  std::unique_ptr<TransportMetrics> metrics_;  // outlives sender_'s callbacks
  std::unique_ptr<HttpSender> sender_;
};

}  // namespace

absl::StatusOr<HttpTransportConfig> ParseHttpTransportConfig(
    const sdk::LoopEnv& env) {
  HttpTransportConfig config;
  if (std::string host = Lookup(env, "TRANSPORT_HOST"); !host.empty()) {
    config.transport_host = host;
  }
  if (absl::Status st = CheckHttpUrl(config.transport_host); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TRANSPORT_HOST=", config.transport_host, ": ", st.message()));
  }
  if (std::string v = Lookup(env, "HTTP_TRANSPORT_TIMEOUT"); !v.empty()) {
    absl::StatusOr<absl::Duration> d =
        ParseDurationValue("HTTP_TRANSPORT_TIMEOUT", v);
    if (!d.ok()) return d.status();
    config.sender.default_timeout = std::min(*d, kMaxTimeout);
  }
  config.sender.ca_file = Lookup(env, "HTTP_TRANSPORT_CA_FILE");
  struct IntVar {
    const char* name;
    int64_t min;
    int* out;
  };
  for (const IntVar& var :
       {IntVar{"HTTP_TRANSPORT_MAX_IN_FLIGHT", 1, &config.sender.max_in_flight},
        IntVar{"HTTP_TRANSPORT_MAX_HOST_CONNECTIONS", 0,
               &config.sender.max_host_connections},
        IntVar{"HTTP_TRANSPORT_MAX_IDLE_CONNECTIONS", 0,
               &config.sender.max_idle_connections}}) {
    std::string v = Lookup(env, var.name);
    if (v.empty()) continue;
    absl::StatusOr<int64_t> n = ParseIntValue(var.name, v, var.min, 65536);
    if (!n.ok()) return n.status();
    *var.out = static_cast<int>(*n);
  }
  return config;
}

std::unique_ptr<sdk::Loop> MakeHttpTransportLoop() {
  return std::make_unique<HttpTransportLoop>();
}

}  // namespace loophost::loops::http
