// CurlSender (see curl_sender.h). One worker thread owns the multi handle and
// every easy handle; other threads only append to `submitted_` under mu_ and
// wake the worker through an eventfd. The worker drives libcurl with its
// socket interface (curl_multi_socket_action) over its own epoll set, so a
// wakeup costs in proportion to the sockets that are ready, not to all the
// transfers in flight. Easy handles are pooled: a reused handle keeps its
// common options, and connections live in the multi handle's cache, so they
// outlive the transfers that opened them.
#include "loops/http/curl_sender.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/thread_name.h"

#ifndef LH_VERSION
#error "LH_VERSION must be defined by the build"
#endif

namespace loophost::loops::http {
namespace {

// What libcurl's options and infos take and give: a C long.
using CurlLong = long;  // NOLINT(google-runtime-int)

constexpr char kDefaultContentType[] = "application/json";
// While requests are in flight the worker comes round at least this often, so
// that the watchdog can tell a busy worker from a stuck one.
constexpr int kBusyPollMs = 1000;
constexpr int kMaxEvents = 256;  // per epoll_wait
// Kept-alive connections cached by default: one per subscriber endpoint for
// up to this many subscribers (a connection opened per POST costs more than
// the POST).
constexpr CurlLong kDefaultIdleConnections = 4096;

// The sender whose worker runs on this thread: a Post from a completion
// callback needs no wakeup, the worker looks at the queue before it sleeps.
thread_local const CurlSender* current_worker = nullptr;

size_t DiscardBody(char* /*data*/, size_t size, size_t count, void* /*user*/) {
  return size * count;
}

HttpOutcome OutcomeOf(CURLcode code) {
  switch (code) {
    case CURLE_OK:
      return HttpOutcome::kDelivered;
    case CURLE_OPERATION_TIMEDOUT:
      return HttpOutcome::kTimeout;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return HttpOutcome::kConnectFailed;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
      return HttpOutcome::kConnectionLost;
    default:
      return HttpOutcome::kFailed;
  }
}

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

struct CurlSender::Transfer {
  CURL* easy = nullptr;
  Pending pending;
  char error[CURL_ERROR_SIZE] = {};

  ~Transfer() {
    if (easy != nullptr) curl_easy_cleanup(easy);
  }
};

absl::Status CheckHttpUrl(absl::string_view url) {
  std::unique_ptr<CURLU, void (*)(CURLU*)> u(curl_url(), curl_url_cleanup);
  if (u == nullptr) return absl::ResourceExhaustedError("curl_url: no memory");
  const std::string text(url);
  if (CURLUcode rc = curl_url_set(u.get(), CURLUPART_URL, text.c_str(),
                                  CURLU_NON_SUPPORT_SCHEME);
      rc != CURLUE_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a URL (", curl_url_strerror(rc), ")"));
  }
  char* scheme = nullptr;
  if (curl_url_get(u.get(), CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
    return absl::InvalidArgumentError("no scheme");
  }
  const std::string lower = absl::AsciiStrToLower(scheme);
  curl_free(scheme);
  if (lower != "http" && lower != "https") {
    return absl::InvalidArgumentError(
        absl::StrCat("scheme \"", lower, "\" is not http or https"));
  }
  char* host = nullptr;
  if (curl_url_get(u.get(), CURLUPART_HOST, &host, 0) != CURLUE_OK) {
    return absl::InvalidArgumentError("no host");
  }
  const bool empty_host = host == nullptr || host[0] == '\0';
  curl_free(host);
  if (empty_host) return absl::InvalidArgumentError("no host");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CurlSender>> CurlSender::Start(
    CurlSenderOptions options) {
  if (options.max_in_flight < 1) {
    return absl::InvalidArgumentError("max_in_flight must be at least 1");
  }
  if (options.default_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("default_timeout must be positive");
  }
  std::unique_ptr<CurlSender> sender(new CurlSender(std::move(options)));
  if (absl::Status st = sender->Init(); !st.ok()) return st;
  return sender;
}

CurlSender::CurlSender(CurlSenderOptions options)
    : options_(std::move(options)) {}

CurlSender::~CurlSender() { Stop(); }

absl::Status CurlSender::Init() {
  InitCurlOnce();
  multi_ = curl_multi_init();
  if (multi_ == nullptr) return absl::InternalError("curl_multi_init failed");
  const CurlLong max_idle =
      options_.max_idle_connections > 0
          ? options_.max_idle_connections
          : std::max<CurlLong>(kDefaultIdleConnections, options_.max_in_flight);
  curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, max_idle);
  curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                    static_cast<CurlLong>(options_.max_host_connections));
  epoll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
  wake_fd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!epoll_.valid() || !wake_fd_.valid()) {
    return absl::InternalError(
        absl::StrCat("epoll/eventfd: ", std::strerror(errno)));
  }
  epoll_event wake{};
  wake.events = EPOLLIN;
  wake.data.fd = wake_fd_.get();
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_fd_.get(), &wake) != 0) {
    return absl::InternalError(
        absl::StrCat("epoll_ctl: ", std::strerror(errno)));
  }
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &CurlSender::OnSocket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &CurlSender::OnTimer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  {
    absl::MutexLock lock(&mu_);
    last_turn_ = absl::Now();
  }
  worker_ = std::thread([this] {
    NameThisThread("http-sender");
    Run();
  });
  if (options_.on_health) {
    watchdog_ = std::thread([this] {
      NameThisThread("http-watchdog");
      Watchdog();
    });
  }
  return absl::OkStatus();
}

void CurlSender::Post(HttpPost post, Callback done) {
  std::vector<Request> one;
  one.push_back({std::move(post), std::move(done)});
  PostAll(std::move(one));
}

void CurlSender::PostAll(std::vector<Request> requests) {
  const Clock::time_point now = Clock::now();
  {
    absl::MutexLock lock(&mu_);
    if (!stop_) {
      for (Request& r : requests) {
        submitted_.push_back({std::move(r.post), std::move(r.done), now});
      }
      if (!wake_pending_ && current_worker != this) {
        wake_pending_ = true;
        Wake();
      }
      return;
    }
  }
  for (Request& r : requests) {
    HttpPostResult result;
    result.outcome = HttpOutcome::kFailed;
    result.error = "transport stopped";
    r.done(std::move(result));
  }
}

void CurlSender::Stop() {
  std::call_once(stop_once_, [this] {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
      if (wake_fd_.valid()) Wake();
    }
    if (worker_.joinable()) worker_.join();
    if (watchdog_.joinable()) watchdog_.join();
    transfers_.clear();  // easy handles, all removed from the multi by now
    idle_transfers_.clear();
    for (auto& [type, list] : headers_) curl_slist_free_all(list);
    headers_.clear();
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
    multi_ = nullptr;
  });
}

CurlSender::Stats CurlSender::GetStats() const {
  absl::MutexLock lock(&mu_);
  return Stats{published_in_flight_,
               published_queued_ + static_cast<int>(submitted_.size()),
               connections_opened_};
}

void CurlSender::Wake() {
  const uint64_t one = 1;
  // Fails only when the counter is about to overflow: a wakeup is pending.
  (void)!::write(wake_fd_.get(), &one, sizeof(one));
}

int CurlSender::OnSocket(CURL* /*easy*/, curl_socket_t socket, int what,
                         void* self, void* /*socketp*/) {
  auto* sender = static_cast<CurlSender*>(self);
  if (what == CURL_POLL_REMOVE) {
    // The socket may be closed already; then the kernel dropped it itself.
    ::epoll_ctl(sender->epoll_.get(), EPOLL_CTL_DEL, socket, nullptr);
    sender->watched_.erase(socket);
    return 0;
  }
  epoll_event event{};
  event.data.fd = socket;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) event.events |= EPOLLIN;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) {
    event.events |= EPOLLOUT;
  }
  const bool known = sender->watched_.count(socket) > 0;
  if (::epoll_ctl(sender->epoll_.get(), known ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
                  socket, &event) != 0 &&
      errno == (known ? ENOENT : EEXIST)) {
    // libcurl reused a number the kernel already recycled: follow it.
    ::epoll_ctl(sender->epoll_.get(), known ? EPOLL_CTL_ADD : EPOLL_CTL_MOD,
                socket, &event);
  }
  sender->watched_.insert(socket);
  return 0;
}

int CurlSender::OnTimer(CURLM* /*multi*/, long timeout_ms,  // NOLINT
                        void* self) {
  auto* sender = static_cast<CurlSender*>(self);
  sender->timer_due_ =
      timeout_ms < 0 ? Clock::time_point::max()
                     : Clock::now() + std::chrono::milliseconds(timeout_ms);
  return 0;
}

void CurlSender::Run() {
  current_worker = this;
  std::vector<Pending> incoming;
  epoll_event events[kMaxEvents];
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_) break;
      incoming.swap(submitted_);
      wake_pending_ = false;
      last_turn_ = absl::Now();
    }
    for (Pending& p : incoming) queue_.push_back(std::move(p));
    incoming.clear();
    StartTransfers();
    bool posted_meanwhile = false;  // by a callback here, without a wakeup
    {
      absl::MutexLock lock(&mu_);
      published_in_flight_ = in_flight_;
      published_queued_ = static_cast<int>(queue_.size());
      posted_meanwhile = !submitted_.empty();
    }
    // Sleep until a socket is ready, libcurl's timer is due, or Post()/Stop()
    // wakes us; with nothing in flight and no timer, for as long as it takes.
    int wait_ms = -1;
    if (timer_due_ != Clock::time_point::max()) {
      wait_ms = static_cast<int>(std::clamp<int64_t>(
          std::chrono::ceil<std::chrono::milliseconds>(timer_due_ -
                                                       Clock::now())
              .count(),
          0, INT_MAX));
    }
    if (in_flight_ > 0 && (wait_ms < 0 || wait_ms > kBusyPollMs)) {
      wait_ms = kBusyPollMs;
    }
    if (posted_meanwhile) wait_ms = 0;
    const int n = ::epoll_wait(epoll_.get(), events, kMaxEvents, wait_ms);
    int running = 0;
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_fd_.get()) {
        uint64_t count = 0;
        (void)!::read(fd, &count, sizeof(count));
        continue;
      }
      int flags = 0;
      if (events[i].events & (EPOLLIN | EPOLLHUP)) flags |= CURL_CSELECT_IN;
      if (events[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
      if (events[i].events & EPOLLERR) flags |= CURL_CSELECT_ERR;
      curl_multi_socket_action(multi_, fd, flags, &running);
    }
    if (timer_due_ != Clock::time_point::max() && Clock::now() >= timer_due_) {
      timer_due_ = Clock::time_point::max();  // the call may set a new one
      curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    FinishTransfers();
  }
  FailAll("transport stopped");
}

curl_slist* CurlSender::HeadersFor(const std::string& content_type) {
  auto it = headers_.find(content_type);
  if (it != headers_.end()) return it->second;
  curl_slist* list = nullptr;
  list = curl_slist_append(
      list, absl::StrCat("Content-Type: ", content_type).c_str());
  // No "Expect: 100-continue" round trip for larger bodies.
  list = curl_slist_append(list, "Expect:");
  headers_[content_type] = list;
  return list;
}

void CurlSender::StartTransfers() {
  while (in_flight_ < options_.max_in_flight && !queue_.empty()) {
    Transfer* t = nullptr;
    if (!idle_transfers_.empty()) {
      t = idle_transfers_.back();
      idle_transfers_.pop_back();
    } else {
      auto fresh = std::make_unique<Transfer>();
      fresh->easy = curl_easy_init();
      if (fresh->easy == nullptr) break;  // no memory: try on the next turn
      CURL* e = fresh->easy;
      curl_easy_setopt(e, CURLOPT_NOSIGNAL, CurlLong{1});
      curl_easy_setopt(e, CURLOPT_POST, CurlLong{1});
      curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
      curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, CurlLong{0});
      // The same in-process and as a child: no proxy from the environment.
      curl_easy_setopt(e, CURLOPT_PROXY, "");
      curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, DiscardBody);
      curl_easy_setopt(e, CURLOPT_USERAGENT, "loophost-http/" LH_VERSION);
      curl_easy_setopt(e, CURLOPT_ERRORBUFFER, fresh->error);
      curl_easy_setopt(e, CURLOPT_PRIVATE, fresh.get());
      t = fresh.get();
      transfers_.push_back(std::move(fresh));
    }
    t->pending = std::move(queue_.front());
    queue_.pop_front();
    const HttpPost& post = t->pending.post;
    const absl::Duration timeout = post.timeout > absl::ZeroDuration()
                                       ? post.timeout
                                       : options_.default_timeout;
    const CurlLong timeout_ms = std::max<CurlLong>(
        1, static_cast<CurlLong>(absl::ToInt64Milliseconds(timeout)));
    t->error[0] = '\0';
    CURL* e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, post.url.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, post.body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(post.body.size()));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER,
                     HeadersFor(post.content_type.empty() ? kDefaultContentType
                                                          : post.content_type));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    if (CURLMcode rc = curl_multi_add_handle(multi_, e); rc != CURLM_OK) {
      Callback done = std::move(t->pending.done);
      t->pending = Pending{};
      idle_transfers_.push_back(t);
      HttpPostResult result;
      result.outcome = HttpOutcome::kFailed;
      result.error =
          absl::StrCat("curl_multi_add_handle: ", curl_multi_strerror(rc));
      done(std::move(result));
      continue;
    }
    ++in_flight_;
  }
}

void CurlSender::FinishTransfers() {
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    Transfer* t = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
    const CURLcode code = msg->data.result;
    // `msg` is invalid once the handle is removed (inside Complete).
    Complete(*t, code);
  }
}

void CurlSender::Complete(Transfer& t, CURLcode code) {
  HttpPostResult result;
  CurlLong status = 0;
  CurlLong connects = 0;
  curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(t.easy, CURLINFO_NUM_CONNECTS, &connects);
  result.connections_opened = static_cast<int>(connects);
  result.latency = absl::FromChrono(Clock::now() - t.pending.posted_at);
  result.outcome = OutcomeOf(code);
  if (code == CURLE_OK) {
    result.http_status = static_cast<int>(status);
    if (status < 200 || status > 299) {
      result.outcome = HttpOutcome::kHttpStatus;
      result.error = absl::StrCat("HTTP ", status);
    }
  } else {
    result.error = t.error[0] != '\0' ? std::string(t.error)
                                      : std::string(curl_easy_strerror(code));
    // libcurl's text says "Couldn't connect"; the errno says why.
    CurlLong os_errno = 0;
    curl_easy_getinfo(t.easy, CURLINFO_OS_ERRNO, &os_errno);
    if (os_errno != 0 && result.outcome != HttpOutcome::kTimeout) {
      absl::StrAppend(&result.error, " (",
                      std::strerror(static_cast<int>(os_errno)), ")");
    }
  }
  curl_multi_remove_handle(multi_, t.easy);
  Callback done = std::move(t.pending.done);
  t.pending = Pending{};  // frees the body now
  idle_transfers_.push_back(&t);
  --in_flight_;
  if (connects > 0) {
    absl::MutexLock lock(&mu_);
    connections_opened_ += connects;
  }
  done(std::move(result));
}

void CurlSender::FailAll(const std::string& why) {
  std::vector<Callback> callbacks;
  for (auto& t : transfers_) {
    if (!t->pending.done) continue;
    curl_multi_remove_handle(multi_, t->easy);
    callbacks.push_back(std::move(t->pending.done));
    t->pending = Pending{};
  }
  in_flight_ = 0;
  for (Pending& p : queue_) callbacks.push_back(std::move(p.done));
  queue_.clear();
  {
    absl::MutexLock lock(&mu_);
    for (Pending& p : submitted_) callbacks.push_back(std::move(p.done));
    submitted_.clear();
    published_in_flight_ = 0;
    published_queued_ = 0;
  }
  for (Callback& done : callbacks) {
    HttpPostResult result;
    result.outcome = HttpOutcome::kFailed;
    result.error = why;
    done(std::move(result));
  }
}

void CurlSender::Watchdog() {
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
