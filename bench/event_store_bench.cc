// event-store-bench: what the outbox costs per delivery, on its own (no HTTP,
// no gRPC): events written for N subscriptions (EnqueueEvent), their rows read
// back as the dispatcher reads them (DueDeliveriesFor, then RowsAfter) and
// recorded as delivered in batches (RecordOutcomes), in a fresh database in a
// temporary directory. Prints one JSON line: CPU microseconds per row for
// each step (the process's, so the WAL checkpointer's thread counts too).
//
//   event-store-bench [--subscribers 100] [--events 2000] [--batch 512]
//                     [--round 10]  (events enqueued before they are read)
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bench/proc_info.h"
#include "host/event_store.h"

namespace {

using loophost::host::EventStore;

// This process's CPU time (all its threads), in seconds.
double CpuSeconds() {
  return static_cast<double>(loophost::bench::ProcCpuNs(0)) / 1e9;
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "event-store-bench: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  int subscribers = 100;
  int events = 2000;
  int batch = 512;
  int round = 10;
  constexpr char kUsage[] =
      "usage: event-store-bench [--subscribers N] [--events N] [--batch N] "
      "[--round N]";
  if (argc == 2 && std::string(argv[1]) == "--help") {
    std::printf("%s\n", kUsage);
    return 0;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    int* target = flag == "--subscribers" ? &subscribers
                  : flag == "--events"    ? &events
                  : flag == "--batch"     ? &batch
                  : flag == "--round"     ? &round
                                          : nullptr;
    if (target == nullptr || !absl::SimpleAtoi(argv[i + 1], target) ||
        *target <= 0) {
      return Fail(absl::StrCat("bad argument ", flag, " (", kUsage, ")"));
    }
  }
  if (argc % 2 == 0) {
    return Fail(absl::StrCat("a flag without its value (", kUsage, ")"));
  }

  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      absl::StrCat("event-store-bench-", getpid());
  std::filesystem::create_directories(dir);
  auto store = EventStore::Open((dir / "state.db").string());
  if (!store.ok()) return Fail(std::string(store.status().message()));

  std::vector<EventStore::Delivery> deliveries;
  std::vector<std::string> ids;
  for (int i = 0; i < subscribers; ++i) {
    loophost::host::SubscriptionRecord record;
    record.resource_address = "/cluster/node/n1/sync/ptp-status/lock-state";
    record.endpoint = absl::StrCat("http://127.0.0.1:", 20000 + i, "/event");
    record.created = absl::Now();
    auto sub = (*store)->AddSubscription(record);
    if (!sub.ok()) return Fail(std::string(sub.status().message()));
    ids.push_back(sub->id);
    deliveries.push_back({sub->id, std::string(540, 'x')});
  }

  // Rounds: `round` events enqueued, then their rows read back and recorded
  // as delivered (so the outbox holds at most round * subscribers rows).
  double enqueue_s = 0;
  double read_s = 0;
  double record_s = 0;
  uint64_t read = 0;
  std::vector<EventStore::Outcome> outcomes;
  auto record = [&]() -> absl::Status {
    const double at = CpuSeconds();
    absl::Status s = (*store)->RecordOutcomes(outcomes);
    record_s += CpuSeconds() - at;
    outcomes.clear();
    return s;
  };
  for (int e = 1; e <= events;) {
    double at = CpuSeconds();
    for (int end = std::min(events, e + round - 1); e <= end; ++e) {
      auto written =
          (*store)->EnqueueEvent("ptp", static_cast<uint64_t>(e),
                                 absl::StrCat("event-", e), deliveries);
      if (!written.ok()) return Fail(std::string(written.status().message()));
    }
    enqueue_s += CpuSeconds() - at;

    // Each subscription's head, then the rows after it, a window at a time.
    at = CpuSeconds();
    const double record_before = record_s;
    std::vector<EventStore::RowsAfterQuery> queries;
    for (const auto& head : (*store)->DueDeliveriesFor(absl::Now(), ids)) {
      queries.push_back({head.subscription_id, head.id, 16});
      outcomes.push_back({head.id, true, absl::InfinitePast()});
      ++read;
    }
    while (!queries.empty()) {
      std::vector<EventStore::RowsAfterQuery> more;
      for (const auto& row : (*store)->RowsAfter(queries)) {
        outcomes.push_back({row.id, true, absl::InfinitePast()});
        ++read;
        if (more.empty() ||
            more.back().subscription_id != row.subscription_id) {
          more.push_back({row.subscription_id, row.id, 16});
        }
        more.back().after_id = row.id;
        if (static_cast<int>(outcomes.size()) >= batch) {
          if (absl::Status s = record(); !s.ok()) {
            return Fail(std::string(s.message()));
          }
        }
      }
      queries = std::move(more);
    }
    if (absl::Status s = record(); !s.ok()) {
      return Fail(std::string(s.message()));
    }
    read_s += CpuSeconds() - at - (record_s - record_before);
  }
  const double rows = static_cast<double>(events) * subscribers;
  const uint64_t left = (*store)->OutboxDepth();
  store->reset();
  std::filesystem::remove_all(dir);
  if (read != static_cast<uint64_t>(rows) || left != 0) {
    return Fail(absl::StrCat("read ", read, " of ", rows, " rows, ", left,
                             " left in the outbox"));
  }

  nlohmann::json out = {
      {"bench", "event_store"},
      {"subscribers", subscribers},
      {"events", events},
      {"batch", batch},
      {"round", round},
      {"enqueue_cpu_us_per_row", enqueue_s * 1e6 / rows},
      {"read_cpu_us_per_row", read_s * 1e6 / rows},
      {"record_cpu_us_per_row", record_s * 1e6 / rows},
      {"total_cpu_us_per_row", (enqueue_s + read_s + record_s) * 1e6 / rows},
  };
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
