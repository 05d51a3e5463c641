#include "boundary.hpp"

#include <cstring>
#include <exception>
#include <new>

namespace idsync {

Datum guard(FunctionCallInfo fcinfo, Datum (*body)(FunctionCallInfo))
{
    bool out_of_memory = false;
    // A fixed buffer: copying the message must not allocate while an exception is in flight.
    char message[512] = "";

    try {
        return body(fcinfo);
    } catch (const std::bad_alloc &) {
        out_of_memory = true;
    } catch (const std::exception &e) {
        strlcpy(message, e.what(), sizeof(message));
    } catch (...) {
        strlcpy(message, "unknown C++ exception", sizeof(message));
    }

    // The exception objects are gone; from here on a longjmp crosses no C++ scope.
    if (out_of_memory)
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory in idsync")));
    ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("idsync internal error: %s", message)));
    pg_unreachable();
}

} // namespace idsync
