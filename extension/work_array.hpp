// Typed allocation in the current PostgreSQL memory context. Arrays may exceed 1 GB (huge
// allocations), since a batch of millions of rows is legitimate input.
#pragma once

#include "pg.hpp"

namespace idsync {

template <typename T> T *work_array(int64 n)
{
    return static_cast<T *>(palloc_extended(sizeof(T) * (n > 0 ? n : 1), MCXT_ALLOC_HUGE));
}

template <typename T> T *work_array0(int64 n)
{
    return static_cast<T *>(
        palloc_extended(sizeof(T) * (n > 0 ? n : 1), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO));
}

} // namespace idsync
