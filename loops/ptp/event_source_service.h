// EventSourceService: loophost.v1.EventSource for the PTP monitor, on gRPC's
// callback API. ListPublishers and CurrentState answer from the factory and a
// state callback; StreamEvents writes the EventLog's held events after the
// caller's sequence number, then each new one as it is appended, until the
// caller cancels or Shutdown(); AckEvents lets the log drop what the host
// stored. Thread-safe; the log and the callback must outlive it.
#pragma once

#include <functional>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "loophost/v1/event_source.grpc.pb.h"
#include "loops/ptp/event_log.h"
#include "loops/ptp/ptp_event_factory.h"

namespace loophost::loops::ptp {

class EventStreamReactor;

class EventSourceService final : public v1::EventSource::CallbackService {
 public:
  // The current state of a resource as an event (with an id).
  using CurrentStateFn =
      std::function<absl::StatusOr<v1::CloudEvent>(PtpResource)>;

  // `after_ack` (optional) runs after each AckEvents.
  EventSourceService(const PtpEventFactory& factory, EventLog& log,
                     CurrentStateFn current_state,
                     std::function<void()> after_ack = nullptr);
  ~EventSourceService() override;

  // Ends every open stream (OK) and refuses new ones (UNAVAILABLE), so that
  // no stream holds the server open at shutdown.
  void Shutdown();

  grpc::ServerUnaryReactor* ListPublishers(
      grpc::CallbackServerContext* context,
      const v1::ListPublishersRequest* request,
      v1::ListPublishersResponse* response) override;
  grpc::ServerUnaryReactor* CurrentState(
      grpc::CallbackServerContext* context,
      const v1::CurrentStateRequest* request,
      v1::CurrentStateResponse* response) override;
  grpc::ServerWriteReactor<v1::SequencedEvent>* StreamEvents(
      grpc::CallbackServerContext* context,
      const v1::StreamEventsRequest* request) override;
  grpc::ServerUnaryReactor* AckEvents(grpc::CallbackServerContext* context,
                                      const v1::AckEventsRequest* request,
                                      v1::AckEventsResponse* response) override;

 private:
  friend class EventStreamReactor;
  bool AddStream(EventStreamReactor* reactor);
  void RemoveStream(EventStreamReactor* reactor);

  const PtpEventFactory& factory_;
  EventLog& log_;
  CurrentStateFn current_state_;
  std::function<void()> after_ack_;
  absl::Mutex mu_;
  absl::flat_hash_set<EventStreamReactor*> streams_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace loophost::loops::ptp
