// Implementation of ptp_event_factory.h.
#include "loops/ptp/ptp_event_factory.h"

#include <cstdio>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "events/ptp_events.h"

namespace loophost::loops::ptp {
namespace {

constexpr const char* kSuffixes[] = {
    events::kLockStateResource, events::kOsClockSyncStateResource,
    events::kClockClassResource, events::kSyncStateResource};
constexpr const char* kTypes[] = {
    events::kLockStateEventType, events::kOsClockSyncStateEventType,
    events::kClockClassEventType, events::kSyncStateEventType};

uint64_t Fnv1a64(absl::string_view data, uint64_t h) {
  for (char c : data) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

std::string FormatUuid(uint64_t hi, uint64_t lo, int version) {
  hi = (hi & ~uint64_t{0xF000}) | (static_cast<uint64_t>(version) << 12);
  lo = (lo & ~(uint64_t{0xC} << 60)) | (uint64_t{0x8} << 60);  // variant 10
  char buf[37];
  std::snprintf(buf, sizeof(buf), "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xFFFF),
                static_cast<unsigned>(hi & 0xFFFF),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFull));
  return buf;
}

}  // namespace

PtpEventFactory::PtpEventFactory(std::string node) : node_(std::move(node)) {
  for (int i = 0; i < kPtpResourceCount; ++i)
    addresses_[i] = events::ResourceAddress(node_, kSuffixes[i]);
}

const char* PtpEventFactory::EventType(PtpResource resource) const {
  return kTypes[static_cast<int>(resource)];
}

bool PtpEventFactory::FindResource(absl::string_view address,
                                   PtpResource* resource) const {
  for (PtpResource r : kAllPtpResources) {
    if (ResourceAddress(r) == address) {
      *resource = r;
      return true;
    }
  }
  return false;
}

std::vector<v1::Publisher> PtpEventFactory::Publishers() const {
  std::vector<v1::Publisher> out;
  for (PtpResource r : kAllPtpResources) {
    v1::Publisher& p = out.emplace_back();
    p.set_resource_address(ResourceAddress(r));
    p.set_event_type(EventType(r));
  }
  return out;
}

v1::CloudEvent PtpEventFactory::Make(PtpResource resource,
                                     const PublishedState& value) const {
  v1::CloudEvent event;
  const std::string& address = ResourceAddress(resource);
  event.set_source(address);
  event.set_spec_version("1.0");
  event.set_type(EventType(resource));
  event.set_time_unix_nanos(absl::ToUnixNanos(value.time));
  v1::EventData* data = event.mutable_data();
  data->set_version("1.0");
  auto add = [&](const char* data_type, const char* value_type, std::string v) {
    v1::EventValue* ev = data->add_values();
    ev->set_resource_address(address);
    ev->set_data_type(data_type);
    ev->set_value_type(value_type);
    ev->set_value(std::move(v));
  };
  if (resource == PtpResource::kClockClass) {
    add("metric", "decimal64.3", absl::StrCat(value.clock_class));
    return event;
  }
  add("notification", "enumeration", SyncStateName(value.state));
  if (resource != PtpResource::kSyncState) {
    add("metric", "decimal64.3",
        absl::StrCat(value.has_offset ? value.offset_ns : 0, ".000"));
  }
  return event;
}

std::string DeterministicEventId(const v1::CloudEvent& event,
                                 uint64_t sequence) {
  v1::CloudEvent copy = event;
  copy.clear_id();
  std::string bytes = absl::StrCat(sequence, "|", copy.SerializeAsString());
  uint64_t hi = Fnv1a64(bytes, 14695981039346656037ull);
  uint64_t lo = Fnv1a64(bytes, hi ^ 0x9E3779B97F4A7C15ull);
  return FormatUuid(hi, lo, 8);
}

std::string RandomEventId() {
  static thread_local absl::BitGen gen;
  uint64_t hi = absl::Uniform<uint64_t>(gen);
  uint64_t lo = absl::Uniform<uint64_t>(gen);
  return FormatUuid(hi, lo, 4);
}

}  // namespace loophost::loops::ptp
