// Implementation of output_relay.h: a level-triggered epoll loop over the
// watched pipes plus an eventfd for stop.
#include "host/output_relay.h"

#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/thread_name.h"

namespace loophost::host {
namespace {

constexpr size_t kReadChunk = size_t{64} * 1024;
// Reads per wake-up for one stream, so a chatty plugin cannot starve others.
constexpr int kReadsPerWakeup = 4;
constexpr uint64_t kWakeToken = 0;

// Bytes at the end of `s` that start a UTF-8 sequence it does not complete.
size_t IncompleteUtf8Tail(absl::string_view s) {
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    unsigned char c = static_cast<unsigned char>(s[s.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
    size_t want = (c & 0xE0) == 0xC0   ? 2
                  : (c & 0xF0) == 0xE0 ? 3
                  : (c & 0xF8) == 0xF0 ? 4
                                       : 1;
    return want > back ? back : 0;
  }
  return 0;
}

}  // namespace

struct OutputRelay::Stream {
  UniqueFd fd;
  LineHandler handler;
  std::string line;        // the current line so far, at most kMaxLineBytes
  size_t dropped = 0;      // bytes of the current line cut off
  bool unwatched = false;  // Unwatch() from its own handler (relay thread)
};

OutputRelay::OutputRelay()
    : epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)),
      wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!epoll_fd_.valid() || !wake_fd_.valid()) {
    LogError("output relay: cannot create epoll/eventfd",
             {{"error", ::strerrordesc_np(errno)}});
    std::abort();  // fd exhaustion at startup; nothing sensible to do
  }
  epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeToken;
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, wake_fd_.get(), &ev);
  read_buffer_.resize(kReadChunk);
  thread_ = std::thread([this] {
    NameThisThread("lh-plugin-log");
    Run();
  });
}

OutputRelay::~OutputRelay() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  uint64_t one = 1;
  ssize_t ignored = ::write(wake_fd_.get(), &one, sizeof(one));
  (void)ignored;
  thread_.join();
}

uint64_t OutputRelay::Watch(UniqueFd fd, LineHandler handler) {
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags >= 0) ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK);
  auto stream = std::make_unique<Stream>();
  stream->fd = std::move(fd);
  stream->handler = std::move(handler);
  std::unique_ptr<Stream> failed;
  uint64_t token;
  {
    absl::MutexLock lock(&mu_);
    token = next_token_++;
    epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.u64 = token;
    if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, stream->fd.get(), &ev) ==
        0) {
      streams_.emplace(token, std::move(stream));
      return token;
    }
    failed = std::move(stream);  // reported as already at EOF
  }
  LogError("output relay: cannot watch fd",
           {{"fd", absl::StrCat(failed->fd.get())},
            {"error", ::strerrordesc_np(errno)}});
  return token;
}

void OutputRelay::Unwatch(uint64_t token) {
  std::unique_ptr<Stream> removed;  // destroyed after unlocking
  {
    absl::MutexLock lock(&mu_);
    if (std::this_thread::get_id() == thread_.get_id()) {
      if (dispatching_ == token) {
        auto it = streams_.find(token);
        if (it != streams_.end()) it->second->unwatched = true;
        return;
      }
    } else {
      auto not_dispatching = [this, token]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return dispatching_ != token;
      };
      mu_.Await(absl::Condition(&not_dispatching));
    }
    removed = RemoveLocked(token);
  }
}

bool OutputRelay::WaitForEof(uint64_t token, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto done = [this, token]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return streams_.find(token) == streams_.end();
  };
  if (std::this_thread::get_id() == thread_.get_id()) return done();
  return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

std::unique_ptr<OutputRelay::Stream> OutputRelay::RemoveLocked(uint64_t token) {
  auto it = streams_.find(token);
  if (it == streams_.end()) return nullptr;
  std::unique_ptr<Stream> stream = std::move(it->second);
  streams_.erase(it);
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, stream->fd.get(), nullptr);
  return stream;
}

void OutputRelay::Run() {
  epoll_event events[64];
  while (true) {
    int n = ::epoll_wait(epoll_fd_.get(), events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      LogError("output relay: epoll_wait failed",
               {{"error", ::strerrordesc_np(errno)}});
      return;
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t token = events[i].data.u64;
      Stream* stream;
      {
        absl::MutexLock lock(&mu_);
        if (token == kWakeToken) {
          if (stopping_) return;
          continue;
        }
        auto it = streams_.find(token);
        if (it == streams_.end()) continue;  // unwatched since epoll_wait
        stream = it->second.get();
        dispatching_ = token;
      }
      // Unwatch() from other threads waits while dispatching_ == token, so
      // the stream stays alive here without the lock.
      const bool open = Drain(*stream);
      std::unique_ptr<Stream> removed;
      absl::MutexLock lock(&mu_);
      dispatching_ = 0;
      if (!open || stream->unwatched) removed = RemoveLocked(token);
    }
  }
}

bool OutputRelay::Drain(Stream& stream) {
  for (int reads = 0; reads < kReadsPerWakeup; ++reads) {
    ssize_t n =
        ::read(stream.fd.get(), read_buffer_.data(), read_buffer_.size());
    if (n < 0 && errno == EINTR) {
      --reads;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n <= 0) {  // EOF, or an error that ends the stream just the same
      if (!stream.line.empty() || stream.dropped > 0) EndLine(stream);
      return false;
    }
    absl::string_view data(read_buffer_.data(), static_cast<size_t>(n));
    while (!data.empty()) {
      size_t newline = data.find('\n');
      absl::string_view piece =
          newline == absl::string_view::npos ? data : data.substr(0, newline);
      size_t room = kMaxLineBytes - stream.line.size();
      if (piece.size() <= room) {
        stream.line.append(piece.data(), piece.size());
      } else {
        stream.line.append(piece.data(), room);
        stream.dropped += piece.size() - room;
      }
      if (newline == absl::string_view::npos) break;
      EndLine(stream);
      if (stream.unwatched) return true;
      data.remove_prefix(newline + 1);
    }
    if (static_cast<size_t>(n) < read_buffer_.size()) return true;
  }
  return true;
}

void OutputRelay::EndLine(Stream& stream) {
  if (stream.dropped > 0) {
    // Do not leave half a UTF-8 character before the marker.
    size_t tail = IncompleteUtf8Tail(stream.line);
    stream.line.resize(stream.line.size() - tail);
    absl::StrAppend(&stream.line, "\xE2\x80\xA6[truncated ",
                    stream.dropped + tail, " bytes]");
  }
  if (!stream.unwatched) stream.handler(stream.line);
  stream.line.clear();
  stream.dropped = 0;
}

}  // namespace loophost::host
