// Implementation of event_source_service.h. Lock order: the service's mu_,
// then a stream's mu_, then the EventLog's. A stream's reactions (OnDone,
// which deletes it) run on gRPC's threads, never inline in StartWrite or
// Finish, so a stream may be closed while the service's mu_ is held.
#include "loops/ptp/event_source_service.h"

#include "absl/strings/str_cat.h"
namespace loophost::loops::ptp {
namespace {

grpc::Status ToGrpcStatus(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      std::string(s.message()));
}

}  // namespace

// One StreamEvents call. Deletes itself in OnDone, after leaving the service
// and the log's listeners.
class EventStreamReactor final
    : public grpc::ServerWriteReactor<v1::SequencedEvent>,
      public EventLog::Listener {
 public:
  EventStreamReactor(EventSourceService& service, uint64_t after)
      : service_(service), cursor_(after) {
    service_.log_.AddListener(this);
    if (!service_.AddStream(this)) {
      Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down"));
    }
    Drive();
  }

  void OnAppended() override { Drive(); }

  void Close(grpc::Status status) {
    {
      absl::MutexLock lock(&mu_);
      if (finish_requested_) return;
      finish_requested_ = true;
      finish_status_ = std::move(status);
    }
    Drive();
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok && !finish_requested_) {
        finish_requested_ = true;
        finish_status_ =
            grpc::Status(grpc::StatusCode::CANCELLED, "write failed");
      }
    }
    Drive();
  }

  void OnCancel() override { Close(grpc::Status::CANCELLED); }

  void OnDone() override {
    service_.log_.RemoveListener(this);
    service_.RemoveStream(this);
    delete this;
  }

 private:
  void Drive() {
    enum { kNothing, kWrite, kFinish } action = kNothing;
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (writing_ || finished_) return;
      if (!finish_requested_ && service_.log_.Next(cursor_, &message_)) {
        cursor_ = message_.sequence();
        writing_ = true;
        action = kWrite;
      } else if (finish_requested_) {
        finished_ = true;
        status = finish_status_;
        action = kFinish;
      }
    }
    if (action == kWrite) StartWrite(&message_);
    if (action == kFinish) Finish(status);
  }

  EventSourceService& service_;
  absl::Mutex mu_;
  uint64_t cursor_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);
  v1::SequencedEvent message_;  // owned by the write in flight
};

EventSourceService::EventSourceService(const PtpEventFactory& factory,
                                       EventLog& log,
                                       CurrentStateFn current_state,
                                       std::function<void()> after_ack)
    : factory_(factory),
      log_(log),
      current_state_(std::move(current_state)),
      after_ack_(std::move(after_ack)) {}

EventSourceService::~EventSourceService() { Shutdown(); }

void EventSourceService::Shutdown() {
  absl::MutexLock lock(&mu_);
  shut_down_ = true;
  for (EventStreamReactor* r : streams_) r->Close(grpc::Status::OK);
}

bool EventSourceService::AddStream(EventStreamReactor* reactor) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return false;
  streams_.insert(reactor);
  return true;
}

void EventSourceService::RemoveStream(EventStreamReactor* reactor) {
  absl::MutexLock lock(&mu_);
  streams_.erase(reactor);
}

grpc::ServerUnaryReactor* EventSourceService::ListPublishers(
    grpc::CallbackServerContext* context, const v1::ListPublishersRequest*,
    v1::ListPublishersResponse* response) {
  for (v1::Publisher& p : factory_.Publishers())
    *response->add_publishers() = std::move(p);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* EventSourceService::CurrentState(
    grpc::CallbackServerContext* context,
    const v1::CurrentStateRequest* request,
    v1::CurrentStateResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  PtpResource resource;
  if (!factory_.FindResource(request->resource_address(), &resource)) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::NOT_FOUND,
                     absl::StrCat("no publisher for resource \"",
                                  request->resource_address(), "\"")));
    return reactor;
  }
  absl::StatusOr<v1::CloudEvent> event = current_state_(resource);
  if (!event.ok()) {
    reactor->Finish(ToGrpcStatus(event.status()));
    return reactor;
  }
  *response->mutable_event() = std::move(*event);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<v1::SequencedEvent>* EventSourceService::StreamEvents(
    grpc::CallbackServerContext*, const v1::StreamEventsRequest* request) {
  return new EventStreamReactor(*this, request->after_sequence());
}

grpc::ServerUnaryReactor* EventSourceService::AckEvents(
    grpc::CallbackServerContext* context, const v1::AckEventsRequest* request,
    v1::AckEventsResponse*) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = log_.Ack(request->up_to_sequence());
  if (after_ack_) after_ack_();
  reactor->Finish(status.ok() ? grpc::Status::OK : ToGrpcStatus(status));
  return reactor;
}

}  // namespace loophost::loops::ptp
