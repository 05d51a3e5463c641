#include "subtransaction.hpp"

namespace idsync {

bool row_error(int code)
{
    return ERRCODE_TO_CATEGORY(code) == ERRCODE_DATA_EXCEPTION ||
           ERRCODE_TO_CATEGORY(code) == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION ||
           code == ERRCODE_TRIGGERED_DATA_CHANGE_VIOLATION || code == ERRCODE_RAISE_EXCEPTION;
}

ErrorData *try_subtransaction(void (*body)(void *), void *arg, bool (*catches)(int))
{
    MemoryContext context = CurrentMemoryContext;
    ResourceOwner owner = CurrentResourceOwner;
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(context);
    ErrorData *volatile error = nullptr;
    PG_TRY();
    {
        body(arg);
        ReleaseCurrentSubTransaction();
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(context);
        error = CopyErrorData();
        FlushErrorState();
        RollbackAndReleaseCurrentSubTransaction();
    }
    PG_END_TRY();
    MemoryContextSwitchTo(context);
    CurrentResourceOwner = owner;
    if (error != nullptr && !catches(error->sqlerrcode))
        ReThrowError(error);
    return error;
}

} // namespace idsync
