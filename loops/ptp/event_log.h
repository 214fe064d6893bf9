// EventLog: the events a source has published and the host has not yet
// acknowledged, each with a sequence number that only grows, also across
// restarts. Backed by an append-only file (one record per event or ack,
// fdatasync'ed, compacted by rewrite + rename) so that nothing the host has
// not acknowledged is lost when the plugin or the host restarts. Bounded: past
// `max_held` events the oldest are dropped (and counted). An empty path keeps
// it in memory only. Thread-safe; listeners are woken after each append
// without any of the log's locks held.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/unique_fd.h"
#include "loophost/v1/event_source.pb.h"

namespace loophost::loops::ptp {

class EventLog {
 public:
  // Something waiting for the next event (an event stream).
  class Listener {
   public:
    virtual void OnAppended() = 0;

   protected:
    ~Listener() = default;
  };

  // Opens (creating) the log at `path` and loads what it holds: a torn last
  // record (a crash mid-write) is cut off. Empty `path`: memory only.
  static absl::StatusOr<std::unique_ptr<EventLog>> Open(std::string path,
                                                        size_t max_held);
  ~EventLog();

  // Gives `event` the next sequence number, stores it (durably, when backed
  // by a file) and wakes the listeners. Returns the sequence number; an error
  // only when the file could not be written (the event is then still held in
  // memory and served).
  absl::StatusOr<uint64_t> Append(v1::CloudEvent event);
  // The host stored everything up to `sequence`: those events are dropped.
  absl::Status Ack(uint64_t sequence);

  // The first held event with a sequence number > `after`; false if none.
  bool Next(uint64_t after, v1::SequencedEvent* out) const;
  uint64_t last_sequence() const;
  uint64_t acked_sequence() const;
  size_t held() const;
  // Events dropped unacknowledged because the log was full, since Open.
  uint64_t dropped() const;

  void AddListener(Listener* listener);
  void RemoveListener(Listener* listener);

 private:
  EventLog(std::string path, size_t max_held);
  absl::Status Load();
  absl::Status WriteRecord(const v1::SequencedEvent& record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Compact() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropAcked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  const size_t max_held_;
  mutable absl::Mutex mu_;
  UniqueFd fd_ ABSL_GUARDED_BY(mu_);
  uint64_t file_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t live_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<v1::SequencedEvent> events_ ABSL_GUARDED_BY(mu_);
  uint64_t last_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t acked_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;

  // Separate from mu_: a listener's OnAppended calls Next().
  absl::Mutex listeners_mu_;
  absl::flat_hash_set<Listener*> listeners_ ABSL_GUARDED_BY(listeners_mu_);
};

}  // namespace loophost::loops::ptp
