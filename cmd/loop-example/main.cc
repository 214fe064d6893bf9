// loop-example: the example loop as a plugin binary (see loops/example/).
#include "loops/example/example_loop.h"
#include "loops/sdk/serve.h"

int main(int argc, char** argv) {
  return loophost::sdk::ServeLoop(argc, argv,
                                  loophost::loops::example::MakeExampleLoop());
}
