// ExampleLoop: a loop in four steps. (1) Implement the loop's gRPC services,
// here with gRPC's callback API (no thread hop per call). (2) Say who the loop
// is: Name() and Version(). (3) In Start(), register health checks and metrics
// and start any work; an error here fails the plugin's start. (4) Return the
// services from Services(). LoopServer does the rest: the handshake, health,
// Describe, Shutdown and the /metrics endpoint.
#include "loops/example/example_loop.h"

#include <grpcpp/support/server_callback.h>
#include <prometheus/counter.h>

#include <exception>

#include "absl/strings/str_cat.h"
#include "loophost/v1/echo.grpc.pb.h"

#ifndef LH_VERSION
#error "LH_VERSION must be defined by the build"
#endif

namespace loophost::loops::example {
namespace {

// (1) Echo: sends the payload back. gRPC calls it from many threads at once;
// prometheus counters are thread-safe.
class EchoService final : public v1::Echo::CallbackService {
 public:
  void set_requests(prometheus::Counter* requests) { requests_ = requests; }

  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const v1::EchoRequest* request,
                                 v1::EchoResponse* response) override {
    requests_->Increment();
    response->set_payload(request->payload());
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  prometheus::Counter* requests_ = nullptr;  // owned by the loop's registry
};

class ExampleLoop final : public sdk::Loop {
 public:
  // (2) Who it is, for Describe and logs.
  std::string Name() const override { return "example"; }
  std::string Version() const override { return LH_VERSION; }

  // (3) Checks and metrics. prometheus-cpp throws on a bad or duplicate name:
  // catch here, the SDK deals in absl::Status.
  absl::Status Start(sdk::LoopContext& ctx) override {
    try {
      echo_.set_requests(&prometheus::BuildCounter()
                              .Name("loop_example_echo_requests_total")
                              .Help("Echo calls served.")
                              .Register(ctx.metrics)
                              .Add({}));
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("metrics: ", e.what()));
    }
    // Nothing can break an echo: the check is healthy for good. A real loop
    // calls Set again whenever the state changes; the host sees it at once.
    ctx.health.Set("example.echo", "");
    return absl::OkStatus();
  }

  // (4) Registered before the server starts serving.
  std::vector<grpc::Service*> Services() override { return {&echo_}; }

 private:
  EchoService echo_;
};

}  // namespace

std::unique_ptr<sdk::Loop> MakeExampleLoop() {
  return std::make_unique<ExampleLoop>();
}

}  // namespace loophost::loops::example
