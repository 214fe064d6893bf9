// Test doubles for the event framework: an EventSource and a Transport served
// by real gRPC servers in the test process (127.0.0.1:0), and a RolePlugins
// whose plugins and generations the test sets. A "restart" is a new server
// (a new generation) with the old one shut down, as when a loop is killed.
// Everything here is thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "host/role_plugins.h"
#include "loophost/v1/event_source.grpc.pb.h"
#include "loophost/v1/transport.grpc.pb.h"

namespace loophost::testing {

// A gRPC server on 127.0.0.1:0 serving one service, and a channel to it.
class FakeServer {
 public:
  // `service` must outlive the server.
  explicit FakeServer(grpc::Service* service);
  ~FakeServer();  // Shutdown()
  // Cancels the calls in progress (after a short grace) and stops serving.
  void Shutdown();
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  int port() const { return port_; }

 private:
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  int port_ = 0;
};

class FakeRolePlugins : public host::RolePlugins {
 public:
  // Adds plugin `name`, or replaces it with a new generation.
  void Set(const std::string& name, std::vector<std::string> kinds,
           std::shared_ptr<grpc::Channel> channel);
  void Remove(const std::string& name);

  std::vector<host::ServingPlugin> ServingWithKind(
      absl::string_view kind) const override;
  std::optional<host::ServingPlugin> ServingNamed(
      absl::string_view name) const override;
  std::unique_ptr<host::ServingChanges::Subscription> WatchServing(
      std::function<void()> on_change) const override;

 private:
  mutable host::ServingChanges changes_;
  struct Entry {
    std::vector<std::string> kinds;
    host::ServingPlugin serving;
  };
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> plugins_ ABSL_GUARDED_BY(mu_);
};

// An event source that holds its events until acknowledged, as the contract
// asks; Held() and the constructor let a test carry them over to a "restarted"
// source, as a loop that persists its events would.
class FakeEventSource final : public loophost::v1::EventSource::Service {
 public:
  explicit FakeEventSource(std::vector<loophost::v1::Publisher> publishers,
                           std::vector<loophost::v1::SequencedEvent> held = {},
                           uint64_t next_sequence = 1);

  // Adds an event with the next sequence number; returns that number.
  uint64_t Push(loophost::v1::CloudEvent event);
  void SetCurrentState(const std::string& resource,
                       loophost::v1::CloudEvent event);
  std::vector<loophost::v1::SequencedEvent> Held() const;
  uint64_t next_sequence() const;
  uint64_t acked() const;
  // The after_sequence of every StreamEvents call so far.
  std::vector<uint64_t> stream_requests() const;
  // Answers every StreamEvents from its oldest held event, whatever
  // after_sequence says: a loop that lost its numbering.
  void set_ignore_after(bool ignore);
  // Waits until acked() >= sequence.
  bool WaitAcked(uint64_t sequence, absl::Duration timeout) const;

  grpc::Status ListPublishers(
      grpc::ServerContext* context,
      const loophost::v1::ListPublishersRequest* request,
      loophost::v1::ListPublishersResponse* response) override;
  grpc::Status CurrentState(
      grpc::ServerContext* context,
      const loophost::v1::CurrentStateRequest* request,
      loophost::v1::CurrentStateResponse* response) override;
  grpc::Status StreamEvents(
      grpc::ServerContext* context,
      const loophost::v1::StreamEventsRequest* request,
      grpc::ServerWriter<loophost::v1::SequencedEvent>* writer) override;
  grpc::Status AckEvents(grpc::ServerContext* context,
                         const loophost::v1::AckEventsRequest* request,
                         loophost::v1::AckEventsResponse* response) override;

 private:
  const std::vector<loophost::v1::Publisher> publishers_;
  mutable absl::Mutex mu_;
  std::vector<loophost::v1::SequencedEvent> held_ ABSL_GUARDED_BY(mu_);
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_);
  uint64_t acked_ ABSL_GUARDED_BY(mu_) = 0;
  bool ignore_after_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<uint64_t> stream_requests_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, loophost::v1::CloudEvent> current_ ABSL_GUARDED_BY(mu_);
};

// A transport that answers each delivery from a script (per endpoint; default:
// delivered, 204), can hold an endpoint's deliveries until released (a slow
// subscriber), or POSTs them for real (http mode, for tests with loopback
// subscribers). CheckEndpoint POSTs for real in http mode, else answers
// check_status().
class FakeTransport final : public loophost::v1::Transport::Service {
 public:
  struct Outcome {
    bool delivered = true;
    int http_status = 204;
    std::string error;
  };
  explicit FakeTransport(bool http_mode = false) : http_mode_(http_mode) {}

  // Outcomes for the next deliveries to `endpoint`, in order; then default.
  void Script(const std::string& endpoint, std::vector<Outcome> outcomes);
  void Hold(const std::string& endpoint);
  // Answers the held deliveries (delivered) and stops holding.
  void Release(const std::string& endpoint);
  void set_check_status(int status);

  // Every delivery received, in arrival order, with its arrival time.
  struct Received {
    loophost::v1::Delivery delivery;
    absl::Time at;
  };
  std::vector<Received> received() const;
  // Deliveries currently held (unanswered).
  size_t held() const;
  // Deliveries waiting behind a held one of their subscription.
  size_t waiting() const;
  // Deliveries answered skipped (behind a failure), in all.
  size_t skipped() const;
  size_t streams() const;
  bool WaitReceived(size_t count, absl::Duration timeout) const;

  grpc::Status Deliver(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<loophost::v1::DeliveryResultBatch,
                               loophost::v1::DeliveryBatch>* stream) override;
  grpc::Status CheckEndpoint(
      grpc::ServerContext* context,
      const loophost::v1::CheckEndpointRequest* request,
      loophost::v1::CheckEndpointResponse* response) override;

 private:
  using Stream = grpc::ServerReaderWriter<loophost::v1::DeliveryResultBatch,
                                          loophost::v1::DeliveryBatch>;
  struct Parked {
    Stream* stream;
    uint64_t delivery_id;
    std::string subscription_id;
  };
  // A subscription's deliveries on one stream, posted one at a time as the
  // real transport does: the rest wait behind a held one and are skipped
  // after a failure (after_previous).
  struct Lane {
    bool failed = false;
    bool parked = false;
    std::deque<loophost::v1::Delivery> waiting;
  };
  using LaneKey = std::pair<Stream*, std::string>;
  loophost::v1::DeliveryResult Answer(const loophost::v1::Delivery& d);
  // Posts `d` (parks it if its endpoint is held), then what waits behind it
  // in its lane; their results go into `results`.
  void Send(Stream* stream, loophost::v1::Delivery d,
            loophost::v1::DeliveryResultBatch* results);
  loophost::v1::DeliveryResult Skipped(uint64_t delivery_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const bool http_mode_;
  mutable absl::Mutex mu_;
  absl::Mutex write_mu_;  // one writer at a time per stream (sync API)
  std::map<std::string, std::vector<Outcome>> script_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<Parked>> holding_ ABSL_GUARDED_BY(mu_);
  std::map<LaneKey, Lane> lanes_ ABSL_GUARDED_BY(mu_);
  std::vector<Received> received_ ABSL_GUARDED_BY(mu_);
  int check_status_ ABSL_GUARDED_BY(mu_) = 204;
  size_t streams_ ABSL_GUARDED_BY(mu_) = 0;
  size_t skipped_ ABSL_GUARDED_BY(mu_) = 0;
};

// A CloudEvent as the PTP loop would send it: one enumeration value.
loophost::v1::CloudEvent MakeEvent(const std::string& id,
                                   const std::string& resource,
                                   const std::string& type,
                                   const std::string& value,
                                   int64_t time_unix_nanos = 0);

}  // namespace loophost::testing
