// Locks for rows the unique index cannot keep unique.
//
// A unique index treats NULLs as distinct unless it is NULLS NOT DISTINCT, so two calls could
// both insert (1, NULL). idsync makes such rows unique with transaction-level locks: each
// table has kLockSlots lock slots, a row takes the slot of a hash of its non-NULL key values,
// and a call takes all its slots in ascending order before it inserts anything, so calls
// cannot deadlock on them. The slots show in pg_locks as advisory locks with objsubid
// kLockClass. A fixed number of slots bounds the lock table entries a call needs.
#pragma once

#include "row_keys.hpp"

namespace idsync {

constexpr int kLockSlots = 256;
constexpr uint16 kLockClass = 0x1D5C;

void lock_unprotected_rows(const TargetTable &target, const RowKeys &keys, int64 nrows);

} // namespace idsync
