// The boundary between C++ and PostgreSQL error handling. Every SQL-callable function of the
// extension is declared with IDSYNC_FUNCTION, and this header is the only place where the two
// error mechanisms meet.
//
// The two rules, and how they are kept:
//
// 1. No C++ exception unwinds into PostgreSQL. IDSYNC_FUNCTION runs the body inside guard(),
//    which catches everything, lets the C++ scopes close, and only then raises a PostgreSQL
//    error (SQLSTATE 53200 for std::bad_alloc, XX000 otherwise).
//
// 2. No ereport/elog longjmp crosses a C++ frame that owns resources. Code that calls
//    PostgreSQL keeps its working memory in PostgreSQL memory contexts and only trivially
//    destructible objects on the stack (no std::vector, std::string, unique_ptr), so a
//    longjmp through it skips no destructor, which is the condition the C++ standard sets for
//    longjmp. PostgreSQL's own errors therefore travel unchanged, SQLSTATE, detail and hint
//    included. Code that needs owning C++ objects must not call PostgreSQL from those frames;
//    if that ever becomes necessary, convert errors there with PG_TRY/CopyErrorData and carry
//    the ErrorData to guard() to re-throw it.
#pragma once

#include "pg.hpp"

namespace idsync {

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
