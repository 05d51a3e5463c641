#include "backoff.hpp"

#include <algorithm>
#include <cmath>

double backoff_delay(int failures, double base, double max, double random01)
{
    if (failures < 1)
        return 0;
    // 2^(n-1) overflows nothing below 2^1023; cap the exponent long before.
    double grown = base * std::ldexp(1.0, std::min(failures - 1, 60));
    double capped = std::min(max, grown);
    double r = std::clamp(random01, 0.0, 1.0);
    return capped * (0.5 + 0.5 * r);
}
