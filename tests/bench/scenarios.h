// The scenarios of the benchmark suite, one file each (see bench.h for what a scenario is).
#pragma once

#include "tests/bench/bench.h"

namespace farm::bench {

Scenario DispatchScenario();    // submit → first step running on an idle agent
Scenario ThroughputScenario();  // no-op jobs end to end, 4 agents × 4 slots
Scenario SubmitScenario();      // durable submits from 64 concurrent clients
Scenario LogsScenario();        // one step writing to stdout, until stored and readable
Scenario CasScenario();         // blobs up and down through ByteStream, against sha256sum + cp
Scenario BacklogScenario();     // a large queue: memory, restart, dispatch
Scenario AgentsScenario();      // many connected idle agents: memory and idle CPU
Scenario FollowersScenario();
Scenario FactoryScenario();  // the factory report over a day of a million events   // dispatch
                             // while readers follow a chatty job's output

}  // namespace farm::bench
