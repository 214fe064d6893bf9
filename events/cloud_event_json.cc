// JSON encodings of loophost.v1.CloudEvent (see cloud_event_json.h), with
// nlohmann::json. Encoding cannot fail (every field is a string or a number);
// decoding catches the library's exceptions here and returns a Status.
#include "events/cloud_event_json.h"

#include <cstdint>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace loophost::events {
namespace {

using nlohmann::json;

// The v1 REST API's data version and content type, as the seed sends them.
constexpr char kV1DataVersion[] = "v1";
constexpr char kApplicationJson[] = "application/json";

// Replaces invalid UTF-8 instead of throwing: a source may hand us any bytes.
std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

absl::Status Missing(absl::string_view field) {
  return absl::InvalidArgumentError(
      absl::StrCat("event: \"", field, "\" is missing or not a string"));
}

// A required string member of `j`.
absl::Status RequireString(const json& j, const char* field, std::string* out) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_string()) return Missing(field);
  *out = it->get<std::string>();
  if (out->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("event: \"", field, "\" is empty"));
  }
  return absl::OkStatus();
}

// A value as the O-RAN consumers expect it: a string. Producers that send a
// number or a boolean get it spelt as JSON spells it.
absl::Status ValueString(const json& j, const char* field, std::string* out) {
  auto it = j.find(field);
  if (it == j.end()) return Missing(field);
  if (it->is_string()) {
    *out = it->get<std::string>();
  } else if (it->is_number() || it->is_boolean()) {
    *out = it->dump();
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("event: \"", field, "\" must be a string or a number"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::CloudEvent> FromJson(const json& j) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError("event: not a JSON object");
  }
  v1::CloudEvent event;
  std::string s;
  if (auto it = j.find("specversion"); it != j.end()) {
    if (!it->is_string() || it->get<std::string>() != "1.0") {
      return absl::InvalidArgumentError(
          absl::StrCat("event: specversion ", it->dump(), " is not \"1.0\""));
    }
  }
  event.set_spec_version("1.0");
  if (absl::Status st = RequireString(j, "id", &s); !st.ok()) return st;
  event.set_id(s);
  if (absl::Status st = RequireString(j, "source", &s); !st.ok()) return st;
  event.set_source(s);
  if (absl::Status st = RequireString(j, "type", &s); !st.ok()) return st;
  event.set_type(s);
  if (auto it = j.find("time"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return Missing("time");
    absl::Time t;
    std::string err;
    if (!absl::ParseTime(absl::RFC3339_full, it->get<std::string>(), &t,
                         &err)) {
      return absl::InvalidArgumentError(
          absl::StrCat("event: time \"", it->get<std::string>(),
                       "\" is not RFC 3339: ", err));
    }
    event.set_time_unix_nanos(absl::ToUnixNanos(t));
  }
  auto data = j.find("data");
  if (data == j.end() || data->is_null()) return event;
  if (!data->is_object()) {
    return absl::InvalidArgumentError("event: \"data\" is not an object");
  }
  v1::EventData* out = event.mutable_data();
  if (auto it = data->find("version"); it != data->end()) {
    if (!it->is_string()) return Missing("data.version");
    out->set_version(it->get<std::string>());
  }
  auto values = data->find("values");
  if (values == data->end() || values->is_null()) return event;
  if (!values->is_array()) {
    return absl::InvalidArgumentError("event: \"data.values\" is not an array");
  }
  for (const json& v : *values) {
    if (!v.is_object()) {
      return absl::InvalidArgumentError(
          "event: an element of \"data.values\" is not an object");
    }
    v1::EventValue* value = out->add_values();
    std::string field;
    if (absl::Status st = RequireString(v, "ResourceAddress", &field);
        !st.ok()) {
      return st;
    }
    value->set_resource_address(field);
    if (absl::Status st = RequireString(v, "data_type", &field); !st.ok()) {
      return st;
    }
    value->set_data_type(field);
    if (absl::Status st = RequireString(v, "value_type", &field); !st.ok()) {
      return st;
    }
    value->set_value_type(field);
    if (absl::Status st = ValueString(v, "value", &field); !st.ok()) return st;
    value->set_value(field);
  }
  return event;
}

}  // namespace

std::string EncodeV2Event(const v1::CloudEvent& event) {
  json values = json::array();
  for (const v1::EventValue& v : event.data().values()) {
    values.push_back({{"ResourceAddress", v.resource_address()},
                      {"data_type", v.data_type()},
                      {"value_type", v.value_type()},
                      {"value", v.value()}});
  }
  const std::string& version = event.data().version();
  json j = {
      {"specversion",
       event.spec_version().empty() ? "1.0" : event.spec_version()},
      {"id", event.id()},
      {"source", event.source()},
      {"type", event.type()},
      {"time", FormatEventTime(event.time_unix_nanos())},
      {"data",
       {{"version", version.empty() ? "1.0" : version},
        {"values", std::move(values)}}},
  };
  return Dump(j);
}

// The seed's v1 REST shape: camelCase attributes, "dataContentType", and each
// value's "resource"/"dataType"/"valueType".
std::string EncodeV1Event(const v1::CloudEvent& event) {
  json values = json::array();
  for (const v1::EventValue& v : event.data().values()) {
    values.push_back({{"resource", v.resource_address()},
                      {"dataType", v.data_type()},
                      {"valueType", v.value_type()},
                      {"value", v.value()}});
  }
  json j = {
      {"id", event.id()},
      {"type", event.type()},
      {"source", event.source()},
      {"dataContentType", kApplicationJson},
      {"time", FormatEventTime(event.time_unix_nanos())},
      {"data", {{"version", kV1DataVersion}, {"values", std::move(values)}}},
  };
  return Dump(j);
}

absl::StatusOr<v1::CloudEvent> DecodeV2Event(absl::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr,
                       /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError("event: body is not valid JSON");
  }
  try {
    return FromJson(j);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("event: ", e.what()));
  }
}

std::string FormatEventTime(int64_t unix_nanos) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E9SZ",
                          absl::FromUnixNanos(unix_nanos), absl::UTCTimeZone());
}

}  // namespace loophost::events
