// The boundary between C++ and PostgreSQL error handling. Every SQL-callable function of the
// extension is declared with IDSYNC_FUNCTION, and this header is the only place where the two
// error mechanisms meet.
//
// The two rules, and how they are kept:
//
// 1. No C++ exception unwinds into PostgreSQL. IDSYNC_FUNCTION runs the body inside guard(),
//    which catches everything, lets the C++ scopes close, and only then raises a PostgreSQL
//    error. A PgError (below) carries PostgreSQL's own ErrorData, so SQLSTATE, detail and hint
//    survive.
//
// 2. No ereport/elog longjmp crosses a C++ frame that owns resources. Code that runs
//    PostgreSQL functions keeps its working memory in memory contexts and holds only trivially
//    destructible objects on the stack, so a longjmp through it skips no destructor (the
//    condition the C++ standard sets for longjmp). C++ code that does own resources
//    (std::vector, std::string, ...) calls PostgreSQL only through pg_call(), which turns a
//    PostgreSQL error into a PgError that unwinds normally.
#pragma once

#include "pg.hpp"

namespace idsync {

// A PostgreSQL error in flight through C++ frames. The ErrorData lives in the memory context
// that was current when pg_call() started.
struct PgError {
    ErrorData *data;
};

// Runs f(), a call into PostgreSQL, from a C++ frame that owns resources.
template <typename F> void pg_call(F &&f)
{
    MemoryContext volatile caller_context = CurrentMemoryContext;
    ErrorData *volatile error = nullptr;
    PG_TRY();
    {
        f();
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller_context);
        error = CopyErrorData();
        FlushErrorState();
    }
    PG_END_TRY();
    if (error != nullptr)
        throw PgError{error};
}

// Runs body(fcinfo) and turns any C++ exception into a PostgreSQL error after the C++ scopes
// have closed.
Datum guard(FunctionCallInfo fcinfo, Datum (*body)(FunctionCallInfo));

} // namespace idsync

// Declares an SQL-callable function `name` whose body runs inside idsync::guard().
#define IDSYNC_FUNCTION(name)                                                                      \
    static Datum name##_body(FunctionCallInfo fcinfo);                                             \
    extern "C" {                                                                                   \
    PG_FUNCTION_INFO_V1(name);                                                                     \
    }                                                                                              \
    extern "C" Datum name(PG_FUNCTION_ARGS)                                                        \
    {                                                                                              \
        return idsync::guard(fcinfo, name##_body);                                                 \
    }                                                                                              \
    static Datum name##_body(FunctionCallInfo fcinfo)
