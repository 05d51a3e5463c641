// PL/pgSQL's BEGIN ... EXCEPTION in C: a part of a call runs in an internal subtransaction, and
// an error it raises either rolls that part back and is handed to the caller, or propagates as
// it came. Merges use it to set aside the rows a table refuses without failing the batch.
#pragma once

#include "pg.hpp"

namespace idsync {

// Errors a row's data causes: classes 22 (data exception) and 23 (integrity constraint
// violation), 27000 (a trigger changed a row it may not) and P0001 (raised by a trigger).
bool row_error(int sqlerrcode);

// Runs body(arg) in a subtransaction. Returns nullptr when it succeeded. When it raised an error
// that `catches` accepts, the subtransaction is rolled back and the error returned, copied into
// the caller's memory context; any other error is raised again after the rollback. What body
// allocates in the caller's context stays; locks and relations it opened are released with the
// subtransaction, so open those before. body must own nothing a longjmp would skip
// (boundary.hpp).
ErrorData *try_subtransaction(void (*body)(void *), void *arg, bool (*catches)(int sqlerrcode));

} // namespace idsync
