// Retry delays for a peer whose pass failed: exponential with jitter, so that many daemons
// facing one dead peer neither hammer it nor retry in lockstep.
#pragma once

// The delay before attempt n+1 after n consecutive failures (n >= 1):
// min(max, base * 2^(n-1)) scaled by a factor in [0.5, 1.0) taken from random01 in [0, 1).
double backoff_delay(int failures, double base, double max, double random01);
