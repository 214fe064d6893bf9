// Implementation of the event framework's test doubles (event_fakes.h).
#include "tests/testing/event_fakes.h"

#include <httplib.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace loophost::testing {

namespace pb = ::loophost::v1;

FakeServer::FakeServer(grpc::Service* service) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port_);
  builder.RegisterService(service);
  server_ = builder.BuildAndStart();
  channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                 grpc::InsecureChannelCredentials());
}

FakeServer::~FakeServer() { Shutdown(); }

void FakeServer::Shutdown() {
  if (server_ == nullptr) return;
  server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Milliseconds(100)));
  server_->Wait();
  server_.reset();
}

void FakeRolePlugins::Set(const std::string& name,
                          std::vector<std::string> kinds,
                          std::shared_ptr<grpc::Channel> channel) {
  {
    absl::MutexLock lock(&mu_);
    Entry& e = plugins_[name];
    e.kinds = std::move(kinds);
    e.serving.name = name;
    e.serving.channel = std::move(channel);
    e.serving.generation = std::make_shared<int>(0);  // a new identity
  }
  changes_.Notify();
}

void FakeRolePlugins::Remove(const std::string& name) {
  {
    absl::MutexLock lock(&mu_);
    plugins_.erase(name);
  }
  changes_.Notify();
}

std::unique_ptr<host::ServingChanges::Subscription>
FakeRolePlugins::WatchServing(std::function<void()> on_change) const {
  return changes_.Subscribe(std::move(on_change));
}

std::vector<host::ServingPlugin> FakeRolePlugins::ServingWithKind(
    absl::string_view kind) const {
  absl::MutexLock lock(&mu_);
  std::vector<host::ServingPlugin> out;
  for (const auto& [name, e] : plugins_) {
    if (std::find(e.kinds.begin(), e.kinds.end(), kind) != e.kinds.end()) {
      out.push_back(e.serving);
    }
  }
  return out;
}

std::optional<host::ServingPlugin> FakeRolePlugins::ServingNamed(
    absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  auto it = plugins_.find(std::string(name));
  if (it == plugins_.end()) return std::nullopt;
  return it->second.serving;
}

FakeEventSource::FakeEventSource(std::vector<pb::Publisher> publishers,
                                 std::vector<pb::SequencedEvent> held,
                                 uint64_t next_sequence)
    : publishers_(std::move(publishers)),
      held_(std::move(held)),
      next_sequence_(next_sequence) {}

uint64_t FakeEventSource::Push(pb::CloudEvent event) {
  absl::MutexLock lock(&mu_);
  pb::SequencedEvent e;
  e.set_sequence(next_sequence_++);
  *e.mutable_event() = std::move(event);
  held_.push_back(std::move(e));
  return held_.back().sequence();
}

void FakeEventSource::SetCurrentState(const std::string& resource,
                                      pb::CloudEvent event) {
  absl::MutexLock lock(&mu_);
  current_[resource] = std::move(event);
}

std::vector<pb::SequencedEvent> FakeEventSource::Held() const {
  absl::MutexLock lock(&mu_);
  return held_;
}

uint64_t FakeEventSource::next_sequence() const {
  absl::MutexLock lock(&mu_);
  return next_sequence_;
}

void FakeEventSource::set_ignore_after(bool ignore) {
  absl::MutexLock lock(&mu_);
  ignore_after_ = ignore;
}

uint64_t FakeEventSource::acked() const {
  absl::MutexLock lock(&mu_);
  return acked_;
}

std::vector<uint64_t> FakeEventSource::stream_requests() const {
  absl::MutexLock lock(&mu_);
  return stream_requests_;
}

bool FakeEventSource::WaitAcked(uint64_t sequence,
                                absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto done = [&]()
                  ABSL_NO_THREAD_SAFETY_ANALYSIS { return acked_ >= sequence; };
  return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

grpc::Status FakeEventSource::ListPublishers(
    grpc::ServerContext*, const pb::ListPublishersRequest*,
    pb::ListPublishersResponse* response) {
  for (const pb::Publisher& p : publishers_) *response->add_publishers() = p;
  return grpc::Status::OK;
}

grpc::Status FakeEventSource::CurrentState(
    grpc::ServerContext*, const pb::CurrentStateRequest* request,
    pb::CurrentStateResponse* response) {
  absl::MutexLock lock(&mu_);
  auto it = current_.find(request->resource_address());
  if (it == current_.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "no state for " + request->resource_address());
  }
  *response->mutable_event() = it->second;
  return grpc::Status::OK;
}

grpc::Status FakeEventSource::StreamEvents(
    grpc::ServerContext* context, const pb::StreamEventsRequest* request,
    grpc::ServerWriter<pb::SequencedEvent>* writer) {
  uint64_t cursor = request->after_sequence();
  {
    absl::MutexLock lock(&mu_);
    stream_requests_.push_back(cursor);
    if (ignore_after_) cursor = 0;
  }
  while (!context->IsCancelled()) {
    std::vector<pb::SequencedEvent> batch;
    {
      absl::MutexLock lock(&mu_);
      auto has_new = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return !held_.empty() && held_.back().sequence() > cursor;
      };
      mu_.AwaitWithTimeout(absl::Condition(&has_new), absl::Milliseconds(20));
      for (const pb::SequencedEvent& e : held_) {
        if (e.sequence() > cursor) batch.push_back(e);
      }
    }
    for (const pb::SequencedEvent& e : batch) {
      if (!writer->Write(e)) return grpc::Status::CANCELLED;
      cursor = e.sequence();
    }
  }
  return grpc::Status::CANCELLED;
}

grpc::Status FakeEventSource::AckEvents(grpc::ServerContext*,
                                        const pb::AckEventsRequest* request,
                                        pb::AckEventsResponse*) {
  absl::MutexLock lock(&mu_);
  acked_ = std::max(acked_, request->up_to_sequence());
  held_.erase(std::remove_if(held_.begin(), held_.end(),
                             [this](const pb::SequencedEvent& e)
                                 ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                   return e.sequence() <= acked_;
                                 }),
              held_.end());
  return grpc::Status::OK;
}

void FakeTransport::Script(const std::string& endpoint,
                           std::vector<Outcome> outcomes) {
  absl::MutexLock lock(&mu_);
  auto& queue = script_[endpoint];
  queue.insert(queue.end(), outcomes.begin(), outcomes.end());
}

void FakeTransport::Hold(const std::string& endpoint) {
  absl::MutexLock lock(&mu_);
  holding_[endpoint];
}

void FakeTransport::Release(const std::string& endpoint) {
  // write_mu_ first: a stream's handler cannot end while we write to it.
  absl::MutexLock write_lock(&write_mu_);
  std::vector<Parked> parked;
  {
    absl::MutexLock lock(&mu_);
    auto it = holding_.find(endpoint);
    if (it == holding_.end()) return;
    parked = std::move(it->second);
    holding_.erase(it);
  }
  for (const Parked& p : parked) {
    pb::DeliveryResultBatch batch;
    pb::DeliveryResult& result = *batch.add_results();
    result.set_delivery_id(p.delivery_id);
    result.set_delivered(true);
    result.set_http_status(204);
    std::optional<pb::Delivery> next;
    {
      absl::MutexLock lock(&mu_);
      Lane& lane = lanes_[{p.stream, p.subscription_id}];
      lane.parked = false;
      if (!lane.waiting.empty()) {
        next = std::move(lane.waiting.front());
        lane.waiting.pop_front();
      }
    }
    if (next) Send(p.stream, *std::move(next), &batch);
    p.stream->Write(batch);
  }
}

void FakeTransport::set_check_status(int status) {
  absl::MutexLock lock(&mu_);
  check_status_ = status;
}

std::vector<FakeTransport::Received> FakeTransport::received() const {
  absl::MutexLock lock(&mu_);
  return received_;
}

size_t FakeTransport::held() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [endpoint, parked] : holding_) n += parked.size();
  return n;
}

size_t FakeTransport::waiting() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [key, lane] : lanes_) n += lane.waiting.size();
  return n;
}

size_t FakeTransport::skipped() const {
  absl::MutexLock lock(&mu_);
  return skipped_;
}

size_t FakeTransport::streams() const {
  absl::MutexLock lock(&mu_);
  return streams_;
}

bool FakeTransport::WaitReceived(size_t count, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto done = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return received_.size() >= count;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

namespace {

// "http://host:port/path" -> ("http://host:port", "/path").
std::pair<std::string, std::string> SplitUrl(const std::string& url) {
  const size_t scheme = url.find("://");
  const size_t slash =
      url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (slash == std::string::npos) return {url, "/"};
  return {url.substr(0, slash), url.substr(slash)};
}

// A real POST; 0 and the error when no answer came.
std::pair<int, std::string> Post(const std::string& url,
                                 const std::string& body,
                                 const std::string& content_type,
                                 uint32_t timeout_ms) {
  auto [base, path] = SplitUrl(url);
  httplib::Client client(base);
  const auto timeout =
      std::chrono::milliseconds(timeout_ms == 0 ? 2000 : timeout_ms);
  client.set_connection_timeout(timeout);
  client.set_read_timeout(timeout);
  client.set_write_timeout(timeout);
  httplib::Result result = client.Post(
      path, body, content_type.empty() ? "application/json" : content_type);
  if (!result) return {0, httplib::to_string(result.error())};
  return {result->status, ""};
}

}  // namespace

pb::DeliveryResult FakeTransport::Answer(const pb::Delivery& d) {
  pb::DeliveryResult result;
  result.set_delivery_id(d.delivery_id());
  if (http_mode_) {
    auto [status, error] =
        Post(d.endpoint(), d.body(), d.content_type(), d.timeout_ms());
    result.set_http_status(status);
    result.set_error(error);
    result.set_delivered(status >= 200 && status < 300);
    return result;
  }
  Outcome outcome;
  {
    absl::MutexLock lock(&mu_);
    auto it = script_.find(d.endpoint());
    if (it != script_.end() && !it->second.empty()) {
      outcome = it->second.front();
      it->second.erase(it->second.begin());
    }
  }
  result.set_delivered(outcome.delivered);
  result.set_http_status(outcome.http_status);
  result.set_error(outcome.error);
  return result;
}

pb::DeliveryResult FakeTransport::Skipped(uint64_t delivery_id) {
  ++skipped_;
  pb::DeliveryResult result;
  result.set_delivery_id(delivery_id);
  result.set_skipped(true);
  result.set_error("not sent: an earlier delivery failed");
  return result;
}

void FakeTransport::Send(Stream* stream, pb::Delivery d,
                         pb::DeliveryResultBatch* results) {
  const LaneKey key{stream, d.subscription_id()};
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      received_.push_back({d, absl::Now()});
      auto it = holding_.find(d.endpoint());
      if (it != holding_.end()) {
        it->second.push_back({stream, d.delivery_id(), d.subscription_id()});
        lanes_[key].parked = true;
        return;
      }
    }
    pb::DeliveryResult result = Answer(d);
    *results->add_results() = result;
    absl::MutexLock lock(&mu_);
    Lane& lane = lanes_[key];
    if (!result.delivered()) {
      lane.failed = true;
      for (const pb::Delivery& w : lane.waiting) {
        *results->add_results() = Skipped(w.delivery_id());
      }
      lane.waiting.clear();
      return;
    }
    if (lane.waiting.empty()) return;
    d = std::move(lane.waiting.front());
    lane.waiting.pop_front();
  }
}

grpc::Status FakeTransport::Deliver(grpc::ServerContext*, Stream* stream) {
  {
    absl::MutexLock lock(&mu_);
    ++streams_;
  }
  pb::DeliveryBatch batch;
  while (stream->Read(&batch)) {
    pb::DeliveryResultBatch results;
    for (pb::Delivery& delivery : *batch.mutable_deliveries()) {
      bool go = true;
      {
        absl::MutexLock lock(&mu_);
        Lane& lane = lanes_[{stream, delivery.subscription_id()}];
        if (!delivery.after_previous()) {
          lane.failed = false;
        } else if (lane.failed) {
          *results.add_results() = Skipped(delivery.delivery_id());
          continue;
        }
        if (lane.parked || !lane.waiting.empty()) {
          lane.waiting.push_back(std::move(delivery));
          go = false;
        }
      }
      if (go) Send(stream, std::move(delivery), &results);
    }
    if (results.results_size() == 0) continue;
    absl::MutexLock lock(&write_mu_);
    stream->Write(results);
  }
  // The stream is gone: forget what was held on it.
  absl::MutexLock write_lock(&write_mu_);
  absl::MutexLock lock(&mu_);
  for (auto& [endpoint, parked] : holding_) {
    parked.erase(std::remove_if(
                     parked.begin(), parked.end(),
                     [stream](const Parked& p) { return p.stream == stream; }),
                 parked.end());
  }
  for (auto it = lanes_.begin(); it != lanes_.end();) {
    it = it->first.first == stream ? lanes_.erase(it) : std::next(it);
  }
  return grpc::Status::OK;
}

grpc::Status FakeTransport::CheckEndpoint(
    grpc::ServerContext*, const pb::CheckEndpointRequest* request,
    pb::CheckEndpointResponse* response) {
  if (http_mode_) {
    auto [status, error] = Post(request->endpoint(), request->body(),
                                request->content_type(), request->timeout_ms());
    response->set_http_status(status);
    response->set_error(error);
    return grpc::Status::OK;
  }
  absl::MutexLock lock(&mu_);
  response->set_http_status(check_status_);
  return grpc::Status::OK;
}

pb::CloudEvent MakeEvent(const std::string& id, const std::string& resource,
                         const std::string& type, const std::string& value,
                         int64_t time_unix_nanos) {
  pb::CloudEvent e;
  e.set_id(id);
  e.set_source(resource);
  e.set_spec_version("1.0");
  e.set_type(type);
  e.set_time_unix_nanos(time_unix_nanos != 0 ? time_unix_nanos
                                             : absl::ToUnixNanos(absl::Now()));
  pb::EventData* data = e.mutable_data();
  data->set_version("1.0");
  pb::EventValue* v = data->add_values();
  v->set_resource_address(resource);
  v->set_data_type("notification");
  v->set_value_type("enumeration");
  v->set_value(value);
  return e;
}

}  // namespace loophost::testing
