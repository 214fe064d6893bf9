// HttpSender against real loopback HTTP servers: 2xx, non-2xx, refused,
// timeout, keep-alive reuse, a kept-alive connection the peer dropped, a dead
// subscriber beside a live one, the concurrency bounds, https with a private
// CA (certificates made by the openssl tool), stop, and the watchdog. Waits
// are conditions with deadlines; nothing sleeps.
#include "loops/http/http_sender.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "loops/http/loopback_http_server.h"
#include "loops/http/refusing_port.h"
#include "tests/testing/child_process.h"

namespace loophost::loops::http {
namespace {

using ::testing::AllOf;
using ::testing::Each;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr absl::Duration kWait = absl::Seconds(20);

// Results by tag, in the order they arrived. Declare it before the sender:
// the sender's Stop() reports whatever is still pending to it.
class Results {
 public:
  HttpSender::Callback Add(std::string tag) {
    return [this, tag = std::move(tag)](HttpPostResult r) {
      absl::MutexLock lock(&mu_);
      order_.push_back(tag);
      results_.push_back(std::move(r));
    };
  }
  bool WaitFor(size_t n, absl::Duration timeout = kWait) {
    absl::MutexLock lock(&mu_);
    auto done = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return results_.size() >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  }
  std::vector<HttpPostResult> results() {
    absl::MutexLock lock(&mu_);
    return results_;
  }
  std::vector<std::string> order() {
    absl::MutexLock lock(&mu_);
    return order_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);
  std::vector<HttpPostResult> results_ ABSL_GUARDED_BY(mu_);
};

// A bare HTTP/1.1 server on 127.0.0.1:0, one connection at a time, for
// peers no HTTP library plays: it answers a connection's first request with
// `answer` (204, keep-alive, by default) when `answer_first`, and closes the
// connection without an answer at the next request (or at the first, without
// `answer_first`). An answer of several pieces is written piece by piece,
// 20 ms apart, so that they arrive apart. With `close_when_idle`, it closes
// its side right after the first answer, as a server whose keep-alive ran
// out, and counts the connections the client then closed too.
class DroppingServer {
 public:
  explicit DroppingServer(
      bool answer_first,
      std::vector<std::string> answer = {"HTTP/1.1 204 No Content\r\n\r\n"},
      bool close_when_idle = false)
      : answer_first_(answer_first),
        answer_(std::move(answer)),
        close_when_idle_(close_when_idle),
        listening_(listener_.Listen()) {
    thread_ = std::thread([this] { Serve(); });
  }
  ~DroppingServer() {
    ::shutdown(listener_.fd(), SHUT_RDWR);  // ends accept()
    if (int fd = conn_fd_.load(); fd >= 0) ::shutdown(fd, SHUT_RDWR);
    thread_.join();
  }
  std::string Url() const { return listener_.Url(); }
  int port() const { return listening_ ? listener_.port() : 0; }
  int connections() const { return connections_.load(); }
  int requests() const { return requests_.load(); }
  int closed_by_client() const { return closed_by_client_.load(); }

 private:
  void Serve() {
    while (true) {
      const int fd = ::accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      conn_fd_ = fd;
      ++connections_;
      for (int n = 0; ReadRequest(fd); ++n) {
        ++requests_;
        if (n > 0 || !answer_first_) break;
        if (!WriteAnswer(fd)) break;
        if (close_when_idle_) {
          ::shutdown(fd, SHUT_WR);
          char byte;
          if (::read(fd, &byte, 1) == 0) ++closed_by_client_;
          break;
        }
      }
      conn_fd_ = -1;
      ::close(fd);
    }
  }
  bool WriteAnswer(int fd) const {
    for (size_t i = 0; i < answer_.size(); ++i) {
      if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      absl::string_view rest = answer_[i];
      while (!rest.empty()) {
        const ssize_t n = ::write(fd, rest.data(), rest.size());
        if (n <= 0) return false;
        rest.remove_prefix(static_cast<size_t>(n));
      }
    }
    return true;
  }
  // Reads one request: the header, then Content-Length bytes of body.
  static bool ReadRequest(int fd) {
    std::string data;
    char buf[4096];
    size_t header_end = std::string::npos;
    size_t body_length = 0;
    while (header_end == std::string::npos ||
           data.size() < header_end + 4 + body_length) {
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n <= 0) return false;
      data.append(buf, static_cast<size_t>(n));
      if (header_end != std::string::npos) continue;
      header_end = data.find("\r\n\r\n");
      if (header_end == std::string::npos) continue;
      for (absl::string_view line : absl::StrSplit(
               absl::string_view(data).substr(0, header_end), "\r\n")) {
        if (absl::StartsWithIgnoreCase(line, "content-length:")) {
          (void)absl::SimpleAtoi(line.substr(15), &body_length);
        }
      }
    }
    return true;
  }

  const bool answer_first_;
  const std::vector<std::string> answer_;
  const bool close_when_idle_;
  RefusingPort listener_;
  const bool listening_;
  std::atomic<int> conn_fd_{-1};
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::atomic<int> closed_by_client_{0};
  std::thread thread_;
};

// A certificate for `names` (subjectAltName entries such as "DNS:localhost")
// and its key, made by the openssl tool in a temporary directory.
struct TestCertificate {
  static std::optional<TestCertificate> Make(const std::string& names) {
    auto dir = loophost::testing::TempDir::Create("lh-tls");
    if (!dir.ok()) return std::nullopt;
    TestCertificate c{*std::move(dir), "", ""};
    c.cert = c.dir.Join("cert.pem");
    c.key = c.dir.Join("key.pem");
    loophost::testing::ChildOptions run;
    run.argv = {"/usr/bin/openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                c.key,
                "-out",
                c.cert,
                "-days",
                "2",
                "-subj",
                "/CN=loophost test",
                "-addext",
                absl::StrCat("subjectAltName=", names)};
    auto result = loophost::testing::RunToExit(run, c.dir, kWait);
    if (!result.status.ExitedWith(0)) {
      ADD_FAILURE() << "openssl req: " << result.err;
      return std::nullopt;
    }
    return c;
  }
  loophost::testing::TempDir dir;
  std::string cert;  // PEM; also the CA file that trusts it
  std::string key;
};

std::unique_ptr<HttpSender> StartSender(HttpSenderOptions options = {}) {
  auto sender = HttpSender::Start(std::move(options));
  EXPECT_TRUE(sender.ok()) << sender.status();
  return sender.ok() ? *std::move(sender) : nullptr;
}

HttpPost Post(std::string url, std::string body = R"({"id":"1"})",
              absl::Duration timeout = absl::ZeroDuration()) {
  HttpPost post;
  post.url = std::move(url);
  post.body = std::move(body);
  post.timeout = timeout;
  return post;
}

// Posts to `url` and waits for the result (the next one `results` gets).
HttpPostResult PostAndWait(HttpSender& sender, Results& results,
                           const std::string& url) {
  const size_t n = results.results().size() + 1;
  sender.Post(Post(url), results.Add(absl::StrCat(n)));
  if (!results.WaitFor(n)) {
    ADD_FAILURE() << "no result for POST " << n << " to " << url;
    return {};
  }
  return results.results()[n - 1];
}

TEST(CheckHttpUrlTest, Table) {
  struct Case {
    const char* url;
    const char* error;  // "" = valid
  };
  const std::vector<Case> cases = {
      {"http://localhost:9085", ""},
      {"https://consumer.example.com/event", ""},
      {"HTTP://127.0.0.1:80/x?y=1", ""},
      {"amqp://localhost:5672", "scheme \"amqp\" is not http or https"},
      {"ftp://x/", "scheme \"ftp\""},
      {"not a url", "not a URL"},
      {"", "not a URL"},
      {"http://", "not a URL"},
  };
  for (const Case& c : cases) {
    absl::Status st = CheckHttpUrl(c.url);
    if (c.error[0] == '\0') {
      EXPECT_TRUE(st.ok()) << c.url << ": " << st;
    } else {
      EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.url;
      EXPECT_THAT(std::string(st.message()), HasSubstr(c.error)) << c.url;
    }
  }
}

TEST(ParseHttpUrlTest, PartsForTheRequest) {
  struct Case {
    const char* url;
    bool tls;
    const char* host;
    const char* port;
    const char* host_header;
    const char* target;
    const char* origin;
  };
  const std::vector<Case> cases = {
      {"http://localhost:9085", false, "localhost", "9085", "localhost:9085",
       "/", "http://localhost:9085"},
      {"https://consumer.example.com/event", true, "consumer.example.com",
       "443", "consumer.example.com", "/event",
       "https://consumer.example.com:443"},
      {"HTTP://127.0.0.1/x/y?z=1&w=2", false, "127.0.0.1", "80", "127.0.0.1",
       "/x/y?z=1&w=2", "http://127.0.0.1:80"},
      {"http://[::1]:8080/ack", false, "::1", "8080", "[::1]:8080", "/ack",
       "http://[::1]:8080"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<HttpEndpoint> ep = ParseHttpUrl(c.url);
    ASSERT_TRUE(ep.ok()) << c.url << ": " << ep.status();
    EXPECT_EQ(ep->tls, c.tls) << c.url;
    EXPECT_EQ(ep->host, c.host) << c.url;
    EXPECT_EQ(ep->port, c.port) << c.url;
    EXPECT_EQ(ep->host_header, c.host_header) << c.url;
    EXPECT_EQ(ep->target, c.target) << c.url;
    EXPECT_EQ(ep->origin, c.origin) << c.url;
  }
  absl::StatusOr<HttpEndpoint> with_user =
      ParseHttpUrl("http://user:secret@localhost:9085/");
  EXPECT_EQ(with_user.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(with_user.status().message()),
              HasSubstr("credentials"));
}

TEST(HttpSenderTest, DeliversWithContentTypeAndBody) {
  LoopbackHttpServer server(204);
  Results results;
  auto sender = StartSender();
  sender->Post(Post(server.Url("/event"), R"({"id":"a"})"), results.Add("a"));
  ASSERT_TRUE(results.WaitFor(1));
  const HttpPostResult r = results.results()[0];
  EXPECT_EQ(r.outcome, HttpOutcome::kDelivered);
  EXPECT_EQ(r.http_status, 204);
  EXPECT_EQ(r.error, "");
  EXPECT_GT(r.latency, absl::ZeroDuration());
  ASSERT_THAT(server.received(), SizeIs(1));
  EXPECT_EQ(server.received()[0].path, "/event");
  EXPECT_EQ(server.received()[0].body, R"({"id":"a"})");
  EXPECT_EQ(server.received()[0].content_type, "application/json");
}

TEST(HttpSenderTest, EmptyPostAndOtherContentType) {
  LoopbackHttpServer server(204);
  Results results;
  auto sender = StartSender();
  HttpPost post = Post(server.Url(), "");
  post.content_type = "text/plain";
  sender->Post(std::move(post), results.Add("empty"));
  ASSERT_TRUE(results.WaitFor(1));
  EXPECT_EQ(results.results()[0].http_status, 204);
  ASSERT_THAT(server.received(), SizeIs(1));
  EXPECT_EQ(server.received()[0].body, "");
  EXPECT_EQ(server.received()[0].content_type, "text/plain");
}

TEST(HttpSenderTest, NonSuccessStatusIsNotDelivered) {
  struct Case {
    int status;
    HttpOutcome want;
  };
  for (const Case& c :
       {Case{200, HttpOutcome::kDelivered}, Case{201, HttpOutcome::kDelivered},
        Case{299, HttpOutcome::kDelivered}, Case{302, HttpOutcome::kHttpStatus},
        Case{404, HttpOutcome::kHttpStatus},
        Case{500, HttpOutcome::kHttpStatus},
        Case{503, HttpOutcome::kHttpStatus}}) {
    LoopbackHttpServer server(c.status);
    Results results;
    auto sender = StartSender();
    sender->Post(Post(server.Url()), results.Add("x"));
    ASSERT_TRUE(results.WaitFor(1));
    const HttpPostResult r = results.results()[0];
    EXPECT_EQ(r.outcome, c.want) << c.status;
    EXPECT_EQ(r.http_status, c.status);
    EXPECT_EQ(r.error, c.want == HttpOutcome::kDelivered
                           ? ""
                           : absl::StrCat("HTTP ", c.status));
  }
}

TEST(HttpSenderTest, ConnectionRefused) {
  RefusingPort refusing;
  ASSERT_NE(refusing.port(), 0);
  Results results;
  auto sender = StartSender();
  sender->Post(Post(refusing.Url()), results.Add("x"));
  ASSERT_TRUE(results.WaitFor(1));
  const HttpPostResult r = results.results()[0];
  EXPECT_EQ(r.outcome, HttpOutcome::kConnectFailed);
  EXPECT_EQ(r.http_status, 0);
  EXPECT_THAT(r.error, HasSubstr("refused"));
}

TEST(HttpSenderTest, TimeoutOfAHeldRequest) {
  LoopbackHttpServer server(204);
  server.Hold();
  Results results;
  auto sender = StartSender();
  sender->Post(Post(server.Url(), "{}", absl::Milliseconds(200)),
               results.Add("x"));
  ASSERT_TRUE(results.WaitFor(1));
  const HttpPostResult r = results.results()[0];
  EXPECT_EQ(r.outcome, HttpOutcome::kTimeout);
  EXPECT_EQ(r.http_status, 0);
  EXPECT_THAT(r.error, HasSubstr("timed out"));
  EXPECT_GE(r.latency, absl::Milliseconds(200));
}

TEST(HttpSenderTest, DefaultTimeoutApplies) {
  LoopbackHttpServer server(204);
  server.Hold();
  HttpSenderOptions options;
  options.default_timeout = absl::Milliseconds(100);
  Results results;
  auto sender = StartSender(options);
  sender->Post(Post(server.Url()), results.Add("x"));
  ASSERT_TRUE(results.WaitFor(1));
  EXPECT_EQ(results.results()[0].outcome, HttpOutcome::kTimeout);
}

TEST(HttpSenderTest, ReusesOneKeepAliveConnection) {
  LoopbackHttpServer server(204);
  Results results;
  auto sender = StartSender();
  constexpr int kPosts = 20;
  // One after the other, as the host sends to one subscriber.
  for (int i = 0; i < kPosts; ++i) {
    sender->Post(Post(server.Url()), results.Add(absl::StrCat(i)));
    ASSERT_TRUE(results.WaitFor(i + 1));
  }
  EXPECT_EQ(server.connections(), 1);
  EXPECT_EQ(server.requests(), kPosts);
  const auto all = results.results();
  EXPECT_EQ(all[0].connections_opened, 1);
  for (int i = 1; i < kPosts; ++i) EXPECT_EQ(all[i].connections_opened, 0);
  EXPECT_EQ(sender->GetStats().connections_opened, 1);
}

TEST(HttpSenderTest, DeadSubscribersDoNotDelayALiveOne) {
  LoopbackHttpServer live(204);
  LoopbackHttpServer held(204);
  held.Hold();
  RefusingPort hung;  // accepts into its backlog, never reads
  ASSERT_TRUE(hung.Listen());
  RefusingPort refused;
  Results results;
  auto sender = StartSender();
  constexpr absl::Duration kDeadTimeout = absl::Seconds(10);
  for (int i = 0; i < 5; ++i) {
    sender->Post(Post(held.Url(), "{}", kDeadTimeout), results.Add("held"));
    sender->Post(Post(hung.Url(), "{}", kDeadTimeout), results.Add("hung"));
  }
  ASSERT_TRUE(held.WaitForActive(5, kWait));
  // 50 deliveries to the live subscriber, each after the previous result.
  constexpr int kLive = 50;
  size_t seen = 0;
  for (int i = 0; i < kLive; ++i) {
    sender->Post(Post(live.Url()), results.Add("live"));
    sender->Post(Post(refused.Url()), results.Add("refused"));
    seen += 2;
    ASSERT_TRUE(results.WaitFor(seen));
  }
  // Every live and refused result came while all ten dead requests were
  // still waiting for their 10 s timeout.
  const std::vector<std::string> order = results.order();
  ASSERT_THAT(order, SizeIs(seen));
  EXPECT_THAT(order, Each(::testing::AnyOf("live", "refused")));
  for (const HttpPostResult& r : results.results()) {
    EXPECT_TRUE(r.outcome == HttpOutcome::kDelivered ||
                r.outcome == HttpOutcome::kConnectFailed);
    EXPECT_LT(r.latency, kDeadTimeout / 2);
  }
  EXPECT_EQ(live.requests(), kLive);
  EXPECT_TRUE(loophost::testing::WaitFor(
      [&] { return sender->GetStats().in_flight == 10; }, kWait,
      "the 10 dead requests still in flight"));
}

TEST(HttpSenderTest, BoundsRequestsInFlight) {
  LoopbackHttpServer server(204);
  server.Hold();
  HttpSenderOptions options;
  options.max_in_flight = 2;
  Results results;
  auto sender = StartSender(options);
  for (int i = 0; i < 6; ++i) {
    sender->Post(Post(server.Url(absl::StrCat("/", i))),
                 results.Add(absl::StrCat(i)));
  }
  ASSERT_TRUE(server.WaitForActive(2, kWait));
  // The worker publishes its counts each turn; once it has taken all six in,
  // two run and four wait.
  ASSERT_TRUE(loophost::testing::WaitFor(
      [&] {
        HttpSender::Stats s = sender->GetStats();
        return s.in_flight == 2 && s.queued == 4;
      },
      kWait, "2 in flight and 4 queued"));
  EXPECT_EQ(server.requests(), 2);
  server.Release();
  ASSERT_TRUE(results.WaitFor(6));
  EXPECT_EQ(server.max_concurrent(), 2);
  EXPECT_THAT(results.results(),
              Each(Field(&HttpPostResult::outcome, HttpOutcome::kDelivered)));
  // FIFO: the paths arrive in the order they were posted, two at a time.
  const auto received = server.received();
  ASSERT_THAT(received, SizeIs(6));
  std::vector<std::string> later;
  for (int i = 2; i < 6; ++i) later.push_back(received[i].path);
  EXPECT_THAT(later, ::testing::UnorderedElementsAre("/2", "/3", "/4", "/5"));
}

TEST(HttpSenderTest, AKeptAliveConnectionThePeerDroppedIsRetriedOnANewOne) {
  DroppingServer server(/*answer_first=*/true);
  ASSERT_NE(server.port(), 0);
  Results results;
  auto sender = StartSender();
  sender->Post(Post(server.Url()), results.Add("first"));
  ASSERT_TRUE(results.WaitFor(1));
  // Sent on the kept-alive connection, which the server closes unanswered:
  // sent again, once, on a new one.
  sender->Post(Post(server.Url()), results.Add("second"));
  ASSERT_TRUE(results.WaitFor(2));
  const auto all = results.results();
  EXPECT_EQ(all[0].outcome, HttpOutcome::kDelivered);
  EXPECT_EQ(all[1].outcome, HttpOutcome::kDelivered) << all[1].error;
  EXPECT_EQ(all[1].connections_opened, 1);
  EXPECT_EQ(server.requests(), 3);
  EXPECT_EQ(server.connections(), 2);
}

TEST(HttpSenderTest, AnIdleConnectionThePeerClosesIsClosedToo) {
  DroppingServer server(/*answer_first=*/true,
                        {"HTTP/1.1 204 No Content\r\n\r\n"},
                        /*close_when_idle=*/true);
  ASSERT_NE(server.port(), 0);
  Results results;
  auto sender = StartSender();
  EXPECT_EQ(PostAndWait(*sender, results, server.Url()).outcome,
            HttpOutcome::kDelivered);
  // Idle, the connection is watched: the server's close is seen and
  // answered with the sender's own, with no request to find it out.
  EXPECT_TRUE(
      loophost::testing::WaitFor([&] { return server.closed_by_client() == 1; },
                                 kWait, "the sender closing its side"));
  // The next request goes on a new connection, not on the closed one.
  const HttpPostResult next = PostAndWait(*sender, results, server.Url());
  EXPECT_EQ(next.outcome, HttpOutcome::kDelivered) << next.error;
  EXPECT_EQ(next.connections_opened, 1);
  EXPECT_EQ(server.requests(), 2);
  EXPECT_EQ(server.connections(), 2);
}

TEST(HttpSenderTest, AnAnswerWithABodyThatArrivesInPiecesIsReadWhole) {
  DroppingServer server(
      /*answer_first=*/true,
      {"HTTP/1.1 200 OK\r\nContent-Le", "ngth: 2\r\n\r\no", "k"});
  ASSERT_NE(server.port(), 0);
  Results results;
  auto sender = StartSender();
  const HttpPostResult r = PostAndWait(*sender, results, server.Url());
  EXPECT_EQ(r.outcome, HttpOutcome::kDelivered) << r.error;
  EXPECT_EQ(r.http_status, 200);
}

TEST(HttpSenderTest, ALargeErrorBodyIsReadToItsEnd) {
  // 300 kB: more than one receive, and more than the socket holds at once.
  const std::string half(150000, 'x');
  DroppingServer server(
      /*answer_first=*/true,
      {"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 300000\r\n\r\n",
       half, half});
  ASSERT_NE(server.port(), 0);
  Results results;
  auto sender = StartSender();
  const HttpPostResult r = PostAndWait(*sender, results, server.Url());
  EXPECT_EQ(r.outcome, HttpOutcome::kHttpStatus) << r.error;
  EXPECT_EQ(r.http_status, 503);
  EXPECT_EQ(r.connections_opened, 1);
  // The whole body was taken off the connection: kept alive, it carries the
  // next request (which this server drops, so that goes once more on a new
  // connection).
  EXPECT_EQ(PostAndWait(*sender, results, server.Url()).http_status, 503);
  EXPECT_EQ(server.requests(), 3);
  EXPECT_EQ(server.connections(), 2);
}

TEST(HttpSenderTest, ANewConnectionClosedUnansweredIsLost) {
  DroppingServer server(/*answer_first=*/false);
  ASSERT_NE(server.port(), 0);
  Results results;
  auto sender = StartSender();
  const HttpPostResult r = PostAndWait(*sender, results, server.Url());
  EXPECT_EQ(r.outcome, HttpOutcome::kConnectionLost);
  EXPECT_EQ(r.http_status, 0);
  EXPECT_THAT(r.error, HasSubstr("connection lost"));
  EXPECT_EQ(server.requests(), 1);  // not sent again
}

TEST(HttpSenderTest, BoundsConnectionsPerOrigin) {
  LoopbackHttpServer slow(204);
  slow.Hold();
  LoopbackHttpServer other(204);
  HttpSenderOptions options;
  options.max_host_connections = 1;
  Results results;
  auto sender = StartSender(options);
  for (int i = 0; i < 3; ++i) {
    sender->Post(Post(slow.Url(absl::StrCat("/", i))),
                 results.Add(absl::StrCat("slow ", i)));
  }
  ASSERT_TRUE(slow.WaitForActive(1, kWait));
  // The other origin is not held up by the two that wait for slow's one
  // connection.
  sender->Post(Post(other.Url()), results.Add("other"));
  ASSERT_TRUE(results.WaitFor(1));
  EXPECT_THAT(results.order(), ::testing::ElementsAre("other"));
  EXPECT_EQ(slow.requests(), 1);
  slow.Release();
  ASSERT_TRUE(results.WaitFor(4));
  EXPECT_THAT(results.order(),
              ::testing::ElementsAre("other", "slow 0", "slow 1", "slow 2"));
  EXPECT_EQ(slow.max_concurrent(), 1);
  EXPECT_EQ(slow.connections(), 1);
}

TEST(HttpSenderTest, HttpsWithAPrivateCa) {
  auto cert = TestCertificate::Make("DNS:localhost");
  ASSERT_TRUE(cert.has_value());
  auto server = LoopbackHttpServer::Tls(cert->cert, cert->key);
  HttpSenderOptions options;
  options.ca_file = cert->cert;
  Results results;
  auto sender = StartSender(options);
  const std::string url =
      absl::StrCat("https://localhost:", server->port(), "/event");
  for (int i = 0; i < 3; ++i) {
    sender->Post(Post(url, absl::StrCat(R"({"id":")", i, R"("})")),
                 results.Add(absl::StrCat(i)));
    ASSERT_TRUE(results.WaitFor(i + 1));
  }
  const auto all = results.results();
  EXPECT_THAT(all,
              Each(Field(&HttpPostResult::outcome, HttpOutcome::kDelivered)));
  EXPECT_EQ(all[0].connections_opened, 1);
  EXPECT_EQ(all[2].connections_opened, 0);  // the TLS session is kept
  ASSERT_THAT(server->received(), SizeIs(3));
  EXPECT_EQ(server->received()[2].body, R"({"id":"2"})");
  EXPECT_EQ(server->connections(), 1);
  sender.reset();  // before the server: see LoopbackHttpServer
}

TEST(HttpSenderTest, HttpsRefusesAnUntrustedOrMisnamedCertificate) {
  auto cert = TestCertificate::Make("DNS:localhost");
  ASSERT_TRUE(cert.has_value());
  auto server = LoopbackHttpServer::Tls(cert->cert, cert->key);
  HttpSenderOptions trusting;
  trusting.ca_file = cert->cert;
  Results results;
  auto system_ca = StartSender();  // the system's CAs do not know it
  system_ca->Post(Post(absl::StrCat("https://localhost:", server->port())),
                  results.Add("untrusted"));
  auto private_ca = StartSender(trusting);  // the name is not 127.0.0.1's
  private_ca->Post(Post(absl::StrCat("https://127.0.0.1:", server->port())),
                   results.Add("misnamed"));
  ASSERT_TRUE(results.WaitFor(2));
  for (const HttpPostResult& r : results.results()) {
    EXPECT_EQ(r.outcome, HttpOutcome::kFailed);
    EXPECT_THAT(r.error, HasSubstr("TLS handshake"));
    EXPECT_THAT(r.error, HasSubstr("certificate verify failed"));
  }
  EXPECT_EQ(server->requests(), 0);
  system_ca.reset();
  private_ca.reset();
}

TEST(HttpSenderTest, StartRefusesAnUnreadableCaFile) {
  HttpSenderOptions options;
  options.ca_file = "/nonexistent/ca.pem";
  auto sender = HttpSender::Start(options);
  ASSERT_FALSE(sender.ok());
  EXPECT_EQ(sender.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(sender.status().message()),
              HasSubstr("/nonexistent/ca.pem"));
}

TEST(HttpSenderTest, StopFailsWhatIsLeftAndLaterPosts) {
  LoopbackHttpServer server(204);
  server.Hold();
  Results results;
  auto sender = StartSender();
  sender->Post(Post(server.Url()), results.Add("in flight"));
  ASSERT_TRUE(server.WaitForActive(1, kWait));
  sender->Stop();
  ASSERT_TRUE(results.WaitFor(1));
  EXPECT_EQ(results.results()[0].outcome, HttpOutcome::kFailed);
  EXPECT_EQ(results.results()[0].error, "transport stopped");
  sender->Post(Post(server.Url()), results.Add("after stop"));
  ASSERT_TRUE(results.WaitFor(2, absl::ZeroDuration()));
  EXPECT_EQ(results.results()[1].error, "transport stopped");
}

TEST(HttpSenderTest, WatchdogReportsAStuckWorker) {
  LoopbackHttpServer server(204);
  absl::Mutex mu;
  std::vector<std::string> reports;
  HttpSenderOptions options;
  options.stall_after = absl::Milliseconds(100);
  options.on_health = [&](const std::string& error) {
    absl::MutexLock lock(&mu);
    reports.push_back(error);
  };
  absl::Notification unblock;
  Results results;
  auto sender = StartSender(options);
  // A callback that blocks the worker while a second request waits.
  sender->Post(Post(server.Url()), [&](const HttpPostResult&) {
    unblock.WaitForNotificationWithTimeout(kWait);
  });
  sender->Post(Post(server.Url()), results.Add("second"));
  {
    absl::MutexLock lock(&mu);
    auto reported = [&]() { return !reports.empty(); };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&reported), kWait));
    EXPECT_THAT(reports[0], HasSubstr("has not come round"));
  }
  unblock.Notify();
  ASSERT_TRUE(results.WaitFor(1));
  absl::MutexLock lock(&mu);
  auto healthy = [&]() { return reports.size() >= 2; };
  ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&healthy), kWait));
  EXPECT_EQ(reports[1], "");
}

}  // namespace
}  // namespace loophost::loops::http
