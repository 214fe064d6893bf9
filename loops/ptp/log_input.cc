// Implementation of log_input.h.
#include "loops/ptp/log_input.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace loophost::loops::ptp {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
// Added to the wake eventfd by Stop(); Wake() adds 1.
constexpr uint64_t kStopValue = uint64_t{1} << 32;

absl::Status Errno(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// Splits a byte stream into lines ("\n"; a trailing "\r" is the parser's
// business). A line longer than max_bytes is dropped whole. The lines it
// appends point into the data fed or into the splitter itself: they are valid
// until the next Feed or Flush.
class LineSplitter {
 public:
  explicit LineSplitter(size_t max_bytes) : max_bytes_(max_bytes) {}

  void Feed(const char* data, size_t size,
            std::vector<absl::string_view>* out) {
    while (size > 0) {
      const char* nl = static_cast<const char*>(std::memchr(data, '\n', size));
      size_t take = nl == nullptr ? size : static_cast<size_t>(nl - data);
      if (nl == nullptr) {
        if (!discarding_) {
          if (buffer_.size() + take > max_bytes_) {
            Drop();
          } else {
            buffer_.append(data, take);
          }
        }
        return;
      }
      if (discarding_) {
        discarding_ = false;
      } else if (buffer_.empty()) {
        if (take <= max_bytes_) {
          out->emplace_back(data, take);
        } else {
          ++dropped_;
        }
      } else if (buffer_.size() + take <= max_bytes_) {
        // Only the first line of a Feed can be a joined one.
        buffer_.append(data, take);
        joined_.swap(buffer_);
        buffer_.clear();
        out->emplace_back(joined_);
      } else {
        buffer_.clear();
        ++dropped_;
      }
      data += take + 1;
      size -= take + 1;
    }
  }

  // A last line without "\n" (end of a connection or a rotated file).
  void Flush(std::vector<absl::string_view>* out) {
    if (!discarding_ && !buffer_.empty()) {
      joined_.swap(buffer_);
      out->emplace_back(joined_);
    }
    Clear();
  }
  void Clear() {
    buffer_.clear();
    discarding_ = false;
  }
  size_t buffered() const { return buffer_.size(); }
  uint64_t dropped() const { return dropped_; }

 private:
  void Drop() {
    buffer_.clear();
    discarding_ = true;
    ++dropped_;
  }

  const size_t max_bytes_;
  std::string buffer_;
  std::string joined_;
  bool discarding_ = false;
  uint64_t dropped_ = 0;
};

// Lines collected from one read, handed over at once.
class LineBatch {
 public:
  explicit LineBatch(const LogInputHandler& handler) : handler_(handler) {}
  std::vector<absl::string_view>* lines() { return &lines_; }
  void Deliver() {
    if (lines_.empty()) return;
    handler_.on_lines(lines_);
    lines_.clear();
  }

 private:
  const LogInputHandler& handler_;
  std::vector<absl::string_view> lines_;
};

}  // namespace

class LogInput::Source {
 public:
  virtual ~Source() = default;
  // Opens what it reads and adds its fds to `epoll` (on the caller's thread).
  virtual absl::Status Open(int epoll) = 0;
  // First work on the input thread (reading what is already there).
  virtual void Prime() {}
  // Something happened on `fd`.
  virtual void OnReady(int fd, uint32_t events) = 0;
  // At stop, on the input thread.
  virtual void Close() {}
};

namespace {

// The unix stream socket linuxptp-daemon writes to.
class SocketSource final : public LogInput::Source {
 public:
  SocketSource(const LogInputOptions& options, const LogInputHandler& handler)
      : options_(options), handler_(handler), batch_(handler) {}

  absl::Status Open(int epoll) override {
    epoll_ = epoll;
    const std::string& path = options_.socket_path;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
      return absl::InvalidArgumentError(
          absl::StrCat("PTP_LOG_SOCKET=", path, ": not a usable socket path"));
    }
    std::memcpy(addr.sun_path, path.data(), path.size());
    std::error_code ec;
    std::filesystem::path parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode))
      ::unlink(path.c_str());  // left by an earlier run
    listen_.Reset(
        ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!listen_.valid()) return Errno("socket");
    if (::bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr),
               sizeof(addr)) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "PTP_LOG_SOCKET=", path, ": bind: ", std::strerror(errno)));
    }
    if (::listen(listen_.get(), 64) != 0) return Errno("listen");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listen_.get();
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, listen_.get(), &ev) != 0)
      return Errno("epoll_ctl");
    handler_.on_health("");
    return absl::OkStatus();
  }

  void OnReady(int fd, uint32_t) override {
    if (fd == listen_.get()) {
      Accept();
      return;
    }
    auto it = clients_.find(fd);
    if (it == clients_.end()) return;
    char buf[kReadChunk];
    // One read per wakeup: epoll is level-triggered, so a busy writer cannot
    // starve the others.
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n > 0) {
      it->second.splitter.Feed(buf, static_cast<size_t>(n), batch_.lines());
      batch_.Deliver();
      return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    it->second.splitter.Flush(batch_.lines());
    batch_.Deliver();
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
    clients_.erase(it);
  }

  void Close() override {
    for (auto& [fd, client] : clients_) {
      client.splitter.Flush(batch_.lines());
      batch_.Deliver();
    }
    clients_.clear();
    if (listen_.valid()) {
      listen_.Reset();
      ::unlink(options_.socket_path.c_str());
    }
  }

 private:
  struct Client {
    UniqueFd fd;
    LineSplitter splitter;
  };

  void Accept() {
    for (;;) {
      int fd = ::accept4(listen_.get(), nullptr, nullptr,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // EAGAIN, or out of fds (retried on the next wakeup)
      }
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP;
      ev.data.fd = fd;
      if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        ::close(fd);
        continue;
      }
      clients_.emplace(
          fd, Client{UniqueFd(fd), LineSplitter(options_.max_line_bytes)});
    }
  }

  const LogInputOptions& options_;
  const LogInputHandler& handler_;
  LineBatch batch_;
  int epoll_ = -1;
  UniqueFd listen_;
  std::map<int, Client> clients_;
};

// A file followed across rotation and truncation, or stdin.
class FileSource final : public LogInput::Source {
 public:
  FileSource(const LogInputOptions& options, const LogInputHandler& handler)
      : options_(options),
        handler_(handler),
        batch_(handler),
        splitter_(options.max_line_bytes) {}

  absl::Status Open(int epoll) override {
    epoll_ = epoll;
    if (options_.file_path == "-") {
      stdin_ = true;
      fd_.Reset(::dup(0));
      if (!fd_.valid()) return Errno("stdin");
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd_.get();
      if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd_.get(), &ev) != 0) {
        if (errno != EPERM) return Errno("epoll_ctl stdin");
        stdin_regular_ = true;  // a regular file: read it all in Prime()
      }
      return absl::OkStatus();
    }
    std::filesystem::path path(options_.file_path);
    dir_ = path.parent_path().string();
    if (dir_.empty()) dir_ = ".";
    base_ = path.filename().string();
    if (base_.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "PTP_LOG_FILE=", options_.file_path, ": not a file path"));
    }
    inotify_.Reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!inotify_.valid()) return Errno("inotify_init1");
    dir_watch_ = ::inotify_add_watch(inotify_.get(), dir_.c_str(),
                                     IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM |
                                         IN_DELETE | IN_MODIFY |
                                         IN_CLOSE_WRITE | IN_ATTRIB);
    if (dir_watch_ < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("PTP_LOG_FILE=", options_.file_path, ": watch ", dir_,
                       ": ", std::strerror(errno)));
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = inotify_.get();
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, inotify_.get(), &ev) != 0)
      return Errno("epoll_ctl");
    LoadPosition();
    return absl::OkStatus();
  }

  void Prime() override {
    if (stdin_) {
      if (stdin_regular_) {
        ReadToEnd();
        EndOfStdin();
      }
      handler_.on_health("");
      return;
    }
    Check(/*initial=*/true);
  }

  void OnReady(int fd, uint32_t) override {
    if (stdin_) {
      char buf[kReadChunk];
      ssize_t n = ::read(fd_.get(), buf, sizeof(buf));
      if (n > 0) {
        splitter_.Feed(buf, static_cast<size_t>(n), batch_.lines());
        batch_.Deliver();
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        EndOfStdin();
      }
      return;
    }
    if (fd != inotify_.get()) return;
    alignas(inotify_event) char buf[4096];
    for (;;) {  // drain: every event means "look again"
      ssize_t n = ::read(inotify_.get(), buf, sizeof(buf));
      if (n <= 0) break;
    }
    Check(/*initial=*/false);
  }

  void Close() override {
    if (stdin_) return;
    if (fd_.valid()) ReadToEnd();
    SavePosition();
  }

 private:
  void EndOfStdin() {
    splitter_.Flush(batch_.lines());
    batch_.Deliver();
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd_.get(), nullptr);
    fd_.Reset();
    handler_.on_health("PTP_LOG_FILE=-: end of input on stdin");
  }

  void Check(bool initial) {
    if (fd_.valid()) ReadToEnd();
    struct stat st {};
    bool exists = ::stat(options_.file_path.c_str(), &st) == 0;
    if (exists && (!fd_.valid() || st.st_ino != ino_ || st.st_dev != dev_)) {
      if (fd_.valid()) {
        // Rotated: what the old file still had was read above.
        splitter_.Flush(batch_.lines());
        batch_.Deliver();
        if (file_watch_ >= 0) ::inotify_rm_watch(inotify_.get(), file_watch_);
        file_watch_ = -1;
        fd_.Reset();
      }
      OpenCurrent(initial);
      if (fd_.valid()) ReadToEnd();
    }
    std::string health;
    if (!fd_.valid()) {
      health = absl::StrCat("PTP_LOG_FILE=", options_.file_path,
                            ": cannot read (waiting for it): ",
                            std::strerror(exists ? EACCES : ENOENT));
    }
    if (health != health_) {
      health_ = health;
      handler_.on_health(health);
    }
    absl::Time now = absl::Now();
    if (consumed_ && now - last_save_ >= absl::Seconds(1)) {
      SavePosition();
      last_save_ = now;
    }
  }

  void OpenCurrent(bool initial) {
    fd_.Reset(
        ::open(options_.file_path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (!fd_.valid()) return;
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0) {
      fd_.Reset();
      return;
    }
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    off_t start = 0;
    if (initial) {
      if (saved_ && saved_dev_ == dev_ && saved_ino_ == ino_ &&
          saved_offset_ <= st.st_size) {
        start = saved_offset_;  // resume where the last run stopped
      } else if (!saved_) {
        start = st.st_size;  // first run: follow from the end, like tail -F
      }
    }
    ::lseek(fd_.get(), start, SEEK_SET);
    pos_ = start;
    splitter_.Clear();
    file_watch_ = ::inotify_add_watch(
        inotify_.get(), options_.file_path.c_str(),
        IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF);
    consumed_ = true;
  }

  void ReadToEnd() {
    if (!stdin_) {
      struct stat st {};
      if (::fstat(fd_.get(), &st) == 0 && S_ISREG(st.st_mode) &&
          st.st_size < pos_) {
        // Truncated (copytruncate, or `> file`): start over.
        ::lseek(fd_.get(), 0, SEEK_SET);
        pos_ = 0;
        splitter_.Clear();
      }
    }
    char buf[kReadChunk];
    for (;;) {
      ssize_t n = ::read(fd_.get(), buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      pos_ += n;
      consumed_ = true;
      splitter_.Feed(buf, static_cast<size_t>(n), batch_.lines());
      batch_.Deliver();
    }
  }

  void LoadPosition() {
    if (options_.position_path.empty()) return;
    std::ifstream in(options_.position_path);
    if (!in) return;
    std::stringstream text;
    text << in.rdbuf();
    nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return;
    try {
      if (j.at("path").get<std::string>() != options_.file_path) return;
      saved_dev_ = j.at("dev").get<uint64_t>();
      saved_ino_ = j.at("ino").get<uint64_t>();
      saved_offset_ = j.at("offset").get<int64_t>();
      saved_ = true;
    } catch (const std::exception&) {
    }
  }

  void SavePosition() {
    consumed_ = false;
    if (options_.position_path.empty() || !fd_.valid()) return;
    nlohmann::json j = {
        {"path", options_.file_path},
        {"dev", static_cast<uint64_t>(dev_)},
        {"ino", static_cast<uint64_t>(ino_)},
        // A partial last line is read again next time.
        {"offset", static_cast<int64_t>(
                       pos_ - static_cast<off_t>(splitter_.buffered()))}};
    std::string tmp = options_.position_path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << j.dump();
      if (!out) return;
    }
    ::rename(tmp.c_str(), options_.position_path.c_str());
  }

  const LogInputOptions& options_;
  const LogInputHandler& handler_;
  LineBatch batch_;
  int epoll_ = -1;
  bool stdin_ = false;
  bool stdin_regular_ = false;
  std::string dir_, base_;
  UniqueFd inotify_;
  int dir_watch_ = -1;
  int file_watch_ = -1;
  UniqueFd fd_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  off_t pos_ = 0;
  LineSplitter splitter_;
  std::string health_ = "?";
  bool saved_ = false;
  uint64_t saved_dev_ = 0, saved_ino_ = 0;
  int64_t saved_offset_ = 0;
  bool consumed_ = false;
  absl::Time last_save_ = absl::InfinitePast();
};

}  // namespace

LogInput::LogInput(LogInputOptions options, LogInputHandler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {}

absl::StatusOr<std::unique_ptr<LogInput>> LogInput::Start(
    LogInputOptions options, LogInputHandler handler) {
  std::unique_ptr<LogInput> input(
      new LogInput(std::move(options), std::move(handler)));
  absl::Status status = input->Init();
  if (!status.ok()) return status;
  input->thread_ = std::thread([raw = input.get()] { raw->Run(); });
  return input;
}

absl::Status LogInput::Init() {
  epoll_.Reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_.valid()) return Errno("epoll_create1");
  wake_.Reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_.valid()) return Errno("eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_.get();
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0)
    return Errno("epoll_ctl");
  if (!options_.file_path.empty()) {
    source_ = std::make_unique<FileSource>(options_, handler_);
  } else {
    source_ = std::make_unique<SocketSource>(options_, handler_);
  }
  return source_->Open(epoll_.get());
}

void LogInput::Run() {
  ::pthread_setname_np(::pthread_self(), "ptp-input");
  source_->Prime();
  epoll_event events[16];
  while (!stop_) {
    int timeout = -1;
    absl::Time deadline = handler_.next_deadline();
    if (deadline != absl::InfiniteFuture()) {
      absl::Duration left = deadline - absl::Now();
      timeout = left <= absl::ZeroDuration()
                    ? 0
                    : static_cast<int>(std::min<int64_t>(
                          absl::ToInt64Milliseconds(
                              absl::Ceil(left, absl::Milliseconds(1))),
                          INT_MAX));
    }
    int n = ::epoll_wait(epoll_.get(), events, 16, timeout);
    if (n < 0 && errno != EINTR) {
      LogError("ptp input: epoll_wait", {{"error", std::strerror(errno)}});
      break;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == wake_.get()) {
        uint64_t value = 0;
        if (::read(wake_.get(), &value, sizeof(value)) == sizeof(value) &&
            value >= kStopValue) {
          stop_ = true;
        }
        continue;
      }
      source_->OnReady(fd, events[i].events);
    }
    if (stop_) break;
    absl::Time now = absl::Now();
    if (handler_.next_deadline() <= now) handler_.on_deadline(now);
  }
  source_->Close();
}

void LogInput::Wake() {
  uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof(one));
}

void LogInput::Stop() {
  if (!thread_.joinable()) return;
  uint64_t value = kStopValue;
  (void)!::write(wake_.get(), &value, sizeof(value));
  thread_.join();
}

LogInput::~LogInput() { Stop(); }

}  // namespace loophost::loops::ptp
