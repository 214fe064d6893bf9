// HttpSender (see http_sender.h). Other threads only append to `submitted_`
// under mu_ and post one wakeup to the worker's io_context; everything else
// belongs to the Engine on the worker thread. A request on a kept-alive plain
// connection is written at once, without a trip round the event loop, and its
// answer read when epoll reports the socket readable (no epoll_ctl: a wait
// for readability would cost one each time). An idle plain connection keeps
// a one-byte read out, so a peer that closes it is noticed and the
// connection dropped. Timeouts are checked by one timer that ticks only while
// requests are in flight.
#include "loops/http/http_sender.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <deque>
#include <limits>
#include <list>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/thread_name.h"

#ifndef LH_VERSION
#error "LH_VERSION must be defined by the build"
#endif

namespace loophost::loops::http {
namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using ErrorCode = boost::system::error_code;

constexpr char kDefaultContentType[] = "application/json";
constexpr char kUserAgent[] = "loophost-http/" LH_VERSION;
// Kept-alive connections by default: one per subscriber endpoint for up to
// this many subscribers (a connection opened per POST costs more than the
// POST).
constexpr int kDefaultIdleConnections = 4096;
// Parsed endpoint URLs kept; the cache starts over when it is full.
constexpr size_t kMaxCachedUrls = 65536;
// How often, at most, the worker checks deadlines while requests are in flight.
constexpr auto kLongestTick = std::chrono::milliseconds(25);

// A response body that is read to its end and dropped: subscribers' answers
// carry nothing the transport uses.
struct DiscardBody {
  struct value_type {};
  class reader {
   public:
    template <bool kIsRequest, class Fields>
    reader(bhttp::header<kIsRequest, Fields>& /*header*/,
           value_type& /*body*/) {}
    void init(const boost::optional<std::uint64_t>& /*length*/, ErrorCode& ec) {
      ec = {};
    }
    template <class Buffers>
    std::size_t put(const Buffers& buffers, ErrorCode& ec) {
      ec = {};
      return asio::buffer_size(buffers);
    }
    void finish(ErrorCode& ec) { ec = {}; }
  };
};

// Where a request failed, for its outcome and message.
enum class Stage { kResolve, kConnect, kHandshake, kWrite, kRead };

bool IsConnectionLoss(const ErrorCode& ec) {
  return ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted ||
         ec == bhttp::error::end_of_stream ||
         ec == bhttp::error::partial_message ||
         ec == asio::ssl::error::stream_truncated;
}

// A TLS client context that trusts `ca_file`, or the system's CAs when "".
absl::StatusOr<asio::ssl::context> MakeTlsContext(const std::string& ca_file) {
  asio::ssl::context tls(asio::ssl::context::tls_client);
  ErrorCode ec;
  if (ca_file.empty()) {
    tls.set_default_verify_paths(ec);
  } else {
    tls.load_verify_file(ca_file, ec);
  }
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("CA certificates ", ca_file.empty() ? "(system)" : ca_file,
                     ": ", ec.message()));
  }
  return tls;
}

HttpPostResult Failure(HttpOutcome outcome, std::string error) {
  HttpPostResult result;
  result.outcome = outcome;
  result.error = std::move(error);
  return result;
}

}  // namespace

class HttpSender::Engine {
 public:
  Engine(HttpSender& owner, std::optional<asio::ssl::context> tls)
      : owner_(owner),
        tls_(std::move(tls)),
        tick_(io_),
        max_idle_(owner.options_.max_idle_connections > 0
                      ? owner.options_.max_idle_connections
                      : std::max(kDefaultIdleConnections,
                                 owner.options_.max_in_flight)),
        tick_period_(std::clamp<Clock::duration>(
            absl::ToChronoNanoseconds(owner.options_.stall_after / 4),
            std::chrono::milliseconds(1), kLongestTick)) {}

  // The worker thread's body: until Shutdown.
  void Run() {
    auto keep_running = asio::make_work_guard(io_);
    io_.run();
  }
  // From any thread: the worker takes what was submitted.
  void Wake() {
    asio::post(io_, [this] { Intake(); });
  }
  // From any thread: the worker fails everything and returns from Run.
  void Shutdown() {
    asio::post(io_, [this] { FailAllAndStop(); });
  }

 private:
  struct Job {
    Pending pending;
    std::shared_ptr<const HttpEndpoint> endpoint;
    bool retried = false;  // sent again after a kept-alive connection died
  };

  // One connection to an origin, carrying one request at a time.
  struct Connection {
    Connection(asio::io_context& io, std::shared_ptr<const HttpEndpoint> ep)
        : endpoint(std::move(ep)), socket(io) {}

    // Calls fn with the stream requests go over: TLS or the plain socket.
    template <class Fn>
    void WithStream(Fn&& fn) {
      if (tls) {
        fn(*tls);
      } else {
        fn(socket);
      }
    }

    std::shared_ptr<const HttpEndpoint> endpoint;  // of the first request
    tcp::socket socket;
    std::optional<tcp::resolver> resolver;  // while resolving a name
    std::optional<asio::ssl::stream<tcp::socket&>> tls;
    std::optional<Job> job;  // the request in flight
    Clock::time_point deadline;
    bool opened_now = false;  // this request opened the connection
    bool connected = false;   // its TCP connection was established
    bool reused = false;      // has answered a request before this one
    bool closed = false;      // no handler acts on it any more
    uint64_t generation = 0;  // bumped per request; older handlers ignore
    bool watched = false;     // idle, with a wait for readable out
    std::list<Connection*>::iterator lru;  // idle only
    bhttp::request<bhttp::string_body> request;
    boost::beast::flat_buffer buffer;
    std::optional<bhttp::request_serializer<bhttp::string_body>> serializer;
    std::optional<bhttp::response_parser<DiscardBody>> parser;
  };
  using ConnectionPtr = std::shared_ptr<Connection>;

  struct Origin {
    std::vector<ConnectionPtr> idle;  // most recently used last
    int open = 0;
    std::deque<Job> waiting;  // over max_host_connections
  };

  const HttpSenderOptions& options() const { return owner_.options_; }

  void Intake() {
    for (Pending& p : owner_.TakeSubmitted()) queue_.push_back(std::move(p));
    Pump();
  }

  // Starts queued requests while slots are free, then publishes the counts.
  void Pump() {
    while (in_flight_ < options().max_in_flight && !queue_.empty()) {
      Pending p = std::move(queue_.front());
      queue_.pop_front();
      Start(std::move(p));
    }
    owner_.Publish(in_flight_, static_cast<int>(queue_.size()), opened_);
    opened_ = 0;
  }

  std::shared_ptr<const HttpEndpoint> Endpoint(const std::string& url,
                                               absl::Status* error) {
    auto it = endpoints_.find(url);
    if (it != endpoints_.end()) return it->second;
    absl::StatusOr<HttpEndpoint> parsed = ParseHttpUrl(url);
    if (!parsed.ok()) {
      *error = parsed.status();
      return nullptr;
    }
    if (endpoints_.size() >= kMaxCachedUrls) endpoints_.clear();
    auto ep = std::make_shared<const HttpEndpoint>(*std::move(parsed));
    endpoints_.emplace(url, ep);
    return ep;
  }

  void Start(Pending p) {
    absl::Status error;
    std::shared_ptr<const HttpEndpoint> ep = Endpoint(p.post.url, &error);
    if (ep == nullptr) {
      Job job{std::move(p), nullptr};
      Report(job, Failure(HttpOutcome::kFailed,
                          absl::StrCat("URL \"", job.pending.post.url,
                                       "\": ", error.message())));
      return;
    }
    ++in_flight_;
    Dispatch(Job{std::move(p), std::move(ep)});
  }

  // A job that holds a slot: onto a kept-alive connection, a new one, or the
  // origin's wait line.
  void Dispatch(Job job) {
    Origin& origin = origins_[job.endpoint->origin];
    if (!origin.idle.empty()) {
      ConnectionPtr conn = std::move(origin.idle.back());
      origin.idle.pop_back();
      idle_lru_.erase(conn->lru);
      Send(conn, std::move(job));
      return;
    }
    if (options().max_host_connections > 0 &&
        origin.open >= options().max_host_connections) {
      origin.waiting.push_back(std::move(job));
      return;
    }
    Open(origin, std::move(job));
  }

  void Begin(const ConnectionPtr& conn, Job job) {
    const absl::Duration timeout =
        job.pending.post.timeout > absl::ZeroDuration()
            ? job.pending.post.timeout
            : options().default_timeout;
    conn->deadline = Clock::now() + absl::ToChronoNanoseconds(timeout);
    conn->job = std::move(job);
    ++conn->generation;
    busy_.insert(conn);
    ArmTick();
  }

  void Open(Origin& origin, Job job) {
    ++origin.open;
    auto conn = std::make_shared<Connection>(io_, job.endpoint);
    conn->opened_now = true;
    Begin(conn, std::move(job));
    const HttpEndpoint& ep = *conn->endpoint;
    const uint64_t gen = conn->generation;
    auto on_connect = [this, conn, gen](const ErrorCode& ec) {
      if (Stale(*conn, gen)) return;
      if (ec) return Fail(conn, Stage::kConnect, ec);
      Connected(conn);
    };
    ErrorCode not_numeric;
    const asio::ip::address address =
        asio::ip::make_address(ep.host, not_numeric);
    if (!not_numeric) {
      conn->socket.async_connect(
          tcp::endpoint(address, static_cast<uint16_t>(std::stoi(ep.port))),
          std::move(on_connect));
      return;
    }
    conn->resolver.emplace(io_);
    conn->resolver->async_resolve(
        ep.host, ep.port,
        [this, conn, gen, on_connect = std::move(on_connect)](
            const ErrorCode& ec, const tcp::resolver::results_type& results) {
          if (Stale(*conn, gen)) return;
          conn->resolver.reset();
          if (ec) return Fail(conn, Stage::kResolve, ec);
          asio::async_connect(
              conn->socket, results,
              [on_connect](const ErrorCode& connect_ec, const tcp::endpoint&) {
                on_connect(connect_ec);
              });
        });
  }

  void Connected(const ConnectionPtr& conn) {
    ++opened_;
    conn->connected = true;
    ErrorCode ignored;
    conn->socket.set_option(tcp::no_delay(true), ignored);
    conn->socket.non_blocking(true, ignored);  // for Write's first try
    if (!conn->endpoint->tls) return Write(conn);
    const HttpEndpoint& ep = *conn->endpoint;
    if (!tls_) {
      // The system's CAs, read when the first https endpoint needs them:
      // the bundle takes tens of milliseconds to load.
      absl::StatusOr<asio::ssl::context> tls = MakeTlsContext("");
      if (!tls.ok()) {
        return Finish(
            conn,
            Failure(HttpOutcome::kFailed, std::string(tls.status().message())),
            /*keep_alive=*/false);
      }
      tls_.emplace(*std::move(tls));
    }
    conn->tls.emplace(conn->socket, *tls_);
    ErrorCode not_numeric;
    asio::ip::make_address(ep.host, not_numeric);
    if (not_numeric) {  // SNI names a host, never an address
      SSL_set_tlsext_host_name(conn->tls->native_handle(), ep.host.c_str());
    }
    conn->tls->set_verify_mode(asio::ssl::verify_peer);
    conn->tls->set_verify_callback(asio::ssl::host_name_verification(ep.host));
    const uint64_t gen = conn->generation;
    conn->tls->async_handshake(asio::ssl::stream_base::client,
                               [this, conn, gen](const ErrorCode& ec) {
                                 if (Stale(*conn, gen)) return;
                                 if (ec) {
                                   return Fail(conn, Stage::kHandshake, ec);
                                 }
                                 Write(conn);
                               });
  }

  // A kept-alive connection takes its next request.
  void Send(const ConnectionPtr& conn, Job job) {
    conn->opened_now = false;
    if (conn->watched) {
      conn->watched = false;
      ErrorCode ignored;
      conn->socket.cancel(ignored);  // the idle wait; no system call
    }
    Begin(conn, std::move(job));
    Write(conn);
  }

  void Write(const ConnectionPtr& conn) {
    Job& job = *conn->job;
    HttpPost& post = job.pending.post;
    const HttpEndpoint& ep = *job.endpoint;
    auto& req = conn->request;
    req = {};
    req.method(bhttp::verb::post);
    req.target(ep.target);
    req.version(11);
    req.set(bhttp::field::host, ep.host_header);
    req.set(bhttp::field::user_agent, kUserAgent);
    req.set(bhttp::field::content_type, post.content_type.empty()
                                            ? kDefaultContentType
                                            : post.content_type);
    req.body() = std::move(post.body);
    req.prepare_payload();
    conn->serializer.emplace(req);
    if (!conn->tls) {
      // Straight away: a request fits the empty send buffer of a connection
      // that carries one request at a time, and this saves a trip round
      // the event loop.
      ErrorCode ec;
      while (!ec && !conn->serializer->is_done()) {
        bhttp::write_some(conn->socket, *conn->serializer, ec);
      }
      if (!ec) return Read(conn);
      if (ec != asio::error::would_block) return Fail(conn, Stage::kWrite, ec);
    }
    const uint64_t gen = conn->generation;
    conn->WithStream([&](auto& stream) {
      bhttp::async_write(stream, *conn->serializer,
                         [this, conn, gen](const ErrorCode& ec, std::size_t) {
                           if (Stale(*conn, gen)) return;
                           if (ec) return Fail(conn, Stage::kWrite, ec);
                           Read(conn);
                         });
    });
  }

  // Reads the answer. On a plain connection: waits until the socket is
  // readable, then receives what has come (Asio's own read would first try a
  // receive at once, which finds nothing: the subscriber cannot have answered
  // a request just sent). Over TLS: Beast's read.
  void Read(const ConnectionPtr& conn) {
    conn->serializer.reset();
    conn->parser.emplace();
    // The body is discarded, and the request's timeout bounds its reading.
    // (Not boost::none: Beast 1.74 then refuses a body that comes after the
    // header in a later receive.)
    conn->parser->body_limit(std::numeric_limits<std::uint64_t>::max());
    conn->parser->eager(true);  // the body parsed in the header's pass
    if (!conn->tls) {
      if (conn->buffer.size() > 0) return ReadAvailable(conn);
      return AwaitAnswer(conn);
    }
    const uint64_t gen = conn->generation;
    bhttp::async_read(*conn->tls, conn->buffer, *conn->parser,
                      [this, conn, gen](const ErrorCode& ec, std::size_t) {
                        if (Stale(*conn, gen)) return;
                        if (ec) return Fail(conn, Stage::kRead, ec);
                        Answered(conn);
                      });
  }

  void AwaitAnswer(const ConnectionPtr& conn) {
    const uint64_t gen = conn->generation;
    conn->socket.async_wait(tcp::socket::wait_read,
                            [this, conn, gen](const ErrorCode& ec) {
                              if (Stale(*conn, gen)) return;
                              if (ec) return Fail(conn, Stage::kRead, ec);
                              ReadAvailable(conn);
                            });
  }

  // Parses what the (non-blocking) socket holds; waits again for the rest.
  void ReadAvailable(const ConnectionPtr& conn) {
    while (!conn->parser->is_done()) {
      ErrorCode ec;
      bhttp::read_some(conn->socket, conn->buffer, *conn->parser, ec);
      if (ec == asio::error::would_block) return AwaitAnswer(conn);
      if (ec) return Fail(conn, Stage::kRead, ec);
    }
    Answered(conn);
  }

  void Answered(const ConnectionPtr& conn) {
    const auto& response = conn->parser->get();
    HttpPostResult result;
    result.http_status = static_cast<int>(response.result_int());
    if (result.http_status >= 200 && result.http_status <= 299) {
      result.outcome = HttpOutcome::kDelivered;
    } else {
      result.outcome = HttpOutcome::kHttpStatus;
      result.error = absl::StrCat("HTTP ", result.http_status);
    }
    const bool keep_alive = response.keep_alive();
    conn->parser.reset();
    Finish(conn, std::move(result), keep_alive);
  }

  static bool Stale(const Connection& conn, uint64_t gen) {
    return conn.closed || conn.generation != gen;
  }

  void Fail(const ConnectionPtr& conn, Stage stage, const ErrorCode& ec) {
    Job& job = *conn->job;
    // A kept-alive connection the peer closed meanwhile: once more on a new
    // one, as long as no answer had begun.
    const bool nothing_answered =
        stage == Stage::kWrite ||
        (stage == Stage::kRead && (!conn->parser || !conn->parser->got_some()));
    if (conn->reused && !job.retried && nothing_answered &&
        IsConnectionLoss(ec)) {
      Job again = std::move(job);
      again.retried = true;
      conn->job.reset();
      Close(conn);
      Origin& origin = origins_[again.endpoint->origin];
      Open(origin, std::move(again));
      return;
    }
    const HttpEndpoint& ep = *job.endpoint;
    HttpPostResult result;
    switch (stage) {
      case Stage::kResolve:
        result = Failure(HttpOutcome::kConnectFailed,
                         absl::StrCat("could not resolve host ", ep.host, " (",
                                      ec.message(), ")"));
        break;
      case Stage::kConnect:
        result =
            Failure(HttpOutcome::kConnectFailed,
                    absl::StrCat("failed to connect to ", ep.host, " port ",
                                 ep.port, " (", ec.message(), ")"));
        break;
      case Stage::kHandshake:
        result = Failure(HttpOutcome::kFailed,
                         absl::StrCat("TLS handshake with ", ep.host, ":",
                                      ep.port, " failed (", ec.message(), ")"));
        break;
      case Stage::kWrite:
      case Stage::kRead:
        result = IsConnectionLoss(ec)
                     ? Failure(HttpOutcome::kConnectionLost,
                               absl::StrCat("connection lost before a "
                                            "complete answer (",
                                            ec.message(), ")"))
                     : Failure(HttpOutcome::kFailed,
                               absl::StrCat(stage == Stage::kWrite
                                                ? "sending failed ("
                                                : "bad answer (",
                                            ec.message(), ")"));
        break;
    }
    Finish(conn, std::move(result), /*keep_alive=*/false);
  }

  // The request on `conn` is over: its slot is free, the connection goes
  // idle (or to its origin's next waiting job) or is closed.
  void Finish(const ConnectionPtr& conn, HttpPostResult result,
              bool keep_alive) {
    Job job = *std::move(conn->job);
    conn->job.reset();
    busy_.erase(conn);
    --in_flight_;
    result.connections_opened = conn->opened_now && conn->connected ? 1 : 0;
    if (keep_alive && !stopping_) {
      conn->reused = true;
      Origin& origin = origins_[conn->endpoint->origin];
      if (!origin.waiting.empty()) {
        Job next = std::move(origin.waiting.front());
        origin.waiting.pop_front();
        Send(conn, std::move(next));
      } else {
        Idle(origin, conn);
      }
    } else {
      Close(conn);
    }
    Report(job, std::move(result));
    Pump();
    // After what the callback submitted (the subscription's next delivery,
    // taken by the Intake it posted) has had the connection.
    if (!to_watch_.empty() && !watch_posted_) {
      watch_posted_ = true;
      asio::post(io_, [this] {
        watch_posted_ = false;
        WatchIdle();
      });
    }
  }

  void Report(Job& job, HttpPostResult result) {
    result.latency = absl::FromChrono(Clock::now() - job.pending.posted_at);
    Callback done = std::move(job.pending.done);
    job.pending = Pending{};  // frees the body now
    done(std::move(result));
  }

  void Idle(Origin& origin, const ConnectionPtr& conn) {
    origin.idle.push_back(conn);
    idle_lru_.push_back(conn.get());
    conn->lru = std::prev(idle_lru_.end());
    if (!conn->tls) to_watch_.push_back(conn);  // by WatchIdle, if still idle
    if (static_cast<int>(idle_lru_.size()) > max_idle_) {
      Connection* oldest = idle_lru_.front();
      Origin& its = origins_[oldest->endpoint->origin];
      auto it = std::find_if(
          its.idle.begin(), its.idle.end(),
          [oldest](const ConnectionPtr& c) { return c.get() == oldest; });
      if (it != its.idle.end()) Close(ConnectionPtr(*it));
    }
  }

  // Plain connections gone idle get a wait for readable: the peer closing
  // one (or sending what nobody asked for) ends it, and the connection is
  // dropped. Sending on it cancels the wait. Armed once the requests
  // submitted meanwhile have been started, so a connection that carries the
  // next request at once is not watched: Asio's wait costs an epoll_ctl.
  void WatchIdle() {
    for (const ConnectionPtr& conn : to_watch_) {
      if (conn->closed || conn->job || conn->watched) continue;
      conn->watched = true;
      const uint64_t gen = conn->generation;
      conn->socket.async_wait(
          tcp::socket::wait_read, [this, conn, gen](const ErrorCode& ec) {
            if (ec == asio::error::operation_aborted || Stale(*conn, gen)) {
              return;
            }
            Close(conn);
          });
    }
    to_watch_.clear();
  }

  // Closes `conn` for good; an origin's waiting job may open a connection in
  // its place.
  void Close(const ConnectionPtr& conn) {
    if (conn->closed) return;
    conn->closed = true;
    ++conn->generation;
    ErrorCode ignored;
    if (conn->resolver) conn->resolver->cancel();
    conn->socket.close(ignored);
    busy_.erase(conn);
    Origin& origin = origins_[conn->endpoint->origin];
    --origin.open;
    auto it = std::find(origin.idle.begin(), origin.idle.end(), conn);
    if (it != origin.idle.end()) {
      origin.idle.erase(it);
      idle_lru_.erase(conn->lru);
    }
    if (!stopping_ && !origin.waiting.empty()) {
      Job next = std::move(origin.waiting.front());
      origin.waiting.pop_front();
      Open(origin, std::move(next));
    }
  }

  // The deadline check runs only while something is in flight.
  void ArmTick() {
    if (tick_armed_) return;
    tick_armed_ = true;
    tick_.expires_after(tick_period_);
    tick_.async_wait([this](const ErrorCode& ec) {
      tick_armed_ = false;
      if (ec || stopping_) return;
      Tick();
    });
  }

  void Tick() {
    const Clock::time_point now = Clock::now();
    std::vector<ConnectionPtr> expired;
    for (const ConnectionPtr& conn : busy_) {
      if (conn->deadline <= now) expired.push_back(conn);
    }
    for (const ConnectionPtr& conn : expired) {
      const absl::Duration timeout =
          absl::FromChrono(now - conn->job->pending.posted_at);
      Finish(conn,
             Failure(HttpOutcome::kTimeout,
                     absl::StrCat("operation timed out after ",
                                  absl::ToInt64Milliseconds(timeout),
                                  " milliseconds")),
             /*keep_alive=*/false);
    }
    if (expired.empty()) {
      owner_.Publish(in_flight_, static_cast<int>(queue_.size()), opened_);
      opened_ = 0;
    }
    if (in_flight_ > 0) ArmTick();
  }

  void FailAllAndStop() {
    stopping_ = true;
    std::vector<Job> jobs;
    std::vector<ConnectionPtr> all(busy_.begin(), busy_.end());
    for (auto& [key, origin] : origins_) {
      all.insert(all.end(), origin.idle.begin(), origin.idle.end());
      for (Job& job : origin.waiting) jobs.push_back(std::move(job));
      origin.waiting.clear();
    }
    for (const ConnectionPtr& conn : all) {
      if (conn->job) jobs.push_back(*std::move(conn->job));
      conn->job.reset();
      Close(conn);
    }
    for (Pending& p : queue_) jobs.push_back(Job{std::move(p), nullptr});
    queue_.clear();
    for (Pending& p : owner_.TakeSubmitted()) {
      jobs.push_back(Job{std::move(p), nullptr});
    }
    in_flight_ = 0;
    owner_.Publish(0, 0, opened_);
    for (Job& job : jobs) {
      Report(job, Failure(HttpOutcome::kFailed, "transport stopped"));
    }
    tick_.cancel();
    io_.stop();
  }

  HttpSender& owner_;
  // Declared first, destroyed last: the handlers it still holds own
  // connections, whose sockets belong to it.
  asio::io_context io_{1};
  std::optional<asio::ssl::context> tls_;  // made by the first https request
  asio::steady_timer tick_;
  const int max_idle_;
  const Clock::duration tick_period_;
  bool tick_armed_ = false;
  bool stopping_ = false;
  std::deque<Pending> queue_;
  int in_flight_ = 0;   // with a connection, or waiting for one of its origin
  int64_t opened_ = 0;  // since the last Publish
  std::unordered_map<std::string, std::shared_ptr<const HttpEndpoint>>
      endpoints_;
  std::unordered_map<std::string, Origin> origins_;
  std::unordered_set<ConnectionPtr> busy_;
  std::list<Connection*> idle_lru_;      // least recently used first
  std::vector<ConnectionPtr> to_watch_;  // gone idle, for WatchIdle
  bool watch_posted_ = false;
};

absl::StatusOr<std::unique_ptr<HttpSender>> HttpSender::Start(
    HttpSenderOptions options) {
  if (options.max_in_flight < 1) {
    return absl::InvalidArgumentError("max_in_flight must be at least 1");
  }
  if (options.default_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("default_timeout must be positive");
  }
  // A CA file the operator named is read now, so that a bad one fails the
  // start.
  std::optional<boost::asio::ssl::context> tls;
  if (!options.ca_file.empty()) {
    absl::StatusOr<boost::asio::ssl::context> made =
        MakeTlsContext(options.ca_file);
    if (!made.ok()) return made.status();
    tls.emplace(*std::move(made));
  }
  std::unique_ptr<HttpSender> sender(new HttpSender(std::move(options)));
  sender->engine_ = std::make_unique<Engine>(*sender, std::move(tls));
  {
    absl::MutexLock lock(&sender->mu_);
    sender->last_turn_ = absl::Now();
  }
  HttpSender* self = sender.get();
  sender->worker_ = std::thread([self] {
    NameThisThread("http-sender");
    self->engine_->Run();
  });
  if (self->options_.on_health) {
    sender->watchdog_ = std::thread([self] {
      NameThisThread("http-watchdog");
      self->Watchdog();
    });
  }
  return sender;
}

HttpSender::HttpSender(HttpSenderOptions options)
    : options_(std::move(options)) {}

HttpSender::~HttpSender() { Stop(); }

void HttpSender::Post(HttpPost post, Callback done) {
  std::vector<Request> one;
  one.push_back({std::move(post), std::move(done)});
  PostAll(std::move(one));
}

void HttpSender::PostAll(std::vector<Request> requests) {
  const Clock::time_point now = Clock::now();
  {
    absl::MutexLock lock(&mu_);
    if (!stop_) {
      for (Request& r : requests) {
        submitted_.push_back({std::move(r.post), std::move(r.done), now});
      }
      if (!wake_pending_) {
        wake_pending_ = true;
        engine_->Wake();
      }
      return;
    }
  }
  for (Request& r : requests) {
    r.done(Failure(HttpOutcome::kFailed, "transport stopped"));
  }
}

std::vector<HttpSender::Pending> HttpSender::TakeSubmitted() {
  std::vector<Pending> taken;
  absl::MutexLock lock(&mu_);
  taken.swap(submitted_);
  wake_pending_ = false;
  return taken;
}

void HttpSender::Publish(int in_flight, int queued, int64_t opened) {
  absl::MutexLock lock(&mu_);
  published_in_flight_ = in_flight;
  published_queued_ = queued;
  connections_opened_ += opened;
  last_turn_ = absl::Now();
}

void HttpSender::Stop() {
  std::call_once(stop_once_, [this] {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    if (engine_ != nullptr) engine_->Shutdown();
    if (worker_.joinable()) worker_.join();
    if (watchdog_.joinable()) watchdog_.join();
    engine_.reset();
  });
}

HttpSender::Stats HttpSender::GetStats() const {
  absl::MutexLock lock(&mu_);
  return Stats{published_in_flight_,
               published_queued_ + static_cast<int>(submitted_.size()),
               connections_opened_};
}

void HttpSender::Watchdog() {
  const absl::Duration interval = std::clamp(
      options_.stall_after / 5, absl::Milliseconds(10), absl::Seconds(1));
  auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stop_ || !submitted_.empty() || published_in_flight_ > 0 ||
           published_queued_ > 0;
  };
  std::string reported;
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    // No work and nothing reported: no timer either; Post() or Stop() changes
    // the condition. A reported stall is cleared on the next tick even when
    // the work that was stuck has all finished by then.
    if (reported.empty()) mu_.Await(absl::Condition(&has_work));
    if (stop_) break;
    mu_.AwaitWithTimeout(absl::Condition(&stop_), interval);
    if (stop_) break;
    const absl::Duration since = absl::Now() - last_turn_;
    std::string error;
    if (has_work() && since > options_.stall_after) {
      // The same text while it lasts: every change is a health event.
      error = absl::StrCat("worker has not come round its loop for over ",
                           absl::FormatDuration(options_.stall_after),
                           " while requests wait");
    }
    if (error != reported) {
      reported = error;
      mu_.Unlock();
      options_.on_health(error);
      mu_.Lock();
    }
  }
}

}  // namespace loophost::loops::http
