// loop-http: the HTTP transport loop as a plugin binary (see loops/http/).
// loophost runs it when HTTP_PLUGIN_CMD names it; TRANSPORT_HOST and the
// HTTP_TRANSPORT_* variables reach it from the host's environment.
#include "loops/http/http_transport_loop.h"
#include "loops/sdk/serve.h"

int main(int argc, char** argv) {
  return loophost::sdk::ServeLoop(
      argc, argv, loophost::loops::http::MakeHttpTransportLoop());
}
