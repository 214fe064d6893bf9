// The table of built-in loops (builtin_loops.h).
#include "host/builtin_loops.h"

#include "loops/example/example_loop.h"
#include "loops/http/http_transport_loop.h"
#include "loops/ptp/ptp_config.h"
#include "loops/ptp/ptp_loop.h"

namespace loophost::host {

std::vector<BuiltinLoop> BuiltinLoops() {
  return {
      {"example",
       "the SDK's example loop (an echo service), EXAMPLE_PLUGIN=true",
       loops::example::MakeExampleLoop},
      {"http",
       "the HTTP transport: POSTs events to subscribers; on unless "
       "HTTP_PLUGIN=false",
       loops::http::MakeHttpTransportLoop, /*enabled_by_default=*/true,
       /*host_env=*/{"TRANSPORT_HOST"},
       [](const EnvMap& env) {
         return loops::http::ParseHttpTransportConfig(env).status();
       }},
      {"ptp",
       "the PTP monitor: linuxptp logs -> clock state events and "
       "openshift_ptp_* metrics, PTP_PLUGIN=true",
       loops::ptp::MakePtpLoop, /*enabled_by_default=*/false,
       /*host_env=*/{},
       [](const EnvMap& env) {
         return loops::ptp::PtpConfigFromEnv(env).status();
       }},
  };
}

}  // namespace loophost::host
