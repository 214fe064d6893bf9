// Implementation of event_log.h. A record is [u32 length][u32 FNV-1a of the
// payload][payload: loophost.v1.SequencedEvent], little-endian. A record
// without an event is an acknowledgement up to its sequence number (and keeps
// the sequence counter alive once every event was acknowledged).
#include "loops/ptp/event_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace loophost::loops::ptp {
namespace {

constexpr size_t kHeaderBytes = 8;
constexpr uint32_t kMaxRecordBytes = 1 << 20;
constexpr uint64_t kCompactSlackBytes = 64 * 1024;

uint32_t Fnv1a(const char* data, size_t size) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < size; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= 16777619u;
  }
  return h;
}

void PutU32(char* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>(v >> (8 * i));
}

uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

std::string Encode(const v1::SequencedEvent& record) {
  std::string payload = record.SerializeAsString();
  std::string out(kHeaderBytes + payload.size(), '\0');
  PutU32(out.data(), static_cast<uint32_t>(payload.size()));
  PutU32(out.data() + 4, Fnv1a(payload.data(), payload.size()));
  std::memcpy(out.data() + kHeaderBytes, payload.data(), payload.size());
  return out;
}

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(
      absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::Status WriteAll(int fd, const std::string& data,
                      const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("write", path);
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

size_t RecordBytes(const v1::SequencedEvent& e) {
  return kHeaderBytes + e.ByteSizeLong();
}

}  // namespace

EventLog::EventLog(std::string path, size_t max_held)
    : path_(std::move(path)), max_held_(std::max<size_t>(max_held, 1)) {}

EventLog::~EventLog() = default;

absl::StatusOr<std::unique_ptr<EventLog>> EventLog::Open(std::string path,
                                                         size_t max_held) {
  std::unique_ptr<EventLog> log(new EventLog(std::move(path), max_held));
  if (!log->path_.empty()) LH_RETURN_IF_ERROR(log->Load());
  return log;
}

absl::Status EventLog::Load() {
  absl::MutexLock lock(&mu_);
  std::string data;
  {
    UniqueFd in(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in.valid() && errno != ENOENT) return Errno("open", path_);
    if (in.valid()) {
      char buf[65536];
      for (;;) {
        ssize_t n = ::read(in.get(), buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Errno("read", path_);
        if (n == 0) break;
        data.append(buf, static_cast<size_t>(n));
      }
    }
  }
  size_t pos = 0;
  while (data.size() - pos >= kHeaderBytes) {
    uint32_t length = GetU32(data.data() + pos);
    uint32_t sum = GetU32(data.data() + pos + 4);
    if (length > kMaxRecordBytes || data.size() - pos - kHeaderBytes < length)
      break;
    const char* payload = data.data() + pos + kHeaderBytes;
    v1::SequencedEvent record;
    if (Fnv1a(payload, length) != sum ||
        !record.ParseFromArray(payload, static_cast<int>(length))) {
      break;
    }
    pos += kHeaderBytes + length;
    last_sequence_ = std::max(last_sequence_, record.sequence());
    if (record.has_event()) {
      if (record.sequence() > acked_) events_.push_back(std::move(record));
    } else {
      acked_ = std::max(acked_, record.sequence());
      DropAcked();
    }
  }
  while (events_.size() > max_held_) events_.pop_front();
  live_bytes_ = kHeaderBytes + 16;
  for (const auto& e : events_) live_bytes_ += RecordBytes(e);
  file_bytes_ = pos;
  if (pos != data.size() || file_bytes_ > 2 * live_bytes_ + kCompactSlackBytes)
    return Compact();  // also cuts a torn tail
  fd_.Reset(
      ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!fd_.valid()) return Errno("open", path_);
  return absl::OkStatus();
}

void EventLog::DropAcked() {
  while (!events_.empty() && events_.front().sequence() <= acked_) {
    live_bytes_ -=
        std::min<uint64_t>(live_bytes_, RecordBytes(events_.front()));
    events_.pop_front();
  }
}

absl::Status EventLog::WriteRecord(const v1::SequencedEvent& record) {
  if (path_.empty()) return absl::OkStatus();
  if (!fd_.valid()) {
    fd_.Reset(
        ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (!fd_.valid()) return Errno("open", path_);
  }
  std::string bytes = Encode(record);
  LH_RETURN_IF_ERROR(WriteAll(fd_.get(), bytes, path_));
  file_bytes_ += bytes.size();
  return absl::OkStatus();
}

absl::Status EventLog::Compact() {
  std::string tmp = path_ + ".tmp";
  UniqueFd out(
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!out.valid()) return Errno("open", tmp);
  std::string bytes;
  v1::SequencedEvent mark;  // keeps last_sequence_ once all is acknowledged
  mark.set_sequence(events_.empty() ? last_sequence_ : acked_);
  bytes += Encode(mark);
  for (const auto& e : events_) bytes += Encode(e);
  LH_RETURN_IF_ERROR(WriteAll(out.get(), bytes, tmp));
  if (::fdatasync(out.get()) != 0) return Errno("fdatasync", tmp);
  out.Reset();
  if (::rename(tmp.c_str(), path_.c_str()) != 0) return Errno("rename", tmp);
  std::string dir = std::filesystem::path(path_).parent_path().string();
  if (dir.empty()) dir.assign(1, '.');
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.valid()) ::fsync(dir_fd.get());
  fd_.Reset(::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
  if (!fd_.valid()) return Errno("open", path_);
  file_bytes_ = bytes.size();
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> EventLog::Append(v1::CloudEvent event) {
  absl::Status status;
  uint64_t sequence = 0;
  {
    absl::MutexLock lock(&mu_);
    sequence = ++last_sequence_;
    v1::SequencedEvent& record = events_.emplace_back();
    record.set_sequence(sequence);
    *record.mutable_event() = std::move(event);
    live_bytes_ += RecordBytes(record);
    status = WriteRecord(record);
    if (status.ok() && !path_.empty() && ::fdatasync(fd_.get()) != 0)
      status = Errno("fdatasync", path_);
    while (events_.size() > max_held_) {
      live_bytes_ -=
          std::min<uint64_t>(live_bytes_, RecordBytes(events_.front()));
      events_.pop_front();
      ++dropped_;
    }
    if (status.ok() && !path_.empty() &&
        file_bytes_ > 2 * live_bytes_ + kCompactSlackBytes) {
      status = Compact();
    }
  }
  {
    absl::MutexLock lock(&listeners_mu_);
    for (Listener* l : listeners_) l->OnAppended();
  }
  if (!status.ok()) return status;
  return sequence;
}

absl::Status EventLog::Ack(uint64_t sequence) {
  absl::MutexLock lock(&mu_);
  sequence = std::min(sequence, last_sequence_);
  if (sequence <= acked_) return absl::OkStatus();
  acked_ = sequence;
  DropAcked();
  v1::SequencedEvent mark;
  mark.set_sequence(acked_);
  LH_RETURN_IF_ERROR(WriteRecord(mark));
  if (!path_.empty() && file_bytes_ > 2 * live_bytes_ + kCompactSlackBytes)
    return Compact();
  return absl::OkStatus();
}

bool EventLog::Next(uint64_t after, v1::SequencedEvent* out) const {
  absl::MutexLock lock(&mu_);
  if (events_.empty() || events_.back().sequence() <= after) return false;
  // Sequence numbers are consecutive within the deque.
  uint64_t first = events_.front().sequence();
  size_t index = after < first ? 0 : static_cast<size_t>(after - first + 1);
  *out = events_[index];
  return true;
}

uint64_t EventLog::last_sequence() const {
  absl::MutexLock lock(&mu_);
  return last_sequence_;
}

uint64_t EventLog::acked_sequence() const {
  absl::MutexLock lock(&mu_);
  return acked_;
}

size_t EventLog::held() const {
  absl::MutexLock lock(&mu_);
  return events_.size();
}

uint64_t EventLog::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

void EventLog::AddListener(Listener* listener) {
  absl::MutexLock lock(&listeners_mu_);
  listeners_.insert(listener);
}

void EventLog::RemoveListener(Listener* listener) {
  absl::MutexLock lock(&listeners_mu_);
  listeners_.erase(listener);
}

}  // namespace loophost::loops::ptp
