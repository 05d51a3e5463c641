// What a call knows about the id of each distinct input row.
#pragma once

#include "pg.hpp"

namespace idsync {

enum class IdState : uint8 {
    missing,  // no visible row yet
    found,    // an existing row, or one a concurrent transaction committed
    inserted, // a row this call inserted
};

struct GroupIds {
    int64 *id;      // [group]
    IdState *state; // [group]
};

} // namespace idsync
