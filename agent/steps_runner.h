// The Runner of a job made of steps (WorkKind::kSteps): runs them in order in the workspace,
// each as a process group under the job's shell (StepRunner), and reports each one.
//
// Steps run according to their `when`: WHEN_ON_SUCCESS while no earlier step has failed or
// timed out, WHEN_ON_FAILURE only once one has, WHEN_ALWAYS in either case. Nothing runs after
// a cancel (the user's, the agent's drain timeout) or once the attempt is abandoned (lease lost
// or fenced), nor after the job's own timeout. A step that does not run is left for the
// coordinator to record as STEP_SKIPPED. The work fails when any step failed, whatever the
// steps after it did; its reason is the first failure's.
//
// Reports, in order: StepStarted once a step's program runs (sent alongside it), then its
// output (flushed), then StepFinished; the last step's result goes with CompleteJob instead when
// the coordinator takes it there and nothing (artifacts) comes between.
//
// Threads: Run() on the attempt's slot thread; Stop() from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "agent/attempt_runner.h"
#include "agent/runner.h"
#include "agent/step_runner.h"

namespace farm::agent {

class StepsRunner final : public Runner {
 public:
  // Uses context.supervisor, base_env, clock and complete_with_last_step; `context` must
  // outlive this object.
  explicit StepsRunner(const AttemptContext& context);

  WorkResult Run(Attempt& attempt, const WorkSite& site) override;
  void Stop() override { process_.Cancel(); }

 private:
  // How long a step may run: the tighter of its own timeout and what is left of the job's.
  struct Budget {
    int64_t timeout_ms = 0;  // 0: no timeout
    bool job_bound = false;  // the job's timeout is the tighter one
    bool expired = false;    // the job's timeout has passed: the step must not start
  };
  // A step's state and message for its StepResult, and the attempt's reason when it failed.
  struct StepVerdict {
    farm::v1::StepState state;
    std::string message;  // for StepResult.message
    std::string reason;   // for CompleteJob.reason; empty when the step succeeded
  };

  Budget BudgetFor(const farm::v1::JobSpec& spec, int index, int64_t job_started_ms) const;
  // The step's command; its environment has the job's secrets (site.secrets).
  StepCommand MakeCommand(const Attempt& attempt, int index, const std::string& step_name,
                          const WorkSite& site, int64_t timeout_ms) const;
  StepVerdict Judge(const Attempt& attempt, const std::string& name, const StepOutcome& outcome,
                    const Budget& budget) const;
  // Runs step `index` and reports it (its result goes into `work` when it travels with
  // CompleteJob). nullopt when nothing may follow: the attempt was abandoned, or a report or
  // the step's log upload failed.
  std::optional<StepVerdict> RunStep(Attempt& attempt, const WorkSite& site, int index,
                                     const std::string& name, const Budget& budget,
                                     WorkResult* work);

  const AttemptContext& context_;
  StepRunner process_;  // runs each step's process; Stop() cancels it
};

}  // namespace farm::agent
