/* farm-bench-stamp: prints the wall clock in nanoseconds and exits. The dispatch benchmark runs
 * it as a job's step program: the time it prints is the moment the step is running. It is
 * linked statically so that what is measured is the farm and the kernel's fork and exec, not
 * the dynamic loader. Arguments are ignored. */
#include <stdio.h>
#include <time.h>

int main(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  printf("%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
  return 0;
}
